package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/noticed/noticed/internal/auth"
	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/redistest"
)

// cluster is what a user deploys: one redis-server, two noticed instances
// and nginx in front of them, all on loopback ports of their own.
type cluster struct {
	t      *testing.T
	redis  *redistest.Server   // nil on a Redis Cluster or Sentinel
	rc     *redistest.Cluster  // set on a Redis Cluster
	set    *redistest.Sentinel // set on Sentinel
	rdb    redis.UniversalClient
	secret string
	pub    string // a publisher token, made by `noticed token`
	inst   [2]*instance
	nginx  *nginxProc
	url    string       // nginx's
	client *http.Client // the browsers' side

	ctx     context.Context // ends when the test does: stops every stream
	streams sync.WaitGroup

	mu          sync.Mutex
	sent        map[string][]sent // per user, in the order published
	postRetries atomic.Int64      // POSTs sent again after a 502 had not published
}

// sent is one event as its producer published it.
type sent struct {
	id, typ, data, via string
}

// newCluster starts redis-server, two noticed (with args added to each)
// and nginx with deploy/nginx.conf in front of them.
func newCluster(t *testing.T, args ...string) *cluster {
	t.Helper()
	return newClusterVia(t, nil, args...)
}

// newClusterVia is newCluster with the instances reaching Redis at the URL
// via returns (a fault proxy in front of it, say); nil: straight.
func newClusterVia(t *testing.T, via func(*redistest.Server) string, args ...string) *cluster {
	t.Helper()
	need(t, "nginx", "nginx", "/usr/sbin/nginx")
	c := &cluster{t: t, secret: "e2e-secret-" + t.Name() + "-0123456789abcdef", sent: map[string][]sent{}}
	c.redis = redistest.Start(t)
	c.rdb = redis.NewClient(&redis.Options{Addr: c.redis.Addr()})
	t.Cleanup(func() { c.rdb.Close() })

	redisURL := c.redis.URL()
	if via != nil {
		redisURL = via(c.redis)
	}
	c.startAll(redisURL, args...)
	return c
}

// newClusterOnRedisCluster is newCluster on a Redis Cluster of three
// masters and three replicas instead of one redis-server.
func newClusterOnRedisCluster(t *testing.T, args ...string) *cluster {
	t.Helper()
	need(t, "nginx", "nginx", "/usr/sbin/nginx")
	c := &cluster{t: t, secret: "e2e-secret-" + t.Name() + "-0123456789abcdef", sent: map[string][]sent{}}
	c.rc = redistest.StartCluster(t)
	opt, err := redis.ParseClusterURL(strings.Replace(c.rc.URL(), "redis+cluster://", "redis://", 1))
	if err != nil {
		t.Fatal(err)
	}
	c.rdb = redis.NewClusterClient(opt)
	t.Cleanup(func() { c.rdb.Close() })
	c.startAll(c.rc.URL(), args...)
	return c
}

// newClusterOnSentinel is newCluster on a master, its replica and three
// sentinels, the instances given the redis+sentinel:// URL.
func newClusterOnSentinel(t *testing.T, args ...string) *cluster {
	t.Helper()
	need(t, "nginx", "nginx", "/usr/sbin/nginx")
	c := &cluster{t: t, secret: "e2e-secret-" + t.Name() + "-0123456789abcdef", sent: map[string][]sent{}}
	c.set = redistest.StartSentinel(t)
	opt, err := redis.ParseFailoverURL(strings.Replace(c.set.URL(), "redis+sentinel://", "redis://", 1))
	if err != nil {
		t.Fatal(err)
	}
	c.rdb = redis.NewFailoverClient(opt)
	t.Cleanup(func() { c.rdb.Close() })
	c.startAll(c.set.URL(), args...)
	return c
}

// startAll starts the two instances on redisURL and nginx in front.
func (c *cluster) startAll(redisURL string, args ...string) {
	t := c.t
	t.Helper()
	base := append([]string{"-redis", redisURL, "-jwt-secret", c.secret}, args...)
	for i, name := range []string{"A", "B"} {
		c.inst[i] = newInstance(t, name, base...)
		c.inst[i].start()
	}
	c.nginx = startNginx(t, [2]string{c.inst[0].addr, c.inst[1].addr})
	c.url = c.nginx.url

	tok := exec.Command(binary, "token", "-sub", "e2e-producer", "-scope", "publish", "-ttl", "1h", "-jwt-secret", c.secret)
	tok.Env = hermeticEnv()
	out, err := tok.Output()
	if err != nil {
		t.Fatalf("noticed token: %v", err)
	}
	c.pub = strings.TrimSpace(string(out))

	c.client = &http.Client{Transport: &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		ResponseHeaderTimeout: 15 * time.Second,
		MaxIdleConnsPerHost:   64,
	}}
	ctx, cancel := context.WithCancel(context.Background())
	c.ctx = ctx
	t.Cleanup(func() {
		cancel()
		c.streams.Wait()
		c.client.CloseIdleConnections()
	})
}

