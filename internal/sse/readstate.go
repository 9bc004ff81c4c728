package sse

import (
	"context"
	"encoding/json"
	"time"

	"github.com/noticed/noticed/internal/inbox"
	"github.com/noticed/noticed/internal/notice"
)

// readStateWait bounds the read of a new stream's read state; past it the
// stream goes on without that first block rather than hold the events.
const readStateWait = 5 * time.Second

// appendReadState puts the user's read state in the buffer as an
// "event: read" with no id (the browser keeps its own last id), so that a
// new tab shows the right badge before any event arrives. It is the state
// at the position the stream goes on from (the newest entry for a new
// stream, the client's last id for a replay): what follows, read marks
// and events alike, brings it up to date with nothing counted twice.
// A store that keeps no history sends none.
func (s *stream) appendReadState(at notice.ID) {
	st, ok := s.h.store.(inbox.Store)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, readStateWait)
	state, err := inbox.At(ctx, st, s.conn.User(), at)
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
