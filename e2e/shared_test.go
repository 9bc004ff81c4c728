package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// modulePage is a page of another origin than noticed's that imports
// noticed.js from noticed (through nginx) and records what it shows.
const modulePage = `<!doctype html>
<meta charset="utf-8">
<title>noticed.js</title>
<script type="module">
const p = new URLSearchParams(location.search);
const server = p.get("server");
window.got = []; window.opens = 0; window.errors = 0;
const { connect } = await import(server + "/noticed.js");
const src = connect({url: server + "/notice", token: p.get("token"), shared: p.get("shared") !== "0", lastEventId: p.get("last") || ""});
window.src = src;
const rec = (e) => window.got.push({type: e.type, id: e.lastEventId, data: e.data, origin: e.origin});
src.onopen = () => { window.opens++; };
src.onerror = () => { window.errors++; };
src.onmessage = rec;
for (const t of ["order.shipped", "invoice.paid", "gap"]) src.addEventListener(t, rec);
</script>
`

// browser is a headless Chromium with a blank first tab that holds it: a
// tab opened with tab can be closed without closing the browser.
type browser struct {
	t     *testing.T
	root  context.Context
	pages string // the pages' origin
}

func startBrowser(t *testing.T, page string, extra ...chromedp.ExecAllocatorOption) *browser {
	t.Helper()
	chromium := need(t, "chromium", "chromium", "/usr/bin/chromium")
	mux := http.NewServeMux()
	mux.HandleFunc("/page.html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(page))
	})
	pages := httptest.NewServer(mux)
	t.Cleanup(pages.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	opts := chromiumOptions(chromium, t.TempDir(), append([]chromedp.ExecAllocatorOption{
		// Tabs in the background must run their timers as the front one does.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
	}, extra...)...)
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	root, cancelRoot := chromedp.NewContext(ctx)
	t.Cleanup(cancelRoot)
	if err := chromedp.Do(root, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return &browser{t: t, root: root, pages: pages.URL}
}

// tab opens the page in a new tab with query; close closes that tab.
func (b *browser) tab(query url.Values) (ctx context.Context, close func()) {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.root)
	if err := chromedp.Do(ctx, chromedp.Navigate(b.pages+"/page.html?"+query.Encode())); err != nil {
		b.t.Fatalf("open a tab: %v", err)
	}
	return ctx, cancel
}

func evalJS[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// TestBrowserSharedTabs: five tabs of one user, through nginx and two
// instances, with noticed.js in shared mode: one stream for all of them;
// every tab shows every event once, in order. Then the tab holding the
// stream is closed while events keep coming: another takes over, and
// every remaining tab still shows every event exactly once.
func TestBrowserSharedTabs(t *testing.T) {
	b := startBrowser(t, modulePage)
	c := newCluster(t, "-cors-origins", b.pages)
	const user = "tabs-1"
	query := url.Values{"server": {c.url}, "token": {c.token(user)}}

	type tab struct {
		ctx   context.Context
		close func()
	}
	var tabs []tab
	for range 5 {
		ctx, close := b.tab(query)
		tabs = append(tabs, tab{ctx, close})
	}
	for i, tb := range tabs {
		waitJS(t, tb.ctx, fmt.Sprintf("tab %d to open", i), `window.opens >= 1`)
	}
	streams := func() int { return c.inst[0].streamsOpen(t) + c.inst[1].streamsOpen(t) }
	if got := streams(); got != 1 {
		t.Fatalf("noticed_streams_open over both instances with 5 tabs open: %d; want 1", got)
	}
	leaders := 0
	for _, tb := range tabs {
		if evalJS[bool](t, tb.ctx, `window.src.leading`) {
			leaders++
		}
	}
	if leaders != 1 {
		t.Fatalf("%d tabs hold the stream; want 1", leaders)
	}

	const first = 10
	for seq := range first {
		publishOne(t, c, user, seq)
	}
	for i, tb := range tabs {
		waitJS(t, tb.ctx, fmt.Sprintf("tab %d to show %d events", i, first), fmt.Sprintf(`window.got.length >= %d`, first))
		checkBrowserEvents(t, c, tb.ctx, "window.got", user)
	}
	t.Logf("5 tabs, shared: noticed_streams_open=%d (A %d, B %d); each tab showed %d events once, in order",
		streams(), c.inst[0].streamsOpen(t), c.inst[1].streamsOpen(t), first)
	fmt.Printf("e2e shared tabs: tabs=5 streams_open=%d events=%d each_tab_once_in_order=true\n", streams(), first)

	// Close the holding tab while a producer keeps publishing.
	holder := -1
	for i, tb := range tabs {
		if evalJS[bool](t, tb.ctx, `window.src.leading`) {
			holder = i
		}
	}
	const total = 40
	var wg sync.WaitGroup
	closedAt := make(chan struct{})
	wg.Go(func() {
		for seq := first; seq < total; seq++ {
			if seq == first+10 {
				tabs[holder].close()
				close(closedAt)
			}
			publishOne(t, c, user, seq)
			time.Sleep(20 * time.Millisecond) // a producer's pace, not an assertion
		}
	})
	<-closedAt
	closed := time.Now()
	wg.Wait()
	rest := append(append([]tab{}, tabs[:holder]...), tabs[holder+1:]...)
	var counts []string
	for i, tb := range rest {
		waitJS(t, tb.ctx, fmt.Sprintf("remaining tab %d to show all %d events", i, total), fmt.Sprintf(`window.got.length >= %d`, total))
		checkBrowserEvents(t, c, tb.ctx, "window.got", user)
		counts = append(counts, fmt.Sprint(evalJS[int](t, tb.ctx, `window.got.length`)))
	}
	took := time.Since(closed)
	leaders = 0
	for _, tb := range rest {
		if evalJS[bool](t, tb.ctx, `window.src.leading`) {
			leaders++
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := poll(ctx, func() bool { return streams() == 1 }); err != nil || leaders != 1 {
		t.Errorf("after the takeover: %d streams open, %d tabs holding; want 1 and 1", streams(), leaders)
	}
	t.Logf("holding tab %d closed after event %d; 4 tabs showed %s events of %d (each once, in order), all in %v",
		holder, first+10, strings.Join(counts, ","), total, took.Round(time.Millisecond))
	fmt.Printf("e2e shared takeover: published=%d tab_counts=%s lost=0 duplicated=0 streams_open=%d\n", total, strings.Join(counts, ","), streams())
}
