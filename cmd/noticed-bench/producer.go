package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/noticed/noticed/internal/auth"
)

// producer publishes the run's events, as a producer would: XADD to the
// user's stream in pipelined batches, or POST (to noticed's /notice or
// Nchan's /pub/<user>) over a few keep-alive connections. Each event is
// stamped with the time it is sent, so latency is the event's and not the
// producer's lag when it falls behind.
type producer struct {
	t       *target
	via     string   // "xadd" or "post"
	users   []string // names
	keys    []string // XADD keys
	seq     []int64  // last sequence number per user (run's goroutine only)
	conns   int
	client  *http.Client
	pubAuth string // "Bearer <publish token>" for noticed

	ok       atomic.Int64 // events the server took
	failed   atomic.Int64
	mu       sync.Mutex
	firstErr string
}

func newProducer(t *target, via string, users []string, conns int) (*producer, error) {
	p := &producer{t: t, via: via, users: users, seq: make([]int64, len(users)), conns: conns}
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
	p.client = &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		},
	}
	if t.kind == "noticed" {
		tok, err := auth.Sign([]byte(t.secret), "noticed-bench", 24*time.Hour, []string{"publish"}, "", "")
		if err != nil {
			return nil, err
		}
		p.pubAuth = "Bearer " + tok
	}
	return p, nil
}

func (p *producer) close() {
	if p.client != nil {
		p.client.CloseIdleConnections()
	}
}

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
				for batch := range jobs {
					for _, it := range batch {
						p.post(ctx, it, pl.phase)
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
		if issued >= due {
			next := start.Add(time.Duration(float64(issued) / pl.rate * float64(time.Second)))
			time.Sleep(time.Until(next))
			continue
		}
		n := min(due-issued, maxBatch)
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

func (p *producer) post(ctx context.Context, it item, phase byte) {
	user := p.users[it.user]
	data := string(appendPayload(nil, user, it.seq, time.Now().UnixNano(), phase))
	var req *http.Request
	var err error
	if p.t.kind == "nchan" {
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, p.t.base()+"/pub/"+user, strings.NewReader(data))
		if err == nil {
			req.Header.Set("Content-Type", "text/plain")
		}
	} else {
		// User names and payloads hold nothing JSON must escape.
		body := `{"user":"` + user + `","data":"` + data + `"}`
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, p.t.base()+"/notice", strings.NewReader(body))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", p.pubAuth)
		}
	}
	if err != nil {
		p.fail(err)
		return
	}
	resp, err := p.client.Do(req)
	if err != nil {
		p.fail(fmt.Errorf("POST: %w", simplifyNetErr(err)))
		return
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK, http.StatusCreated, http.StatusAccepted:
		p.ok.Add(1)
	default:
		p.fail(fmt.Errorf("POST: status %d %s", resp.StatusCode, strings.TrimSpace(string(b))))
	}
}

func (p *producer) fail(err error) {
	if p.failed.Add(1) == 1 {
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