// token signs a subscriber token for user.
func (c *cluster) token(user string) string {
	tok, err := auth.Sign([]byte(c.secret), user, time.Hour, nil, "", "")
	if err != nil {
		c.t.Fatal(err)
	}
	return tok
}

// subscribe opens an EventSource-like stream for user through nginx.
func (c *cluster) subscribe(user string) *eventSource {
	return c.subscribeAt(c.url, user)
}

// subscribeAt opens an EventSource-like stream for user at base: nginx's
// URL, or one instance's.
func (c *cluster) subscribeAt(base, user string) *eventSource {
	c.streams.Add(1)
	es := openEventSource(c.ctx, c.client, base, user, c.token(user))
	go func() {
		<-es.done
		c.streams.Done()
	}()
	return es
}

// subscribeAll opens perUser streams for each user, then waits until all
// are open: from then on every event published reaches each of them.
func (c *cluster) subscribeAll(ctx context.Context, users []string, perUser int) ([]*eventSource, error) {
	var streams []*eventSource
	for _, u := range users {
		for range perUser {
			streams = append(streams, c.subscribe(u))
		}
	}
	for _, es := range streams {
		if err := es.waitOpen(ctx, 1); err != nil {
			return nil, err
		}
	}
	return streams, nil
}

// payload is the data of every test event: who it is for, so a stream
// can tell an event meant for someone else.
type payload struct {
	User  string   `json:"user"`
	Users []string `json:"users,omitempty"` // an event published to several at once
	Seq   int      `json:"seq"`
	Via   string   `json:"via"`
}

var eventTypes = []string{"", "order.shipped", "invoice.paid"}

