package server_test

import (
	"encoding/json"
	"net/http"
	"testing"
)

type presenceReply struct {
	Users map[string]struct {
		Streams int
		Since   *string
	}
}

func (e *env) presence(query string) presenceReply {
	e.t.Helper()
	code, raw := e.call(http.MethodGet, "/presence?"+query, token(e.t, "producer", "publish"), "", nil)
	if code != http.StatusOK {
		e.t.Fatalf("presence %s: %d %s", query, code, raw)
	}
	var p presenceReply
	if err := json.Unmarshal(raw, &p); err != nil {
		e.t.Fatal(err)
	}
	return p
}

func TestPresence(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.subscribe("pia")
	e.subscribe("pia")
	waitFor(t, "pia's two streams counted", func() bool {
		p := e.presence("users=pia&users=quin")
		return p.Users["pia"].Streams == 2 && p.Users["pia"].Since != nil
	})
	if p := e.presence("user=quin"); p.Users["quin"].Streams != 0 || p.Users["quin"].Since != nil {
		t.Errorf("a user with no stream: %+v", p)
	}
	a.cancel()
	waitFor(t, "pia down to one stream", func() bool { return e.presence("user=pia").Users["pia"].Streams == 1 })

	// Transitions are a stream a publisher reads like a user's history.
	code, raw := e.call(http.MethodGet, "/notice/history?user=noticed:presence", token(t, "producer", "publish"), "", nil)
	var h historyReply
	if code != http.StatusOK || json.Unmarshal(raw, &h) != nil || len(h.Entries) != 1 || h.Entries[0].Data != `{"user":"pia","state":"online"}` {
		t.Errorf("presence stream: %d %s", code, raw)
	}
}

func TestPresenceErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	many := "user=u"
	for range 1000 {
		many += "&users=u"
	}
	tests := []struct {
		name, query, tok string
		want             int
	}{
		{"no token", "user=a", "", 401},
		{"a user's token", "user=a", token(t, "a"), 403},
		{"no user", "", token(t, "p", "publish"), 400},
		{"a bad user", "user=a%7Bb", token(t, "p", "publish"), 400},
		{"over 1000 users", many, token(t, "p", "publish"), 400},
	}
	for _, tt := range tests {
		if code, raw := e.call(http.MethodGet, "/presence?"+tt.query, tt.tok, "", nil); code != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, code, raw, tt.want)
		}
	}
}
