package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// readResp feeds in to a respReader size bytes at a time, then the
// connection's end, and returns the body's lines and the error that ended
// the response.
func readResp(in []byte, size int) (lines []string, err error) {
	var r respReader
	sink := lineFunc(func(l []byte) { lines = append(lines, string(l)) })
	for len(in) > 0 {
		n := min(size, len(in))
		if err := r.feed(in[:n], sink); err != nil {
			return lines, err
		}
		in = in[n:]
	}
	return lines, r.eof()
}

// chunked encodes body in chunks of size bytes, with the last chunk.
func chunked(body string, size int) string {
	var b []byte
	for len(body) > 0 {
		n := min(size, len(body))
		b = strconv.AppendInt(b, int64(n), 16)
		b = append(b, "\r\n"...)
		b = append(b, body[:n]...)
		b = append(b, "\r\n"...)
		body = body[n:]
	}
	return string(b) + "0\r\n\r\n"
}

func TestRespReader(t *testing.T) {
	const ok = "HTTP/1.1 200 OK\r\n"
	body := "retry: 1000\n\nid: 1\r\ndata: x\r\n\r\n: ping\n"
	bodyLines := []string{"retry: 1000", "", "id: 1", "data: x", "", ": ping"}
	tests := []struct {
		name  string
		in    string
		lines []string
		err   error // compared by message
	}{
		{"close-delimited", ok + "Content-Type: text/event-stream\r\n\r\n" + body, bodyLines, io.EOF},
		{"unfinished last line is dropped", ok + "\r\n" + body + "id: 2", bodyLines, io.EOF},
		{"LF-only head, no reason", "HTTP/1.0 200\n\n" + body, bodyLines, io.EOF},
		{"chunked", ok + "Transfer-Encoding: chunked\r\n\r\n" + chunked(body, 5), bodyLines, io.EOF},
		{"chunked, one byte a chunk", ok + "transfer-encoding: Chunked\r\n\r\n" + chunked(body, 1), bodyLines, io.EOF},
		{"chunked, extensions and trailer", ok + "Transfer-Encoding: chunked\r\n\r\n" +
			"c;name=value\r\nretry: 1000\n\r\n0\r\nX-Trailer: 1\r\n\r\n", []string{"retry: 1000"}, io.EOF},
		{"chunked wins over Content-Length", ok + "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(body, 7), bodyLines, io.EOF},
		{"chunked is the last coding", ok + "Transfer-Encoding: gzip , chunked\r\n\r\n" + chunked(body, 7), bodyLines, io.EOF},
		{"chunked not last: close-delimited", ok + "Transfer-Encoding: chunked, gzip\r\n\r\n4\r\nab\n\r\n", []string{"4", "ab", ""}, io.EOF},
		{"chunked, connection ends in a chunk", ok + "Transfer-Encoding: chunked\r\n\r\n10\r\nretry: 1\nid", []string{"retry: 1"}, io.EOF},
		{"Content-Length", ok + "content-length:  12 \r\n\r\nabc\ndef\nghij", []string{"abc", "def"}, io.EOF},
		{"Content-Length 0", ok + "Content-Length: 0\r\n\r\n", nil, io.EOF},
		{"refused, Content-Length", "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 26\r\n\r\n{\"error\":\"instance full\"}\n",
			nil, &statusError{503, `{"error":"instance full"}`}},
		{"refused, chunked", "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked("no such page\n", 4),
			nil, &statusError{404, "no such page"}},
		{"refused, close-delimited", "HTTP/1.1 401 Unauthorized\r\n\r\n bad token ", nil, &statusError{401, "bad token"}},
		{"refused, body cut at 200 bytes", "HTTP/1.1 500 Oops\r\n\r\n" + strings.Repeat("e", 300), nil, &statusError{500, strings.Repeat("e", 200)}},
		{"refused, no body", "HTTP/1.1 204 No Content\r\n\r\n", nil, &statusError{204, ""}},
		{"connection ends in the head", ok + "Content-Type: text/event", nil, io.ErrUnexpectedEOF},
		{"connection ends at once", "", nil, io.ErrUnexpectedEOF},
		{"not HTTP", "SSH-2.0-OpenSSH_9.6\r\n", nil, errBadStatus},
		{"HTTP/2 status line", "HTTP/2 200\r\n\r\n", nil, errBadStatus},
		{"four-digit status", "HTTP/1.1 2000 OK\r\n\r\n", nil, errBadStatus},
		{"status under 100", "HTTP/1.1 099 OK\r\n\r\n", nil, errBadStatus},
		{"bad Content-Length", ok + "Content-Length: -1\r\n\r\n", nil, errBadLength},
		{"bad chunk size", ok + "Transfer-Encoding: chunked\r\n\r\nzz\r\n", nil, errBadChunk},
		{"chunk size overflowing", ok + "Transfer-Encoding: chunked\r\n\r\n1000000000000000\r\n", nil, errBadChunk},
		{"no CRLF after a chunk", ok + "Transfer-Encoding: chunked\r\n\r\n3\r\nab\nX\r\n", []string{"ab"}, errBadChunk},
		{"long chunk extension", ok + "Transfer-Encoding: chunked\r\n\r\n3;" + strings.Repeat("x", 5000) + "\r\n", nil, errLongFraming},
		{"long head", ok + "X: " + strings.Repeat("x", 70000) + "\r\n\r\n", nil, errLongHead},
		{"long line", ok + "\r\n" + "a\n" + strings.Repeat("x", maxLine) + "\nb\n", []string{"a"}, errLongLine},
		{"longest line", ok + "\r\n" + strings.Repeat("x", maxLine-1) + "\n", []string{strings.Repeat("x", maxLine-1)}, io.EOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, size := range []int{1, 2, 3, 7, 64, 1 << 30} {
				lines, err := readResp([]byte(tc.in), size)
				if !slices.Equal(lines, tc.lines) {
					t.Errorf("fed %d bytes at a time: lines %q, want %q", size, shorten(lines), shorten(tc.lines))
				}
				if fmt.Sprint(err) != fmt.Sprint(tc.err) {
					t.Errorf("fed %d bytes at a time: error %v, want %v", size, err, tc.err)
				}
				var se *statusError
				if _, want := tc.err.(*statusError); want != errors.As(err, &se) {
					t.Errorf("fed %d bytes at a time: error %T, want %T", size, err, tc.err)
				}
			}
		})
	}
}

