package filestore

import (
	"errors"
	"testing"

	"github.com/noticed/noticed/internal/notice"
)

func TestEntryRoundTrip(t *testing.T) {
	tests := []struct{ event, data string }{
		{"", ""},
		{"order.shipped", `{"order":1234}`},
		{"", "line1\nline2"},
		{string(make([]byte, 200)), "x"},
	}
	for _, tt := range tests {
		id := notice.ID{Ms: 1, Seq: 2}
		got, err := decodeEntry(id, encodeEntry(tt.event, tt.data))
		if err != nil || got != (notice.Entry{ID: id, Event: tt.event, Data: tt.data}) {
			t.Errorf("%q %q: got %+v, %v", tt.event, tt.data, got, err)
		}
	}
	for _, bad := range [][]byte{nil, {0x80}, {5, 'a'}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}} {
		if _, err := decodeEntry(notice.Zero, bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%x: %v, want ErrCorrupt", bad, err)
		}
	}
}

// FuzzDecodeEntry holds the reader of the file's bytes to never panic, and
// to give back what the writer wrote.
func FuzzDecodeEntry(f *testing.F) {
	f.Add([]byte{}, "", "")
	f.Add([]byte{3, 'a', 'b', 'c', 'd'}, "order.shipped", "{}")
	f.Fuzz(func(t *testing.T, raw []byte, event, data string) {
		if e, err := decodeEntry(notice.Zero, raw); err == nil && len(e.Event)+len(e.Data) > len(raw) {
			t.Fatalf("%x decoded to more than it holds: %+v", raw, e)
		}
		got, err := decodeEntry(notice.Zero, encodeEntry(event, data))
		if err != nil || got.Event != event || got.Data != data {
			t.Fatalf("round trip of %q %q: %+v, %v", event, data, got, err)
		}
	})
}
