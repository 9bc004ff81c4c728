package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// Cluster is a Redis Cluster of three masters, each with one replica, on
// free ports, stopped when the test ends. Its node timeout is short (2s),
// so that a replica takes over from a killed master within seconds.
type Cluster struct {
	t     testing.TB
	Nodes []*Server // every node started, masters first at start
}

// nodeTimeout is the cluster-node-timeout the nodes run with once the
// cluster is formed: short, so that a replica takes over within seconds, yet long enough that a loaded
// machine does not fail a node over that is only slow.
// They start with a long one: a handshake that takes longer than the node
// timeout is dropped for good, and on a loaded machine one can.
const nodeTimeout = "2000"

// clusterArgs are the options of every node of a Cluster.
var clusterArgs = []string{
	"--cluster-enabled", "yes",
	"--cluster-config-file", "nodes.conf",
	"--cluster-node-timeout", "20000",
	// A replica whose master died while it was behind still takes over:
	// the tests want the failover, and count what it loses.
	"--cluster-replica-validity-factor", "0",
}

// StartCluster creates the cluster with redis-cli --cluster create and
// returns once every node sees every slot served and agrees on who serves
// it.
func StartCluster(t testing.TB) *Cluster { return StartClusterOf(t, 3, 1) }

// StartClusterOf is StartCluster with masters masters, each with replicas
// replicas (a benchmark wants no replication cost, say).
func StartClusterOf(t testing.TB, masters, replicas int) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	args := []string{"--cluster", "create"}
	for range masters * (1 + replicas) {
		n := Start(t, clusterArgs...)
		c.Nodes = append(c.Nodes, n)
		args = append(args, n.Addr())
	}
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	c.redisCLI(args...)
	c.WaitStable()
	c.shortTimeout(c.Nodes...)
	return c
}

// shortTimeout sets nodeTimeout on nodes (CONFIG SET is per node).
func (c *Cluster) shortTimeout(nodes ...*Server) {
	c.t.Helper()
	for _, n := range nodes {
		c.must(n.Addr(), "CONFIG", "SET", "cluster-node-timeout", nodeTimeout)
	}
}

// redisCLI runs redis-cli with args and fails the test if it fails or
// takes longer than setupLimit (it waits for the nodes to join for ever).
func (c *Cluster) redisCLI(args ...string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupLimit)
	defer cancel()
	out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("redistest: redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// URL is the redis+cluster:// URL naming every node started as a seed.
func (c *Cluster) URL() string {
	url := "redis+cluster://" + c.Nodes[0].Addr()
	for i, n := range c.Nodes[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		url += sep + "addr=" + n.Addr()
	}
	return url
}

// alive are the nodes whose process still runs.
func (c *Cluster) alive() []*Server {
	var out []*Server
	for _, n := range c.Nodes {
		if n.Running() {
			out = append(out, n)
		}
	}
	return out
}

// slotOwners reads CLUSTER SLOTS at addr: the master address of each of
// the 16384 slots ("" when unserved).
func slotOwners(addr string) ([]string, error) {
	v, err := Do(addr, "CLUSTER", "SLOTS")
	if err != nil {
		return nil, err
	}
	ranges, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("CLUSTER SLOTS reply is %T", v)
	}
	owners := make([]string, 16384)
	for _, r := range ranges {
		a, ok := r.([]any)
		if !ok || len(a) < 3 {
			return nil, fmt.Errorf("CLUSTER SLOTS entry %v", r)
		}
		from, _ := a[0].(int64)
		to, _ := a[1].(int64)
		m, _ := a[2].([]any)
		if len(m) < 2 {
			return nil, fmt.Errorf("CLUSTER SLOTS master %v", a[2])
		}
		owner := fmt.Sprintf("%v:%v", m[0], m[1])
		for s := from; s <= to && s < 16384; s++ {
			owners[s] = owner
		}
	}
	return owners, nil
}

// WaitStable waits until every running node reports cluster_state:ok and
// the same master for every slot, and each of those masters says it is
// one.
func (c *Cluster) WaitStable() {
	c.t.Helper()
	waitUntil(c.t, "the cluster to agree on every slot", func() bool {
		var first []string
		for _, n := range c.alive() {
			if info(n.Addr(), "cluster", "cluster_state") != "ok" {
				// CLUSTER INFO is not in INFO: ask for it.
				v, err := Do(n.Addr(), "CLUSTER", "INFO")
				if s, _ := v.(string); err != nil || !strings.Contains(s, "cluster_state:ok") {
					return false
				}
			}
			owners, err := slotOwners(n.Addr())
			if err != nil {
				return false
			}
			for _, o := range owners {
				if o == "" {
					return false
				}
			}
			if first == nil {
				first = owners
				continue
			}
			for i := range owners {
				if owners[i] != first[i] {
					return false
				}
			}
		}
		for _, m := range uniq(first) {
			if n := c.find(m); n == nil || !n.Running() || info(m, "replication", "role") != "master" {
				return false
			}
		}
		return true
	})
}

