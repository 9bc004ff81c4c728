package main

import (
	"bytes"
	"errors"
	"io"
	"strings"
)

// respReader reads one HTTP/1.x response to a stream's GET as its bytes
// arrive, in pieces of any size: the status line, the headers (only
// Transfer-Encoding and Content-Length matter), then the body (chunked, as
// Nchan sends it; close-delimited, as noticed does; or of a
// Content-Length), cut into lines for a lineSink. It is written by hand
// so that a stream costs a few words between reads rather than a
// goroutine, a bufio.Reader and http.ReadResponse's allocations; what it
// keeps between reads is only an unfinished line.
type respReader struct {
	state   uint8
	chunked bool
	status  int
	left    int64  // bytes left of the Content-Length body (-1: close-delimited) or of the chunk
	head    int    // bytes of status line and headers so far
	frame   []byte // an unfinished line of the head or of the chunk framing
	line    []byte // an unfinished line of the body
	errBody []byte // the start of a refusal's body
}

// lineSink takes the body's lines, without their LF or CRLF; a line
// aliases the reader's input until the call returns.
type lineSink interface{ bodyLine(line []byte) }

// The reader's states, in the order a response goes through them.
const (
	rsStatus    = iota // the status line
	rsHeader           // header lines, until a blank one
	rsBody             // a close-delimited or Content-Length body
	rsChunkSize        // a chunk's size line
	rsChunkData        // a chunk's bytes
	rsChunkEnd         // the CRLF after a chunk's bytes
	rsTrailer          // trailer lines after the last chunk, until a blank one
	rsDone             // the body is complete
)

const (
	// maxHead bounds the status line and headers together, maxFrame one
	// line of chunk framing (a size and any extension).
	maxHead  = 64 << 10
	maxFrame = 4 << 10
	// maxErrBody is how much of a refusal's body a statusError keeps.
	maxErrBody = 200
)

var (
	errBadStatus   = errors.New("malformed status line")
	errLongHead    = errors.New("headers over 64 KiB")
	errBadLength   = errors.New("bad Content-Length")
	errBadChunk    = errors.New("bad chunked encoding")
	errLongLine    = errors.New("line over 1 MiB")
	errLongFraming = errors.New("chunk size line over 4 KiB")
)

// reset readies the reader for a new response, keeping small buffers.
func (r *respReader) reset() {
	*r = respReader{frame: keepSmall(r.frame), line: keepSmall(r.line)}
}

// keepSmall empties b, keeping its storage unless it grew large.
func keepSmall(b []byte) []byte {
	if cap(b) > 256 {
		return nil
	}
	return b[:0]
}

// inHead says whether the status line and headers are still being read.
func (r *respReader) inHead() bool { return r.state <= rsHeader }

// feed takes the next bytes of the response and gives sink every line of
// a 200's body they complete. An error ends the response: a statusError
// for a refusal (once its body, or 200 bytes of it, is in), io.EOF when
// the body is complete, or what was malformed.
func (r *respReader) feed(p []byte, sink lineSink) error {
	for len(p) > 0 {
		switch r.state {
		case rsBody, rsChunkData:
			n := len(p)
			if r.left >= 0 && int64(n) > r.left {
				n = int(r.left)
			}
			if err := r.body(p[:n], sink); err != nil {
				return err
			}
			p = p[n:]
			if r.left >= 0 {
				r.left -= int64(n)
				if r.left == 0 {
					if r.state == rsBody {
						return r.end()
					}
					r.state = rsChunkEnd
				}
			}
		case rsDone:
			return r.end()
		default:
			line, rest, err := r.frameLine(p)
			if err != nil {
				return err
			}
			p = rest
			if line == nil {
				return nil
			}
			if err := r.framing(line); err != nil {
				return err
			}
			if r.state == rsDone {
				return r.end()
			}
		}
	}
	return nil
}

// eof is what the connection's end means: a refusal's statusError with
// what came of its body, io.EOF when the body had begun (an unfinished
// line is dropped), io.ErrUnexpectedEOF in the head.
func (r *respReader) eof() error {
	if r.inHead() {
		return io.ErrUnexpectedEOF
	}
	return r.end()
}

// end is the error that ends a response whose head is in.
func (r *respReader) end() error {
	if r.status != 200 {
		return &statusError{code: r.status, body: strings.TrimSpace(string(r.errBody))}
	}
	return io.EOF
}

