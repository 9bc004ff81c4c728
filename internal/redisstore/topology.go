package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/noticed/noticed/internal/routing"
)

// Which master holds each followed user changes: a Sentinel failover
// makes another server master; in a Cluster a slot moves (a reshard, a
// replica taking over from a dead master, a master added). The store looks
// at the topology whenever the cluster tells it something moved (a MOVED
// or ASK reply, a sentinel's +switch-master, a Pub/Sub connection that
// dropped) and every topologyEvery besides, for what no one announced.
// Each followed user whose master is not the node holding its subscription
// is moved: UNSUBSCRIBE on the old node, SUBSCRIBE on the new one, and,
// once that is confirmed, Changed, so that its reader reads from its
// cursor whatever was written while it moved.

const (
	topologyEvery = time.Second
	// topologyGap spaces two looks at the topology that kicks ask for.
	topologyGap = 50 * time.Millisecond
	numSlots    = 16384
)

// kick asks for a look at the topology soon.
func (s *Store) kick() {
	select {
	case s.kickc <- struct{}{}:
	default:
	}
}

// watchTopology is the one goroutine that looks at the topology after New.
func (s *Store) watchTopology() {
	defer close(s.topoEnd)
	tick := time.NewTicker(topologyEvery)
	defer tick.Stop()
	// Close need not wait for a look at a topology that does not answer.
	base, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		select {
		case <-s.closing:
			stop()
		case <-base.Done():
		}
	}()
	for {
		select {
		case <-s.closing:
			return
		case <-s.kickc:
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(base, sendTimeout)
		if err := s.refresh(ctx); err != nil {
			s.log.Debug("redis topology not read; trying again", "err", err)
		}
		cancel()
		select {
		case <-s.closing:
			return
		case <-time.After(topologyGap):
		}
	}
}

// refresh reads who the masters are, starts a node for each new one
// (turning its notifications on), moves followed users whose master
// changed, and closes the nodes that are no longer masters and hold no
// subscription. Its error names each master it could not start a node
// for; New fails on it, the watcher tries again.
func (s *Store) refresh(ctx context.Context) error {
	var masters []string
	var slots []string
	switch s.url.kind {
	case sentinel:
		addr, err := s.sentinelMaster(ctx)
		if err != nil {
			return err
		}
		masters = []string{addr}
	case cluster:
		var err error
		if slots, err = s.clusterSlots(ctx); err != nil {
			return err
		}
		masters = uniqueNonEmpty(slots)
	default:
		return nil
	}
	// A master that cannot be reached yet (just promoted, say) keeps its
	// users where they are until a later look; the others move now.
	var errs []error
	for _, addr := range masters {
		s.mu.Lock()
		_, ok := s.nodes[addr]
		s.mu.Unlock()
		if ok {
			continue
		}
		n, err := s.openNode(ctx, addr)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.mu.Lock()
		if s.closed() {
			s.mu.Unlock()
			_ = n.close()
			return errClosed
		}
		s.nodes[addr] = n
		s.mu.Unlock()
	}
	s.mu.Lock()
	if slots != nil {
		if !slices.Equal(s.slots, slots) && s.slots != nil {
			// go-redis learns of a move on its own only when a command
			// fails: tell it now.
			s.rdb.(*redis.ClusterClient).ReloadState(ctx)
		}
		s.slots = slots
	} else {
		if s.master != "" && s.master != masters[0] {
			go s.recheckAfterSwitch(masters[0])
		}
		s.master = masters[0]
	}
	s.mu.Unlock()

	held := make(map[*node]int)
	s.followed.Range(func(k, v any) bool {
		user, f := k.(string), v.(*follow)
		s.mu.Lock()
		want, _ := s.nodeForLocked(user)
		old := f.node
		moved := want != nil && want != old
		if moved {
			f.node = want
		}
		if f.node != nil {
			held[f.node]++
		}
		s.mu.Unlock()
		if moved {
			s.move(user, f, old, want)
		}
		return true
	})
	isMaster := make(map[string]bool, len(masters))
	for _, m := range masters {
		isMaster[m] = true
	}
	var gone []*node
	s.mu.Lock()
	for addr, n := range s.nodes {
		if !isMaster[addr] && held[n] == 0 {
			delete(s.nodes, addr)
			gone = append(gone, n)
		}
	}
	s.mu.Unlock()
	for _, n := range gone {
		s.log.Info("redis node is no longer a master; its Pub/Sub connection is closed", "node", n.addr)
		go func() { _ = n.close() }()
	}
	return errors.Join(errs...)
}

