package server_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/noticed/noticed/internal/redistest"
)

// batchIDs posts an "events" body and returns the ids answered, failing
// the test unless the answer is 200 with one id per event.
func (e *env) batchIDs(events []map[string]any) []string {
	e.t.Helper()
	code, out := e.publish(map[string]any{"events": events})
	list, _ := out["ids"].([]any)
	if code != http.StatusOK || len(list) != len(events) {
		e.t.Fatalf("batch of %d: %d %v", len(events), code, out)
	}
	ids := make([]string, len(list))
	for i, v := range list {
		ids[i], _ = v.(string)
	}
	return ids
}

// A batch of different events: ids in the events' order, each event on
// exactly its own user's streams, a user's events in the batch's order.
func TestPublishBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	ann, ann2, bo, num := e.subscribe("ann"), e.subscribe("ann"), e.subscribe("bo"), e.subscribe("42")
	other := e.subscribe("cy")
	ids := e.batchIDs([]map[string]any{
		{"user": "ann", "event": "order.shipped", "data": map[string]any{"order": 1}},
		{"user": "bo", "data": "plain"},
		{"user": 42, "event": "n", "data": []int{1, 2}},
		{"user": "ann", "event": "order.paid", "data": "second"},
		{"user": "ann", "data": nil},
		{"user": "nobody-listens", "data": "x"},
	})
	want := map[*stream][]struct {
		i         int
		typ, data string
	}{
		ann:  {{0, "order.shipped", `{"order":1}`}, {3, "order.paid", "second"}, {4, "message", ""}},
		ann2: {{0, "order.shipped", `{"order":1}`}, {3, "order.paid", "second"}, {4, "message", ""}},
		bo:   {{1, "message", "plain"}},
		num:  {{2, "n", "[1,2]"}},
	}
	for s, evs := range want {
		for _, w := range evs {
			if ev := s.next(t); ev.ID != ids[w.i] || ev.Type != w.typ || ev.Data != w.data {
				t.Fatalf("event %d: got %+v, want id %s type %q data %q", w.i, ev, ids[w.i], w.typ, w.data)
			}
		}
	}
	// Nothing else arrived: a marker published after the batch comes next.
	for user, s := range map[string]*stream{"ann": ann, "bo": bo, "42": num, "cy": other} {
		marker := e.mustPublish(user, "", "marker")
		if ev := s.next(t); ev.ID != marker {
			t.Errorf("%s: got %+v after the batch, want the marker %s", user, ev, marker)
		}
	}
}

