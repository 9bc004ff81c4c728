package auth

import (
	"bytes"
	"slices"
	"testing"
	"time"
)

func TestSignRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		ttl      time.Duration
		scopes   []string
		iss, aud string
		cfg      Config
	}{
		{"plain", time.Hour, nil, "", "", Config{Secret: testSecret}},
		{"no exp", 0, nil, "", "", Config{Secret: testSecret}},
		{"publish", time.Minute, []string{"publish", "read"}, "", "", Config{Secret: testSecret}},
		{"issuer and audience", time.Hour, []string{"publish"}, "me", "noticed", Config{Secret: testSecret, Issuer: "me", Audience: "noticed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			before := time.Now().Truncate(time.Second)
			tok, err := Sign(testSecret, "user-7", tt.ttl, tt.scopes, tt.iss, tt.aud)
			if err != nil {
				t.Fatal(err)
			}
			v, err := NewVerifier(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			got, err := v.Verify(tok)
			if err != nil {
				t.Fatalf("Verify = %v", err)
			}
			if got.Subject != "user-7" {
				t.Errorf("Subject = %q, want user-7", got.Subject)
			}
			if !slices.Equal(got.Scopes, tt.scopes) {
				t.Errorf("Scopes = %q, want %q", got.Scopes, tt.scopes)
			}
			if tt.ttl <= 0 && !got.ExpiresAt.IsZero() {
				t.Errorf("ExpiresAt = %v, want zero", got.ExpiresAt)
			}
			if tt.ttl > 0 && (got.ExpiresAt.Before(before.Add(tt.ttl)) || got.ExpiresAt.After(time.Now().Add(tt.ttl))) {
				t.Errorf("ExpiresAt = %v, want about now+%v", got.ExpiresAt, tt.ttl)
			}
		})
	}
}

func TestSignRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		secret []byte
		sub    string
		scopes []string
	}{
		{"empty secret", nil, "42", nil},
		{"empty sub", testSecret, "", nil},
		{"sub with space", testSecret, "a b", nil},
		{"sub with braces", testSecret, "{x}", nil},
		{"scope with space", testSecret, "42", []string{"read publish"}},
		{"empty scope", testSecret, "42", []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tok, err := Sign(tt.secret, tt.sub, time.Hour, tt.scopes, "", ""); err == nil {
				t.Errorf("Sign = %q, want an error", tok)
			}
		})
	}
}

func TestRandomSecret(t *testing.T) {
	t.Parallel()
	a, err := RandomSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, err := RandomSecret()
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != SecretSize || bytes.Equal(a, b) {
		t.Errorf("RandomSecret = %x, %x: want two different %d-byte secrets", a, b, SecretSize)
	}
}
