package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/sse"
)

// publishID publishes one event and returns its id, or an error once the
// server is gone.
func publishID(base, tok, user, data string) (string, error) {
	req, _ := http.NewRequest(http.MethodPost, base+"/notice", strings.NewReader(url.Values{"user": {user}, "data": {data}}.Encode()))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		return "", errors.Join(err, errors.New(resp.Status))
	}
	return out.ID, nil
}

// resume opens user's stream from lastID, as a reconnecting browser does.
func resume(t *testing.T, base, tok, lastID string) *sse.Reader {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/notice?token="+url.QueryEscape(tok), nil)
	req.Header.Set("Last-Event-ID", lastID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET /notice from %s: %d", lastID, resp.StatusCode)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return sse.NewReader(resp.Body)
}

// readUntil reads events until one whose data is marker, and returns the
// ones before it; a gap event fails the test.
func readUntil(t *testing.T, r *sse.Reader, marker string) []sse.Event {
	t.Helper()
	var got []sse.Event
	for {
		ev, err := r.Next()
		if err != nil {
			t.Fatalf("stream ended before %q: %v (had %d events)", marker, err, len(got))
		}
		if ev.Type == "gap" {
			t.Fatalf("gap event: %q", ev.Data)
		}
		if !ev.HasID || ev.Data == "" {
			continue // the id-only block of a fresh stream
		}
		if ev.Data == marker {
			return got
		}
		got = append(got, ev)
	}
}

func dataArgs(path string) []string {
	return []string{"-addr", "127.0.0.1:0", "-data", path, "-stream-maxlen", "100000"}
}

// TestDataSurvivesSIGKILL: noticed is killed with SIGKILL while a producer
// publishes, and started again on the same file. A client that left
// before the kill reconnects with its Last-Event-ID and gets exactly what
// it missed: every answered publish, nothing twice, no gap, nothing the
// file does not hold.
func TestDataSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "noticed.db")
	env := []string{"NOTICED_JWT_SECRET=" + limitSecret}
	sub, pub := limitToken(t, "kill-user"), limitToken(t, "producer", "publish")

	p := start(t, env, dataArgs(path)...)
	resp, r := openStream(t, p.url, sub)
	for i := range 10 {
		if _, err := publishID(p.url, pub, "kill-user", "before-"+string(rune('a'+i))); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		readUntilData(t, r)
	}
	lastID := r.LastID()
	resp.Body.Close() // the browser is away from here on

	// A producer publishes without pause; noticed is killed once 40 more
	// publishes were answered, while the next ones are in flight.
	var mu sync.Mutex
	var acked []string
	answered := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			id, err := publishID(p.url, pub, "kill-user", "during")
			if err != nil {
				return
			}
			mu.Lock()
			acked = append(acked, id)
			if len(acked) == 40 {
				close(answered)
			}
			mu.Unlock()
		}
	}()
	<-answered
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.exited <- <-p.exited // start's cleanup waits for it too
	<-stopped

	p = start(t, env, dataArgs(path)...)
	r = resume(t, p.url, sub, lastID)
	if _, err := publishID(p.url, pub, "kill-user", "marker"); err != nil {
		t.Fatal(err)
	}
	got := readUntil(t, r, "marker")

	mu.Lock()
	defer mu.Unlock()
	gotIDs := map[string]bool{}
	prev := lastID
	for _, ev := range got {
		if !idLess(t, prev, ev.ID) {
			t.Fatalf("event %s after %s: out of order or repeated", ev.ID, prev)
		}
		prev = ev.ID
		gotIDs[ev.ID] = true
	}
	for _, id := range acked {
		if !gotIDs[id] {
			t.Errorf("answered publish %s missing after the restart", id)
		}
	}
	// At most the one publish in flight at the kill may have been written
	// without an answer.
	if extra := len(got) - len(acked); extra < 0 || extra > 1 {
		t.Errorf("got %d events for %d answered publishes", len(got), len(acked))
	}

	// What the client got is what the file holds: a replay of everything
	// matches the first stream's ten and the reconnected one's events.
	all := readUntil(t, resume(t, p.url, sub, "0"), "marker")
	if len(all) != 10+len(got) || all[9].ID != lastID || (len(got) > 0 && all[10].ID != got[0].ID) {
		t.Errorf("the file holds %d events, the client got 10 + %d", len(all), len(got))
	}
	t.Logf("%d published before SIGKILL and answered, %d replayed after the restart", len(acked), len(got))
}

// readUntilData reads up to the next event with data.
func readUntilData(t *testing.T, r *sse.Reader) sse.Event {
	t.Helper()
	for {
		ev, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.Data != "" {
			return ev
		}
	}
}

func idLess(t *testing.T, a, b string) bool {
	t.Helper()
	ia, err1 := notice.ParseID(a)
	ib, err2 := notice.ParseID(b)
	if err1 != nil || err2 != nil {
		t.Fatalf("ids %q, %q: %v %v", a, b, err1, err2)
	}
	return ia.Less(ib)
}

func TestSecondInstanceOnTheDataFileIsRefused(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "noticed.db")
	env := []string{"NOTICED_JWT_SECRET=" + limitSecret}
	first := start(t, env, dataArgs(path)...)

	cmd := exec.Command(binary, dataArgs(path)...)
	cmd.Env = append(cmd.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "in use by another process") {
		t.Fatalf("second instance: %v\n%s\nwant exit 1 saying the file is in use", err, out)
	}
	// The first goes on serving from the file.
	if _, err := publishID(first.url, limitToken(t, "p", "publish"), "u", "still here"); err != nil {
		t.Fatalf("the first instance after the refusal: %v", err)
	}
	if first.stdout.saw(regexp.MustCompile(`"level":"ERROR"`)) {
		t.Error("the first instance logged an error")
	}
}

func TestDataAndRedisAreExclusive(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(binary, "-data", filepath.Join(t.TempDir(), "x.db"), "-redis", "redis://127.0.0.1:1").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "-data and -redis") {
		t.Fatalf("-data with -redis: %v %q; want exit 2 naming both", err, out)
	}
}
