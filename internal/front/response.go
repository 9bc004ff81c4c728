package front

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// response is the http.ResponseWriter of a stream request served here. A
// stream hijacks it at once and writes its own head; anything else (a
// refusal: 401, 429, 503 ...) is buffered and sent whole, with
// Content-Length and Connection: close, when the handler returns.
type response struct {
	c        net.Conn
	req      *http.Request
	hdr      http.Header
	status   int
	body     bytes.Buffer
	hijacked bool
	behind   []byte // read past the request head; Hijack hands it on
}

// maxBody bounds what a refusal may buffer; stream handlers write a short
// JSON error at most.
const maxBody = 64 << 10

var errBodyTooLarge = errors.New("front: response body over 64 KiB")

func (w *response) Header() http.Header { return w.hdr }

func (w *response) WriteHeader(code int) {
	if w.status == 0 && !w.hijacked {
		w.status = code
	}
}

func (w *response) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	w.WriteHeader(http.StatusOK)
	if w.body.Len()+len(p) > maxBody {
		return 0, errBodyTooLarge
	}
	return w.body.Write(p)
}

// ReadFrom lets middleware that copies into writers use the buffer.
func (w *response) ReadFrom(r io.Reader) (int64, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	w.WriteHeader(http.StatusOK)
	n, err := w.body.ReadFrom(io.LimitReader(r, int64(maxBody-w.body.Len()+1)))
	if w.body.Len() > maxBody {
		return n, errBodyTooLarge
	}
	return n, err
}

// errNotStreaming is what flushing a response here returns: nothing goes
// out before the handler returns, and nothing here watches the connection
// for the client leaving, so a handler that streams without taking the
// connection over would hold its client's resources, unseen, until it
// fills the buffer. Failing its first flush ends it at once.
var errNotStreaming = errors.New("front: a response here is sent whole when the handler returns; take the connection over to stream")

// FlushError, not Flush, so that http.ResponseController (through any
// wrapper that unwraps) reports the error; a writer that is not an
// http.Flusher also keeps wrappers from swallowing it.
func (w *response) FlushError() error { return errNotStreaming }

// Hijack hands the connection over. The returned buffers are minimal (the
// stream handler writes and watches the connection directly); the reader
// holds, buffered, what the client sent past its request head, as
// net/http's does, so that the handler can tell it was sent.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.status != 0 || w.body.Len() > 0 {
		return nil, nil, errors.New("front: hijack after a response was started")
	}
	w.hijacked = true
	r := bufio.NewReaderSize(w.c, 16)
	if len(w.behind) > 0 {
		r = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(w.behind), w.c), len(w.behind))
		_, _ = r.Peek(len(w.behind)) // served by the first reader: the connection is not read
	}
	return w.c, bufio.NewReadWriter(r, bufio.NewWriterSize(w.c, 16)), nil
}

// SetWriteDeadline and SetReadDeadline serve http.ResponseController.
func (w *response) SetWriteDeadline(t time.Time) error { return w.c.SetWriteDeadline(t) }
func (w *response) SetReadDeadline(t time.Time) error  { return w.c.SetReadDeadline(t) }

// finish sends the buffered response and closes the connection.
func (w *response) finish() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	h := w.hdr
	if h.Get("Content-Type") == "" && w.body.Len() > 0 {
		h.Set("Content-Type", http.DetectContentType(w.body.Bytes()))
	}
	h.Del("Transfer-Encoding")
	if bodyAllowed(w.status) {
		h.Set("Content-Length", strconv.Itoa(w.body.Len()))
	}
	h.Set("Connection", "close")
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	var b bytes.Buffer
	b.Grow(256 + w.body.Len())
	b.WriteString("HTTP/1.1 ")
	b.WriteString(strconv.Itoa(w.status))
	b.WriteByte(' ')
	b.WriteString(http.StatusText(w.status))
	b.WriteString("\r\n")
	_ = h.Write(&b) // sanitises CR and LF in values
	b.WriteString("\r\n")
	if bodyAllowed(w.status) && w.req.Method != http.MethodHead {
		b.Write(w.body.Bytes())
	}
	_ = w.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = w.c.Write(b.Bytes())
	closeWrite(w.c)
}

func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// closeWrite ends the response and the connection. The client may still
// be sending (a body nobody asked for); closing with unread input would
// reset the connection and could lose the response on its way, so the
// write side closes first and what arrives is read and dropped for a
// moment, as net/http does.
func closeWrite(c net.Conn) {
	if tc, ok := c.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, _ = io.Copy(io.Discard, io.LimitReader(c, 256<<10))
	}
	c.Close()
}
