package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// usage is what an instance's /metrics says of its resources at one
// moment.
type usage struct {
	goroutines int
	heap       float64 // bytes of heap in use
	rss        float64 // resident set size, bytes
	open       int     // streams open
	followed   int     // users followed
	slow       int     // streams closed as slow, since start
}

func (u usage) String() string {
	return fmt.Sprintf("goroutines %d, heap %s, rss %s, streams %d, followed %d", u.goroutines, mib(u.heap), mib(u.rss), u.open, u.followed)
}

func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

// usage reads the instance's /metrics once.
func (in *instance) usage() (usage, error) {
	m, err := in.scrape()
	if err != nil {
		return usage{}, err
	}
	get := func(name string) float64 {
		v, ok := m[name]
		if !ok && err == nil {
			err = fmt.Errorf("noticed %s: no %s in /metrics", in.name, name)
		}
		return v
	}
	u := usage{
		goroutines: int(get("go_goroutines")),
		heap:       get("go_memstats_heap_inuse_bytes"),
		rss:        get("process_resident_memory_bytes"),
		open:       int(get("noticed_streams_open")),
		followed:   int(get("noticed_followed_users")),
		slow:       int(get("noticed_slow_streams_closed_total")),
	}
	return u, err
}

// mustUsage is usage, failing t on error.
func (in *instance) mustUsage(t testing.TB) usage {
	t.Helper()
	u, err := in.usage()
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// scrape reads every unlabelled series of the instance's /metrics, on a
// connection of its own that it closes, so that scraping leaves nothing
// behind on the instance (no kept-alive connection, no goroutine).
func (in *instance) scrape() (map[string]float64, error) {
	// Generous: the machine may be busy with more than this test.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+in.addr+"/metrics", nil)
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || strings.Contains(line, "{") {
			continue
		}
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil {
			out[name] = v
		}
	}
	return out, sc.Err()
}

// readyz is the status /readyz answers on the instance (0: no answer).
func (in *instance) readyz() int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+in.addr+"/readyz", nil)
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitReadyz waits until every instance's /readyz answers status.
func (c *cluster) waitReadyz(ctx context.Context, status int) error {
	for _, in := range c.inst {
		if err := poll(ctx, func() bool { return in.readyz() == status }); err != nil {
			return fmt.Errorf("noticed %s: /readyz never answered %d: %w", in.name, status, err)
		}
	}
	return nil
}

// subscriptions counts the keyspace channels of users' streams that some
// client of rdb's server is subscribed to, and the pattern subscriptions
// (noticed uses none).
func subscriptions(ctx context.Context, rdb redis.UniversalClient, userPattern string) (channels, patterns int, err error) {
	chans, err := rdb.PubSubChannels(ctx, "__keyspace@*__:"+streamKey(userPattern)).Result()
	if err != nil {
		return 0, 0, err
	}
	numpat, err := rdb.PubSubNumPat(ctx).Result()
	return len(chans), int(numpat), err
}