// shorten keeps long lines short in test failures.
func shorten(lines []string) []string {
	out := slices.Clone(lines)
	for i, l := range out {
		if len(l) > 40 {
			out[i] = fmt.Sprintf("%s... (%d bytes)", l[:20], len(l))
		}
	}
	return out
}

func TestRespReaderReset(t *testing.T) {
	var r respReader
	var lines []string
	sink := lineFunc(func(l []byte) { lines = append(lines, string(l)) })
	if err := r.feed([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab\ncd\r\n"), sink); err != nil {
		t.Fatal(err)
	}
	r.reset()
	if err := r.feed([]byte("HTTP/1.1 200 OK\r\n\r\nef\n"), sink); err != nil {
		t.Fatal(err)
	}
	if want := []string{"ab", "ef"}; !slices.Equal(lines, want) {
		t.Errorf("lines %q, want %q: the unfinished line outlived reset", lines, want)
	}
}

// FuzzRespReader checks the reader on any input: fed whole or in pieces
// it gives the same lines and error, and a body sent chunked gives the
// same lines as sent close-delimited.
func FuzzRespReader(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n: hi\n\r\n0\r\n\r\n"), uint16(3))
	f.Add([]byte("HTTP/1.1 503 Unavailable\r\nContent-Length: 4\r\n\r\nfull"), uint16(1))
	f.Add([]byte("HTTP/1.0 200\n\nretry: 2000\n\nid: 1-0\r\ndata: u1 1 2 m\r\n\r\n"), uint16(7))
	f.Add([]byte("id: 1\ndata: x\n\n: ping\n"), uint16(2))
	f.Fuzz(func(t *testing.T, in []byte, split uint16) {
		if len(in) > 4096 {
			in = in[:4096] // longer finds nothing new, and slows the search
		}
		size := int(split%17) + 1
		whole, wholeErr := readResp(in, len(in)+1)
		pieces, piecesErr := readResp(in, size)
		if !slices.Equal(whole, pieces) || fmt.Sprint(wholeErr) != fmt.Sprint(piecesErr) {
			t.Fatalf("whole: %q, %v; in pieces of %d: %q, %v", whole, wholeErr, size, pieces, piecesErr)
		}
		if wholeErr == nil {
			t.Fatal("no error at the connection's end")
		}

		// in as the body of a 200, close-delimited and chunked.
		plain, plainErr := readResp(append([]byte("HTTP/1.1 200 OK\r\n\r\n"), in...), size)
		ch, chErr := readResp([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"+chunked(string(in), int(split>>8)+1)), size)
		if !slices.Equal(plain, ch) || fmt.Sprint(plainErr) != fmt.Sprint(chErr) {
			t.Fatalf("close-delimited: %q, %v; chunked: %q, %v", plain, plainErr, ch, chErr)
		}
		if !errors.Is(plainErr, io.EOF) || len(plain) != strings.Count(string(in), "\n") {
			t.Fatalf("body %q: %d lines, %v", in, len(plain), plainErr)
		}
	})
}
