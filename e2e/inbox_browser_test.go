package e2e

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/go-chi/chi/v5"

	"github.com/noticed/noticed/internal/demo"
)

// TestBrowserInbox: one user on a "laptop" and a "phone" (two browser
// contexts of headless Chromium, nothing shared), each with the demo page
// open through nginx on two instances. An event shows on both; a click on
// the laptop turns the item read and the badge down on the phone; the
// phone's instance is killed, and while the phone is away the laptop
// marks all read and one more event comes: back on the other instance,
// the phone's badge is right. Then the laptop's inbox is photographed
// (docs/inbox.png with -update-demo-png).
func TestBrowserInbox(t *testing.T) {
	chromium := need(t, "chromium", "chromium", "/usr/bin/chromium")
	r := chi.NewRouter()
	demo.Mount(r)
	pages := httptest.NewServer(r)
	defer pages.Close()
	c := newCluster(t, "-cors-origins", pages.URL)

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, chromiumOptions(chromium, t.TempDir(),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.WindowSize(1100, 760))...,
	)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(ctx)
	defer cancelBrowser()
	if err := chromedp.Do(browser, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	laptop, cancelLaptop := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	defer cancelLaptop()
	phone, cancelPhone := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	defer cancelPhone()

	const user = "inbox-alice"
	if err := c.publish(ctx, []string{user}, 0, 2); err != nil {
		t.Fatal(err)
	}
	page := pages.URL + "/?" + url.Values{
		"server": {c.url}, "token": {c.token(user)}, "pub": {c.pub}, "event": {"order.shipped"},
	}.Encode()
	streams := func() [2]int { return [2]int{c.inst[0].streamsOpen(t), c.inst[1].streamsOpen(t)} }

	// The phone first, so that we know its instance; least_conn sends the
	// laptop to the other.
	if err := chromedp.Do(phone, chromedp.Navigate(page)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, phone, "the phone to show its history", `document.getElementById("status").textContent === "live" && document.body.dataset.unread === "2"`)
	pollCtx, cancelPoll := context.WithTimeout(ctx, 10*time.Second)
	defer cancelPoll()
	if err := poll(pollCtx, func() bool { s := streams(); return s[0]+s[1] == 1 }); err != nil {
		t.Fatal("the phone's stream is not open on an instance")
	}
	phoneInst, otherInst := c.inst[0], c.inst[1]
	if streams()[0] == 0 {
		phoneInst, otherInst = otherInst, phoneInst
	}
	if err := chromedp.Do(laptop, chromedp.Navigate(page)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, laptop, "the laptop to show its history", `document.getElementById("status").textContent === "live" && document.body.dataset.unread === "2"`)
	if err := poll(pollCtx, func() bool { s := streams(); return s[0]+s[1] == 2 }); err != nil {
		t.Fatal("the laptop's stream is not open on an instance")
	}
	t.Logf("phone on %s, streams per instance %v", phoneInst.name, streams())

	// An event shows on both.
	if err := c.publish(ctx, []string{user}, 2, 1); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	newest := c.sent[user][len(c.sent[user])-1].id
	c.mu.Unlock()
	for name, tab := range map[string]context.Context{"laptop": laptop, "phone": phone} {
		waitJS(t, tab, "the event on the "+name, `document.body.dataset.unread === "3" && !!document.querySelector('#list li[data-id="`+newest+`"].unread')`)
	}

	// A click on the laptop turns it read on the phone.
	clicked := time.Now()
	if err := chromedp.Do(laptop, chromedp.Click(chromedp.CSS(`#list li[data-id="`+newest+`"]`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, phone, "the click to reach the phone", `document.body.dataset.unread === "2" && !!document.querySelector('#list li[data-id="`+newest+`"].read')`)
	reached := time.Since(clicked)
	waitJS(t, laptop, "the laptop's own badge", `document.body.dataset.unread === "2"`)

	// The phone's connection is cut: its instance dies. Meanwhile the
	// laptop marks all read and one more event comes.
	phoneInst.kill()
	waitJS(t, phone, "the phone to notice", `document.getElementById("status").textContent !== "live"`)
	if err := chromedp.Do(laptop, chromedp.Click(chromedp.ID("markall"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, laptop, "mark all read on the laptop", `document.body.dataset.unread === "0"`)
	if err := c.publish(ctx, []string{user}, 3, 1); err != nil {
		t.Fatal(err)
	}
	waitJS(t, laptop, "the last event on the laptop", `document.body.dataset.unread === "1"`)
	cut := time.Now()
	waitJS(t, phone, "the phone back, with the right badge", `document.getElementById("status").textContent === "live" && document.body.dataset.unread === "1" && document.querySelectorAll("#list li.unread").length === 1`)
	back := time.Since(cut)
	if n := otherInst.streamsOpen(t); n != 2 {
		t.Errorf("the surviving instance holds %d streams; want both devices' 2", n)
	}
	t.Logf("inbox: a click reached the other device in %v; the phone came back with the right badge %v after the last event", reached.Round(time.Millisecond), back.Round(time.Millisecond))
	fmt.Printf("e2e inbox: click_to_other_device=%v phone_back_with_badge_after=%v badge=1\n", reached.Round(time.Millisecond), back.Round(time.Millisecond))

	screenshot(t, laptop, "inbox.png")
}
