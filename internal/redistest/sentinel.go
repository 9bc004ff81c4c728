package redistest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// MasterName is the name the sentinels of StartSentinel monitor.
const MasterName = "noticed"

// Sentinel is one master, one replica and three sentinels watching them,
// each its own process on a free port, stopped when the test ends.
type Sentinel struct {
	t         testing.TB
	Servers   []*Server // the first is the master at start
	Sentinels []*Server
}

// StartSentinel starts the set-up and returns once the replica is in sync
// and every sentinel knows the replica and the other two sentinels, so that
// a failover can be asked for at once. Failure detection is fast (down
// after 1.5s) so that fault tests stay short, yet a master that is only slow on
// a loaded machine is not failed over.
func StartSentinel(t testing.TB) *Sentinel {
	t.Helper()
	master := Start(t)
	replica := Start(t, "--replicaof", "127.0.0.1", strconv.Itoa(master.Port()))
	s := &Sentinel{t: t, Servers: []*Server{master, replica}}
	for i := range 3 {
		dir := t.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		text := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 2\n"+
			"sentinel down-after-milliseconds %[1]s 1500\n"+
			"sentinel failover-timeout %[1]s 3000\n"+
			"sentinel parallel-syncs %[1]s 1\n", MasterName, master.Port())
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatalf("redistest: sentinel %d: %v", i, err)
		}
		// --save and --appendonly mean nothing to a sentinel but are
		// accepted; the configuration file must come first.
		s.Sentinels = append(s.Sentinels, startIn(t, dir, []string{conf, "--sentinel"}))
	}
	waitUntil(t, "the replica to be in sync", func() bool {
		return info(replica.Addr(), "replication", "master_link_status") == "up"
	})
	for _, sn := range s.Sentinels {
		waitUntil(t, "every sentinel to know the replica and the other sentinels", func() bool {
			return count(sn.Addr(), "SENTINEL", "REPLICAS", MasterName) == 1 &&
				count(sn.Addr(), "SENTINEL", "SENTINELS", MasterName) == 2
		})
	}
	return s
}

// count is the length of an array reply, or -1.
func count(addr string, args ...any) int {
	v, err := Do(addr, args...)
	if err != nil {
		return -1
	}
	a, ok := v.([]any)
	if !ok {
		return -1
	}
	return len(a)
}

// URL is the redis+sentinel:// URL naming every sentinel.
func (s *Sentinel) URL() string {
	var b strings.Builder
	fmt.Fprintf(&b, "redis+sentinel://%s/0?master_name=%s", s.Sentinels[0].Addr(), MasterName)
	for _, sn := range s.Sentinels[1:] {
		b.WriteString("&addr=" + sn.Addr())
	}
	return b.String()
}

// MasterAddr is the master's address as the first sentinel that answers
// reports it, or "" when none does.
func (s *Sentinel) MasterAddr() string {
	for _, sn := range s.Sentinels {
		v, err := Do(sn.Addr(), "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MasterName)
		if a, ok := v.([]any); err == nil && ok && len(a) == 2 {
			return fmt.Sprintf("%v:%v", a[0], a[1])
		}
	}
	return ""
}

// Master is the server the sentinels call master now.
func (s *Sentinel) Master() *Server {
	addr := s.MasterAddr()
	for _, srv := range s.Servers {
		if srv.Addr() == addr {
			return srv
		}
	}
	s.t.Fatalf("redistest: no server is the master the sentinels name (%q)", addr)
	return nil
}

// Failover asks a sentinel for a failover (SENTINEL FAILOVER) and returns
// once another server is master, says so itself, and every sentinel
// agrees.
func (s *Sentinel) Failover() {
	s.t.Helper()
	old := s.MasterAddr()
	if _, err := Do(s.Sentinels[0].Addr(), "SENTINEL", "FAILOVER", MasterName); err != nil {
		s.t.Fatalf("redistest: SENTINEL FAILOVER: %v", err)
	}
	s.WaitNewMaster(old)
}

// Rejoin starts a killed server again as a replica of the master now, as
// the sentinels would make it after a while.
func (s *Sentinel) Rejoin(srv *Server) {
	s.t.Helper()
	host, port, _ := strings.Cut(s.MasterAddr(), ":")
	srv.RestartWith("--replicaof", host, port)
	waitUntil(s.t, "the rejoined server to be in sync", func() bool {
		return info(srv.Addr(), "replication", "master_link_status") == "up"
	})
}

// WaitNewMaster waits until every sentinel names a master other than old
// and that server reports the master role.
func (s *Sentinel) WaitNewMaster(old string) {
	s.t.Helper()
	waitUntil(s.t, "a new master", func() bool {
		var addr string
		for _, sn := range s.Sentinels {
			v, err := Do(sn.Addr(), "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MasterName)
			a, ok := v.([]any)
			if err != nil || !ok || len(a) != 2 {
				return false
			}
			got := fmt.Sprintf("%v:%v", a[0], a[1])
			if got == old || (addr != "" && got != addr) {
				return false
			}
			addr = got
		}
		return info(addr, "replication", "role") == "master"
	})
}
