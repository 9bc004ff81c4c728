package redisstore

import (
	"errors"
	"strings"
	"testing"

	"github.com/noticed/noticed/internal/redistest"
	"github.com/noticed/noticed/internal/routing"
)

func TestMissingFlags(t *testing.T) {
	t.Parallel()
	tests := []struct{ have, want string }{
		{"", "Kt"},
		{"gE", "Kt"},
		{"K", "t"},
		{"tE", "K"},
		{"AK", ""},
		{"AE", "K"},
		{"Kt", ""},
		{"gtKE", ""},
	}
	for _, tt := range tests {
		if got := missingFlags(tt.have); got != tt.want {
			t.Errorf("missingFlags(%q) = %q, want %q", tt.have, got, tt.want)
		}
	}
}

func TestNotifyFlagsAreAddedNeverRemoved(t *testing.T) {
	t.Parallel()
	tests := []struct {
		start string
		want  string // every flag that must be set after New
	}{
		{"", "Kt"},
		{"Eg", "EgKt"},
		{"KEA", "KEA"},
		{"Exm", "ExmKt"},
	}
	for _, tt := range tests {
		t.Run(tt.start, func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t, "--notify-keyspace-events", tt.start)
			newStore(t, Options{URL: srv.URL()})
			got := rawClient(t, srv).ConfigGet(testCtx(t), notifyParam).Val()[notifyParam]
			for _, f := range tt.want {
				if !strings.ContainsRune(got, f) {
					t.Errorf("started with %q: now %q, missing %q", tt.start, got, f)
				}
			}
		})
	}
}

func TestRefusedConfigNamesTheLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		userinfo string
		wantLine string
	}{
		{
			name:     "CONFIG renamed away",
			args:     []string{"--rename-command", "CONFIG", ""},
			wantLine: "notify-keyspace-events Kt",
		},
		{
			name: "CONFIG SET not permitted",
			args: []string{"--notify-keyspace-events", "Eg",
				"--user", "app", "on", ">secret", "~*", "&*", "+@all", "-config|set"},
			userinfo: "app:secret@",
			// Redis reports "Eg" back as "gE"; the line keeps it.
			wantLine: "notify-keyspace-events gEKt",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t, tt.args...)
			_, err := New(testCtx(t), Options{URL: "redis://" + tt.userinfo + srv.Addr() + "/0"})
			if !errors.Is(err, ErrNotifyConfig) || errors.Is(err, routing.ErrUnavailable) {
				t.Fatalf("New: %v; want ErrNotifyConfig", err)
			}
			if !strings.HasSuffix(err.Error(), ": "+tt.wantLine) {
				t.Errorf("New: %v; want it to end with the line %q", err, tt.wantLine)
			}
		})
	}
}

func TestEnabledFlagsNeedNoConfigSet(t *testing.T) {
	t.Parallel()
	// A managed Redis that forbids CONFIG SET but already has the flags.
	srv := redistest.Start(t, "--notify-keyspace-events", "KEt",
		"--user", "app", "on", ">secret", "~*", "&*", "+@all", "-config|set")
	newStore(t, Options{URL: "redis://app:secret@" + srv.Addr() + "/0"})
}
