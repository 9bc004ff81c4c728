// Package presence tells producers whether a user is online: how many
// streams the user has open across all instances, since when, and a
// stream of online/offline transitions, one per transition. Each
// instance holds a lease it renews; when an instance dies its lease runs
// out, and another instance takes its share away, announcing the users
// that went offline with it.
package presence

import (
	"context"
	"time"
)

// States of a transition.
const (
	Online  = "online"
	Offline = "offline"
)

// DefaultKey names the presence stream (-presence-stream).
const DefaultKey = "noticed:presence"

// Transition is one user coming online (first stream anywhere) or going
// offline (last stream anywhere closed, or lost with its instance).
type Transition struct {
	User  string
	State string // Online or Offline; empty: no transition
	// Stamp orders one user's transitions where several instances
	// decide them (Redis: the server's clock, in microseconds, when the
	// script decided it): instances announce in their own time, so a
	// transition decided earlier may reach Announce after a later one.
	// Zero where one process decides and announces them all, in order.
	Stamp int64
}

// Count is how many streams of User one instance holds.
type Count struct {
	User    string
	Streams int
}

// Info is one user's presence.
type Info struct {
	User    string
	Streams int
	Since   time.Time // zero while offline
}

// Backend is where instances keep their shares. Every call that writes
// for a user touches only that user's key, so that a Redis Cluster keeps
// it on the user's slot.
type Backend interface {
	// Lease starts instance's lease for ttl or, with renew, extends it
	// only if it is still held: false then means it lapsed (and the
	// instance's shares may have been taken away).
	Lease(ctx context.Context, instance string, ttl time.Duration, renew bool) (bool, error)
	// Release ends instance's lease and registration, once its shares
	// are all zero.
	Release(ctx context.Context, instance string) error
	// Set records that instance holds c.Streams streams of each c.User,
	// in one round trip where the backend can, and returns each user's
	// transition in order: State empty when whether the user is online
	// did not change.
	Set(ctx context.Context, instance string, counts []Count, now time.Time) ([]Transition, error)
	// Announce appends ts to the presence stream, in order. Where
	// transitions carry stamps, each user's entries alternate in the
	// order they were decided, whatever order they are announced in: one
	// older than the user's last entry is dropped (late, or sent again),
	// and one in the same state as the last entry is preceded by the
	// opposite one it follows (still late, or lost with its instance).
	Announce(ctx context.Context, ts []Transition) error
	// Lapsed returns instances whose lease ran out while they still hold
	// shares, each claimed by the caller for ttl so that one instance
	// alone takes a dead one's shares away.
	Lapsed(ctx context.Context, self string, ttl time.Duration) ([]string, error)
	// Held returns the users instance has shares of.
	Held(ctx context.Context, instance string) ([]string, error)
	// Forget drops a lapsed instance once its shares are gone.
	Forget(ctx context.Context, instance string) error
	// Counts returns each user's presence, in order.
	Counts(ctx context.Context, users []string) ([]Info, error)
}
