package embedded

import (
	"sync"

	"github.com/noticed/noticed/internal/routing"
)

// Follows is the following half of an embedded store: which users are
// followed, and telling the notifier after an append. A store keeps
// routing.Store's promise (every entry added after Follow returns is
// notified) by marking the user before it reads the newest id, and by
// calling Appended only once its entries are visible to Read.
type Follows struct {
	mu       sync.Mutex
	followed map[string]bool
	notifier routing.Notifier
}

// SetNotifier names who hears of new entries of followed users.
func (f *Follows) SetNotifier(n routing.Notifier) {
	f.mu.Lock()
	f.notifier = n
	f.mu.Unlock()
}

// Follow marks user as followed.
func (f *Follows) Follow(user string) {
	f.mu.Lock()
	if f.followed == nil {
		f.followed = make(map[string]bool)
	}
	f.followed[user] = true
	f.mu.Unlock()
}

// Unfollow forgets user.
func (f *Follows) Unfollow(user string) {
	f.mu.Lock()
	delete(f.followed, user)
	f.mu.Unlock()
}

// Followed returns how many users are followed, for tests and metrics.
func (f *Follows) Followed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.followed)
}

// Appended tells the notifier about each followed user of msgs, outside
// the lock: a notifier may take its own. A run of messages to one user is
// told once.
func (f *Follows) Appended(msgs []routing.Message) {
	f.mu.Lock()
	n := f.notifier
	var notify []string
	if n != nil {
		for i, m := range msgs {
			if f.followed[m.User] && (i == 0 || msgs[i-1].User != m.User) {
				notify = append(notify, m.User)
			}
		}
	}
	f.mu.Unlock()
	for _, u := range notify {
		n.Changed(u)
	}
}
