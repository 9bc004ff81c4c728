package e2e

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/go-chi/chi/v5"
	"github.com/redis/go-redis/v9"

	"github.com/noticed/noticed/internal/demo"
)

var updateDemoPNG = flag.Bool("update-demo-png", false, "write the browser test's screenshot of the demo page to docs/demo.png")

// esPage is a page of another origin than noticed's whose native
// EventSource connects through nginx: one stream with the token in the
// query string, one with the cookie and withCredentials. It records what
// the browser dispatches.
const esPage = `<!doctype html>
<meta charset="utf-8">
<title>EventSource through nginx</title>
<script>
const p = new URLSearchParams(location.search);
const server = p.get("server");
window.got = []; window.opens = 0; window.errors = 0;
window.es = new EventSource(server + "/notice?token=" + encodeURIComponent(p.get("token")));
const rec = (list) => (e) => list.push({type: e.type, id: e.lastEventId, data: e.data, origin: e.origin});
es.onopen = () => { window.opens++; };
es.onerror = () => { window.errors++; };
es.onmessage = rec(window.got);
for (const t of ["order.shipped", "invoice.paid", "gap"]) es.addEventListener(t, rec(window.got));

// The cookie is host-wide (ports do not count), so nginx's origin gets it.
document.cookie = "noticed_token=" + p.get("cookie") + "; path=/; SameSite=Lax";
window.got2 = []; window.opens2 = 0;
window.es2 = new EventSource(server + "/notice", {withCredentials: true});
es2.onopen = () => { window.opens2++; };
es2.onmessage = rec(window.got2);
</script>
`

// browserEvent is an event as the page's listeners saw it.
type browserEvent struct {
	Type   string `json:"type"`
	ID     string `json:"id"`
	Data   string `json:"data"`
	Origin string `json:"origin"`
}

