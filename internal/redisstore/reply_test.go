package redisstore

import (
	"testing"

	"github.com/noticed/noticed/internal/notice"
)

func TestParseStreamInfoRESP2AndRESP3(t *testing.T) {
	t.Parallel()
	pairs := []any{
		"length", int64(2),
		"radix-tree-keys", int64(1),
		"last-generated-id", "20-0",
		"max-deleted-entry-id", "15-0",
		"entries-added", int64(5),
		"recorded-first-entry-id", "18-0",
		"groups", int64(0),
		"first-entry", []any{"18-0", []any{"data", "a"}},
		"last-entry", []any{"20-0", []any{"data", "b"}},
	}
	m := map[any]any{}
	for i := 0; i < len(pairs); i += 2 {
		m[pairs[i]] = pairs[i+1]
	}
	want := streamInfo{length: 2, lastGenerated: notice.ID{Ms: 20}, maxDeleted: notice.ID{Ms: 15}, first: notice.ID{Ms: 18}}
	for name, v := range map[string]any{"RESP2": pairs, "RESP3": m} {
		got, err := parseStreamInfo(v)
		if err != nil || got != want {
			t.Errorf("%s: %+v, %v; want %+v", name, got, err, want)
		}
	}
	if _, err := parseStreamInfo("nope"); err == nil {
		t.Error("a string parsed as XINFO STREAM")
	}
}

func TestGapRule(t *testing.T) {
	t.Parallel()
	id := func(ms uint64) notice.ID { return notice.ID{Ms: ms} }
	trimmed := streamInfo{length: 3, lastGenerated: id(30), first: id(20)}
	deleted := streamInfo{length: 3, lastGenerated: id(30), maxDeleted: id(25), first: id(10)}
	empty := streamInfo{length: 0, lastGenerated: id(30)}
	tests := []struct {
		name  string
		after notice.ID
		info  streamInfo
		want  bool
	}{
		{"before the first retained", id(19), trimmed, true},
		{"at the first retained", id(20), trimmed, false},
		{"after the newest", id(31), trimmed, false},
		{"before an XDEL", id(24), deleted, true},
		{"at the XDEL", id(25), deleted, false},
		{"emptied, before the last", id(29), empty, true},
		{"emptied, at the last", id(30), empty, false},
	}
	for _, tt := range tests {
		if got := gap(tt.after, tt.info); got != tt.want {
			t.Errorf("%s: gap %v, want %v", tt.name, got, tt.want)
		}
	}
}
