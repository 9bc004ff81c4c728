package storetest

import (
	"testing"
	"time"

	"github.com/noticed/noticed/internal/presence"
)

// NewPresence makes a presence backend for one test. Shared says whether
// instances share it (Redis), so that leases and reaping apply.
type NewPresence func(t *testing.T) presence.Backend

// RunPresence holds a presence backend to the behaviour every one shares:
// counts, since, one transition per change of online; with shared, the
// counts of several instances add up and a lapsed instance's share is
// taken away once.
func RunPresence(t *testing.T, newBackend NewPresence, shared bool) {
	t.Run("CountsAndTransitions", func(t *testing.T) {
		t.Parallel()
		b := newBackend(t)
		u := User(t)
		now := time.UnixMilli(time.Now().UnixMilli()).UTC()
		steps := []struct {
			n    int
			want string // transition, "" none
		}{{2, presence.Online}, {3, ""}, {1, ""}, {0, presence.Offline}, {0, ""}, {1, presence.Online}}
		for i, s := range steps {
			tr, changed, err := set1(t, b, "i1", u, s.n, now)
			if err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
			if got := map[bool]string{true: tr.State}[changed]; got != s.want || (changed && tr.User != u) {
				t.Errorf("step %d (%d streams): transition %+v %v, want %q", i, s.n, tr, changed, s.want)
			}
			infos, err := b.Counts(ctx(t), []string{u, User(t)})
			if err != nil {
				t.Fatal(err)
			}
			if infos[0].User != u || infos[0].Streams != s.n || (s.n > 0) == infos[0].Since.IsZero() {
				t.Errorf("step %d: %+v, want %d streams", i, infos[0], s.n)
			}
			if infos[1].Streams != 0 || !infos[1].Since.IsZero() {
				t.Errorf("step %d: a user never seen: %+v", i, infos[1])
			}
		}
		if err := b.Announce(ctx(t), []presence.Transition{{User: u, State: presence.Online}}); err != nil {
			t.Errorf("Announce: %v", err)
		}
	})
	t.Run("ManyAtOnce", func(t *testing.T) {
		t.Parallel()
		b := newBackend(t)
		u1, u2, u3 := User(t), User(t), User(t)
		now := time.Now()
		if _, err := b.Set(ctx(t), "i1", []presence.Count{{User: u3, Streams: 1}}, now); err != nil {
			t.Fatal(err)
		}
		trs, err := b.Set(ctx(t), "i1", []presence.Count{{User: u1, Streams: 1}, {User: u2, Streams: 0}, {User: u3, Streams: 0}}, now)
		if err != nil {
			t.Fatal(err)
		}
		want := []presence.Transition{{User: u1, State: presence.Online}, {User: u2}, {User: u3, State: presence.Offline}}
		same := func(a, b presence.Transition) bool { return a.User == b.User && a.State == b.State }
		if len(trs) != 3 || !same(trs[0], want[0]) || !same(trs[1], want[1]) || !same(trs[2], want[2]) {
			t.Errorf("transitions %+v, want %+v", trs, want)
		}
	})
	if !shared {
		return
	}
	t.Run("InstancesAddUpAndLapse", func(t *testing.T) {
		t.Parallel()
		b := newBackend(t)
		u := User(t)
		a, c := User(t), User(t) // instance names no other test uses
		now := time.Now()
		for _, inst := range []string{a, c} {
			if ok, err := b.Lease(ctx(t), inst, 300*time.Millisecond, false); !ok || err != nil {
				t.Fatalf("Lease: %v %v", ok, err)
			}
		}
		if _, changed, _ := set1(t, b, a, u, 1, now); !changed {
			t.Error("first stream anywhere: no transition")
		}
		if _, changed, _ := set1(t, b, c, u, 2, now); changed {
			t.Error("a second instance's streams: a transition")
		}
		if infos, _ := b.Counts(ctx(t), []string{u}); infos[0].Streams != 3 {
			t.Errorf("counts %+v, want 3 streams", infos)
		}
		// c renews; a does not, and lapses: c claims it once.
		var dead []string
		waitFor(t, 10*time.Second, "a's lease to lapse", func() bool {
			if ok, err := b.Lease(ctx(t), c, 300*time.Millisecond, true); !ok || err != nil {
				t.Fatalf("renew c: %v %v", ok, err)
			}
			var err error
			if dead, err = b.Lapsed(ctx(t), c, time.Minute); err != nil {
				t.Fatalf("Lapsed: %v", err)
			}
			return contains(dead, a)
		})
		if contains(dead, c) {
			t.Fatalf("Lapsed: %v holds the caller %s", dead, c)
		}
		if ok, err := b.Lease(ctx(t), a, time.Minute, true); ok || err != nil {
			t.Errorf("renewing a lapsed lease: %v %v, want false", ok, err)
		}
		if again, _ := b.Lapsed(ctx(t), c, time.Minute); contains(again, a) {
			t.Errorf("a lapsed instance claimed twice")
		}
		held, err := b.Held(ctx(t), a)
		if err != nil || !contains(held, u) {
			t.Fatalf("Held(a): %v %v", held, err)
		}
		if _, changed, _ := set1(t, b, a, u, 0, now); changed {
			t.Error("taking a's share away while c holds streams: a transition")
		}
		if err := b.Forget(ctx(t), a); err != nil {
			t.Fatal(err)
		}
		if infos, _ := b.Counts(ctx(t), []string{u}); infos[0].Streams != 2 {
			t.Errorf("counts %+v, want c's 2 streams", infos)
		}
		if tr, changed, _ := set1(t, b, c, u, 0, now); !changed || tr.State != presence.Offline {
			t.Errorf("the last streams closed: %+v %v, want offline", tr, changed)
		}
		if err := b.Release(ctx(t), c); err != nil {
			t.Fatal(err)
		}
	})
}

// set1 sets one user's count.
func set1(t *testing.T, b presence.Backend, instance, user string, n int, now time.Time) (presence.Transition, bool, error) {
	t.Helper()
	trs, err := b.Set(ctx(t), instance, []presence.Count{{User: user, Streams: n}}, now)
	if err != nil {
		return presence.Transition{}, false, err
	}
	if len(trs) != 1 || trs[0].User != user {
		t.Fatalf("Set of one user answered %+v", trs)
	}
	return trs[0], trs[0].State != "", nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
