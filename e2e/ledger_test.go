package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The fault tests publish while things break, so a publish may be
// answered 200, refused with 503, or left without an answer (a timeout, a
// dropped connection). A ledger keeps every attempt and its answer; what
// Redis holds at the end is the truth the streams are checked against:
// every entry of a user's stream reaches each of the user's streams once,
// every 200 (or XADD reply) is among those entries, and nothing else
// arrives.

// attempt is one publish and what came of it.
type attempt struct {
	user, via, typ, data string
	seq                  int
	sent, answered       time.Time
	status               int    // HTTP status of a POST; 200 for an XADD reply; 0 for none
	id                   string // the id answered, when acknowledged
	err                  error
}

func (a *attempt) acked() bool { return a.id != "" }

// ledger records the attempts of one test. Every payload is unique (a
// sequence number), so an entry in Redis names the attempt it came from.
type ledger struct {
	mu     sync.Mutex
	seq    int
	all    []*attempt
	byData map[string]*attempt
	// lossy: Redis may lose entries (a failover without
	// -publish-replicas). verify then counts, rather than reports, what
	// the contract allows for them: an entry delivered that Redis lost
	// afterwards, an acknowledged entry lost, and entries a stream lacks
	// once it was told of a gap.
	lossy bool
}

func newLedger() *ledger { return &ledger{byData: map[string]*attempt{}} }

func (l *ledger) begin(user, via string) *attempt {
	return l.beginMany([]string{user}, via)[0]
}

// beginMany starts one publish to several users: one attempt for each,
// all with the same payload, naming them all.
func (l *ledger) beginMany(users []string, via string) []*attempt {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	p := payload{User: users[0], Seq: l.seq, Via: via}
	if len(users) > 1 {
		p = payload{Users: users, Seq: l.seq, Via: via}
	}
	data, _ := json.Marshal(p)
	out := make([]*attempt, len(users))
	for i, u := range users {
		a := &attempt{user: u, via: via, typ: eventTypes[l.seq%len(eventTypes)], data: string(data), seq: l.seq, sent: time.Now()}
		l.all = append(l.all, a)
		l.byData[dataKey(u, a.data)] = a
		out[i] = a
	}
	return out
}

func dataKey(user, data string) string { return user + "\x00" + data }

func (l *ledger) finish(a *attempt, status int, id string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a.answered, a.status, a.id, a.err = time.Now(), status, id, err
}

func (l *ledger) attempts() []*attempt {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*attempt, len(l.all))
	for i, a := range l.all {
		c := *a
		out[i] = &c
	}
	return out
}

func (l *ledger) attemptOf(user, data string) *attempt {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byData[dataKey(user, data)]
}

// publisher publishes the ways producers do: POST /notice (through nginx,
// or to one instance) and XADD straight to Redis.
type publisher struct {
	book    *ledger
	client  *http.Client
	postURL string
	token   string
	rdb     redis.UniversalClient // no retries: an XADD is sent once
	// replicas, when set, makes an XADD a producer's under
	// -publish-replicas: XADD then WAIT on the same connection, counted
	// acknowledged only when that many replicas hold it.
	replicas int
}

// newPublisher publishes through the cluster's nginx and to its Redis,
// reached as the instances reach it: one server, Sentinel or Cluster.
func (c *cluster) newPublisher(book *ledger) *publisher {
	const dial, rw = time.Second, 2 * time.Second
	var rdb redis.UniversalClient
	switch {
	case c.set != nil:
		opt, err := redis.ParseFailoverURL(strings.Replace(c.set.URL(), "redis+sentinel://", "redis://", 1))
		if err != nil {
			c.t.Fatal(err)
		}
		opt.MaxRetries, opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = -1, dial, rw, rw
		rdb = redis.NewFailoverClient(opt)
	case c.rc != nil:
		opt, err := redis.ParseClusterURL(strings.Replace(c.rc.URL(), "redis+cluster://", "redis://", 1))
		if err != nil {
			c.t.Fatal(err)
		}
		// Redirects are followed (MOVED and ASK during a reshard), as
		// any Cluster client does.
		opt.MaxRetries, opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = -1, dial, rw, rw
		rdb = redis.NewClusterClient(opt)
	default:
		rdb = redis.NewClient(&redis.Options{
			Addr:        c.redis.Addr(),
			MaxRetries:  -1, // a retried XADD whose reply was lost appends twice
			DialTimeout: dial, ReadTimeout: rw, WriteTimeout: rw,
		})
	}
	c.t.Cleanup(func() { rdb.Close() })
	return &publisher{book: book, client: c.client, postURL: c.url + "/notice", token: c.pub, rdb: rdb}
}

