package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRuns runs the tool as a user would, small, against a noticed it
// builds and starts itself (and Nchan, where installed), each with a
// redis-server of its own, and checks what it reports.
func TestRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server and noticed")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed")
	}
	// Built once for every run here (each would build it otherwise).
	bin := filepath.Join(t.TempDir(), "noticed")
	build := exec.Command("go", "build", "-o", bin, "./cmd/noticed")
	build.Dir = moduleRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/noticed: %v\n%s", err, out)
	}
	small := []string{"-noticed-bin", bin, "-streams", "40", "-per-user", "2", "-rate", "400", "-warmup", "200ms", "-settle", "200ms", "-drain", "5s"}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"load via XADD", []string{"-mode", "load", "-target", "noticed", "-duration", "1s"},
			[]string{"## noticed, load: 40 streams (20 users × 2), 400 events/s via XADD for 1s", "lost 0, duplicated 0, misrouted 0", "p99.9", "KiB per stream", "result: ok"}},
		{"load via POST", []string{"-mode", "load", "-target", "noticed", "-duration", "1s", "-publish", "post"},
			[]string{"via POST", "lost 0, duplicated 0, misrouted 0", "result: ok"}},
		{"load via POST in batches", []string{"-mode", "load", "-target", "noticed", "-duration", "1s", "-publish", "post", "-post-batch", "25"},
			[]string{"via POST (batches of 25)", "lost 0, duplicated 0, misrouted 0", "result: ok"}},
		{"open only", []string{"-mode", "load", "-target", "noticed", "-rate", "0"},
			[]string{"opened 40 streams in", "KiB per stream", "result: ok"}},
		{"storm", []string{"-mode", "storm", "-target", "noticed", "-behind", "3"},
			[]string{"40 of 40 streams back", "all caught up 3 behind", "lost 0, duplicated 0, misrouted 0", "result: ok"}},
		{"soak", []string{"-mode", "soak", "-target", "noticed", "-duration", "2s", "-sample", "200ms", "-churn", "20"},
			[]string{"streams closed and reopened by churn", "| before |", "goroutines flat", "result: ok"}},
	}
	if haveNchan() {
		tests = append(tests, struct {
			name string
			args []string
			want []string
		}{"noticed and nchan", []string{"-mode", "load", "-target", "noticed,nchan", "-duration", "1s"},
			[]string{"## nchan, load", "via POST", "## noticed ÷ Nchan", "result: ok"}})
	}
	// Centrifugo where installed (scripts/test.sh installs it).
	centrifugo, err := findCentrifugo(context.Background(), "")
	if err == nil {
		tests = append(tests, struct {
			name string
			args []string
			want []string
		}{"noticed and centrifugo", []string{"-mode", "load", "-target", "noticed,centrifugo", "-duration", "1s", "-centrifugo-bin", centrifugo},
			[]string{"## centrifugo, load", "via POST", "lost 0, duplicated 0, misrouted 0", "## noticed ÷ Centrifugo", "result: ok"}})
	} else {
		t.Logf("no Centrifugo run: %v", err)
	}
	csv := filepath.Join(t.TempDir(), "runs.csv")
	// A header, one line per run: the two-target cases are two runs. (Only
	// the cases that ran: -run may pick some.)
	want := 1
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want++
			if strings.Contains(strings.Join(tc.args, " "), ",") {
				want++
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			var stdout, stderr bytes.Buffer
			args := append(append(append([]string{}, small...), tc.args...), "-csv", csv)
			if code := run(ctx, args, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d\n%s\n%s", code, stdout.String(), stderr.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, stdout.String())
				}
			}
		})
	}
	b, err := os.ReadFile(csv)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != want {
		t.Errorf("CSV has %d lines, want a header and one per run:\n%s", len(lines), b)
	}
	if !strings.HasPrefix(lines[0], "time,mode,target,") {
		t.Errorf("CSV header %q", lines[0])
	}
}

func haveNchan() bool {
	_, err := os.Stat("/usr/lib/nginx/modules/ngx_nchan_module.so")
	if err != nil {
		return false
	}
	_, err = exec.LookPath("nginx")
	if err != nil {
		_, err = os.Stat("/usr/sbin/nginx")
	}
	return err == nil
}

func TestBadFlagsExit2(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"-mode", "load", "-streams", "x"}, &stdout, &stderr); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), "not a positive count") {
		t.Errorf("stderr %q", stderr.String())
	}
}