func (s *Store) closed() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

// move sends user's subscription from old (nil: none) to want. Its
// SUBSCRIBE's confirmation calls Changed (see answer); a failure leaves the
// user to be placed by the next look.
func (s *Store) move(user string, f *follow, old, want *node) {
	s.log.Debug("followed user moves to another Redis node", "to", want.addr)
	if old != nil {
		old.push(&old.incoming, &request{user: user, node: old, move: true})
	}
	want.push(&want.incoming, &request{user: user, follow: true, mark: f, node: want, move: true})
}

// unplace notes that the move r made failed: the user waits for the next
// look at the topology.
func (s *Store) unplace(r *request) {
	f, ok := r.mark.(*follow)
	if !ok {
		return
	}
	s.mu.Lock()
	if f.node == r.node {
		f.node = nil
	}
	s.mu.Unlock()
	s.kick()
}

// nodeFor is the node that holds user's key now.
func (s *Store) nodeFor(user string) (*node, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nodeForLocked(user)
}

func (s *Store) nodeForLocked(user string) (*node, error) {
	addr := s.master
	if s.slots != nil {
		addr = s.slots[keySlot(s.key(user))]
	}
	if n := s.nodes[addr]; n != nil {
		return n, nil
	}
	return nil, fmt.Errorf("redisstore: follow: no reachable master holds the user's key: %w", routing.ErrUnavailable)
}

// openNode connects to the master at addr and turns its notifications on.
func (s *Store) openNode(ctx context.Context, addr string) (*node, error) {
	c := redis.NewClient(s.nodeOptions(addr))
	if err := s.ensureNotifyFlags(ctx, c); err != nil {
		_ = c.Close()
		if errors.Is(err, ErrNotifyConfig) {
			return nil, fmt.Errorf("%w (node %s)", err, addr)
		}
		return nil, fmt.Errorf("redisstore: node %s: %w", addr, err)
	}
	s.log.Info("following keyspace notifications on a Redis master", "node", addr)
	return s.startNode(addr, c, true), nil
}

// nodeOptions are the options of a client of the one node at addr, with
// the credentials and timeouts the URL gave.
func (s *Store) nodeOptions(addr string) *redis.Options {
	o := &redis.Options{
		Addr:                     addr,
		MaxRetries:               -1,
		Protocol:                 2,
		ContextTimeoutEnabled:    true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
	switch s.url.kind {
	case sentinel:
		f := s.url.failover
		o.Username, o.Password, o.TLSConfig, o.DB = f.Username, f.Password, f.TLSConfig, f.DB
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout = f.DialTimeout, f.ReadTimeout, f.WriteTimeout
	case cluster:
		c := s.url.cluster
		o.Username, o.Password, o.TLSConfig = c.Username, c.Password, c.TLSConfig
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout = c.DialTimeout, c.ReadTimeout, c.WriteTimeout
	}
	if o.Protocol == 2 && strings.Contains(s.url.rawQuery(), "protocol=3") {
		o.Protocol = 3
	}
	return o
}

// sentinelMaster asks each sentinel in turn for the master's address.
func (s *Store) sentinelMaster(ctx context.Context) (string, error) {
	var errs []error
	for _, sc := range s.sentinels {
		hp, err := sc.GetMasterAddrByName(ctx, s.url.failover.MasterName).Result()
		if err == nil && len(hp) == 2 {
			return net.JoinHostPort(hp[0], hp[1]), nil
		}
		if err == nil {
			err = fmt.Errorf("reply %v", hp)
		}
		errs = append(errs, err)
	}
	return "", s.fail("ask the sentinels for master "+s.url.failover.MasterName, errors.Join(errs...))
}

// clusterSlots reads CLUSTER SLOTS: the master address of every slot, ""
// for one no master serves.
func (s *Store) clusterSlots(ctx context.Context) ([]string, error) {
	got, err := s.rdb.ClusterSlots(ctx).Result()
	if err != nil {
		return nil, s.fail("cluster slots", err)
	}
	slots := make([]string, numSlots)
	for _, r := range got {
		if len(r.Nodes) == 0 {
			continue
		}
		for i := max(r.Start, 0); i <= r.End && i < numSlots; i++ {
			slots[i] = r.Nodes[0].Addr
		}
	}
	return slots, nil
}

func uniqueNonEmpty(xs []string) []string {
	seen := make(map[string]bool)
	var out []string
	for _, x := range xs {
		if x != "" && !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// movedHook watches a Cluster node's replies for MOVED and ASK, which mean
// a slot has moved or is moving.
type movedHook struct{ s *Store }

func (h movedHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h movedHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if isRedirect(cmd.Err()) {
			h.s.kick()
		}
		return err
	}
}

func (h movedHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			if isRedirect(c.Err()) {
				h.s.kick()
				break
			}
		}
		return err
	}
}