// post publishes one event for user with POST /notice; nothing is retried.
func (p *publisher) post(ctx context.Context, user string) *attempt {
	a := p.book.begin(user, "post")
	body := map[string]any{"user": user, "data": json.RawMessage(a.data)}
	if a.typ != "" {
		body["event"] = a.typ
	}
	raw, _ := json.Marshal(body)
	status, answer, err := p.send(ctx, raw)
	var out struct {
		ID string `json:"id"`
	}
	switch {
	case err != nil:
		p.book.finish(a, status, "", err)
	case status == http.StatusOK && json.Unmarshal(answer, &out) == nil && out.ID != "":
		p.book.finish(a, status, out.ID, nil)
	case status == http.StatusOK:
		p.book.finish(a, status, "", fmt.Errorf("200 with %q: want {\"id\":...}", answer))
	default:
		p.book.finish(a, status, "", fmt.Errorf("%d: %s", status, answer))
	}
	return a
}

// send POSTs a publish body and returns the status and body of the
// answer; err when there was none.
func (p *publisher) send(ctx context.Context, body []byte) (int, []byte, error) {
	// Longer than noticed takes to give up on Redis, so that what it
	// answers during a fault is seen.
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.postURL, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+p.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, answer, nil
}

// postMany publishes one event to several users with one POST /notice
// {"users":[...]}; nothing is retried.
func (p *publisher) postMany(ctx context.Context, users []string) []*attempt {
	as := p.book.beginMany(users, "post")
	body := map[string]any{"users": users, "data": json.RawMessage(as[0].data)}
	if as[0].typ != "" {
		body["event"] = as[0].typ
	}
	raw, _ := json.Marshal(body)
	status, answer, err := p.send(ctx, raw)
	var out struct {
		IDs map[string]string `json:"ids"`
	}
	if err == nil && status == http.StatusOK && json.Unmarshal(answer, &out) != nil {
		err = fmt.Errorf("200 with %q: want {\"ids\":...}", answer)
	}
	for _, a := range as {
		id := out.IDs[a.user]
		switch {
		case err != nil:
			p.book.finish(a, status, "", err)
		case status != http.StatusOK:
			p.book.finish(a, status, "", fmt.Errorf("%d: %s", status, answer))
		case id == "":
			p.book.finish(a, status, "", fmt.Errorf("200 with %q: no id for %s", answer, a.user))
		default:
			p.book.finish(a, status, id, nil)
		}
	}
	return as
}

// xadd publishes one event for user as a producer does, in the contract's
// form.
func (p *publisher) xadd(ctx context.Context, user string) *attempt {
	a := p.book.begin(user, "xadd")
	values := []any{}
	if a.typ != "" {
		values = append(values, "event", a.typ)
	}
	values = append(values, "data", a.data)
	id, err := p.add(ctx, &redis.XAddArgs{Stream: streamKey(user), MaxLen: 1000, Approx: true, Values: values})
	if err != nil {
		p.book.finish(a, 0, "", err)
	} else {
		p.book.finish(a, http.StatusOK, id, nil)
	}
	return a
}

// add is the XADD, followed by WAIT on the same connection (in a Cluster,
// the key's master's) when replicas is set.
func (p *publisher) add(ctx context.Context, args *redis.XAddArgs) (string, error) {
	if p.replicas == 0 {
		return p.rdb.XAdd(ctx, args).Result()
	}
	var c redis.Cmdable = p.rdb
	if cc, ok := p.rdb.(*redis.ClusterClient); ok {
		m, err := cc.MasterForKey(ctx, args.Stream)
		if err != nil {
			return "", err
		}
		c = m
	}
	pipe := c.Pipeline()
	add := pipe.XAdd(ctx, args)
	wait := pipe.Do(ctx, "WAIT", p.replicas, 1000)
	if _, err := pipe.Exec(ctx); err != nil {
		if cc, ok := p.rdb.(*redis.ClusterClient); ok && strings.HasPrefix(err.Error(), "MOVED ") {
			// Sent to a node's own connection, the redirect is the
			// producer's to follow: the next XADD goes to the new master.
			cc.ReloadState(ctx)
		}
		return "", err
	}
	if n, err := wait.Int64(); err != nil || n < int64(p.replicas) {
		return "", fmt.Errorf("WAIT %d: %d replicas hold it (%v)", p.replicas, n, err)
	}
	return add.Val(), nil
}

