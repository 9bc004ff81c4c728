package memstore

import (
	"context"
	"sort"

	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/routing"
)

var _ routing.Backlog = (*Store)(nil)

// ReadBack returns up to count entries below before, newest first.
func (s *Store) ReadBack(ctx context.Context, user string, before notice.ID, count int) ([]notice.Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.live(user, s.opts.Now())
	if st == nil {
		return nil, nil
	}
	to := sort.Search(len(st.entries), func(j int) bool { return !st.entries[j].ID.Less(before) })
	var out []notice.Entry
	for j := to - 1; j >= 0 && (count <= 0 || len(out) < count); j-- {
		out = append(out, st.entries[j])
	}
	return out, nil
}

// AppendIfNewest appends m while the newest retained entry is newest.
func (s *Store) AppendIfNewest(ctx context.Context, m routing.Message, newest notice.ID) (notice.ID, error) {
	if err := ctx.Err(); err != nil {
		return notice.Zero, err
	}
	s.mu.Lock()
	now := s.opts.Now()
	cur := notice.Zero
	if st := s.live(m.User, now); st != nil && len(st.entries) > 0 {
		cur = st.entries[len(st.entries)-1].ID
	}
	if cur != newest {
		s.mu.Unlock()
		return notice.Zero, routing.ErrNotNewest
	}
	id := s.add(m, now)
	s.mu.Unlock()
	s.follows.Appended([]routing.Message{m})
	return id, nil
}