func isRedirect(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.HasPrefix(msg, "MOVED ") || strings.HasPrefix(msg, "ASK ")
}

// keySlot is the Cluster slot of key: CRC16 of its hash tag (the text
// between the first "{" and the next "}", when not empty) or of the whole
// key, modulo 16384.
func keySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key) % numSlots)
}

// crc16 is CRC-16/XMODEM, the one Redis Cluster uses.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// resyncNode tells the notifier to read again, with a gap check, every
// user followed on n, whose Pub/Sub connection came back: on one node that
// is everyone; in a Cluster, only that master's users.
func (s *Store) resyncNode(n *node) {
	s.mu.Lock()
	notifier := s.notifier
	alone := len(s.nodes) == 1
	s.mu.Unlock()
	if notifier == nil {
		return
	}
	if alone {
		notifier.Resync()
		return
	}
	s.followed.Range(func(k, v any) bool {
		s.mu.Lock()
		here := v.(*follow).node == n
		s.mu.Unlock()
		if here {
			notifier.Recheck(k.(string))
		}
		return true
	})
}

// recheck tells the notifier to read user again, with a gap check.
func (s *Store) recheck(user string) {
	s.mu.Lock()
	n := s.notifier
	s.mu.Unlock()
	if n != nil {
		n.Recheck(user)
	}
}

// changed tells the notifier that user's stream may have new entries.
func (s *Store) changed(user string) {
	s.mu.Lock()
	n := s.notifier
	s.mu.Unlock()
	if n != nil {
		n.Changed(user)
	}
}

// switchLimit bounds how long recheckAfterSwitch waits for go-redis.
const switchLimit = 10 * time.Second

// recheckAfterSwitch reads every followed user again, with a gap check,
// once commands reach the new master at addr. The follower moves to it at
// once, but go-redis switches the connections that read and write when it
// hears of the failover itself: until then reads may still reach the old
// master and deliver entries that its demotion then erases. The check
// after the switch finds those (the cursors are ahead) and marks them
// lost for every other reader.
func (s *Store) recheckAfterSwitch(addr string) {
	ctx, cancel := context.WithTimeout(context.Background(), switchLimit)
	defer cancel()
	go func() {
		select {
		case <-s.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	c := redis.NewClient(s.nodeOptions(addr))
	defer c.Close()
	want, err := runID(ctx, c)
	for err == nil {
		got, gerr := runID(ctx, s.rdb)
		if gerr == nil && got == want {
			break
		}
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err != nil {
		s.log.Warn("could not tell that commands reach the new Redis master; reading every followed user again all the same", "node", addr, "err", err)
	}
	s.mu.Lock()
	n := s.notifier
	s.mu.Unlock()
	if n != nil {
		n.Resync()
	}
}

// runID is the run_id the server c reaches reports.
func runID(ctx context.Context, c redis.Cmdable) (string, error) {
	text, err := c.Info(ctx, "server").Result()
	if err != nil {
		return "", err
	}
	for line := range strings.SplitSeq(text, "\r\n") {
		if v, ok := strings.CutPrefix(line, "run_id:"); ok {
			return v, nil
		}
	}
	return "", errors.New("INFO server has no run_id")
}
