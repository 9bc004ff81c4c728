package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/noticed/noticed/internal/sse"
)

// TestProducerExamples runs each producer of examples/producers (Python,
// Node, Go, shell) against Redis and noticed behind nginx: each XADDs a
// typed event with JSON data to one user (MAXLEN ~ 1000) and POSTs a
// message to two users at once; the users' streams must get exactly that.
func TestProducerExamples(t *testing.T) {
	c := newCluster(t)
	examples := filepath.Join("..", "examples", "producers")
	// The first python3 with redis-py: the one on PATH (a virtualenv's,
	// pyenv's), else Debian's, where apt's python3-redis goes.
	python := ""
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(p, "-c", "import redis").Run() == nil {
			python = p
			break
		}
	}
	for _, ex := range []struct {
		name string
		dir  string
		cmd  []string
		// ready says why the example cannot run, or "".
		ready func() string
	}{
		{"python", "python", []string{python, "publish.py"}, func() string {
			if python == "" {
				return "python3 with redis-py not found: apt-get install python3-redis (scripts/test.sh does)"
			}
			return ""
		}},
		{"node", "node", []string{"node", "publish.mjs"}, func() string {
			if _, err := exec.LookPath("node"); err != nil {
				return "node not found: apt-get install nodejs npm (scripts/test.sh does)"
			}
			if _, err := os.Stat(filepath.Join(examples, "node", "node_modules", "redis")); err != nil {
				return "the redis package is not installed: cd examples/producers/node && npm ci (scripts/test.sh does)"
			}
			return ""
		}},
		{"go", "go", []string{"go", "run", "."}, func() string { return "" }},
		{"shell", "shell", []string{"sh", "publish.sh"}, func() string {
			for _, p := range []string{"redis-cli", "curl"} {
				if _, err := exec.LookPath(p); err != nil {
					return p + " not found: apt-get install redis-tools curl"
				}
			}
			return ""
		}},
	} {
		t.Run(ex.name, func(t *testing.T) {
			if why := ex.ready(); why != "" {
				if os.Getenv("NOTICED_ALLOW_SKIP") == "1" {
					t.Skip(why)
				}
				t.Fatal(why)
			}
			one, two := "producer-"+ex.name, "producer-"+ex.name+"-2"
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			streams, err := c.subscribeAll(ctx, []string{one, two}, 1)
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.CommandContext(ctx, ex.cmd[0], ex.cmd[1:]...)
			cmd.Dir = filepath.Join(examples, ex.dir)
			cmd.Env = append(os.Environ(),
				"REDIS_URL="+c.redis.URL(), "NOTICED_URL="+c.url, "NOTICED_TOKEN="+c.pub,
				"NOTICED_USER="+one, "NOTICED_USERS="+one+" "+two)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", strings.Join(ex.cmd, " "), err, out)
			}
			t.Logf("%s:\n%s", strings.Join(ex.cmd, " "), out)

			want := map[*eventSource][]sse.Event{
				streams[0]: {{Type: "order.shipped", Data: `{"order":1234}`}, {Type: "message", Data: "maintenance at noon"}},
				streams[1]: {{Type: "message", Data: "maintenance at noon"}},
			}
			for es, w := range want {
				err := es.wait(ctx, "the example's events", func(es *eventSource) bool { return len(es.events) >= len(w) })
				if err != nil {
					t.Fatal(err)
				}
				got, _, _ := es.snapshot()
				if len(got) != len(w) {
					t.Fatalf("stream of %s got %d events; want %d: %+v", es.user, len(got), len(w), got)
				}
				for i := range w {
					typ := got[i].Type
					if typ == "" {
						typ = "message"
					}
					if typ != w[i].Type || got[i].Data != w[i].Data || got[i].ID == "" {
						t.Errorf("stream of %s, event %d: %+v; want type %s data %s", es.user, i, got[i], w[i].Type, w[i].Data)
					}
				}
			}
			n, err := c.rdb.XLen(ctx, streamKey(one)).Result()
			if err != nil || n != 2 {
				t.Errorf("Redis holds %d entries for %s (%v); want 2", n, one, err)
			}
		})
	}
}