// frameLine returns the next line of the head or the chunk framing,
// without its LF or CRLF, and the input after it; a nil line when p ended
// first (p is then kept in r.frame). The line aliases p or r.frame until
// the next call.
func (r *respReader) frameLine(p []byte) (line, rest []byte, err error) {
	limit := maxFrame
	if r.inHead() {
		limit = maxHead - r.head
	}
	i := bytes.IndexByte(p, '\n')
	if i < 0 {
		if len(r.frame)+len(p) > limit {
			return nil, nil, r.tooLong()
		}
		r.frame = append(r.frame, p...)
		return nil, nil, nil
	}
	if len(r.frame)+i+1 > limit {
		return nil, nil, r.tooLong()
	}
	line, rest = p[:i], p[i+1:]
	if len(r.frame) > 0 {
		r.frame = append(r.frame, line...)
		line = r.frame
		r.frame = keepSmall(r.frame)
	}
	if r.inHead() {
		r.head += len(line) + 1
	}
	return trimCR(line), rest, nil
}

func (r *respReader) tooLong() error {
	if r.inHead() {
		return errLongHead
	}
	return errLongFraming
}

// framing takes one whole line of the head or of the chunk framing.
func (r *respReader) framing(line []byte) error {
	switch r.state {
	case rsStatus:
		// "HTTP/1.x NNN reason", the reason optional.
		rest, ok := bytes.CutPrefix(line, []byte("HTTP/1."))
		if !ok || len(rest) < 5 || rest[0] < '0' || rest[0] > '9' || rest[1] != ' ' ||
			(len(rest) > 5 && rest[5] != ' ') {
			return errBadStatus
		}
		code := 0
		for _, c := range rest[2:5] {
			if c < '0' || c > '9' {
				return errBadStatus
			}
			code = code*10 + int(c-'0')
		}
		if code < 100 {
			return errBadStatus
		}
		r.status, r.left, r.state = code, -1, rsHeader
	case rsHeader:
		if len(line) == 0 {
			r.bodyStarts()
			return nil
		}
		name, value, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			return nil // not a header this client needs to understand
		}
		value = bytes.Trim(value, " \t")
		switch {
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			// Chunked when chunked is the last coding (RFC 9112 §6.3).
			last := value
			if i := bytes.LastIndexByte(value, ','); i >= 0 {
				last = bytes.Trim(value[i+1:], " \t")
			}
			r.chunked = bytes.EqualFold(last, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, ok := parseUint(value, 10, 18)
			if !ok {
				return errBadLength
			}
			r.left = n
		}
	case rsChunkSize:
		size, _, _ := bytes.Cut(line, []byte{';'})
		n, ok := parseUint(bytes.Trim(size, " \t"), 16, 15)
		if !ok {
			return errBadChunk
		}
		if n == 0 {
			r.state = rsTrailer
		} else {
			r.left, r.state = n, rsChunkData
		}
	case rsChunkEnd:
		if len(line) != 0 {
			return errBadChunk
		}
		r.state = rsChunkSize
	case rsTrailer:
		if len(line) == 0 {
			r.state = rsDone
		}
	}
	return nil
}

// bodyStarts chooses how the body is framed once the head is in.
func (r *respReader) bodyStarts() {
	switch {
	case r.status < 200 || r.status == 204 || r.status == 304:
		r.state = rsDone // no body
	case r.chunked:
		r.state = rsChunkSize
	case r.left == 0:
		r.state = rsDone
	default:
		r.state = rsBody // r.left: the Content-Length, or -1
	}
}

// body takes bytes of the body: a 200's are cut into lines for sink, a
// refusal's kept (the first 200 bytes) for its statusError.
func (r *respReader) body(p []byte, sink lineSink) error {
	if r.status != 200 {
		r.errBody = append(r.errBody, p[:min(len(p), maxErrBody-len(r.errBody))]...)
		if len(r.errBody) == maxErrBody {
			return r.end()
		}
		return nil
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if len(r.line)+len(p) >= maxLine {
				return errLongLine
			}
			r.line = append(r.line, p...)
			return nil
		}
		line := p[:i]
		p = p[i+1:]
		if len(r.line)+len(line) >= maxLine {
			return errLongLine
		}
		if len(r.line) > 0 {
			r.line = append(r.line, line...)
			line = r.line
		}
		sink.bodyLine(trimCR(line))
		r.line = keepSmall(r.line)
	}
	return nil
}

func trimCR(line []byte) []byte {
	if n := len(line); n > 0 && line[n-1] == '\r' {
		return line[:n-1]
	}
	return line
}

// parseUint parses a non-empty unsigned number in base 10 or 16 of at
// most maxDigits digits (so that it cannot overflow an int64).
func parseUint(b []byte, base int64, maxDigits int) (int64, bool) {
	if len(b) == 0 || len(b) > maxDigits {
		return 0, false
	}
	var n int64
	for _, c := range b {
		var d int64
		switch {
		case c >= '0' && c <= '9':
			d = int64(c - '0')
		case base == 16 && c >= 'a' && c <= 'f':
			d = int64(c-'a') + 10
		case base == 16 && c >= 'A' && c <= 'F':
			d = int64(c-'A') + 10
		default:
			return 0, false
		}
		n = n*base + d
	}
	return n, true
}