// one publishes one event for user, by POST or XADD at random.
func (p *publisher) one(ctx context.Context, rng *rand.Rand, user string) *attempt {
	if rng.IntN(2) == 0 {
		return p.xadd(ctx, user)
	}
	return p.post(ctx, user)
}

// keepPublishing runs workers that each publish to a random user, then
// wait pace, until the returned stop is called; stop waits for them. Half
// the workers POST, half XADD, so that neither way waits on the other
// when one of them hangs.
func (p *publisher) keepPublishing(seed uint64, users []string, workers int, pace time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range workers {
		rng := rand.New(rand.NewPCG(seed, uint64(w)))
		publish := p.post
		if w%2 == 1 {
			publish = p.xadd
		}
		wg.Go(func() {
			for ctx.Err() == nil {
				// Not ctx: stopping must not cut an attempt in half and
				// leave its outcome unknown for no reason.
				publish(context.Background(), users[rng.IntN(len(users))])
				select {
				case <-ctx.Done():
				case <-time.After(pace):
				}
			}
		})
	}
	return func() {
		cancel()
		wg.Wait()
	}
}

// entry is one entry of a user's stream in Redis.
type entry struct{ id, typ, data string }

// truth is what Redis holds for each user read, oldest first.
type truth map[string][]entry

// readTruth reads every named user's stream from Redis.
func readTruth(ctx context.Context, rdb redis.UniversalClient, users []string) (truth, error) {
	out := truth{}
	for _, u := range users {
		msgs, err := rdb.XRange(ctx, streamKey(u), "-", "+").Result()
		if err != nil {
			return nil, fmt.Errorf("XRANGE %s: %w", streamKey(u), err)
		}
		out[u] = nil // read, even if empty
		for _, m := range msgs {
			if _, marker := m.Values["noticed-lost"]; marker && len(m.Values) == 1 {
				// noticed's record that Redis lost entries up to it (a
				// failover): never delivered, not a publish.
				continue
			}
			typ, _ := m.Values["event"].(string)
			data, _ := m.Values["data"].(string)
			out[u] = append(out[u], entry{id: m.ID, typ: typ, data: data})
		}
	}
	return out, nil
}

// merge adds what other holds and t does not (Redis restarted empty in
// between: t is what was there before).
func (t truth) merge(other truth) truth {
	out := truth{}
	for u, es := range t {
		out[u] = append(out[u], es...)
	}
	for u, es := range other {
		seen := map[string]bool{}
		for _, e := range out[u] {
			seen[e.id] = true
		}
		for _, e := range es {
			if !seen[e.id] {
				out[u] = append(out[u], e)
			}
		}
		sort.Slice(out[u], func(i, j int) bool { return idLess(out[u][i].id, out[u][j].id) })
	}
	return out
}

// outcome counts, for one test, what was published and what the streams
// received.
type outcome struct {
	sent, acked, refused, unanswered int // attempts, by answer
	landedUnacked                    int // not acknowledged, yet in Redis (a 503 or a timeout after all)
	published                        int // entries in Redis
	twice                            int // attempts that made two entries (nginx retried a POST whose instance died)
	ackedMissing                     int // acknowledged, yet not in Redis

	streams, expected, delivered int
	lost, duplicated, misrouted  int
	outOfOrder, unknown, gaps    int

	// Entries Redis lost (lossy ledgers only).
	lostRead      int // entries Redis lost after an instance delivered them
	toldGap       int // entries Redis holds that a stream told of a gap lacks
	missedGapless int // streams that lacked an entry lost after it was read, and got no gap
	lostStreams   int // streams that lacked an entry lost after it was read
	ackedUnseen   int // acknowledged, lost, and read by no instance: a loss nobody can see
}

func (o outcome) String() string {
	return fmt.Sprintf("sent %d (acked %d, refused %d, unanswered %d; %d unacknowledged landed), delivered %d of %d to %d streams, lost %d, dup %d, misrouted %d, out of order %d, unknown %d, gaps %d",
		o.sent, o.acked, o.refused, o.unanswered, o.landedUnacked, o.delivered, o.expected, o.streams,
		o.lost, o.duplicated, o.misrouted, o.outOfOrder, o.unknown, o.gaps)
}

// clean is true when every acknowledged event is in Redis and every
// stream got exactly its user's entries, once, in order.
func (o outcome) clean() bool {
	return o.ackedMissing+o.lost+o.duplicated+o.misrouted+o.outOfOrder+o.unknown+o.lostRead+o.toldGap == 0
}

