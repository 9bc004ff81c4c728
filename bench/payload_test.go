package main

import (
	"testing"
)

func TestPayloadRoundTrip(t *testing.T) {
	b := appendPayload(nil, "b1a2b3-42", 7, 1795686067123456789, phaseMeasured)
	if string(b) != "b1a2b3-42 7 1795686067123456789 m" {
		t.Fatalf("payload %q", b)
	}
	p, ok := parsePayload(b)
	if !ok || string(p.user) != "b1a2b3-42" || p.seq != 7 || p.sentNs != 1795686067123456789 || p.phase != phaseMeasured {
		t.Errorf("parsed %+v %v", p, ok)
	}
}

func TestPayloadRefuses(t *testing.T) {
	for _, s := range []string{
		"", "u", "u 1", "u 1 2", "u 1 2 x", "u 1 2 mm", " 1 2 m", "u -1 2 m", "u 0 2 m", "u 1 0 m",
		"u 1 99999999999999999999 m", "u a 2 m", "u 1 2 m extra", "u 1  2 m",
	} {
		if p, ok := parsePayload([]byte(s)); ok {
			t.Errorf("%q parsed as %+v", s, p)
		}
	}
}

func FuzzParsePayload(f *testing.F) {
	f.Add([]byte("u-1 1 1795686067123456789 w"))
	f.Add([]byte("u 9223372036854775807 9223372036854775807 s"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, ok := parsePayload(b)
		if !ok {
			return
		}
		again := appendPayload(nil, string(p.user), p.seq, p.sentNs, p.phase)
		if string(again) != string(b) {
			t.Errorf("%q parsed, written back as %q", b, again)
		}
	})
}