// TestBrowser: Debian's chromium, headless, opens a page from another
// origin whose EventSource connects through nginx to noticed (so
// -cors-origins must work, with a cookie token and withCredentials too).
// Events arrive in order with their lastEventId; when the instance
// serving the page dies, the browser reconnects by itself and gets what
// was published meanwhile, once. Then it shows the demo page and takes
// its screenshot.
func TestBrowser(t *testing.T) {
	chromium := need(t, "chromium", "chromium", "/usr/bin/chromium")

	r := chi.NewRouter()
	demo.Mount(r)
	r.Get("/es.html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(esPage))
	})
	pages := httptest.NewServer(r)
	defer pages.Close()
	c := newCluster(t, "-cors-origins", pages.URL)

	profile := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, chromiumOptions(chromium, profile,
		chromedp.Flag("hide-scrollbars", true),
		chromedp.WindowSize(1100, 860))...,
	)
	defer cancelAlloc()
	ctx, cancelTab := chromedp.NewContext(ctx)
	defer cancelTab()

	const user, cookieUser = "web-1", "web-2"
	page := pages.URL + "/es.html?" + url.Values{
		"server": {c.url}, "token": {c.token(user)}, "cookie": {c.token(cookieUser)},
	}.Encode()
	if err := chromedp.Do(ctx, chromedp.Navigate(page)); err != nil {
		t.Fatalf("open the page (is chromium working?): %v", err)
	}
	waitJS(t, ctx, "both streams open", `window.opens >= 1 && window.opens2 >= 1`)

	for seq := range 3 {
		publishOne(t, c, user, seq)
	}
	publishOne(t, c, cookieUser, 0)
	waitJS(t, ctx, "3 events and the cookie stream's one", `window.got.length >= 3 && window.got2.length >= 1`)
	checkBrowserEvents(t, c, ctx, "window.got", user)
	checkBrowserEvents(t, c, ctx, "window.got2", cookieUser)

	// Leave one stream, find its instance and kill it.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`window.es2.close()`)); err != nil {
		t.Fatal(err)
	}
	pollCtx, cancelPoll := context.WithTimeout(ctx, 10*time.Second)
	defer cancelPoll()
	if err := poll(pollCtx, func() bool { return c.inst[0].streamsOpen(t)+c.inst[1].streamsOpen(t) == 1 }); err != nil {
		t.Fatal("the closed stream is still open on an instance")
	}
	victim, survivor := c.inst[0], c.inst[1]
	if victim.streamsOpen(t) == 0 {
		victim, survivor = survivor, victim
	}
	killed := time.Now()
	victim.kill()
	for seq := 3; seq < 5; seq++ {
		publishOne(t, c, user, seq)
	}
	waitJS(t, ctx, "reconnected with the 2 events published meanwhile", `window.got.length >= 5 && window.opens >= 2`)
	back := time.Since(killed)
	checkBrowserEvents(t, c, ctx, "window.got", user)
	if got := survivor.streamsOpen(t); got != 1 {
		t.Errorf("survivor holds %d streams; want the browser's 1", got)
	}
	state, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.es.readyState`))
	if err != nil || state != 1 {
		t.Errorf("EventSource readyState %d, %v; want 1 (OPEN)", state, err)
	}
	t.Logf("browser: 3 events, then its instance killed: reconnected by itself and had the 2 published meanwhile %v later", back.Round(time.Millisecond))
	fmt.Printf("e2e browser: events=5 cookie_stream_events=1 reconnected_after=%v lost=0 duplicated=0\n", back.Round(time.Millisecond))

	screenshotDemo(t, ctx, c, pages.URL)
}

// publishOne publishes event seq to user, by XADD or POST as publish does.
func publishOne(t *testing.T, c *cluster, user string, seq int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.publish(ctx, []string{user}, seq, 1); err != nil {
		t.Fatal(err)
	}
}

// waitJS waits until expr is true in the page.
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second)))
	if err != nil {
		got, _ := chromedp.Run(ctx, chromedp.Evaluate[[]byte](`JSON.stringify({opens: window.opens, errors: window.errors, got: window.got, got2: window.got2})`))
		t.Fatalf("browser: waiting for %s: %v; page state: %s", what, err, got)
	}
}

// checkBrowserEvents compares what the page's listeners saw with what was
// published to user: same events, same order, each lastEventId the entry
// id, each origin nginx's.
func checkBrowserEvents(t *testing.T, c *cluster, ctx context.Context, list, user string) {
	t.Helper()
	got, err := chromedp.Run(ctx, chromedp.Evaluate[[]browserEvent](list))
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	want := append([]sent(nil), c.sent[user]...)
	c.mu.Unlock()
	if len(got) != len(want) {
		t.Fatalf("browser got %d events for %s; want %d: %+v", len(got), user, len(want), got)
	}
	for i, w := range want {
		typ := w.typ
		if typ == "" {
			typ = "message"
		}
		if g := got[i]; g.ID != w.id || g.Type != typ || g.Data != w.data || g.Origin != c.url {
			t.Errorf("browser event %d for %s: %+v; want id %s type %s data %s origin %s", i, user, g, w.id, typ, w.data, c.url)
		}
	}
}

// screenshotDemo opens the demo page (served from another origin, as in
// the test above), publishes from its form and as a producer, and takes
// its picture: docs/demo.png with -update-demo-png.
func screenshotDemo(t *testing.T, ctx context.Context, c *cluster, pagesURL string) {
	t.Helper()
	u := pagesURL + "/?" + url.Values{
		"server": {c.url}, "token": {c.token("alice")}, "pub": {c.pub}, "event": {"greeting"},
	}.Encode()
	if err := chromedp.Do(ctx, chromedp.Navigate(u)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the demo page to connect", `document.getElementById("status").textContent === "live"`)

	// Published from the page's own form (fetch POST across origins).
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("data"), "Hello Alice, welcome back!"),
		chromedp.Click(chromedp.ID("send")),
	); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the form's notification", `document.body.dataset.received === "1"`)
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("event"), "order.shipped"),
		chromedp.SetValue(chromedp.ID("data"), `{"order":1234,"carrier":"DHL","eta":"tomorrow"}`),
		chromedp.Click(chromedp.ID("send")),
	); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the second form notification", `document.body.dataset.received === "2"`)
	// And one from a producer, straight to Redis.
	err := c.rdb.XAdd(ctx, &redis.XAddArgs{Stream: streamKey("alice"), MaxLen: 1000, Approx: true,
		Values: []any{"event", "invoice.paid", "data", `{"invoice":"INV-2025-0042","amount":"49.00 EUR"}`}}).Err()
	if err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the producer's notification", `document.body.dataset.received === "3"`)
	result, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("result")))
	if err != nil || !bytes.HasPrefix([]byte(result), []byte("published: id ")) {
		t.Errorf("demo form result: %q, %v; want published: id ...", result, err)
	}

	screenshot(t, ctx, "demo.png")
}
