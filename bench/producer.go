package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// producer publishes the run's events, as a producer would: XADD to the
// user's stream in pipelined batches, or POST (to noticed's /notice,
// Nchan's /pub/<user> or Centrifugo's /api/publish) over a few keep-alive
// connections. Each event is stamped with the time it is sent, so latency
// is the event's and not the producer's lag when it falls behind.
type producer struct {
	t       *target
	via     string   // "xadd" or "post"
	users   []string // names
	keys    []string // XADD keys
	seq     []int64  // last sequence number per user (run's goroutine only)
	conns   int
	batch   int    // events per POST (noticed's "events" body when more than 1)
	pubAuth string // "Bearer <publish token>" for noticed

	ok       atomic.Int64 // events the server took
	failed   atomic.Int64
	mu       sync.Mutex
	firstErr string
}

func newProducer(t *target, via string, users []string, conns, batch int) (*producer, error) {
	p := &producer{t: t, via: via, users: users, seq: make([]int64, len(users)), conns: conns, batch: max(batch, 1)}
	if p.batch > 1 && (via != "post" || t.kind != "noticed") {
		return nil, errors.New(`-post-batch: only noticed takes a batch ("events"), and only with -publish post`)
	}
	if via == "xadd" {
		if t.rdb == nil {
			return nil, errors.New("XADD needs the server's Redis")
		}
		p.keys = make([]string, len(users))
		for i, u := range users {
			p.keys[i] = t.prefix + "{" + u + "}"
		}
		return p, nil
	}
	if t.kind == "noticed" {
		tok, err := signToken([]byte(t.secret), "noticed-bench", 24*time.Hour, "publish")
		if err != nil {
			return nil, err
		}
		p.pubAuth = "Bearer " + tok
	}
	return p, nil
}

func (p *producer) close() {}

// plan is one stretch of publishing: at rate (0: as fast as it goes), for
// d or until count events (whichever is given), to the users pick names
// (by event number).
type plan struct {
	rate  float64
	d     time.Duration
	count int64
	phase byte
	pick  func(i int64) int
}

// maxBatch bounds one pipeline (or one hand-over to the POST connections)
// when the producer is behind.
const maxBatch = 64

type item struct {
	user int
	seq  int64
}

// run publishes p's plan and returns the events the server took during it
// and how long it took.
func (p *producer) run(ctx context.Context, pl plan) (int64, time.Duration) {
	before := p.ok.Load()
	send := p.xadd
	var wg sync.WaitGroup
	var jobs chan []item
	if p.via == "post" {
		jobs = make(chan []item, p.conns)
		for range p.conns {
			wg.Go(func() {
				pc := &postConn{p: p}
				defer pc.close()
				for batch := range jobs {
					for len(batch) > 0 {
						n := min(len(batch), p.batch)
						pc.post(ctx, batch[:n], pl.phase)
						batch = batch[n:]
					}
				}
			})
		}
		send = func(_ context.Context, batch []item, _ byte) {
			select {
			case jobs <- batch:
			case <-ctx.Done():
			}
		}
	}
	start := time.Now()
	var issued int64
	for ctx.Err() == nil {
		elapsed := time.Since(start)
		if (pl.count > 0 && issued >= pl.count) || (pl.count == 0 && elapsed >= pl.d) {
			break
		}
		due := pl.count
		if pl.rate > 0 {
			due = int64(elapsed.Seconds()*pl.rate) + 1
			if pl.count > 0 {
				due = min(due, pl.count)
			}
		}
		// With -post-batch, wait until a whole batch is due (or the plan's
		// count is all due): a request holds p.batch events.
		want := int64(p.batch)
		if pl.count > 0 {
			want = min(want, pl.count-issued)
		}
		if issued >= due || (pl.rate > 0 && due-issued < want) {
			next := start.Add(time.Duration(float64(issued+want-1) / pl.rate * float64(time.Second)))
			if pl.count == 0 && next.Sub(start) >= pl.d {
				next = start.Add(pl.d) // the plan ends before another batch is due
			}
			time.Sleep(time.Until(next))
			continue
		}
		n := min(due-issued, max(maxBatch, want))
		batch := make([]item, n)
		for j := range batch {
			u := pl.pick(issued + int64(j))
			p.seq[u]++
			batch[j] = item{user: u, seq: p.seq[u]}
		}
		send(ctx, batch, pl.phase)
		issued += n
	}
	if jobs != nil {
		close(jobs)
		wg.Wait()
	}
	return p.ok.Load() - before, time.Since(start)
}

func (p *producer) xadd(ctx context.Context, batch []item, phase byte) {
	pipe := p.t.rdb.Pipeline()
	buf := make([]byte, 0, 64)
	for _, it := range batch {
		buf = appendPayload(buf[:0], p.users[it.user], it.seq, time.Now().UnixNano(), phase)
		pipe.Do(ctx, "XADD", p.keys[it.user], "MAXLEN", "~", 1000, "*", "data", string(buf))
	}
	cmds, _ := pipe.Exec(ctx)
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			p.fail(fmt.Errorf("XADD: %w", err))
		} else {
			p.ok.Add(1)
		}
	}
}