// publish sends n events to each user, numbered from seq: even ones
// XADDed straight to Redis as a producer would, odd ones POSTed through
// nginx. Each user's events go one after the other (their order is the
// one to check); users in parallel.
func (c *cluster) publish(ctx context.Context, users []string, seq, n int) error {
	work := make(chan string)
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for u := range work {
				for i := seq; i < seq+n; i++ {
					var err error
					if i%2 == 0 {
						err = c.xadd(ctx, u, i)
					} else {
						err = c.post(ctx, u, i)
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	var err error
feed:
	for _, u := range users {
		select {
		case work <- u:
		case err = <-errs:
			break feed
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	if err == nil {
		err = <-errs
	}
	return err
}

func (c *cluster) record(user string, s sent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent[user] = append(c.sent[user], s)
}

func streamKey(user string) string { return "notice:{" + user + "}" }

// xadd publishes as a producer does, in the contract's form:
// XADD notice:{user} MAXLEN ~ 1000 * [event type] data payload.
func (c *cluster) xadd(ctx context.Context, user string, seq int) error {
	typ := eventTypes[seq%len(eventTypes)]
	data, _ := json.Marshal(payload{User: user, Seq: seq, Via: "xadd"})
	values := []any{}
	if typ != "" {
		values = append(values, "event", typ)
	}
	values = append(values, "data", string(data))
	id, err := c.rdb.XAdd(ctx, &redis.XAddArgs{Stream: streamKey(user), MaxLen: 1000, Approx: true, Values: values}).Result()
	if err != nil {
		return fmt.Errorf("XADD for %s: %w", user, err)
	}
	c.record(user, sent{id: id, typ: typ, data: string(data), via: "xadd"})
	return nil
}

// post publishes with POST /notice through nginx. An answer from nginx
// that leaves it unknown whether noticed published (502, 504, a dropped
// connection: the instance died under the request) is settled by looking
// in Redis; only a publish that did not happen is sent again.
func (c *cluster) post(ctx context.Context, user string, seq int) error {
	typ := eventTypes[seq%len(eventTypes)]
	data, _ := json.Marshal(payload{User: user, Seq: seq, Via: "post"})
	body := map[string]any{"user": user, "data": json.RawMessage(data)}
	if typ != "" {
		body["event"] = typ
	}
	raw, _ := json.Marshal(body)
	for attempt := 1; ; attempt++ {
		id, status, err := c.postOnce(ctx, raw)
		if err == nil {
			c.record(user, sent{id: id, typ: typ, data: string(data), via: "post"})
			return nil
		}
		if status != 0 && status != http.StatusBadGateway && status != http.StatusGatewayTimeout {
			return fmt.Errorf("POST /notice for %s: %w", user, err)
		}
		id, found, ferr := c.findInRedis(ctx, user, string(data))
		if ferr != nil {
			return ferr
		}
		if found {
			c.record(user, sent{id: id, typ: typ, data: string(data), via: "post"})
			return nil
		}
		if attempt == 5 {
			return fmt.Errorf("POST /notice for %s: %w (after %d tries)", user, err, attempt)
		}
		c.postRetries.Add(1)
	}
}

func (c *cluster) postOnce(ctx context.Context, body []byte) (id string, status int, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.url+"/notice", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+c.pub)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", resp.StatusCode, fmt.Errorf("%s: %s", resp.Status, answer)
	}
	var out struct{ ID string }
	if err := json.Unmarshal(answer, &out); err != nil || out.ID == "" {
		return "", resp.StatusCode, fmt.Errorf("answer %q: want {\"id\":...}", answer)
	}
	return out.ID, resp.StatusCode, nil
}

func (c *cluster) findInRedis(ctx context.Context, user, data string) (string, bool, error) {
	msgs, err := c.rdb.XRange(ctx, streamKey(user), "-", "+").Result()
	if err != nil {
		return "", false, err
	}
	for _, m := range msgs {
		if m.Values["data"] == data {
			return m.ID, true, nil
		}
	}
	return "", false, nil
}

// lastSent is the id of the newest event published to user.
func (c *cluster) lastSent(user string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sent[user]
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1].id
}

// waitDelivered waits until every stream has the newest event of its user.
func (c *cluster) waitDelivered(ctx context.Context, streams []*eventSource) error {
	for _, es := range streams {
		if err := es.waitID(ctx, c.lastSent(es.user)); err != nil {
			return err
		}
	}
	return nil
}

// tally is what the streams got against what was published.
type tally struct {
	streams, events, expected, received              int
	lost, duplicated, misrouted, outOfOrder, altered int
}

func (t tally) String() string {
	return fmt.Sprintf("streams=%d events_sent=%d deliveries_expected=%d received=%d lost=%d duplicated=%d misrouted=%d out_of_order=%d altered=%d",
		t.streams, t.events, t.expected, t.received, t.lost, t.duplicated, t.misrouted, t.outOfOrder, t.altered)
}

func (t tally) clean() bool {
	return t.received == t.expected && t.lost+t.duplicated+t.misrouted+t.outOfOrder+t.altered == 0
}

// check compares what each stream received with its user's stream in
// Redis, which must also hold exactly what the producers were told they
// published.
func (c *cluster) check(ctx context.Context, streams []*eventSource) tally {
	c.t.Helper()
	var n tally
	want := map[string][]sent{}
	c.mu.Lock()
	for user, s := range c.sent {
		n.events += len(s)
		want[user] = s
	}
	c.mu.Unlock()
	for user, s := range want {
		msgs, err := c.rdb.XRange(ctx, streamKey(user), "-", "+").Result()
		if err != nil {
			c.t.Fatal(err)
		}
		if len(msgs) != len(s) {
			c.t.Errorf("Redis holds %d entries for %s; producers published %d", len(msgs), user, len(s))
			continue
		}
		for i, m := range msgs {
			if m.ID != s[i].id || m.Values["data"] != s[i].data {
				c.t.Errorf("Redis entry %d of %s is %s %v; published %+v", i, user, m.ID, m.Values, s[i])
			}
		}
	}

	reported := 0
	report := func(format string, args ...any) {
		if reported++; reported <= 10 {
			c.t.Errorf(format, args...)
		}
	}
	for _, es := range streams {
		events, _, failure := es.snapshot()
		if failure != nil {
			report("stream of %s gave up: %v", es.user, failure)
		}
		exp := want[es.user]
		n.streams++
		n.expected += len(exp)
		n.received += len(events)
		byID := map[string]sent{}
		for _, s := range exp {
			byID[s.id] = s
		}
		seen := map[string]int{}
		prev := ""
		for _, ev := range events {
			var p payload
			if json.Unmarshal([]byte(ev.Data), &p) != nil || p.User != es.user {
				n.misrouted++
				report("stream of %s got %q (id %s), not its user's", es.user, ev.Data, ev.ID)
				continue
			}
			if seen[ev.ID]++; seen[ev.ID] > 1 {
				n.duplicated++
				report("stream of %s got %s twice", es.user, ev.ID)
				continue
			}
			if prev != "" && !idLess(prev, ev.ID) {
				n.outOfOrder++
				report("stream of %s got %s after %s", es.user, ev.ID, prev)
			}
			prev = ev.ID
			s, ok := byID[ev.ID]
			wantType := s.typ
			if wantType == "" {
				wantType = "message"
			}
			if !ok || ev.Type != wantType || ev.Data != s.data {
				n.altered++
				report("stream of %s got %s %q %q; published %+v", es.user, ev.ID, ev.Type, ev.Data, s)
			}
		}
		for _, s := range exp {
			if seen[s.id] == 0 {
				n.lost++
				report("stream of %s never got %s (%s)", es.user, s.id, s.data)
			}
		}
	}
	return n
}

// idLess orders Redis entry ids.
func idLess(a, b string) bool {
	x, errA := notice.ParseID(a)
	y, errB := notice.ParseID(b)
	return errA == nil && errB == nil && x.Less(y)
}

// spread counts the streams on each instance, failing unless both have
// some.
func (c *cluster) spread(t *testing.T, total int) [2]int {
	t.Helper()
	got := [2]int{c.inst[0].streamsOpen(t), c.inst[1].streamsOpen(t)}
	if got[0]+got[1] != total || got[0] == 0 || got[1] == 0 {
		t.Fatalf("streams open on A and B: %v; want %d spread over both", got, total)
	}
	return got
}

func usersNamed(prefix string, n int) []string {
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("%s-%03d", prefix, i)
	}
	return users
}
