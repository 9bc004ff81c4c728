package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/noticed/noticed/internal/auth"
	"github.com/noticed/noticed/internal/redistest"
)

// rawStream is one GET /notice held open on one instance; closing it is
// cancelling its request.
type rawStream struct {
	user   string
	inst   int
	cancel context.CancelFunc
	ended  chan struct{}
}

// TestPresence: users open and close streams at random on three
// instances sharing Redis, and one instance is SIGKILLed mid-run. Once its
// lease has run out, every user's count across the instances matches the
// streams actually open, and the presence stream holds, for each user,
// online and offline in turn, one per transition, ending in the state
// the user is in.
func TestPresence(t *testing.T) {
	const users, steps, lease = 30, 600, time.Second
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { rdb.Close() })
	secret := "e2e-secret-presence-0123456789abcdef"
	var inst [3]*instance
	for i := range inst {
		inst[i] = newInstance(t, string(rune('A'+i)), "-redis", srv.URL(), "-jwt-secret", secret,
			"-presence-lease", lease.String(), "-heartbeat", "200ms")
		inst[i].start()
	}
	sign := func(sub string, scopes ...string) string {
		tok, err := auth.Sign([]byte(secret), sub, time.Hour, scopes, "", "")
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	t.Cleanup(client.CloseIdleConnections)
	open := func(user string, i int) (*rawStream, error) {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+inst[i].addr+"/notice?token="+sign(user), nil)
		resp, err := client.Do(req)
		if err != nil {
			cancel()
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			cancel()
			resp.Body.Close()
			return nil, fmt.Errorf("GET /notice on %s: %d", inst[i].name, resp.StatusCode)
		}
		s := &rawStream{user: user, inst: i, cancel: cancel, ended: make(chan struct{})}
		go func() {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			close(s.ended)
		}()
		return s, nil
	}

	names := make([]string, users)
	for i := range names {
		names[i] = fmt.Sprintf("pres-%d", i)
	}
	var live []*rawStream
	rng := rand.New(rand.NewPCG(1, 2))
	killed := -1
	for step := range steps {
		if step == steps/2 {
			killed = 2
			inst[killed].kill()
			kept := live[:0]
			for _, s := range live {
				if s.inst != killed {
					kept = append(kept, s)
				} else {
					s.cancel()
				}
			}
			live = kept
		}
		if len(live) > 0 && rng.IntN(2) == 0 {
			j := rng.IntN(len(live))
			live[j].cancel()
			<-live[j].ended
			live = append(live[:j], live[j+1:]...)
			continue
		}
		i := rng.IntN(3)
		for i == killed {
			i = rng.IntN(3)
		}
		s, err := open(names[rng.IntN(users)], i)
		if err != nil {
			t.Fatal(err)
		}
		live = append(live, s)
	}
	want := map[string]int{}
	for _, s := range live {
		want[s.user]++
	}

	// Counts, from a survivor, once the dead instance's lease is over.
	pub := sign("e2e-producer", "publish")
	counts := func() (map[string]int, error) {
		q := ""
		for _, u := range names {
			q += "&users=" + u
		}
		req, _ := http.NewRequest(http.MethodGet, "http://"+inst[0].addr+"/presence?"+q[1:], nil)
		req.Header.Set("Authorization", "Bearer "+pub)
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var out struct {
			Users map[string]struct{ Streams int }
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return nil, err
		}
		got := map[string]int{}
		for u, p := range out.Users {
			if p.Streams > 0 {
				got[u] = p.Streams
			}
		}
		return got, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got map[string]int
	err := poll(ctx, func() bool {
		var err error
		got, err = counts()
		return err == nil && fmt.Sprint(got) == fmt.Sprint(want)
	})
	if err != nil {
		t.Fatalf("presence counts %v, want the open streams %v", got, want)
	}

	// The transitions: online and offline in turn, ending as the user is.
	var entries []redis.XMessage
	err = poll(ctx, func() bool {
		entries, _ = rdb.XRange(ctx, "noticed:presence", "-", "+").Result()
		last := map[string]string{}
		for _, e := range entries {
			last[e.Values["user"].(string)] = e.Values["state"].(string)
		}
		for _, u := range names {
			if (last[u] == "online") != (want[u] > 0) {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatalf("the presence stream does not end as the users are")
	}
	state := map[string]string{}
	onlines, offlines := 0, 0
	for _, e := range entries {
		u, st := e.Values["user"].(string), e.Values["state"].(string)
		prev := state[u]
		if prev == "" {
			prev = "offline"
		}
		if st == prev {
			t.Errorf("%s: %s twice in a row (entry %s)", u, st, e.ID)
		}
		state[u] = st
		if st == "online" {
			onlines++
		} else {
			offlines++
		}
	}
	online := 0
	for _, u := range names {
		if want[u] > 0 {
			online++
		}
	}
	if onlines-offlines != online {
		t.Errorf("%d online and %d offline entries, but %d users online", onlines, offlines, online)
	}
	fmt.Printf("e2e presence: steps=%d users=%d killed=%s open_streams=%d online_users=%d online_entries=%d offline_entries=%d\n",
		steps, users, inst[killed].name, len(live), online, onlines, offlines)
	for _, s := range live {
		s.cancel()
	}
}
