package redisstore

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/redistest"
	"github.com/noticed/noticed/internal/routing"
)

// The fault tests run two instances (a store and a hub each) with streams
// of many users open on both, producers appending through the store (as
// POST /notice does) and by XADD (as a producer of its own does) while a
// fault happens, then count per stream what was published, received,
// lost, duplicated and misrouted.

const (
	faultUsers   = 24
	faultPerUser = 2 // streams per user on each instance
)

// faultStream is one open stream and what it got.
type faultStream struct {
	user string
	conn *routing.Conn

	mu       sync.Mutex
	got      []notice.ID
	seen     map[notice.ID]bool
	dups     int
	wrong    int // entries of another user
	gaps     int
	disorder int
}

func (f *faultStream) take(fr *routing.Frame) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fr.Gap {
		f.gaps++
		return
	}
	if f.seen[fr.ID] {
		f.dups++
		return
	}
	if n := len(f.got); n > 0 && !f.got[n-1].Less(fr.ID) {
		f.disorder++
	}
	f.seen[fr.ID] = true
	f.got = append(f.got, fr.ID)
	if !strings.Contains(string(fr.Bytes), "|"+f.user+"|") {
		f.wrong++
	}
}

func (f *faultStream) has(id notice.ID) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seen[id]
}

// encode is the hub's encoder for these tests: the data carries the user.
func encode(dst []byte, e notice.Entry) []byte {
	return append(dst, e.Data...)
}

// faultRun is one scenario's instances, producers and counts.
type faultRun struct {
	t        *testing.T
	url      string
	replicas int // -publish-replicas: the stores and the XADD producer WAIT
	producer redis.UniversalClient
	users    []string
	stores   []*Store
	streams  []*faultStream

	mu    sync.Mutex
	acked map[string][]notice.ID // by user: every acknowledged id
	fails atomic.Int64           // appends refused (503 for a POST)
	seq   atomic.Int64
	stop  chan struct{}
	done  sync.WaitGroup
}

