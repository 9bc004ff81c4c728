package server_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/noticed/noticed/internal/auth"
	"github.com/noticed/noticed/internal/sse"
)

func TestStreamHeadersAndRetryFirst(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	s := e.subscribe("alice")
	h := s.resp.Header
	for k, want := range map[string]string{
		"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s: got %q, want %q", k, got, want)
		}
	}
	id := e.mustPublish("alice", "", "hello")
	ev := s.next(t)
	if ev.Retry < 2000 || ev.Retry > 3000 {
		t.Errorf("retry before the first event: %d ms, want 2000–3000", ev.Retry)
	}
	if ev.ID != id || ev.Type != "message" || ev.Data != "hello" {
		t.Errorf("got %+v", ev)
	}
}

func TestEachStreamOfAUserGetsEveryEventNoOneElseDoes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a1, a2, b := e.subscribe("alice"), e.subscribe("alice"), e.subscribe("bob")
	var ids []string
	for i := range 5 {
		ids = append(ids, e.mustPublish("alice", "order.shipped", fmt.Sprintf(`{"n":%d}`, i)))
	}
	for _, s := range []*stream{a1, a2} {
		for i, id := range ids {
			ev := s.next(t)
			if ev.ID != id || ev.Type != "order.shipped" || ev.Data != fmt.Sprintf(`{"n":%d}`, i) {
				t.Fatalf("event %d: got %+v, want id %s", i, ev, id)
			}
		}
	}
	bid := e.mustPublish("bob", "", "for bob")
	if ev := b.next(t); ev.ID != bid {
		t.Fatalf("bob got %+v, want only %s", ev, bid)
	}
	a1.none(t)
	a2.none(t)
}

func TestPayloadCannotForgeFieldsOrEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.hostile()
	s := e.subscribe("alice")
	forged := "x\n\nid: 999-0\nevent: admin\ndata: pwned\r\rretry: 1\r\n"
	id := e.mustPublish("alice", "", forged)
	after := e.mustPublish("alice", "", "after")
	ev := s.next(t)
	want := strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(forged)
	if ev.ID != id || ev.Type != "message" || ev.Data != want {
		t.Fatalf("got %+v, want one event id %s data %q", ev, id, want)
	}
	if ev := s.next(t); ev.ID != after {
		t.Fatalf("next event %+v, want %s", ev, after)
	}
}

func TestReplay(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	var ids []string
	for i := range 5 {
		ids = append(ids, e.mustPublish("carol", "", fmt.Sprint(i)))
	}
	tests := []struct {
		name   string
		query  []string
		header string
		first  int // index into ids of the first replayed event
	}{
		{"after an id", []string{"lastEventId", ids[1]}, "", 2},
		{"from zero replays everything", []string{"lastEventId", "0"}, "", 0},
		{"header beats query", []string{"lastEventId", ids[0]}, ids[3], 4},
		{"header alone", nil, ids[2], 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := url.Values{"token": {token(t, "carol")}}
			for i := 0; i+1 < len(tt.query); i += 2 {
				q.Set(tt.query[i], tt.query[i+1])
			}
			hdr := http.Header{}
			if tt.header != "" {
				hdr.Set("Last-Event-ID", tt.header)
			}
			_, s := e.open(q.Encode(), hdr)
			if s == nil {
				t.Fatal("stream refused")
			}
			for i := tt.first; i < len(ids); i++ {
				if ev := s.next(t); ev.ID != ids[i] || ev.Data != fmt.Sprint(i) || ev.Type == "gap" {
					t.Fatalf("replayed %+v, want %s", ev, ids[i])
				}
			}
			live := e.mustPublish("carol-other", "", "not carol's")
			_ = live
			s.none(t)
		})
	}
}

func TestReplayThenLiveHasNoGapNoDuplicate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	var ids []string
	for i := range 50 {
		ids = append(ids, e.mustPublish("dan", "", fmt.Sprint(i)))
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 50; i < 150; i++ {
			e.mustPublish("dan", "", fmt.Sprint(i))
		}
	}()
	s := e.subscribe("dan", "lastEventId", ids[9])
	<-done
	prev := ids[9]
	for i := 10; i < 150; i++ {
		ev := s.next(t)
		if ev.Data != fmt.Sprint(i) {
			t.Fatalf("after %s: got data %q, want %d", prev, ev.Data, i)
		}
		prev = ev.ID
	}
	s.none(t)
}

