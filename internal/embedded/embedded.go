// Package embedded holds what the two embedded backends (memory and file)
// share, so that they keep the same rules: how an id is chosen, when a
// read reports a gap, who is told of new entries, and the sweep of expired
// streams. Both take every append in this process, which is what lets them
// notify followers without a server's help.
package embedded

import (
	"time"

	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/routing"
)

// NextID is the id of an entry appended at now after last, as Redis gives
// it: the current millisecond, or last plus one when the clock has not
// moved past last (two appends in one millisecond, or a clock set back).
func NextID(last notice.ID, now time.Time) notice.ID {
	id := notice.ID{Ms: uint64(max(now.UnixMilli(), 0))}
	if id.Compare(last) <= 0 {
		id = notice.ID{Ms: last.Ms, Seq: last.Seq + 1}
	}
	return id
}

// Gap applies the gap rule to a cursor, given the oldest and newest
// entries the stream still holds (retained false: the stream is gone,
// expired or never written). Entries above the cursor may have been lost
// exactly when the cursor's own entry is no longer held: whatever followed
// it may have gone with it. The cursor is ahead when it is past the newest
// entry (trimming only takes the oldest, so the newest held is the newest
// the stream ever had): nothing after it will ever be read. A cursor at
// zero never has a gap.
func Gap(c routing.Cursor, oldest, newest notice.ID, retained bool) (gap, ahead bool) {
	if !c.CheckGap || c.After.IsZero() {
		return false, false
	}
	if !retained || newest.Less(c.After) {
		return true, true
	}
	return c.After.Less(oldest), false
}

// SweepEvery keeps expired streams from holding space for much longer
// than their time to live, without waking often for a long one.
func SweepEvery(ttl time.Duration) time.Duration {
	return min(max(ttl/4, 10*time.Millisecond), time.Minute)
}