func newFaultRun(t *testing.T, url string, producer redis.UniversalClient, replicas int) *faultRun {
	r := &faultRun{t: t, url: url, replicas: replicas, producer: producer, acked: map[string][]notice.ID{}, stop: make(chan struct{})}
	t.Cleanup(func() { _ = producer.Close() })
	for i := range faultUsers {
		r.users = append(r.users, fmt.Sprintf("fault-%d-%d", time.Now().UnixNano(), i))
	}
	for range 2 {
		s := newStore(t, Options{URL: url, Replicas: replicas})
		r.stores = append(r.stores, s)
		h := routing.New(s, encode, routing.Options{QueueLen: 4096})
		go h.Run()
		t.Cleanup(h.Close)
		for _, u := range r.users {
			for range faultPerUser {
				c, err := h.Subscribe(u)
				if err != nil {
					t.Fatal(err)
				}
				fs := &faultStream{user: u, conn: c, seen: map[notice.ID]bool{}}
				r.streams = append(r.streams, fs)
				go func() {
					for {
						select {
						case fr := <-c.Frames():
							fs.take(fr)
						case <-c.Kicked():
							t.Errorf("stream of %s kicked as slow", u)
							return
						case <-h.Closing():
							return
						}
					}
				}()
			}
		}
	}
	ctx := testCtx(t)
	for _, fs := range r.streams {
		if _, err := fs.conn.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// produce starts the producers: one appending through the first store,
// one by XADD, each over every user in turn.
func (r *faultRun) produce() {
	for p := range 2 {
		r.done.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-r.stop:
					return
				default:
				}
				u := r.users[i%len(r.users)]
				data := fmt.Sprintf("|%s|%d", u, r.seq.Add(1))
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				var id notice.ID
				var err error
				if p == 0 {
					var ids []notice.ID
					ids, err = r.stores[0].Append(ctx, []routing.Message{{User: u, Data: data}})
					if err == nil {
						id = ids[0]
					}
				} else {
					id, err = r.xadd(ctx, DefaultPrefix+"{"+u+"}", data)
				}
				cancel()
				if err != nil {
					r.fails.Add(1)
					time.Sleep(5 * time.Millisecond)
					continue
				}
				r.mu.Lock()
				r.acked[u] = append(r.acked[u], id)
				r.mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
}

// xadd appends as a producer of its own does: XADD, and with replicas a
// WAIT on the same connection (in a Cluster, the key's master's).
func (r *faultRun) xadd(ctx context.Context, key, data string) (notice.ID, error) {
	var c redis.Cmdable = r.producer
	if cc, ok := r.producer.(*redis.ClusterClient); ok && r.replicas > 0 {
		m, err := cc.MasterForKey(ctx, key)
		if err != nil {
			return notice.Zero, err
		}
		c = m
	}
	pipe := c.Pipeline()
	add := pipe.XAdd(ctx, &redis.XAddArgs{Stream: key, Values: []any{"data", data}})
	var wait *redis.Cmd
	if r.replicas > 0 {
		wait = pipe.Do(ctx, "WAIT", r.replicas, 1000)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return notice.Zero, err
	}
	if wait != nil {
		if n, err := wait.Int64(); err != nil || n < int64(r.replicas) {
			return notice.Zero, fmt.Errorf("WAIT: %d replicas, %v", n, err)
		}
	}
	return notice.ParseID(add.Val())
}

// waitPublished waits until n more entries are acknowledged.
func (r *faultRun) waitPublished(n int64) {
	r.t.Helper()
	from := r.count()
	waitFor(r.t, fmt.Sprintf("%d more acknowledged entries", n), func() bool { return r.count() >= from+n })
}

func (r *faultRun) count() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n int64
	for _, ids := range r.acked {
		n += int64(len(ids))
	}
	return n
}

// finish stops the producers, waits until every stream has every entry
// Redis holds for its user, and prints and checks the counts. lossOK says
// whether acknowledged entries may be lost (no -publish-replicas).
func (r *faultRun) finish(name string, lossOK bool) {
	t := r.t
	close(r.stop)
	r.done.Wait()
	ctx := testCtx(t)
	held := map[string][]notice.ID{}
	for _, u := range r.users {
		var entries []routing.Batch
		var err error
		// The client may learn of a failover after the store did.
		waitFor(t, "Redis to answer a read", func() bool {
			entries, err = r.stores[1].Read(ctx, []routing.Cursor{{User: u, Count: 1 << 20}})
			return err == nil
		})
		for _, e := range entries[0].Entries {
			held[u] = append(held[u], e.ID)
		}
	}
	// An entry Redis holds that a stream lacks is lost for that stream:
	// allowed only when the stream was told of a gap (an instance whose
	// cursor a failover erased skips entries written after it with ids
	// below that cursor, and says so).
	missing := func() (n, told int) {
		for _, fs := range r.streams {
			fs.mu.Lock()
			gaps := fs.gaps
			fs.mu.Unlock()
			for _, id := range held[fs.user] {
				if !fs.has(id) {
					if gaps > 0 {
						told++
					} else {
						n++
					}
				}
			}
		}
		return n, told
	}
	deadline := time.Now().Add(20 * time.Second)
	settle := time.Time{} // once only gap-told streams lack entries: a second for those still coming
	for time.Now().Before(deadline) {
		n, told := missing()
		if n+told == 0 || (n == 0 && !settle.IsZero() && time.Now().After(settle)) {
			break
		}
		if n == 0 && settle.IsZero() {
			settle = time.Now().Add(time.Second)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var published, lost, received, dups, wrong, gaps, disorder, streamsLost, streamsLostNoGap int
	heldSet := map[notice.ID]bool{}
	for _, ids := range held {
		for _, id := range ids {
			heldSet[id] = true
		}
	}
	r.mu.Lock()
	for _, ids := range r.acked {
		published += len(ids)
		for _, id := range ids {
			if !heldSet[id] {
				lost++
			}
		}
	}
	r.mu.Unlock()
	// A lost entry some stream received was read by its instance before
	// Redis lost it: the loss can be known, and every stream that missed
	// it must hear of it. One no stream received is the loss nobody can
	// see (acknowledged without WAIT, gone before any instance read it).
	readLost := map[notice.ID]bool{}
	var unseen int
	r.mu.Lock()
	for _, ids := range r.acked {
		for _, id := range ids {
			if heldSet[id] {
				continue
			}
			for _, fs := range r.streams {
				if fs.has(id) {
					readLost[id] = true
					break
				}
			}
			if !readLost[id] {
				unseen++
			}
		}
	}
	r.mu.Unlock()
	for _, fs := range r.streams {
		fs.mu.Lock()
		received += len(fs.got)
		dups += fs.dups
		wrong += fs.wrong
		gaps += fs.gaps
		disorder += fs.disorder
		// An entry the stream got that Redis no longer holds was lost
		// after this instance read it; one it did not get and Redis does
		// not hold either it can only hear of by a gap.
		r.mu.Lock()
		missed := 0
		for _, id := range r.acked[fs.user] {
			if !heldSet[id] && !fs.seen[id] && readLost[id] {
				missed++
			}
		}
		r.mu.Unlock()
		if missed > 0 {
			streamsLost++
			if fs.gaps == 0 {
				streamsLostNoGap++
			}
		}
		fs.mu.Unlock()
	}
	miss, told := missing()
	t.Logf("%s: published %d (refused %d), lost by Redis %d (%d of them read by no instance), received %d over %d streams, undelivered %d (and %d to streams told of a gap), duplicated %d, misrouted %d, out of order %d, gaps %d, streams that missed a lost entry an instance had read %d (without a gap: %d)",
		name, published, r.fails.Load(), lost, unseen, received, len(r.streams), miss, told, dups, wrong, disorder, gaps, streamsLost, streamsLostNoGap)
	if dups != 0 || wrong != 0 || disorder != 0 {
		t.Errorf("duplicated %d, misrouted %d, out of order %d; want 0", dups, wrong, disorder)
	}
	if miss != 0 {
		t.Errorf("%d entries Redis holds were not delivered to a stream of their user that was told of no gap", miss)
	}
	if streamsLostNoGap != 0 {
		t.Errorf("%d streams missed an entry Redis lost and got no gap", streamsLostNoGap)
	}
	if !lossOK && lost != 0 {
		t.Errorf("%d acknowledged entries lost", lost)
	}
}

func TestSentinelFailoverDeliversEverything(t *testing.T) {
	t.Parallel()
	set := redistest.StartSentinel(t)
	r := newFaultRun(t, set.URL(), sentinelProducer(set), 0)
	r.produce()
	r.waitPublished(200)
	set.Failover()
	r.waitPublished(200)
	r.finish("sentinel failover", true)
}

func TestSentinelMasterKilled(t *testing.T) {
	t.Parallel()
	set := redistest.StartSentinel(t)
	r := newFaultRun(t, set.URL(), sentinelProducer(set), 0)
	r.produce()
	r.waitPublished(200)
	old := set.Master()
	old.Kill()
	set.WaitNewMaster(old.Addr())
	r.waitPublished(200)
	// The promoted replica had no notification flags of its own.
	v, err := redistest.Do(set.MasterAddr(), "CONFIG", "GET", notifyParam)
	if a, _ := v.([]any); err != nil || len(a) != 2 || !strings.Contains(fmt.Sprint(a[1]), "K") {
		t.Errorf("new master: %s is %v (%v); want K and t", notifyParam, v, err)
	}
	r.finish("sentinel master SIGKILL", true)
}

// sentinelProducer is the producers' client for set: go-redis's own
// Sentinel client, as an application would have.
func sentinelProducer(set *redistest.Sentinel) redis.UniversalClient {
	opt, _ := redis.ParseFailoverURL(strings.Replace(set.URL(), "redis+sentinel", "redis", 1))
	return redis.NewFailoverClient(opt)
}

func clusterProducer(c *redistest.Cluster) redis.UniversalClient {
	opt, _ := redis.ParseClusterURL(strings.Replace(c.URL(), "redis+cluster", "redis", 1))
	return redis.NewClusterClient(opt)
}

func TestClusterMasterKilled(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t)
	r := newFaultRun(t, c.URL(), clusterProducer(c), 0)
	r.produce()
	r.waitPublished(200)
	dead := c.MasterOf(DefaultPrefix + "{" + r.users[0] + "}")
	dead.Kill()
	// Until a replica takes over, readiness names the node it misses.
	if err := r.stores[0].Ping(testCtx(t)); err == nil || !strings.Contains(err.Error(), dead.Addr()) {
		t.Errorf("Ping with a master dead: %v; want it named", err)
	}
	c.WaitStable()
	r.waitPublished(200)
	waitFor(t, "Ping to pass again", func() bool { return r.stores[0].Ping(testCtx(t)) == nil })
	var followed int
	for _, st := range r.stores[0].NodeStatus() {
		followed += st.Followed
		if st.Addr == dead.Addr() {
			t.Errorf("the dead master is still a node: %+v", st)
		}
	}
	if followed != faultUsers {
		t.Errorf("nodes hold %d followed users, want %d", followed, faultUsers)
	}
	// The promoted replica had no notification flags of its own.
	for _, m := range c.Masters() {
		v, err := redistest.Do(m.Addr(), "CONFIG", "GET", notifyParam)
		a, _ := v.([]any)
		if err != nil || len(a) != 2 || !strings.Contains(fmt.Sprint(a[1]), "K") || !strings.Contains(fmt.Sprint(a[1]), "t") {
			t.Errorf("master %s: %s is %v (%v); want K and t", m.Addr(), notifyParam, v, err)
		}
	}
	r.finish("cluster master SIGKILL", true)
}

func TestClusterReshardFollowedUsers(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t)
	r := newFaultRun(t, c.URL(), clusterProducer(c), 0)
	r.produce()
	r.waitPublished(200)
	// Every followed user's slot moves to the next master round.
	masters := c.Masters()
	for i, u := range r.users[:faultUsers/2] {
		key := DefaultPrefix + "{" + u + "}"
		from := c.MasterOf(key)
		to := masters[i%len(masters)]
		if to == from {
			to = masters[(i+1)%len(masters)]
		}
		c.MoveSlot(keySlot(key), to)
	}
	r.waitPublished(200)
	r.finish("cluster live reshard", false)
}

func TestClusterAddMaster(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t)
	r := newFaultRun(t, c.URL(), clusterProducer(c), 0)
	r.produce()
	r.waitPublished(200)
	added := c.AddMaster()
	for _, u := range r.users[:faultUsers/2] {
		c.MoveSlot(keySlot(DefaultPrefix+"{"+u+"}"), added)
	}
	r.waitPublished(200)
	r.finish("cluster fourth master", false)
}

// With -publish-replicas 1 (and producers that XADD then WAIT), no
// acknowledged entry is lost, whichever way the master goes.
func TestSentinelFailoverReplicatedLosesNothing(t *testing.T) {
	t.Parallel()
	set := redistest.StartSentinel(t)
	r := newFaultRun(t, set.URL(), sentinelProducer(set), 1)
	r.produce()
	r.waitPublished(200)
	old := set.Master()
	old.Kill()
	set.WaitNewMaster(old.Addr())
	// The new master has no replica until the old one is back as one.
	set.Rejoin(old)
	r.waitPublished(200)
	r.finish("sentinel master SIGKILL, -publish-replicas 1", false)
}

func TestClusterMasterKilledReplicatedLosesNothing(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t)
	r := newFaultRun(t, c.URL(), clusterProducer(c), 1)
	r.produce()
	r.waitPublished(200)
	old := c.KillMaster(DefaultPrefix + "{" + r.users[0] + "}")
	old.Restart() // back as a replica of the node that took over
	c.WaitStable()
	r.waitPublished(200)
	r.finish("cluster master SIGKILL, -publish-replicas 1", false)
}