// cleanAcrossLoss is clean for what a failover may lose: each stream got
// every entry Redis still holds, or a gap; a stream that lacks an entry
// Redis lost after an instance read it got a gap; nothing twice, out of
// order or someone else's. Acknowledged entries lost are the caller's to
// judge (none with -publish-replicas).
func (o outcome) cleanAcrossLoss() bool {
	return o.lost+o.duplicated+o.misrouted+o.outOfOrder+o.unknown+o.missedGapless == 0
}

// must is what a stream has to receive: every entry of its user whose
// publish was sent after the stream first opened (the contract: every
// entry added after the response headers reach the client). Entries
// published earlier may arrive too (they may have been added after the
// instance began following), but once at most.
func (l *ledger) must(es *eventSource, truth truth) []entry {
	_, conns, _ := es.snapshot()
	if len(conns) == 0 {
		return nil
	}
	opened := conns[0].opened
	var out []entry
	for _, e := range truth[es.user] {
		if a := l.attemptOf(es.user, e.data); a == nil || a.sent.After(opened) {
			out = append(out, e)
		}
	}
	return out
}

// waitDeliveredTruth waits until each stream has the newest entry it must
// receive.
func (l *ledger) waitDelivered(ctx context.Context, streams []*eventSource, truth truth) error {
	for _, es := range streams {
		m := l.must(es, truth)
		if len(m) == 0 {
			continue
		}
		if err := es.waitID(ctx, m[len(m)-1].id); err != nil {
			return err
		}
	}
	return nil
}

// verify compares what each stream received with truth. report gets each
// fault found (the first few are enough to see what went wrong).
func (l *ledger) verify(truth truth, streams []*eventSource, report func(format string, args ...any)) outcome {
	var o outcome
	inRedis := map[string]int{} // dataKey -> entries
	for u, es := range truth {
		if len(es) > 900 {
			report("%d entries for %s: near -stream-maxlen, Redis may have trimmed some; publish less in this test", len(es), u)
		}
		o.published += len(es)
		for _, e := range es {
			inRedis[dataKey(u, e.data)]++
		}
	}
	for _, a := range l.attempts() {
		if _, read := truth[a.user]; !read {
			continue
		}
		o.sent++
		switch {
		case a.acked():
			o.acked++
		case a.status != 0:
			o.refused++
		default:
			o.unanswered++
		}
		n := inRedis[dataKey(a.user, a.data)]
		if a.acked() && n == 0 {
			o.ackedMissing++
			if l.lossy {
				continue
			}
			report("%s for %s was acknowledged (%s) but is not in Redis", a.data, a.user, a.id)
		}
		if !a.acked() && n > 0 {
			o.landedUnacked++
		}
		if n > 1 {
			o.twice++
		}
	}

	readLost := map[string]bool{} // dataKey of entries delivered, then lost by Redis
	received := map[*eventSource]map[string]bool{}
	gapped := map[*eventSource]bool{}
	for _, es := range streams {
		o.streams++
		events, _, failure := es.snapshot()
		if failure != nil {
			report("stream of %s gave up: %v", es.user, failure)
		}
		byID := map[string]entry{}
		for _, e := range truth[es.user] {
			byID[e.id] = e
		}
		seen := map[string]bool{}
		seenData := map[string]bool{}
		prev := ""
		gaps := 0
		for _, ev := range events {
			if ev.Type == "gap" {
				o.gaps++
				gaps++
				continue
			}
			var p payload
			if json.Unmarshal([]byte(ev.Data), &p) != nil || (p.User != es.user && !slices.Contains(p.Users, es.user)) {
				o.misrouted++
				report("stream of %s got %q (id %s): not its user's", es.user, ev.Data, ev.ID)
				continue
			}
			o.delivered++
			if seen[ev.ID] {
				o.duplicated++
				report("stream of %s got %s twice", es.user, ev.ID)
				continue
			}
			seen[ev.ID] = true
			seenData[ev.Data] = true
			e, ok := byID[ev.ID]
			wantType := e.typ
			if wantType == "" {
				wantType = "message"
			}
			if a := l.attemptOf(es.user, ev.Data); l.lossy && a != nil && inRedis[dataKey(es.user, ev.Data)] == 0 {
				// Published, read by this stream's instance, then lost by
				// Redis (its id may since name another entry).
				if !readLost[dataKey(es.user, ev.Data)] {
					readLost[dataKey(es.user, ev.Data)] = true
					o.lostRead++
				}
				if prev != "" && !idLess(prev, ev.ID) {
					o.outOfOrder++
					report("stream of %s got %s after %s", es.user, ev.ID, prev)
				}
				prev = ev.ID
				continue
			}
			if !ok || e.data != ev.Data || ev.Type != wantType {
				o.unknown++
				report("stream of %s got %s %s %q: no such entry in Redis", es.user, ev.ID, ev.Type, ev.Data)
				continue
			}
			if prev != "" && !idLess(prev, ev.ID) {
				o.outOfOrder++
				report("stream of %s got %s after %s", es.user, ev.ID, prev)
			}
			prev = ev.ID
		}
		lost := 0
		for _, e := range l.must(es, truth) {
			o.expected++
			if !seen[e.id] && l.lossy && gaps > 0 {
				o.toldGap++
				continue
			}
			if !seen[e.id] {
				if lost++; lost == 1 {
					sent := "by someone else"
					if a := l.attemptOf(es.user, e.data); a != nil {
						sent = a.sent.Format("15:04:05.000")
					}
					report("stream of %s never got %s %s (sent %s); %s", es.user, e.id, e.data, sent, es.describe())
				}
			}
		}
		o.lost += lost
		received[es] = seenData
		gapped[es] = gaps > 0
	}

	for _, a := range l.attempts() {
		if _, read := truth[a.user]; read && a.acked() && inRedis[dataKey(a.user, a.data)] == 0 && !readLost[dataKey(a.user, a.data)] {
			o.ackedUnseen++
		}
	}
	// Each stream lacking an entry Redis lost after some instance read
	// it must have been told: by then it can be known.
	for _, es := range streams {
		_, conns, _ := es.snapshot()
		var missed *attempt
		for _, a := range l.attempts() {
			k := dataKey(a.user, a.data)
			if a.user == es.user && readLost[k] && !received[es][a.data] && len(conns) > 0 && a.sent.After(conns[0].opened) {
				missed = a
				break
			}
		}
		if missed == nil {
			continue
		}
		o.lostStreams++
		if !gapped[es] {
			o.missedGapless++
			report("stream of %s lacks %s (%s, %s), which Redis lost after an instance read it, and got no gap; %s",
				es.user, missed.id, missed.data, missed.via, es.describe())
		}
	}
	return o
}