// postConn is one keep-alive connection a producer POSTs over, one
// request at a time, as a backend's HTTP client would. It is written by
// hand (a prepared request head, the response read with
// http.ReadResponse) rather than through http.Client, whose per-request
// goroutine hand-offs and allocations cost this process about as much
// CPU as the server spends answering, on the cores the two share.
type postConn struct {
	p    *producer
	c    net.Conn
	br   *bufio.Reader
	buf  []byte // the request
	body []byte
}

func (pc *postConn) close() {
	if pc.c != nil {
		pc.c.Close()
		pc.c = nil
	}
}

// post publishes items, one event (or with more than one, noticed's
// "events" batch), stamped as it is written. A failed request is not
// retried (it may have been applied); the connection is replaced for the
// next one.
func (pc *postConn) post(ctx context.Context, items []item, phase byte) {
	p := pc.p
	if pc.c == nil {
		d := net.Dialer{Timeout: 10 * time.Second, KeepAlive: -1}
		c, err := d.DialContext(ctx, "tcp", p.t.host)
		if err != nil {
			p.failEvents(len(items), fmt.Errorf("POST: connect: %w", simplifyNetErr(err)))
			return
		}
		pc.c, pc.br = c, bufio.NewReaderSize(c, 1024)
	}
	// The body first (stamped now), then the head that gives its length.
	body := pc.body[:0]
	var path, ctype string
	switch {
	case nchanRoutes(p.t.kind):
		it := items[0]
		user := p.users[it.user]
		path, ctype = "/pub/"+user, "text/plain"
		body = appendPayload(body, user, it.seq, time.Now().UnixNano(), phase)
	case p.t.kind == "centrifugo":
		it := items[0]
		user := p.users[it.user]
		path, ctype = "/api/publish", "application/json"
		body = appendCentrifugoPublish(body, user, it.seq, time.Now().UnixNano(), phase)
	case len(items) == 1:
		path, ctype = "/notice", "application/json"
		body = appendEvent(body, p.users[items[0].user], items[0].seq, phase)
	default:
		path, ctype = "/notice", "application/json"
		body = append(body, `{"events":[`...)
		for i, it := range items {
			if i > 0 {
				body = append(body, ',')
			}
			body = appendEvent(body, p.users[it.user], it.seq, phase)
		}
		body = append(body, "]}"...)
	}
	b := append(pc.buf[:0], "POST "...)
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, p.t.host...)
	if p.pubAuth != "" {
		b = append(b, "\r\nAuthorization: "...)
		b = append(b, p.pubAuth...)
	}
	if p.t.apiKey != "" {
		b = append(b, "\r\nX-API-Key: "...)
		b = append(b, p.t.apiKey...)
	}
	b = append(b, "\r\nContent-Type: "...)
	b = append(b, ctype...)
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	b = append(b, body...)
	pc.body = body
	pc.buf = b
	_ = pc.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := pc.c.Write(b); err != nil {
		p.failEvents(len(items), fmt.Errorf("POST: %w", simplifyNetErr(err)))
		pc.close()
		return
	}
	resp, err := http.ReadResponse(pc.br, nil)
	if err != nil {
		p.failEvents(len(items), fmt.Errorf("POST: %w", simplifyNetErr(err)))
		pc.close()
		return
	}
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body) // keep the connection in step
	}
	resp.Body.Close()
	if err != nil || resp.Close {
		pc.close()
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusCreated, http.StatusAccepted:
		if p.t.kind == "centrifugo" {
			if err := centrifugoAPIError(answer); err != nil {
				p.failEvents(len(items), fmt.Errorf("POST /api/publish: %w", err))
				return
			}
		}
		p.ok.Add(int64(len(items)))
	default:
		p.failEvents(len(items), fmt.Errorf("POST: status %d %s", resp.StatusCode, strings.TrimSpace(string(answer))))
	}
}

// appendEvent appends one noticed publish object for user, stamped now.
// User names and payloads hold nothing JSON must escape.
func appendEvent(b []byte, user string, seq int64, phase byte) []byte {
	b = append(b, `{"user":"`...)
	b = append(b, user...)
	b = append(b, `","data":"`...)
	b = appendPayload(b, user, seq, time.Now().UnixNano(), phase)
	return append(b, `"}`...)
}

func (p *producer) fail(err error) { p.failEvents(1, err) }

// failEvents counts n events the server did not take, for one reason.
func (p *producer) failEvents(n int, err error) {
	if p.failed.Add(int64(n)) == int64(n) {
		p.mu.Lock()
		p.firstErr = err.Error()
		p.mu.Unlock()
	}
}

func (p *producer) firstError() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.firstErr
}
