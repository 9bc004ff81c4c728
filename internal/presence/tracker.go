package presence

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// DefaultLease is how long an instance's share outlives its last renewal
// (-presence-lease). It is renewed every third of that, so a live
// instance misses two renewals before it lapses; a dead one's users go
// offline between one and about one and a third leases after it died.
const DefaultLease = 15 * time.Second

// Options configure a Tracker.
type Options struct {
	// Instance names this instance in the backend; default host, pid and
	// random bytes. A lapsed lease makes the tracker take a new name.
	Instance string
	Lease    time.Duration
	Logger   *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Tracker keeps this instance's share of every user's presence in the
// backend: the hub tells it how many streams a user has open here
// (Counted, which never blocks), and its goroutine writes the changes,
// renews the lease and takes lapsed instances' shares away.
type Tracker struct {
	b    Backend
	opts Options
	log  *slog.Logger
	base string

	mu       sync.Mutex
	instance string
	gen      int
	want     map[string]int // streams open here, by user
	held     map[string]int // as the backend has them
	dirty    map[string]struct{}
	pending  []Transition // announcements still to make
	leased   bool
	// lapsed are names this instance held a lease under that lapsed,
	// with the users it may have written under them. A reaper takes
	// away the shares it finds, but not one this instance wrote after
	// the reaper looked: those are taken away here, or the user would
	// count twice once written again under the new name.
	lapsed map[string][]string

	wake chan struct{}
	stop chan struct{}
	done chan struct{}
}

// NewTracker makes a tracker; Run starts it.
func NewTracker(b Backend, opts Options) *Tracker {
	if opts.Lease <= 0 {
		opts.Lease = DefaultLease
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Instance == "" {
		host, _ := os.Hostname()
		var r [4]byte
		_, _ = rand.Read(r[:])
		opts.Instance = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(r[:]))
	}
	// Braces would make part of the name a Cluster hash tag.
	base := strings.NewReplacer("{", "_", "}", "_", " ", "_").Replace(opts.Instance)
	return &Tracker{
		b: b, opts: opts, log: opts.Logger, base: base, instance: base,
		want: map[string]int{}, held: map[string]int{}, dirty: map[string]struct{}{}, lapsed: map[string][]string{},
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
}

// Instance returns the name this instance holds its lease under now.
func (t *Tracker) Instance() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.instance
}

// Counted says user has n streams open on this instance now.
func (t *Tracker) Counted(user string, n int) {
	t.mu.Lock()
	if n == 0 {
		delete(t.want, user)
	} else {
		t.want[user] = n
	}
	t.dirty[user] = struct{}{}
	t.mu.Unlock()
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// Run writes changes, renews the lease and reaps lapsed instances until
// Close.
func (t *Tracker) Run() {
	defer close(t.done)
	tick := time.NewTicker(t.opts.Lease / 3)
	defer tick.Stop()
	t.renew()
	for {
		select {
		case <-t.wake:
			t.flush()
		case <-tick.C:
			t.renew()
			t.dropLapsed()
			t.reap()
			t.flush()
		case <-t.stop:
			t.flush()
			return
		}
	}
}

// Close writes what is left (the hub has closed every stream by then,
// so every user of this instance goes to zero) and gives the lease up.
// Whatever it cannot write runs out with the lease.
func (t *Tracker) Close(ctx context.Context) {
	close(t.stop)
	select {
	case <-t.done:
	case <-ctx.Done():
		return
	}
	t.mu.Lock()
	clean := len(t.held) == 0 && len(t.dirty) == 0
	instance := t.instance
	t.mu.Unlock()
	if clean {
		if err := t.b.Release(ctx, instance); err != nil {
			t.log.Warn("presence: giving the lease up failed; it runs out", "err", err)
		}
	}
}

func (t *Tracker) call() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), t.opts.Lease/3)
}

// renew extends the lease, or starts one. A lease that lapsed (the
// instance could not reach the backend for a whole lease, and may have
// been reaped) is started again under a new name, with every user's
// count written again: the old name's shares are reaped like a dead
// instance's, and the users still here come online again.
func (t *Tracker) renew() {
	t.mu.Lock()
	instance, leased := t.instance, t.leased
	t.mu.Unlock()
	ctx, cancel := t.call()
	defer cancel()
	ok, err := t.b.Lease(ctx, instance, t.opts.Lease, leased)
	if err != nil {
		t.log.Warn("presence: lease not renewed", "err", err)
		return
	}
	if ok {
		t.mu.Lock()
		t.leased = true
		t.mu.Unlock()
		return
	}
	t.mu.Lock()
	t.gen++
	t.instance = fmt.Sprintf("%s-%d", t.base, t.gen)
	t.leased = false
	users := make([]string, 0, len(t.held)+len(t.want))
	for u := range t.held {
		users = append(users, u)
	}
	for u := range t.want {
		if _, ok := t.held[u]; !ok {
			users = append(users, u)
		}
		t.dirty[u] = struct{}{}
	}
	t.lapsed[instance] = users
	clear(t.held)
	t.mu.Unlock()
	t.log.Warn("presence: the lease had lapsed; this instance's users are written again", "was", instance)
	t.dropLapsed()
	t.renew()
}