// The error names what was malformed, the header or the parameter, as
// plain JSON (its "<ms>-<seq>" used to read "\u003cms\u003e-\u003cseq\u003e").
func TestMalformedLastEventIDIs400(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.hostile()
	for _, tt := range []struct{ query, header, want string }{
		{"lastEventId=abc", "", "the lastEventId query parameter must be <ms>-<seq>"},
		{"lastEventId=1-2-3", "", "the lastEventId query parameter must be <ms>-<seq>"},
		{"", "12x", "the Last-Event-ID header must be <ms>-<seq>"},
		{"lastEventId=1-0", "-5", "the Last-Event-ID header must be <ms>-<seq>"},
	} {
		q := "token=" + token(t, "erin") + "&" + tt.query
		hdr := http.Header{}
		if tt.header != "" {
			hdr.Set("Last-Event-ID", tt.header)
		}
		resp, s := e.open(q, hdr)
		if s != nil || resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%+v: status %d, want 400", tt, resp.StatusCode)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		if !strings.HasPrefix(string(body), `{"error":"`) || !strings.Contains(string(body), tt.want) {
			t.Errorf("%+v: body %s, want a JSON error saying %q", tt, body, tt.want)
		}
	}
}

func TestGapWhenHistoryWasTrimmed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{maxLen: 3})
	var ids []string
	for i := range 6 {
		ids = append(ids, e.mustPublish("fay", "", fmt.Sprint(i)))
	}
	s := e.subscribe("fay", "lastEventId", ids[0])
	ev := s.next(t)
	if ev.Type != "gap" || ev.Data != fmt.Sprintf(`{"lastEventId":"%s"}`, ids[0]) || ev.HasID {
		t.Fatalf("first event %+v, want a gap without id", ev)
	}
	for i := 3; i < 6; i++ {
		if ev := s.next(t); ev.ID != ids[i] {
			t.Fatalf("after gap: got %+v, want %s", ev, ids[i])
		}
	}
	// Nothing lost from the retained ones: no gap; from zero: never.
	for _, from := range []string{ids[3], "0"} {
		s := e.subscribe("fay", "lastEventId", from)
		if ev := s.next(t); ev.Type == "gap" {
			t.Errorf("from %s: unexpected gap", from)
		}
	}
}

func TestStreamAuthRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.hostile()
	expired, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "a", "exp": time.Now().Add(-time.Minute).Unix()}).SignedString(secret)
	wrongKey, _ := auth.Sign([]byte("another-secret-another-secret-xx"), "a", time.Hour, nil, "", "")
	none := "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhIn0."
	tests := []struct{ name, query string }{
		{"no token", ""},
		{"garbage", "token=abc"},
		{"wrong key", "token=" + wrongKey},
		{"expired", "token=" + expired},
		{"alg none", "token=" + none},
	}
	for _, tt := range tests {
		resp, s := e.open(tt.query, nil)
		if s != nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401", tt.name, resp.StatusCode)
			continue
		}
		assertJSONError(t, resp)
	}
}

func TestStreamLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{perUser: 2, maxConns: 3})
	e.hostile()
	e.subscribe("jo")
	e.subscribe("jo")
	resp, s := e.open("token="+token(t, "jo"), nil)
	if s != nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third stream of a user: %d, want 429", resp.StatusCode)
	}
	assertJSONError(t, resp)
	e.subscribe("kim")
	resp, s = e.open("token="+token(t, "lee"), nil)
	if s != nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("instance full: %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	assertJSONError(t, resp)
}

func TestNoTokenReachesTheLog(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	tok := token(t, "max")
	s := e.subscribe("max")
	e.mustPublish("max", "", "x")
	s.next(t)
	e.open("token="+tok+"x", nil) // a refused one too
	s.cancel()
	waitFor(t, "a request log line", func() bool { return strings.Contains(e.logs.String(), `"path":"/notice"`) })
	if strings.Contains(e.logs.String(), tok[:40]) {
		t.Fatalf("a token reached the log:\n%s", e.logs.String())
	}
}

func assertJSONError(t *testing.T, resp *http.Response) {
	t.Helper()
	body, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" || !strings.HasPrefix(string(body), `{"error":"`) {
		t.Errorf("error body %q (%s), want {\"error\": ...} as JSON", body, ct)
	}
}

// A stream that drops before its first event must still come back from
// where it was: its first block gives the browser an id to reconnect with.
func TestReconnectBeforeAnyEventLosesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{heartbeat: 50 * time.Millisecond})
	old := e.mustPublish("uma", "", "before the stream")
	resp, err := http.Get(e.url + "/notice?token=" + token(t, "uma"))
	if err != nil {
		t.Fatal(err)
	}
	r := sse.NewReader(resp.Body)
	r.Comments = true
	for r.LastID() == "" {
		// The id-only block dispatches nothing; the heartbeat after it
		// hands control back.
		if ev, err := r.Next(); err != nil || !ev.Comment {
			t.Fatalf("before the first heartbeat: %+v, %v", ev, err)
		}
	}
	resp.Body.Close()
	if r.LastID() != old {
		t.Fatalf("starting id %q, want the newest entry %s", r.LastID(), old)
	}
	missed := e.mustPublish("uma", "", "while away")
	s := e.subscribe("uma", "lastEventId", r.LastID())
	if ev := s.next(t); ev.ID != missed {
		t.Fatalf("after reconnecting: got %+v, want %s", ev, missed)
	}
}

