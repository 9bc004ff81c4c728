package sse

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/noticed/noticed/internal/notice"
)

func TestAppendEntry(t *testing.T) {
	t.Parallel()
	id := notice.ID{Ms: 1, Seq: 0}
	tests := []struct {
		name, typ, data, want string
	}{
		{"plain", "", "hi", "id: 1-0\ndata: hi\n\n"},
		{"typed", "order.shipped", "{}", "id: 1-0\nevent: order.shipped\ndata: {}\n\n"},
		{"message type is implied", "message", "x", "id: 1-0\ndata: x\n\n"},
		{"empty data still dispatches", "", "", "id: 1-0\ndata: \n\n"},
		{"lines split on LF", "", "a\nb", "id: 1-0\ndata: a\ndata: b\n\n"},
		{"lines split on CRLF", "", "a\r\nb", "id: 1-0\ndata: a\ndata: b\n\n"},
		{"lines split on CR", "", "a\rb", "id: 1-0\ndata: a\ndata: b\n\n"},
		{"trailing newline kept", "", "a\n", "id: 1-0\ndata: a\ndata: \n\n"},
		{"leading space kept", "", " a", "id: 1-0\ndata:  a\n\n"},
		{"forged fields stay data", "", "x\n\nid: 9-9\nevent: evil\ndata: y", "id: 1-0\ndata: x\ndata: \ndata: id: 9-9\ndata: event: evil\ndata: data: y\n\n"},
		{"a type that would forge is left out", "a\ndata: x", "d", "id: 1-0\ndata: d\n\n"},
		{"a type with CR is left out", "a\rb", "d", "id: 1-0\ndata: d\n\n"},
		{"a type with NUL is left out", "a\x00b", "d", "id: 1-0\ndata: d\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendEntry(nil, notice.Entry{ID: id, Event: tt.typ, Data: tt.data}))
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRetryPingGap(t *testing.T) {
	t.Parallel()
	var b []byte
	b = AppendRetry(b, 1500)
	b = append(b, Ping...)
	b = AppendGap(b, notice.ID{Ms: 7, Seq: 2})
	b = AppendEntry(b, notice.Entry{ID: notice.ID{Ms: 8}, Data: "x"})
	r := NewReader(bytes.NewReader(b))
	ev, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type != "gap" || ev.Data != `{"lastEventId":"7-2"}` || ev.HasID || ev.Retry != 1500 {
		t.Errorf("gap event: got %+v", ev)
	}
	ev, err = r.Next()
	if err != nil || ev.ID != "8-0" || ev.Data != "x" {
		t.Errorf("entry after gap: got %+v, %v", ev, err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("end: got %v, want EOF", err)
	}
}

// FuzzAppendEntry checks that whatever an entry holds, a browser reads
// back exactly one event with its id, its type (or "message" when the type
// is empty or cannot be framed) and its data's lines.
func FuzzAppendEntry(f *testing.F) {
	f.Add(uint64(1), uint64(0), "order", "hello")
	f.Add(uint64(2), uint64(5), "", "a\r\nb\rc\n")
	f.Add(uint64(3), uint64(0), "message", "\n\nid: 9\nevent: x\ndata: y\n\n")
	f.Add(uint64(1<<63), uint64(1<<64-1), "x\ndata: forged", ": comment\nretry: 1")
	f.Fuzz(func(t *testing.T, ms, seq uint64, typ, data string) {
		id := notice.ID{Ms: ms, Seq: seq}
		r := NewReader(bytes.NewReader(AppendEntry(nil, notice.Entry{ID: id, Event: typ, Data: data})))
		ev, err := r.Next()
		if err != nil {
			t.Fatalf("no event: %v", err)
		}
		wantType := typ
		if wantType == "" || strings.ContainsAny(typ, "\r\n\x00") {
			wantType = "message"
		}
		wantData := strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(data)
		if ev.ID != id.String() || !ev.HasID || ev.Type != wantType || ev.Data != wantData {
			t.Fatalf("got %+v, want id %s type %q data %q", ev, id, wantType, wantData)
		}
		if _, err := r.Next(); err != io.EOF {
			t.Fatalf("a second event was forged: %v", err)
		}
	})
}

func BenchmarkAppendEntry(b *testing.B) {
	e := notice.Entry{ID: notice.ID{Ms: 1732600000000, Seq: 3}, Event: "order.shipped", Data: `{"order":1234,"status":"shipped","eta":"2026-11-27"}`}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendEntry(buf[:0], e)
	}
}

// FuzzReader feeds arbitrary bytes to the stream parser that tests and the
// load tool rely on: it must end, never panic, and never return an event
// whose data it did not see.
func FuzzReader(f *testing.F) {
	f.Add([]byte("id: 1-0\nevent: x\ndata: a\r\ndata: b\r\r: ping\n\nretry: 10\n\n"))
	f.Add([]byte("data\n\n:\n\nid\x00: 5\ndata:\n\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bytes.NewReader(in))
		r.Comments = true
		for range len(in) + 1 {
			ev, err := r.Next()
			if err != nil {
				return
			}
			if !ev.Comment && !bytes.Contains(in, []byte("data")) {
				t.Fatalf("event %+v from input without a data field", ev)
			}
		}
		t.Fatalf("more events than input bytes")
	})
}