// dropLapsed takes this instance's shares under its lapsed names away;
// what fails is tried again on the next tick.
func (t *Tracker) dropLapsed() {
	t.mu.Lock()
	lapsed := make(map[string][]string, len(t.lapsed))
	for name, users := range t.lapsed {
		lapsed[name] = users
	}
	t.mu.Unlock()
	if len(lapsed) == 0 {
		return
	}
	ctx, cancel := t.call()
	defer cancel()
	for name, users := range lapsed {
		counts := make([]Count, len(users))
		for i, u := range users {
			counts[i] = Count{User: u}
		}
		trs, err := t.b.Set(ctx, name, counts, t.opts.Now())
		if err == nil {
			err = t.b.Forget(ctx, name)
		}
		if err != nil {
			t.log.Warn("presence: shares under a lapsed name not taken away; retrying", "was", name, "err", err)
			continue
		}
		t.mu.Lock()
		delete(t.lapsed, name)
		for _, tr := range trs {
			if tr.State != "" {
				t.pending = append(t.pending, tr)
			}
		}
		t.mu.Unlock()
	}
	t.announce(ctx)
}

// flush writes every changed user's count, then announces transitions.
// What fails stays to be written on the next tick.
func (t *Tracker) flush() {
	t.mu.Lock()
	if !t.leased {
		t.mu.Unlock()
		return
	}
	instance := t.instance
	users := make([]string, 0, len(t.dirty))
	for u := range t.dirty {
		users = append(users, u)
	}
	clear(t.dirty)
	t.mu.Unlock()
	var counts []Count
	t.mu.Lock()
	for _, u := range users {
		if n := t.want[u]; t.held[u] != n {
			counts = append(counts, Count{User: u, Streams: n})
		}
	}
	t.mu.Unlock()
	ctx, cancel := t.call()
	defer cancel()
	if len(counts) > 0 {
		trs, err := t.b.Set(ctx, instance, counts, t.opts.Now())
		t.mu.Lock()
		if err != nil {
			t.log.Warn("presence: counts not written; retrying", "err", err)
			for _, c := range counts {
				t.dirty[c.User] = struct{}{}
			}
		} else {
			for i, c := range counts {
				if c.Streams == 0 {
					delete(t.held, c.User)
				} else {
					t.held[c.User] = c.Streams
				}
				if trs[i].State != "" {
					t.pending = append(t.pending, trs[i])
				}
			}
		}
		t.mu.Unlock()
	}
	t.announce(ctx)
}

func (t *Tracker) announce(ctx context.Context) {
	t.mu.Lock()
	pending := t.pending
	t.pending = nil
	t.mu.Unlock()
	if len(pending) == 0 {
		return
	}
	// Announce may have appended some before it failed: at least once.
	if err := t.b.Announce(ctx, pending); err != nil {
		t.log.Warn("presence: transitions not announced; retrying", "err", err)
		t.mu.Lock()
		t.pending = append(pending[:len(pending):len(pending)], t.pending...)
		t.mu.Unlock()
	}
}

// reap takes the shares of instances whose lease lapsed away, announcing
// the users who went offline with them.
func (t *Tracker) reap() {
	ctx, cancel := t.call()
	defer cancel()
	self := t.Instance()
	dead, err := t.b.Lapsed(ctx, self, t.opts.Lease)
	if err != nil {
		t.log.Warn("presence: lapsed instances not read", "err", err)
		return
	}
	for _, d := range dead {
		users, err := t.b.Held(ctx, d)
		if err != nil {
			t.log.Warn("presence: a lapsed instance's users not read", "err", err)
			continue
		}
		counts := make([]Count, len(users))
		for i, u := range users {
			counts[i] = Count{User: u}
		}
		trs, err := t.b.Set(ctx, d, counts, t.opts.Now())
		if err != nil {
			t.log.Warn("presence: a lapsed instance's streams not taken away", "err", err)
		} else {
			t.mu.Lock()
			for _, tr := range trs {
				if tr.State != "" {
					t.pending = append(t.pending, tr)
				}
			}
			t.mu.Unlock()
			if err := t.b.Forget(ctx, d); err != nil {
				t.log.Warn("presence: a lapsed instance not forgotten", "err", err)
			}
			t.log.Info("presence: took a lapsed instance's streams away", "instance", d, "users", len(users))
		}
	}
	t.announce(ctx)
}
