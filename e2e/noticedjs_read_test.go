package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// readPage is modulePage that also records noticed.js's read events.
var readPage = strings.Replace(modulePage, `src.onmessage = rec;`,
	`src.onmessage = rec; window.reads = []; src.addEventListener("read", (e) => window.reads.push({id: e.lastEventId, state: JSON.parse(e.data)}));`, 1)

// TestBrowserReadState: noticed.js passes the read state on, in shared mode
// (the tab holding the stream, and a tab that joins it after its first
// block went out) and in native mode: each tab starts with the state, and
// a mark made meanwhile reaches every tab.
func TestBrowserReadState(t *testing.T) {
	b := startBrowser(t, readPage)
	c := newCluster(t, "-cors-origins", b.pages)
	const user = "reads-1"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.publish(ctx, []string{user}, 0, 3); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	first := c.sent[user][0].id
	c.mu.Unlock()
	mark := func(body string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.url+"/notice/read", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+c.token(user))
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st struct{ Unread int }
		if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&st) != nil {
			t.Fatalf("POST /notice/read %s: %d", body, resp.StatusCode)
		}
	}
	mark(`{"upTo":"` + first + `"}`)

	shared := url.Values{"server": {c.url}, "token": {c.token(user)}}
	native := url.Values{"server": {c.url}, "token": {c.token(user)}, "shared": {"0"}}
	leader, _ := b.tab(shared)
	waitJS(t, leader, "the leading tab's first read state", `window.reads && window.reads.length >= 1 && window.reads[0].state.unread === 2`)
	joiner, _ := b.tab(shared)
	waitJS(t, joiner, "a joining tab's read state, from the leader", `window.reads && window.src.leading === false && window.reads.length >= 1 && window.reads[0].state.unread === 2`)
	alone, _ := b.tab(native)
	waitJS(t, alone, "a native tab's first read state", `window.reads && window.reads.length >= 1 && window.reads[0].state.unread === 2 && window.reads[0].id === ""`)

	mark(`{"ids":["` + c.sent[user][2].id + `"]}`)
	for name, tab := range map[string]context.Context{"leader": leader, "joiner": joiner, "native": alone} {
		waitJS(t, tab, "the mark on the "+name, `window.reads.length >= 2 && window.reads[window.reads.length-1].state.unread === 1 && window.reads[window.reads.length-1].id !== ""`)
	}
}