// reporter returns a report function that fails t with the first few
// faults only, each prefixed (with the PRNG seed, say).
func reporter(t *testing.T, prefix string) func(string, ...any) {
	n := 0
	var mu sync.Mutex
	return func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if n++; n <= 10 {
			t.Errorf("%s%s", prefix, fmt.Sprintf(format, args...))
		} else if n == 11 {
			t.Errorf("%s(more faults left out)", prefix)
		}
	}
}

// during counts the attempts sent after from and answered before to:
// those made while a fault lasted. acked are those acknowledged, refused
// those answered 503, other the rest (no answer, another status).
func (l *ledger) during(from, to time.Time) (acked, refused, other int) {
	for _, a := range l.attempts() {
		if a.sent.Before(from) || a.answered.IsZero() || a.answered.After(to) {
			continue
		}
		switch {
		case a.acked():
			acked++
		case a.status == http.StatusServiceUnavailable:
			refused++
		default:
			other++
		}
	}
	return
}

// reconnects counts the streams' connections beyond their first.
func reconnects(streams []*eventSource) int {
	n := 0
	for _, es := range streams {
		_, conns, _ := es.snapshot()
		n += max(len(conns)-1, 0)
	}
	return n
}

// errorsOf summarises the errors of attempts not acknowledged, for logs.
func (l *ledger) errorsOf() string {
	count := map[string]int{}
	for _, a := range l.attempts() {
		if a.acked() {
			continue
		}
		msg := fmt.Sprint(a.status)
		if a.err != nil {
			msg += " " + a.err.Error()
		}
		if len(msg) > 80 {
			msg = msg[:80]
		}
		count[msg]++
	}
	var parts []string
	for m, n := range count {
		parts = append(parts, fmt.Sprintf("%d× %s", n, m))
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

// ackedSince counts the attempts sent after since and acknowledged.
func (l *ledger) ackedSince(since time.Time) int {
	n := 0
	for _, a := range l.attempts() {
		if a.acked() && a.sent.After(since) {
			n++
		}
	}
	return n
}

// waitAcked waits until n attempts sent after since are acknowledged.
func (l *ledger) waitAcked(ctx context.Context, since time.Time, n int) error {
	if err := poll(ctx, func() bool { return l.ackedSince(since) >= n }); err != nil {
		return fmt.Errorf("waiting for %d publishes to be acknowledged (%d are; %s): %w", n, l.ackedSince(since), l.errorsOf(), err)
	}
	return nil
}
