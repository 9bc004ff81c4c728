package e2e

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserSharedBackoff: noticed.js refused with 429 (the user's
// streams are at -max-conns-per-user on both instances) tries again
// after a growing delay, at most once a second, instead of giving up as a
// bare EventSource would or hammering; it connects once a slot is free.
func TestBrowserSharedBackoff(t *testing.T) {
	b := startBrowser(t, modulePage)
	c := newCluster(t, "-cors-origins", b.pages, "-max-conns-per-user", "1")
	const user = "busy-1"
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	holders := []*eventSource{c.subscribeAt("http://"+c.inst[0].addr, user), c.subscribeAt("http://"+c.inst[1].addr, user)}
	for _, es := range holders {
		if err := es.waitOpen(ctx, 1); err != nil {
			t.Fatal(err)
		}
	}
	refused := func() int {
		n := 0
		for _, in := range c.inst {
			v, _ := in.metric(`noticed_streams_refused_total{reason="user_limit"}`)
			n += int(v)
		}
		return n
	}

	start := time.Now()
	tab, closeTab := b.tab(url.Values{"server": {c.url}, "token": {c.token(user)}})
	defer closeTab()
	if err := poll(ctx, func() bool { return refused() >= 3 }); err != nil {
		t.Fatalf("refusals: %d; want the page to keep trying", refused())
	}
	tries, took := refused(), time.Since(start)
	// Free a slot (the holder told to give up first, so that it does not
	// come back for it): the page's next try, up to 16 s later, gets it.
	holders[0].fail(fmt.Errorf("closed by the test"))
	holders[0].drop()
	if _, err := chromedp.Run(tab, chromedp.Poll[bool](`window.opens >= 1`, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(45*time.Second))); err != nil {
		t.Fatalf("the page did not connect once a slot was free: %v (refused %d times)", err, refused())
	}
	publishOne(t, c, user, 0)
	waitJS(t, tab, "the event", `window.got.length >= 1`)
	// The first try is at once, each next one at least 1 s after the one
	// before (the delay doubles from 1-2 s).
	if max := 1 + int(took/time.Second); tries > max {
		t.Errorf("%d refused tries in %v; want at most %d (one a second)", tries, took, max)
	}
	t.Logf("refused 429 %d times in %v, then connected and got the event", tries, took.Round(time.Millisecond))
	fmt.Printf("e2e noticed.js backoff: refused=%d in=%v then_connected=true\n", tries, took.Round(time.Millisecond))
}

// TestBrowserSharedHang: the tab holding the shared stream hangs (a busy
// loop of 20 s) while events keep coming: another tab steals the lock and
// takes over; every tab, the hung one too once it wakes, shows every
// event exactly once, in order.
func TestBrowserSharedHang(t *testing.T) {
	b := startBrowser(t, modulePage)
	c := newCluster(t, "-cors-origins", b.pages)
	const user = "hang-1"
	query := url.Values{"server": {c.url}, "token": {c.token(user)}}
	var tabs []context.Context
	for range 3 {
		ctx, closeTab := b.tab(query)
		defer closeTab()
		tabs = append(tabs, ctx)
	}
	for i, tb := range tabs {
		waitJS(t, tb, fmt.Sprintf("tab %d to open", i), `window.opens >= 1`)
	}
	holder := -1
	for i, tb := range tabs {
		if evalJS[bool](t, tb, `window.src.leading`) {
			holder = i
		}
	}
	publishOne(t, c, user, 0)
	for _, tb := range tabs {
		waitJS(t, tb, "the first event", `window.got.length >= 1`)
	}

	evalJS[int](t, tabs[holder], `setTimeout(() => { const end = Date.now() + 20000; while (Date.now() < end) {} }, 0); 0`)
	hung := time.Now()
	const total = 30
	var took time.Duration
	for seq := 1; seq < total; seq++ {
		publishOne(t, c, user, seq)
		time.Sleep(200 * time.Millisecond) // a producer's pace, not an assertion
	}
	var counts []string
	for i, tb := range tabs {
		if i == holder {
			continue
		}
		waitJS(t, tb, "every event in a tab that did not hang", fmt.Sprintf(`window.got.length >= %d`, total))
		took = time.Since(hung)
		checkBrowserEvents(t, c, tb, "window.got", user)
		counts = append(counts, fmt.Sprint(evalJS[int](t, tb, `window.got.length`)))
	}
	waitJS(t, tabs[holder], "every event in the tab that hung", fmt.Sprintf(`window.got.length >= %d`, total))
	checkBrowserEvents(t, c, tabs[holder], "window.got", user)
	counts = append(counts, fmt.Sprint(evalJS[int](t, tabs[holder], `window.got.length`))+"(hung)")
	leaders := 0
	for _, tb := range tabs {
		if evalJS[bool](t, tb, `window.src.leading`) {
			leaders++
		}
	}
	if leaders != 1 || evalJS[bool](t, tabs[holder], `window.src.leading`) {
		t.Errorf("after the hang: %d tabs hold the stream, the hung one among them: %v; want 1, another", leaders, evalJS[bool](t, tabs[holder], `window.src.leading`))
	}
	t.Logf("holding tab hung 20 s; tabs showed %s of %d events, each once, in order (the others had all %v after the hang began)",
		strings.Join(counts, ","), total, took.Round(time.Millisecond))
	fmt.Printf("e2e noticed.js hang: published=%d tab_counts=%s lost=0 duplicated=0\n", total, strings.Join(counts, ","))
}

// TestBrowserSharedGap: a tab that resumes from an id whose successors
// were trimmed gets gap first (with no id), then what is left, in order,
// in shared mode (the module's own stream parser) as with shared: false (a
// native EventSource). A second tab that joins the shared stream later
// shows what comes from then on, once.
func TestBrowserSharedGap(t *testing.T) {
	b := startBrowser(t, modulePage)
	c := newCluster(t, "-cors-origins", b.pages)
	const user = "gap-1"
	for seq := range 5 {
		publishOne(t, c, user, seq)
	}
	c.mu.Lock()
	sentList := append([]sent(nil), c.sent[user]...)
	c.mu.Unlock()
	if err := c.rdb.XTrimMaxLen(t.Context(), streamKey(user), 2).Err(); err != nil {
		t.Fatal(err)
	}
	var tabs []context.Context
	for _, shared := range []string{"1", "0"} {
		tb, closeTab := b.tab(url.Values{"server": {c.url}, "token": {c.token(user)}, "shared": {shared}, "last": {sentList[0].id}})
		defer closeTab()
		tabs = append(tabs, tb)
		waitJS(t, tb, "gap and the 2 entries left", `window.got.length >= 3`)
		got := evalJS[[]browserEvent](t, tb, `window.got`)
		if len(got) != 3 || got[0].Type != "gap" || !strings.Contains(got[0].Data, sentList[0].id) || got[1].ID != sentList[3].id || got[2].ID != sentList[4].id {
			t.Errorf("shared=%s: %+v; want gap naming %s, then %s and %s", shared, got, sentList[0].id, sentList[3].id, sentList[4].id)
		}
	}
	late, closeLate := b.tab(url.Values{"server": {c.url}, "token": {c.token(user)}, "last": {sentList[0].id}})
	defer closeLate()
	waitJS(t, late, "the late tab to join", `window.opens >= 1`)
	publishOne(t, c, user, 5)
	for _, tb := range append(tabs, late) {
		waitJS(t, tb, "the new event", fmt.Sprintf(`window.got.some((e) => e.id === %q)`, c.lastSent(user)))
	}
	if got := evalJS[[]browserEvent](t, late, `window.got`); len(got) != 1 || got[0].ID != c.lastSent(user) {
		t.Errorf("tab that joined the shared stream late: %+v; want the one event published since", got)
	}
	if n := evalJS[int](t, tabs[0], `window.got.length`); n != 4 {
		t.Errorf("first shared tab shows %d events; want 4 (gap, 2 left, 1 new)", n)
	}
	fmt.Printf("e2e noticed.js gap: shared=gap+2 native=gap+2 late_joiner=1\n")
}
