package redisstore

import (
	"errors"
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	t.Parallel()
	good := []struct {
		url  string
		kind topologyKind
		want string // the addresses, comma separated
	}{
		{"redis://localhost:6379/2", single, "localhost:6379"},
		{"rediss://u:p@h:6380", single, "h:6380"},
		{"redis+sentinel://s1:26379/1?master_name=m&addr=s2:26379&addr=s3:26379", sentinel, "s1:26379,s2:26379,s3:26379"},
		{"rediss+sentinel://u:p@s1:26379?master_name=m", sentinel, "s1:26379"},
		{"redis+cluster://u:p@n1:7000?addr=n2:7001&addr=n3:7002", cluster, "n1:7000,n2:7001,n3:7002"},
		{"REDIS+CLUSTER://n1:7000/0", cluster, "n1:7000"},
	}
	for _, g := range good {
		p, err := parseURL(g.url)
		if err != nil {
			t.Errorf("%s: %v", g.url, err)
			continue
		}
		var addrs []string
		switch p.kind {
		case single:
			addrs = []string{p.single.Addr}
		case sentinel:
			addrs = p.failover.SentinelAddrs
			if p.failover.MasterName != "m" {
				t.Errorf("%s: master %q", g.url, p.failover.MasterName)
			}
		case cluster:
			addrs = p.cluster.Addrs
		}
		if p.kind != g.kind || strings.Join(addrs, ",") != g.want {
			t.Errorf("%s: got %v %v, want %v %s", g.url, p.kind, addrs, g.kind, g.want)
		}
	}
	bad := []struct{ url, names string }{
		{"localhost:6379", "no scheme"},
		{"http://secret@h", `scheme "http"`},
		{"redis+sharded://h", `"+sharded"`},
		{"redis+sentinel://h:26379", "master_name"},
		{"redis+sentinel://h:26379?master_name=m&bogus=1", "bogus"},
		{"redis+sentinel://h:26379/x?master_name=m", "database"},
		{"redis+cluster://h:7000/3", "database 0 only"},
		{"redis+cluster://h:7000?addr=nohost", "nohost"},
		{"redis://h:6379/notadb", "notadb"},
		{"redis://user:s3cret@h:bad port", ""},
	}
	for _, b := range bad {
		_, err := parseURL(b.url)
		if !errors.Is(err, ErrBadURL) {
			t.Errorf("%s: %v; want ErrBadURL", b.url, err)
			continue
		}
		if !strings.Contains(err.Error(), b.names) {
			t.Errorf("%s: %q does not name %q", b.url, err, b.names)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: error repeats the password: %q", b.url, err)
		}
	}
}