// A stream lives past its write deadline. Each write has one (-write-timeout)
// and a blocked write fails when it passes, but a stream that writes again
// long after its last write, on the hub's goroutine or its own, must not
// trip over the deadline of the write before: it stays open, and every
// event arrives.
func TestStreamOutlivesItsWriteDeadlines(t *testing.T) {
	t.Parallel()
	const writeTimeout = 50 * time.Millisecond
	for _, heartbeat := range []time.Duration{time.Hour, 10 * time.Millisecond} {
		t.Run(fmt.Sprintf("heartbeat=%v", heartbeat), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{heartbeat: heartbeat, writeTimeout: writeTimeout})
			e.hostile()
			s := e.subscribe("wes")
			for i := range 4 {
				id := e.mustPublish("wes", "", fmt.Sprint("event ", i))
				if ev := s.next(t); ev.ID != id {
					t.Fatalf("event %d: got %+v, want id %s", i, ev, id)
				}
				// What is under test is time passing: well past the
				// deadline of the write just made.
				time.Sleep(3 * writeTimeout)
			}
			if got := testutil.ToFloat64(e.metrics.StreamsOpened); got != 1 {
				t.Errorf("%v streams opened; want the one, never dropped", got)
			}
		})
	}
}

// A client that stops reading while large events pile up, then reads
// again, gets each of them whole and in order: a write the socket takes
// only part of is finished before anything else is written.
func TestLargeEventsToAClientThatReadsLate(t *testing.T) {
	t.Parallel()
	// More than the kernel's socket buffers hold (4 MiB at most on this
	// side), in fewer events than the queue's 64, so never closed as slow.
	const events, size = 48, 192 << 10
	// A write that waits past -write-timeout would close the stream: not
	// what is tested here.
	e := newEnv(t, envOptions{maxPayload: 256 << 10, writeTimeout: time.Minute})
	e.hostile()
	u, _ := url.Parse(e.url)
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		}); cerr != nil {
			return cerr
		}
		return err
	}}
	nc, err := d.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	fmt.Fprintf(nc, "GET /notice?token=%s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", token(t, "lara"), u.Host)
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /notice: %v %v", resp, err)
	}
	waitFor(t, "the stream to be followed", func() bool { return e.hub.Followed() == 1 })
	var ids []string
	for i := range events {
		ids = append(ids, e.mustPublish("lara", "", strings.Repeat(string(rune('a'+i%26)), size)))
	}
	r := sse.NewReader(resp.Body)
	for i, id := range ids {
		ev, err := r.Next()
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if want := strings.Repeat(string(rune('a'+i%26)), size); ev.ID != id || ev.Data != want {
			t.Fatalf("event %d: id %s, %d bytes of data; want id %s and its %d bytes", i, ev.ID, len(ev.Data), id, size)
		}
	}
}
