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

// FuzzParseURL: any -redis value gives a parse or ErrBadURL, never a
// panic, and an error never repeats the password the URL carried.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"redis://h:6379/0", "redis+sentinel://u:pw@h:26379/2?master_name=m&addr=h2:1", "rediss+cluster://h:7000?addr=x:1&addr=y:2", "redis+cluster://h/0", "redis+x://", "://", "redis://u:pw@[::1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := parseURL(raw)
		if err != nil {
			if !errors.Is(err, ErrBadURL) {
				t.Fatalf("%q: %v does not wrap ErrBadURL", raw, err)
			}
			if i := strings.Index(raw, "://"); i >= 0 {
				if at := strings.LastIndex(raw, "@"); at > i {
					if _, pw, ok := strings.Cut(raw[i+3:at], ":"); ok && len(pw) >= 8 && strings.Contains(err.Error(), pw) {
						t.Fatalf("%q: error %q repeats the password", raw, err)
					}
				}
			}
			return
		}
		if p.kind == sentinel && p.failover.MasterName == "" {
			t.Fatalf("%q: a sentinel URL without master_name was taken", raw)
		}
	})
}
