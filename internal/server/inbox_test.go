package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// inboxState is the data of an "event: read" and the "read" of a history.
type inboxState struct {
	UpTo   string   `json:"upTo"`
	IDs    []string `json:"ids"`
	Unread int      `json:"unread"`
}

type historyReply struct {
	Entries []struct{ ID, Event, Data string }
	Next    *string
	Read    inboxState
}

func (e *env) call(method, path, tok, contentType string, body []byte) (int, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.url+path, bytes.NewReader(body))
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		e.t.Fatalf("%s %s: Content-Type %q, body %q", method, path, ct, raw)
	}
	return resp.StatusCode, raw
}

func (e *env) history(user, query string) historyReply {
	e.t.Helper()
	code, raw := e.call(http.MethodGet, "/notice/history?"+query, token(e.t, user), "", nil)
	if code != http.StatusOK {
		e.t.Fatalf("history %s: %d %s", query, code, raw)
	}
	var h historyReply
	if err := json.Unmarshal(raw, &h); err != nil {
		e.t.Fatal(err)
	}
	return h
}

func (e *env) markRead(user, body string) inboxState {
	e.t.Helper()
	code, raw := e.call(http.MethodPost, "/notice/read", token(e.t, user), "application/json", []byte(body))
	if code != http.StatusOK {
		e.t.Fatalf("read %s: %d %s", body, code, raw)
	}
	var st inboxState
	if err := json.Unmarshal(raw, &st); err != nil {
		e.t.Fatal(err)
	}
	return st
}

func stateOf(t *testing.T, data string) inboxState {
	t.Helper()
	var st inboxState
	if err := json.Unmarshal([]byte(data), &st); err != nil {
		t.Fatalf("read state %q: %v", data, err)
	}
	return st
}

// settles reads a new stream's first blocks as a client keeping a badge
// does (a read event sets it, any other event counts one more) until the
// badge shows unread and, when state is given, the last read event
// carried it. The first block is the read state with no id. It is the
// state at the newest entry when the backend answered at once; when it
// was late, the state at a moment before the headers went out, followed
// by the entries since: either way the badge ends the same.
func (s *stream) settles(t *testing.T, unread int, state string) {
	t.Helper()
	ev := s.next(t)
	if ev.Type != "read" || ev.HasID {
		t.Fatalf("the stream's first block %+v, want the read state", ev)
	}
	badge, last := stateOf(t, ev.Data).Unread, ev.Data
	var seen []string
	for range 8 {
		if badge == unread && (state == "" || last == state) {
			return
		}
		ev = s.next(t)
		seen = append(seen, ev.Type+" "+ev.ID+" "+ev.Data)
		if ev.Type == "read" {
			badge, last = stateOf(t, ev.Data).Unread, ev.Data
		} else {
			badge++
		}
	}
	t.Fatalf("the badge never settled on %d unread (state %s): first state then %v", unread, state, seen)
}

func TestHistoryPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	var ids []string
	for i := range 5 {
		event := "order.shipped"
		if i == 2 {
			event = ""
		}
		ids = append(ids, e.mustPublish("hal", event, `{"n":`+string(rune('0'+i))+`}`))
	}
	h := e.history("hal", "limit=2")
	if len(h.Entries) != 2 || h.Entries[0].ID != ids[4] || h.Entries[1].ID != ids[3] || h.Next == nil || *h.Next != ids[3] {
		t.Fatalf("first page %+v", h)
	}
	if h.Entries[0].Event != "order.shipped" || h.Entries[0].Data != `{"n":4}` || h.Read.Unread != 5 || h.Read.UpTo != "0-0" {
		t.Errorf("first page %+v", h)
	}
	h = e.history("hal", "limit=2&before="+*h.Next)
	if len(h.Entries) != 2 || h.Entries[0].ID != ids[2] || h.Entries[0].Event != "message" {
		t.Errorf("second page %+v", h)
	}
	h = e.history("hal", "limit=2&before="+*h.Next)
	if len(h.Entries) != 1 || h.Entries[0].ID != ids[0] || h.Next != nil {
		t.Errorf("last page %+v", h)
	}
	if h := e.history("nobody-yet", ""); len(h.Entries) != 0 || h.Next != nil || h.Read.Unread != 0 {
		t.Errorf("a user with no stream: %+v", h)
	}
	// A publisher reads anyone's history with user=.
	code, raw := e.call(http.MethodGet, "/notice/history?user=hal&limit=1", token(t, "producer", "publish"), "", nil)
	if code != http.StatusOK || !strings.Contains(string(raw), ids[4]) {
		t.Errorf("publisher's history of hal: %d %s", code, raw)
	}
}

func TestInboxErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	id := e.mustPublish("ivy", "", "x")
	ivy := token(t, "ivy")
	tests := []struct {
		name, method, path, tok, body string
		want                          int
	}{
		{"history without a token", "GET", "/notice/history", "", "", 401},
		{"history with a bad token", "GET", "/notice/history", "nope", "", 401},
		{"history of another user", "GET", "/notice/history?user=bob", ivy, "", 403},
		{"history of a bad user", "GET", "/notice/history?user=a%20b", ivy, "", 400},
		{"limit zero", "GET", "/notice/history?limit=0", ivy, "", 400},
		{"limit over 500", "GET", "/notice/history?limit=501", ivy, "", 400},
		{"limit not a number", "GET", "/notice/history?limit=ten", ivy, "", 400},
		{"before not an id", "GET", "/notice/history?before=x-1", ivy, "", 400},
		{"read without a token", "POST", "/notice/read", "", `{"upTo":"` + id + `"}`, 401},
		{"read for another user", "POST", "/notice/read?user=bob", token(t, "p", "publish"), `{"upTo":"` + id + `"}`, 403},
		{"read with nothing", "POST", "/notice/read", ivy, `{}`, 400},
		{"read, not JSON", "POST", "/notice/read", ivy, `upTo=1`, 400},
		{"read, unknown field", "POST", "/notice/read", ivy, `{"upto":"` + id + `"}`, 400},
		{"read, duplicate field", "POST", "/notice/read", ivy, `{"upTo":"` + id + `","upTo":"` + id + `"}`, 400},
		{"read, a bad id", "POST", "/notice/read", ivy, `{"ids":["1-x"]}`, 400},
		{"read, a number", "POST", "/notice/read", ivy, `{"upTo":1}`, 400},
		{"read, an id never had", "POST", "/notice/read", ivy, `{"upTo":"99999999999999-0"}`, 400},
		{"read, another user's id", "POST", "/notice/read", token(t, "ned"), `{"ids":["` + id + `"]}`, 400},
	}
	for _, tt := range tests {
		code, raw := e.call(tt.method, tt.path, tt.tok, "application/json", []byte(tt.body))
		var body map[string]string
		if code != tt.want || json.Unmarshal(raw, &body) != nil || body["error"] == "" {
			t.Errorf("%s: %d %s, want %d with an error", tt.name, code, raw, tt.want)
		}
	}
	if code, out := e.publish(map[string]any{"user": "ivy", "event": "read", "data": "{}"}); code != 400 {
		t.Errorf("publishing event read: %d %v, want 400", code, out)
	}
}

// TestReadStateOnStreams: a mark reaches every stream of the user in
// order with the events, a new stream starts with the state as it is,
// and a reconnect replays the marks it missed.
func TestReadStateOnStreams(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	first := e.mustPublish("jo", "", "one")
	_, laptop := e.openStream(url.Values{"token": {token(t, "jo")}}.Encode(), nil, true)
	laptop.settles(t, 1, "")
	phone := e.subscribe("jo")
	second := e.mustPublish("jo", "", "two")
	st := e.markRead("jo", `{"upTo":"`+first+`"}`)
	if st.UpTo != first || st.Unread != 1 {
		t.Fatalf("mark answered %+v", st)
	}
	third := e.mustPublish("jo", "", "three")
	var markID string
	for name, s := range map[string]*stream{"laptop": laptop, "phone": phone} {
		if ev := s.next(t); ev.ID != second {
			t.Fatalf("%s: %+v, want %s", name, ev, second)
		}
		ev := s.next(t)
		if ev.Type != "read" || !ev.HasID || stateOf(t, ev.Data).UpTo != first || stateOf(t, ev.Data).Unread != 1 {
			t.Fatalf("%s: %+v, want the mark", name, ev)
		}
		markID = ev.ID
		if ev := s.next(t); ev.ID != third {
			t.Fatalf("%s: %+v, want %s", name, ev, third)
		}
	}
	st = e.markRead("jo", `{"ids":["`+third+`"]}`)
	if st.UpTo != first || len(st.IDs) != 1 || st.IDs[0] != third || st.Unread != 1 {
		t.Fatalf("single mark answered %+v", st)
	}

	// A new tab starts with the state as it is.
	_, tab := e.openStream(url.Values{"token": {token(t, "jo")}}.Encode(), nil, true)
	tab.settles(t, 1, `{"upTo":"`+first+`","ids":["`+third+`"],"unread":1}`)
	// A reconnect from before the first mark starts with the state at its
	// last id, then gets the marks again in their place: a client that
	// sets its badge on each read event and counts one more on each other
	// event ends with the state as it is.
	_, back := e.openStream(url.Values{"token": {token(t, "jo")}, "lastEventId": {first}}.Encode(), nil, true)
	var got []string
	badge := -1
	for range 5 {
		ev := back.next(t)
		got = append(got, ev.Type+" "+map[bool]string{true: ev.ID}[ev.HasID])
		if ev.Type == "read" {
			badge = stateOf(t, ev.Data).Unread
		} else {
			badge++
		}
	}
	want := []string{"read ", "message " + second, "read " + markID, "message " + third}
	if strings.Join(got[:4], ",") != strings.Join(want, ",") || !strings.HasPrefix(got[4], "read ") {
		t.Errorf("replay %v, want %v then the single mark", got, want)
	}
	if badge != 1 {
		t.Errorf("the reconnected client counts %d unread, want 1", badge)
	}
	// History leaves the marks out.
	h := e.history("jo", "")
	if len(h.Entries) != 3 || h.Read.Unread != 1 {
		t.Errorf("history %+v", h)
	}
	// A mark that changes nothing is answered, and sent to nobody.
	if st := e.markRead("jo", `{"upTo":"`+first+`"}`); st.Unread != 1 {
		t.Errorf("repeated mark %+v", st)
	}
	laptop.next(t) // the single mark
	laptop.none(t)
}
