package redistest

import (
	"testing"
	"time"
)

func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	start := time.Now()
	s := StartSentinel(t)
	t.Logf("sentinel set-up ready in %v", time.Since(start))
	old := s.Master()
	if old != s.Servers[0] {
		t.Fatalf("master at start is %s, want %s", old.Addr(), s.Servers[0].Addr())
	}
	start = time.Now()
	s.Failover()
	if s.Master() != s.Servers[1] {
		t.Fatalf("after failover the master is %s, want the replica %s", s.Master().Addr(), s.Servers[1].Addr())
	}
	t.Logf("failover in %v", time.Since(start))
}

func TestClusterKillAndMove(t *testing.T) {
	t.Parallel()
	start := time.Now()
	c := StartCluster(t)
	t.Logf("cluster ready in %v", time.Since(start))
	if n := len(c.Masters()); n != 3 {
		t.Fatalf("%d masters, want 3", n)
	}
	if _, err := Do(c.MasterOf("k{a}").Addr(), "SET", "k{a}", "v"); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	added := c.AddMaster()
	v, _ := Do(c.Nodes[0].Addr(), "CLUSTER", "KEYSLOT", "k{a}")
	c.MoveSlot(int(v.(int64)), added)
	if c.MasterOf("k{a}") != added {
		t.Fatal("slot not moved")
	}
	if got, err := Do(added.Addr(), "GET", "k{a}"); err != nil || got != "v" {
		t.Fatalf("moved key: %v %v", got, err)
	}
	t.Logf("add master and move a slot in %v", time.Since(start))
	start = time.Now()
	killed := c.KillMaster("x{b}")
	if c.MasterOf("x{b}") == killed {
		t.Fatal("killed master still serves")
	}
	t.Logf("replica took over in %v", time.Since(start))
}
