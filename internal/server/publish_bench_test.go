package server

import (
	"encoding/json"
	"fmt"
	"testing"
)

// BenchmarkParsePublish is the JSON body of a publish: one user with a
// small object (the usual case) and 1000 users (the most one may name).
func BenchmarkParsePublish(b *testing.B) {
	users := make([]string, 1000)
	for i := range users {
		users[i] = fmt.Sprint("user-", i)
	}
	many, _ := json.Marshal(map[string]any{"users": users, "event": "maintenance", "data": "at noon"})
	lim := limits{users: 1000, userLen: 200, eventLen: 64}
	for _, bc := range []struct {
		name string
		body []byte
	}{
		{"one", []byte(`{"user":"42","event":"order.shipped","data":{"order":1234,"items":[{"sku":"a-1","qty":2},{"sku":"b-7","qty":1}],"note":"leave at the door"}}`)},
		{"1000users", many},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.body)))
			for b.Loop() {
				if _, err := parsePublish(bc.body, "application/json", lim); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
