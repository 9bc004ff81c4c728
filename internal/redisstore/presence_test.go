package redisstore

import (
	"slices"
	"testing"
	"time"

	"github.com/noticed/noticed/internal/presence"
	"github.com/noticed/noticed/internal/redistest"
)

// TestPresenceAnnouncedInTheOrderDecided: a user's transitions are
// decided on the user's key in one order (the script), and announced by
// the instances that decided them, each in its own round trip. Here they
// are decided online, offline (i1), online, offline (i2), and reach
// Announce as online, online (i1's offline delayed), offline, then that
// offline again with the last one (a batch sent again after a lost
// reply), then the second online again. The stream still holds online,
// offline, online, offline; before, it held online, online, offline,
// offline, offline, online (e2e.TestPresence: "online twice in a row").
func TestPresenceAnnouncedInTheOrderDecided(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	key := user("presence-order")
	p := newStore(t, Options{URL: srv.URL()}).Presence(key)
	u := user("u")
	now := time.Now()
	var trs []presence.Transition
	for i, step := range []struct {
		inst string
		n    int
	}{{"i1", 1}, {"i1", 0}, {"i2", 1}, {"i2", 0}} {
		got, err := p.Set(testCtx(t), step.inst, []presence.Count{{User: u, Streams: step.n}}, now)
		if err != nil {
			t.Fatal(err)
		}
		if got[0].State == "" || got[0].Stamp <= 0 || (i > 0 && got[0].Stamp <= trs[i-1].Stamp) {
			t.Fatalf("step %d: transition %+v after %+v: want one, stamped later", i, got[0], trs)
		}
		trs = append(trs, got[0])
	}
	on1, off1, on2, off2 := trs[0], trs[1], trs[2], trs[3]
	for _, batch := range [][]presence.Transition{{on1}, {on2}, {off1}, {off1, off2}, {on2}} {
		if err := p.Announce(testCtx(t), batch); err != nil {
			t.Fatal(err)
		}
	}
	states := func() []string {
		entries, err := rawClient(t, srv).XRange(testCtx(t), key, "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range entries {
			if e.Values["user"] != u {
				t.Errorf("entry %v: not user %s", e.Values, u)
			}
			out = append(out, e.Values["state"].(string))
		}
		return out
	}
	want := []string{"online", "offline", "online", "offline"}
	if got := states(); !slices.Equal(got, want) {
		t.Errorf("presence stream %v, want %v", got, want)
	}

	// Lost with its instance: online decided and never announced; the
	// offline that follows is told after the online it follows.
	on3, err := p.Set(testCtx(t), "i3", []presence.Count{{User: u, Streams: 1}}, now)
	if err != nil || on3[0].State != presence.Online {
		t.Fatalf("%+v %v", on3, err)
	}
	off3, err := p.Set(testCtx(t), "i3", []presence.Count{{User: u, Streams: 0}}, now)
	if err != nil || off3[0].State != presence.Offline {
		t.Fatalf("%+v %v", off3, err)
	}
	if err := p.Announce(testCtx(t), off3); err != nil {
		t.Fatal(err)
	}
	want = append(want, "online", "offline")
	if got := states(); !slices.Equal(got, want) {
		t.Errorf("after a lost online: presence stream %v, want %v", got, want)
	}
}

func TestToldKeyOnTheStreamsSlot(t *testing.T) {
	for key, want := range map[string]string{
		"noticed:presence":   "{noticed:presence}:told",
		"{app}:presence":     "{app}:presence:told",
		"presence{app}x":     "presence{app}x:told",
		"noticed:presence-2": "{noticed:presence-2}:told",
	} {
		if got := toldKey(key); got != want {
			t.Errorf("toldKey(%q) = %q, want %q", key, got, want)
		}
	}
}