func uniq(xs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// MasterOf returns the node that serves key's slot now.
func (c *Cluster) MasterOf(key string) *Server {
	c.t.Helper()
	v, err := Do(c.alive()[0].Addr(), "CLUSTER", "KEYSLOT", key)
	if err != nil {
		c.t.Fatalf("redistest: CLUSTER KEYSLOT: %v", err)
	}
	slot, _ := v.(int64)
	owners, err := slotOwners(c.alive()[0].Addr())
	if err != nil {
		c.t.Fatalf("redistest: CLUSTER SLOTS: %v", err)
	}
	return c.node(owners[slot])
}

func (c *Cluster) find(addr string) *Server {
	for _, n := range c.Nodes {
		if n.Addr() == addr {
			return n
		}
	}
	return nil
}

func (c *Cluster) node(addr string) *Server {
	for _, n := range c.Nodes {
		if n.Addr() == addr {
			return n
		}
	}
	c.t.Fatalf("redistest: no node at %q", addr)
	return nil
}

// Masters are the nodes that serve slots now.
func (c *Cluster) Masters() []*Server {
	c.t.Helper()
	owners, err := slotOwners(c.alive()[0].Addr())
	if err != nil {
		c.t.Fatalf("redistest: CLUSTER SLOTS: %v", err)
	}
	var out []*Server
	for _, a := range uniq(owners) {
		out = append(out, c.node(a))
	}
	return out
}

// nodeID is the cluster id of the node at addr.
func nodeID(addr string) (string, error) {
	v, err := Do(addr, "CLUSTER", "MYID")
	if err != nil {
		return "", err
	}
	s, _ := v.(string)
	return s, nil
}

// AddMaster starts a node, joins it to the cluster as a master with no
// slots, and returns once every node knows it.
func (c *Cluster) AddMaster() *Server {
	c.t.Helper()
	n := Start(c.t, clusterArgs...)
	c.redisCLI("--cluster", "add-node", n.Addr(), c.alive()[0].Addr())
	c.Nodes = append(c.Nodes, n)
	defer c.shortTimeout(n)
	id, err := nodeID(n.Addr())
	if err != nil {
		c.t.Fatalf("redistest: CLUSTER MYID: %v", err)
	}
	waitUntil(c.t, "every node to know the new master, and it the cluster", func() bool {
		v, err := Do(n.Addr(), "CLUSTER", "INFO")
		if s, _ := v.(string); err != nil || !strings.Contains(s, "cluster_state:ok") {
			return false
		}
		for _, o := range c.alive() {
			v, err := Do(o.Addr(), "CLUSTER", "NODES")
			if s, _ := v.(string); err != nil || !strings.Contains(s, id) {
				return false
			}
		}
		return true
	})
	return n
}

// MoveSlot moves slot, and every key in it, from its master to dst, the
// way redis-cli --cluster reshard does: IMPORTING on dst, MIGRATING on the
// source, MIGRATE the keys in batches, then SETSLOT NODE on both and on
// every other master. Clients see ASK and then MOVED while it runs.
func (c *Cluster) MoveSlot(slot int, dst *Server) {
	c.t.Helper()
	owners, err := slotOwners(c.alive()[0].Addr())
	if err != nil {
		c.t.Fatalf("redistest: CLUSTER SLOTS: %v", err)
	}
	src := c.node(owners[slot])
	if src == dst {
		return
	}
	srcID, err1 := nodeID(src.Addr())
	dstID, err2 := nodeID(dst.Addr())
	if err1 != nil || err2 != nil {
		c.t.Fatalf("redistest: CLUSTER MYID: %v %v", err1, err2)
	}
	c.must(dst.Addr(), "CLUSTER", "SETSLOT", slot, "IMPORTING", srcID)
	c.must(src.Addr(), "CLUSTER", "SETSLOT", slot, "MIGRATING", dstID)
	for {
		v := c.must(src.Addr(), "CLUSTER", "GETKEYSINSLOT", slot, 100)
		keys, _ := v.([]any)
		if len(keys) == 0 {
			break
		}
		args := []any{"MIGRATE", "127.0.0.1", dst.Port(), "", 0, 5000, "KEYS"}
		args = append(args, keys...)
		c.must(src.Addr(), args...)
	}
	c.must(dst.Addr(), "CLUSTER", "SETSLOT", slot, "NODE", dstID)
	c.must(src.Addr(), "CLUSTER", "SETSLOT", slot, "NODE", dstID)
	for _, m := range c.Masters() {
		if m != src && m != dst {
			_, _ = Do(m.Addr(), "CLUSTER", "SETSLOT", slot, "NODE", dstID)
		}
	}
	c.WaitStable()
}

func (c *Cluster) must(addr string, args ...any) any {
	c.t.Helper()
	v, err := Do(addr, args...)
	if err != nil {
		c.t.Fatalf("redistest: %v at %s: %v", args, addr, err)
	}
	return v
}

// KillMaster SIGKILLs the master serving key and returns once its replica
// serves its slots and every other node agrees.
func (c *Cluster) KillMaster(key string) *Server {
	c.t.Helper()
	m := c.MasterOf(key)
	m.Kill()
	c.WaitStable()
	return m
}