// The limit is -max-users-per-publish events; each event is checked as a
// one-user publish is, and a refused batch publishes none of its events.
func TestPublishBatchErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{maxUsers: 3})
	e.hostile()
	watch := e.subscribe("a")
	pub := token(t, "producer", "publish")
	ok := `{"user":"a","data":"x"}`
	tests := []struct {
		name, body, wantIn string
	}{
		{"empty", `{"events":[]}`, "empty"},
		{"not an array", `{"events":{"user":"a"}}`, "array"},
		{"element not an object", `{"events":[` + ok + `,"a"]}`, "events[1]"},
		{"null element", `{"events":[null]}`, "events[0]"},
		{"over the limit", `{"events":[` + strings.Repeat(ok+",", 3) + ok + `]}`, "at most 3 events"},
		{"no user", `{"events":[` + ok + `,{"data":"x"}]}`, `events[1]: "user" is required`},
		{"null user", `{"events":[{"user":null}]}`, `"user" is required`},
		{"users in an event", `{"events":[{"users":["a"]}]}`, `unknown field "users"`},
		{"unknown field in an event", `{"events":[{"user":"a","evnet":"x"}]}`, `unknown field "evnet"`},
		{"User in an event", `{"events":[{"user":"a","User":"b"}]}`, `unknown field "User"`},
		{"duplicate member in an event", `{"events":[{"user":"a","user":"b"}]}`, "duplicate"},
		{"duplicate events", `{"events":[` + ok + `],"events":[` + ok + `]}`, "duplicate"},
		{"bad user", `{"events":[{"user":"a b"}]}`, "events[0]: user"},
		{"float user", `{"events":[{"user":1.5}]}`, "integer"},
		{"event too long", `{"events":[{"user":"a","event":"` + strings.Repeat("e", 65) + `"}]}`, "events[0]"},
		{"event with a control character", `{"events":[{"user":"a","event":"a\u0007b"}]}`, "events[0]"},
		{"event not a string", `{"events":[{"user":"a","event":1}]}`, "string"},
		{"reserved event", `{"events":[{"user":"a","event":"read"}]}`, "reserved"},
		{"with user", `{"user":"a","events":[` + ok + `]}`, "not both"},
		{"with users", `{"events":[` + ok + `],"users":["a"]}`, "not both"},
		{"with event", `{"event":"x","events":[` + ok + `]}`, "its own"},
		{"with data", `{"events":[` + ok + `],"data":1}`, "its own"},
		{"invalid UTF-8", "{\"events\":[{\"user\":\"a\",\"data\":\"\xff\"}]}", "UTF-8"},
	}
	for _, tt := range tests {
		code, out := e.post("application/json", []byte(tt.body), pub)
		msg, _ := out["error"].(string)
		if code != http.StatusBadRequest || !strings.Contains(msg, tt.wantIn) {
			t.Errorf("%s: %d %v, want 400 with an error containing %q", tt.name, code, out, tt.wantIn)
		}
	}
	// "events":null is as if not given.
	if code, out := e.post("application/json", []byte(`{"events":null,"user":"a","data":"one"}`), pub); code != http.StatusOK || out["id"] == nil {
		t.Errorf(`"events":null beside "user": %d %v`, code, out)
	} else if ev := watch.next(t); ev.ID != out["id"] {
		t.Errorf("got %+v, want %v", ev, out["id"])
	}
	// Three events is the limit, not over it.
	ids := e.batchIDs([]map[string]any{{"user": "a", "data": "1"}, {"user": "a", "data": "2"}, {"user": "a", "data": "3"}})
	for i, id := range ids {
		if ev := watch.next(t); ev.ID != id || ev.Data != fmt.Sprint(i+1) {
			t.Fatalf("event %d: got %+v, want id %s", i, ev, id)
		}
	}
	// A token without the publish scope cannot batch either.
	if code, _ := e.post("application/json", []byte(`{"events":[`+ok+`]}`), token(t, "a")); code != http.StatusForbidden {
		t.Errorf("batch without the publish scope: %d, want 403", code)
	}
	watch.none(t)
}

// On Redis the batch is one Append: Redis holds every event under the id
// answered for it, each user's entries in the batch's order.
func TestRedisPublishBatch(t *testing.T) {
	t.Parallel()
	e, rdb := newRedisEnv(t, redistest.Start(t), envOptions{})
	s := e.subscribe("dee")
	var events []map[string]any
	for i := range 50 {
		events = append(events, map[string]any{"user": []string{"dee", "eli", "fay"}[i%3], "event": "e", "data": fmt.Sprint(i)})
	}
	ids := e.batchIDs(events)
	for i := 0; i < len(ids); i += 3 {
		if ev := s.next(t); ev.ID != ids[i] || ev.Data != fmt.Sprint(i) {
			t.Fatalf("dee's event %d: got %+v, want id %s", i, ev, ids[i])
		}
	}
	for k, user := range []string{"dee", "eli", "fay"} {
		entries, err := rdb.XRange(context.Background(), "notice:{"+user+"}", "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for i := k; i < len(ids); i += 3 {
			want = append(want, ids[i]+"="+fmt.Sprint(i))
		}
		var got []string
		for _, en := range entries {
			got = append(got, fmt.Sprintf("%s=%v", en.ID, en.Values["data"]))
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s's stream holds %v, want %v", user, got, want)
		}
	}
}
