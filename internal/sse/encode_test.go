package sse

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/noticed/noticed/internal/notice"
)

func mustField(t testing.TB, s string) Field {
	t.Helper()
	f, err := NewField(s)
	if err != nil {
		t.Fatalf("NewField(%q): %v", s, err)
	}
	return f
}

func TestAppendEvent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, id, typ, data, want string
	}{
		{"plain", "1-0", "", "hi", "id: 1-0\ndata: hi\n\n"},
		{"typed", "1-0", "order.shipped", "{}", "id: 1-0\nevent: order.shipped\ndata: {}\n\n"},
		{"message type is implied", "1-0", "message", "x", "id: 1-0\ndata: x\n\n"},
		{"empty data still dispatches", "1-0", "", "", "id: 1-0\ndata: \n\n"},
		{"lines split on LF", "", "", "a\nb", "data: a\ndata: b\n\n"},
		{"lines split on CRLF", "", "", "a\r\nb", "data: a\ndata: b\n\n"},
		{"lines split on CR", "", "", "a\rb", "data: a\ndata: b\n\n"},
		{"trailing newline kept", "", "", "a\n", "data: a\ndata: \n\n"},
		{"leading space kept", "", "", " a", "data:  a\n\n"},
		{"forged fields stay data", "1-0", "", "x\n\nid: 9-9\nevent: evil\ndata: y", "id: 1-0\ndata: x\ndata: \ndata: id: 9-9\ndata: event: evil\ndata: data: y\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendEvent(nil, mustField(t, tt.id), mustField(t, tt.typ), tt.data))
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNewFieldRefusesLineBreaks(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"a\nb", "a\rb", "a\x00b", "\n"} {
		if _, err := NewField(s); err == nil {
			t.Errorf("NewField(%q) built a field", s)
		}
	}
}

func TestAppendEntry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		e    notice.Entry
		want string
	}{
		{"typed", notice.Entry{ID: notice.ID{Ms: 5, Seq: 1}, Event: "a", Data: "d"}, "id: 5-1\nevent: a\ndata: d\n\n"},
		{"event that would forge is dropped", notice.Entry{ID: notice.ID{Ms: 5}, Event: "a\ndata: x", Data: "d"}, "id: 5-0\ndata: d\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(AppendEntry(nil, tt.e)); got != tt.want {
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

// FuzzAppendEvent checks that whatever the payload, a browser reads back
// exactly one event with the id and type given and the payload's lines.
func FuzzAppendEvent(f *testing.F) {
	f.Add("1-0", "order", "hello")
	f.Add("2-5", "", "a\r\nb\rc\n")
	f.Add("3-0", "message", "\n\nid: 9\nevent: x\ndata: y\n\n")
	f.Add("", "x", ": comment\nretry: 1")
	f.Fuzz(func(t *testing.T, id, typ, data string) {
		idf, err1 := NewField(id)
		typf, err2 := NewField(typ)
		if err1 != nil || err2 != nil {
			if !strings.ContainsAny(id+typ, "\r\n\x00") {
				t.Fatalf("clean field refused: %q %q", id, typ)
			}
			return
		}
		r := NewReader(bytes.NewReader(AppendEvent(nil, idf, typf, data)))
		ev, err := r.Next()
		if err != nil {
			t.Fatalf("no event: %v", err)
		}
		wantType := typ
		if wantType == "" {
			wantType = "message"
		}
		wantData := strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(data)
		if ev.Type != wantType || ev.Data != wantData || (id != "" && ev.ID != id) {
			t.Fatalf("got %+v, want id %q type %q data %q", ev, id, wantType, wantData)
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
