package server

import (
	"mime"
	"testing"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/noticed/noticed/internal/inbox"
	"github.com/noticed/noticed/internal/notice"
)

// FuzzPublishBody holds the publish parser to its promises on any input:
// no panic, and anything accepted names 1 to max valid, distinct users
// within the length limit and a valid event type within its limit; an
// accepted JSON body is valid I-JSON (each name once, all UTF-8), so no
// member was guessed at and no byte was rewritten. An accepted batch
// holds 1 to max events, each with a valid user and event type.
func FuzzPublishBody(f *testing.F) {
	f.Add([]byte(`{"user":"42","event":"order.shipped","data":{"a":1}}`), "application/json")
	f.Add([]byte(`{"users":["1","2",3],"data":"x"}`), "application/json; charset=utf-8")
	f.Add([]byte(`user=42&event=x&data=hello`), "application/x-www-form-urlencoded")
	f.Add([]byte(`users=a&users=b`), "application/x-www-form-urlencoded")
	f.Add([]byte(`{"user":null}`), "")
	f.Add([]byte(`{"user":"a","User":"b"}`), "application/json")
	f.Add([]byte(`{"user":"a","us\u0065r":"b","data":{"k":1,"k":2}}`), "application/json")
	f.Add([]byte("{\"users\":[\"a\xff\",\"a\xfe\"]}"), "application/json")
	f.Add([]byte(`{"events":[{"user":"1","event":"a","data":{"x":1}},{"user":2,"data":"y"},{"user":"1"}]}`), "application/json")
	f.Add([]byte(`{"events":[]}`), "application/json")
	f.Add([]byte(`{"events":[{"user":"a"},{"user":"a"},{"user":"a"},{"user":"a"},{"user":"a"},{"user":"a"}]}`), "")
	f.Add([]byte(`{"events":[{"user":"a","user":"b"}]}`), "application/json")
	f.Add([]byte(`{"events":[{"users":["a"]},null,"x"],"user":"a"}`), "application/json")
	f.Add([]byte(`{"events":[{"user":"a","event":"read"}],"data":1}`), "application/json")
	f.Add([]byte("{\"events\":[{\"user\":\"a\",\"data\":\"\xff\"}]}"), "application/json")
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		const max = 5
		req, err := parsePublish(body, contentType, limits{users: max, userLen: 20, eventLen: 10})
		if err != nil {
			return
		}
		if req.batch != nil {
			if len(req.batch) == 0 || len(req.batch) > max || len(req.users) > 0 {
				t.Fatalf("accepted a batch of %d events (and %d users)", len(req.batch), len(req.users))
			}
			for _, m := range req.batch {
				if notice.ValidUserLen(m.User, 20) != nil || notice.ValidEventLen(m.Event, 10) != nil || m.Event == inbox.EventRead || !utf8.ValidString(m.Data) {
					t.Fatalf("accepted event %+v", m)
				}
			}
			if !jsontext.Value(body).IsValid() {
				t.Fatalf("accepted JSON body %q, which is not valid I-JSON", body)
			}
			return
		}
		if len(req.users) == 0 || len(req.users) > max {
			t.Fatalf("accepted %d users", len(req.users))
		}
		seen := map[string]bool{}
		for _, u := range req.users {
			if notice.ValidUserLen(u, 20) != nil || seen[u] {
				t.Fatalf("accepted user %q (repeated: %v)", u, seen[u])
			}
			seen[u] = true
		}
		if notice.ValidEventLen(req.event, 10) != nil {
			t.Fatalf("accepted event %q", req.event)
		}
		if mt, _, _ := mime.ParseMediaType(contentType); mt != "application/x-www-form-urlencoded" && !jsontext.Value(body).IsValid() {
			t.Fatalf("accepted JSON body %q, which is not valid I-JSON", body)
		}
	})
}

// FuzzMarkBody holds the read-mark parser to its promises on any input:
// no panic, and anything accepted is valid I-JSON naming upTo or at least
// one id, at most inbox.MaxIDs of them.
func FuzzMarkBody(f *testing.F) {
	f.Add([]byte(`{"upTo":"1764150000000-0"}`), "application/json")
	f.Add([]byte(`{"ids":["1-0","2"]}`), "")
	f.Add([]byte(`{"upTo":"1-0","ids":[]}`), "application/json")
	f.Add([]byte(`{"upTo":"1-0","upTo":"2-0"}`), "application/json")
	f.Add([]byte(`{"ids":["1-x"]}`), "application/json")
	f.Add([]byte("{\"upTo\":\"1\xff\"}"), "application/json")
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		upTo, ids, err := parseMark(body, contentType)
		if err != nil {
			return
		}
		if upTo == nil && len(ids) == 0 {
			t.Fatalf("accepted %q with nothing to mark", body)
		}
		if len(ids) > 1000 {
			t.Fatalf("accepted %d ids", len(ids))
		}
		if !jsontext.Value(body).IsValid() {
			t.Fatalf("accepted invalid I-JSON %q", body)
		}
	})
}
