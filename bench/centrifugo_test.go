package main

import (
	"errors"
	"strings"
	"testing"
)

func TestCentrifugoData(t *testing.T) {
	tests := []struct {
		push    string
		data    string
		notAPub bool
		bad     bool
	}{
		{push: `{}`, notAPub: true},
		{push: `{"connect":{"client":"x","version":"6.9.1","subs":{"#u1":{}},"ping":25}}`, notAPub: true},
		{push: `{"channel":"#u1","pub":{"data":"u1 3 1795686067123456789 m","offset":3}}`, data: "u1 3 1795686067123456789 m"},
		{push: `{"channel":"#u1","join":{"info":{}}}`, notAPub: true},
		{push: `{"channel":"#u1","pub":{"data":{"a":1},"offset":3}}`, notAPub: true},
		{push: `{"channel":"#u1","pub":{"data":"a\"b","offset":3}}`, bad: true},
		{push: `{"channel":"#u1","pub":{"data":"unterminated`, bad: true},
	}
	for _, tc := range tests {
		data, err := centrifugoData([]byte(tc.push))
		switch {
		case tc.notAPub:
			if !errors.Is(err, errNotPublication) {
				t.Errorf("%s: %q, %v; want not a publication", tc.push, data, err)
			}
		case tc.bad:
			if err == nil || errors.Is(err, errNotPublication) {
				t.Errorf("%s: %q, %v; want a malformed publication", tc.push, data, err)
			}
		case err != nil || string(data) != tc.data:
			t.Errorf("%s: %q, %v; want %q", tc.push, data, err, tc.data)
		}
	}
}

func TestCentrifugoPublishAndAnswers(t *testing.T) {
	got := string(appendCentrifugoPublish(nil, "u7", 2, 5, phaseMeasured))
	if want := `{"channel":"#u7","data":"u7 2 5 m"}`; got != want {
		t.Errorf("publish %s, want %s", got, want)
	}
	if err := centrifugoAPIError([]byte(`{"result":{"offset":1,"epoch":"x"}}`)); err != nil {
		t.Errorf("a result: %v", err)
	}
	if err := centrifugoAPIError([]byte(`{"error":{"code":102,"message":"unknown channel"}}`)); err == nil || !strings.Contains(err.Error(), "102 unknown channel") {
		t.Errorf("an error: %v", err)
	}
	if err := centrifugoAPIError([]byte(`<html>`)); err == nil {
		t.Error("HTML taken for an answer")
	}
}

func TestCentrifugoStreamTarget(t *testing.T) {
	got := centrifugoStreamTarget("a.b.c")
	if want := "/connection/uni_sse?cf_connect=%7B%22token%22%3A%22a.b.c%22%7D"; got != want {
		t.Errorf("%s, want %s", got, want)
	}
}
