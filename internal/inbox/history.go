package inbox

import (
	"context"

	"github.com/noticed/noticed/internal/notice"
)

// History limits.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// Page is one page of a user's history, newest first.
type Page struct {
	Entries []notice.Entry
	// Next is the id to ask before for the following page; zero when
	// this page holds the oldest retained notification.
	Next notice.ID
	Read State
}

// History returns up to limit notifications (read marks left out) with
// ids below before (notice.Last: from the newest), and the read state.
func History(ctx context.Context, st Store, user string, before notice.ID, limit int) (Page, error) {
	var p Page
	var err error
	if p.Read, err = Current(ctx, st, user); err != nil {
		return Page{}, err
	}
	p.Entries = []notice.Entry{}
	// One more than asked tells whether there is a next page; marks
	// among them make a second read.
	size := min(limit+1, page)
	for {
		entries, err := st.ReadBack(ctx, user, before, size)
		if err != nil {
			return Page{}, err
		}
		for _, e := range entries {
			before = e.ID
			if e.Event == EventRead {
				continue
			}
			if len(p.Entries) == limit {
				p.Next = p.Entries[limit-1].ID
				return p, nil
			}
			p.Entries = append(p.Entries, e)
		}
		if len(entries) < size {
			return p, nil
		}
	}
}
