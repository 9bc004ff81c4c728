package presence

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/noticed/noticed/internal/routing"
)

// Local is the backend of the embedded stores: one instance, so no lease
// can lapse; transitions are appended to the store's stream of the
// presence key, as if it were a user's, and read with
// GET /notice/history?user=<key> and a publish token.
type Local struct {
	store routing.Store
	key   string

	mu     sync.Mutex
	counts map[string]int
	since  map[string]time.Time
}

var _ Backend = (*Local)(nil)

// NewLocal keeps presence in this process and appends transitions to
// store under key.
func NewLocal(store routing.Store, key string) *Local {
	if key == "" {
		key = DefaultKey
	}
	return &Local{store: store, key: key, counts: map[string]int{}, since: map[string]time.Time{}}
}

func (l *Local) Lease(context.Context, string, time.Duration, bool) (bool, error) { return true, nil }
func (l *Local) Release(context.Context, string) error                            { return nil }
func (l *Local) Lapsed(context.Context, string, time.Duration) ([]string, error) {
	return nil, nil
}
func (l *Local) Held(context.Context, string) ([]string, error) { return nil, nil }
func (l *Local) Forget(context.Context, string) error           { return nil }

// Set records users' counts; there is one instance, so they are totals.
func (l *Local) Set(_ context.Context, _ string, counts []Count, now time.Time) ([]Transition, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Transition, len(counts))
	for i, c := range counts {
		out[i] = l.set(c.User, c.Streams, now)
	}
	return out, nil
}

func (l *Local) set(user string, n int, now time.Time) Transition {
	before := l.counts[user]
	if n == 0 {
		delete(l.counts, user)
		delete(l.since, user)
	} else {
		l.counts[user] = n
	}
	switch {
	case before == 0 && n > 0:
		l.since[user] = now
		return Transition{User: user, State: Online}
	case before > 0 && n == 0:
		return Transition{User: user, State: Offline}
	}
	return Transition{User: user}
}

// Announce appends {"user":…,"state":…}, the same object a Redis entry of
// the presence stream is delivered as.
func (l *Local) Announce(ctx context.Context, ts []Transition) error {
	msgs := make([]routing.Message, len(ts))
	for i, t := range ts {
		data, _ := json.Marshal(struct {
			User  string `json:"user"`
			State string `json:"state"`
		}{t.User, t.State})
		msgs[i] = routing.Message{User: l.key, Data: string(data)}
	}
	_, err := l.store.Append(ctx, msgs)
	return err
}

// Counts answers from this process.
func (l *Local) Counts(_ context.Context, users []string) ([]Info, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Info, len(users))
	for i, u := range users {
		out[i] = Info{User: u, Streams: l.counts[u], Since: l.since[u]}
	}
	return out, nil
}
