package server

import (
	"testing"

	"github.com/noticed/noticed/internal/notice"
)

// FuzzPublishBody holds the publish parser to its promises on any input:
// no panic, and anything accepted names 1 to max valid, distinct users
// within the length limit and a valid event type within its limit.
func FuzzPublishBody(f *testing.F) {
	f.Add([]byte(`{"user":"42","event":"order.shipped","data":{"a":1}}`), "application/json")
	f.Add([]byte(`{"users":["1","2",3],"data":"x"}`), "application/json; charset=utf-8")
	f.Add([]byte(`user=42&event=x&data=hello`), "application/x-www-form-urlencoded")
	f.Add([]byte(`users=a&users=b`), "application/x-www-form-urlencoded")
	f.Add([]byte(`{"user":null}`), "")
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		const max = 5
		req, err := parsePublish(body, contentType, limits{users: max, userLen: 20, eventLen: 10})
		if err != nil {
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
	})
}
