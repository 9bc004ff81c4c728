package embedded

import (
	"testing"
	"time"

	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/routing"
)

func TestNextID(t *testing.T) {
	at := func(ms int64) time.Time { return time.UnixMilli(ms) }
	tests := []struct {
		name string
		last notice.ID
		now  time.Time
		want notice.ID
	}{
		{"first entry", notice.Zero, at(1000), notice.ID{Ms: 1000}},
		{"clock moved on", notice.ID{Ms: 1000, Seq: 4}, at(1001), notice.ID{Ms: 1001}},
		{"same millisecond", notice.ID{Ms: 1000, Seq: 4}, at(1000), notice.ID{Ms: 1000, Seq: 5}},
		{"clock went back", notice.ID{Ms: 5000, Seq: 0}, at(1000), notice.ID{Ms: 5000, Seq: 1}},
		{"clock before 1970", notice.Zero, at(-5), notice.ID{Ms: 0, Seq: 1}},
	}
	for _, tt := range tests {
		if got := NextID(tt.last, tt.now); got != tt.want {
			t.Errorf("%s: NextID(%v) = %v, want %v", tt.name, tt.last, got, tt.want)
		}
	}
}

func TestGap(t *testing.T) {
	oldest, newest := notice.ID{Ms: 100}, notice.ID{Ms: 200}
	tests := []struct {
		name            string
		c               routing.Cursor
		retained        bool
		wantGap, wantAh bool
	}{
		{"not asked", routing.Cursor{After: notice.ID{Ms: 1}}, true, false, false},
		{"not asked, ahead", routing.Cursor{After: notice.ID{Ms: 300}}, true, false, false},
		{"from zero", routing.Cursor{CheckGap: true}, false, false, false},
		{"before the oldest", routing.Cursor{After: notice.ID{Ms: 99}, CheckGap: true}, true, true, false},
		{"at the oldest", routing.Cursor{After: oldest, CheckGap: true}, true, false, false},
		{"after the oldest", routing.Cursor{After: notice.ID{Ms: 150}, CheckGap: true}, true, false, false},
		{"at the newest", routing.Cursor{After: newest, CheckGap: true}, true, false, false},
		{"past the newest", routing.Cursor{After: notice.ID{Ms: 200, Seq: 1}, CheckGap: true}, true, true, true},
		{"stream gone", routing.Cursor{After: notice.ID{Ms: 150}, CheckGap: true}, false, true, true},
	}
	for _, tt := range tests {
		gap, ahead := Gap(tt.c, oldest, newest, tt.retained)
		if gap != tt.wantGap || ahead != tt.wantAh {
			t.Errorf("%s: Gap = %v, %v, want %v, %v", tt.name, gap, ahead, tt.wantGap, tt.wantAh)
		}
	}
}

type counter map[string]int

func (c counter) Changed(user string) { c[user]++ }
func (c counter) Resync()             {}
func (c counter) Recheck(user string) { c[user]++ }

func TestFollowsTellsFollowedUsersOncePerRun(t *testing.T) {
	var f Follows
	f.Appended([]routing.Message{{User: "a"}}) // no notifier yet: nothing to tell
	got := counter{}
	f.SetNotifier(got)
	f.Follow("a")
	f.Follow("b")
	f.Appended([]routing.Message{{User: "a"}, {User: "a"}, {User: "c"}, {User: "b"}, {User: "a"}})
	if got["a"] != 2 || got["b"] != 1 || got["c"] != 0 {
		t.Errorf("notified %v, want a twice (two runs), b once, c never", got)
	}
	f.Unfollow("a")
	f.Appended([]routing.Message{{User: "a"}})
	if got["a"] != 2 || f.Followed() != 1 {
		t.Errorf("after Unfollow: %v, %d followed", got, f.Followed())
	}
}

func TestSweeperStops(t *testing.T) {
	swept := make(chan struct{}, 1)
	s := StartSweeper(40*time.Millisecond, func() {
		select {
		case swept <- struct{}{}:
		default:
		}
	})
	<-swept
	s.Stop()
	s.Stop()
	StartSweeper(0, func() { t.Error("swept with no time to live") }).Stop()
}
