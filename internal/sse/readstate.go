package sse

import (
	"context"
	"encoding/json"
	"time"

	"github.com/noticed/noticed/internal/inbox"
)

// readStateWait bounds the read of a new stream's read state; past it the
// stream goes on without that first block rather than hold the events.
const readStateWait = 5 * time.Second

// appendReadState puts the user's read state as it is now in the buffer,
// as an "event: read" with no id (the browser keeps its own last id), so
// that a new tab shows the right badge before any event arrives. Read
// marks that follow in the replay or live are the same kind of block, in
// order with the events. A store that keeps no history sends none.
func (s *stream) appendReadState() {
	st, ok := s.h.store.(inbox.Store)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, readStateWait)
	state, err := inbox.Current(ctx, st, s.conn.User())
	cancel()
	if err != nil {
		if s.ctx.Err() == nil {
			s.h.m.BackendErrors.WithLabelValues("read_state").Inc()
			s.h.log.Warn("read state not sent: the backend did not answer", "err", err)
		}
		return
	}
	data, _ := json.Marshal(state) // a State always marshals
	s.buf = append(s.buf, "event: "+inbox.EventRead+"\n"...)
	s.buf = appendData(s.buf, string(data))
	s.buf = append(s.buf, '\n')
}
