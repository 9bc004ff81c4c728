package server

import (
	"io"
	"net/http"
	"time"
)

// unreadGrace is how long the rest of an unread body may take to arrive,
// to be dropped, once the answer has gone out.
const unreadGrace = 500 * time.Millisecond

// closeUnread closes the connection after answering a request whose body
// was not read to its end: a refusal before the token is checked (401,
// 403), a body over the limit (413), a path that reads none. Left to
// itself, net/http reads what is left of such a body (up to 256 KiB),
// before it sends the answer and again after, with no deadline: a client
// that declared a body and never sent it got no answer, and held a
// connection and a goroutine for as long as it stayed connected, without
// a token. Now the answer goes out at once, and what is left of the body
// gets a moment (so that a client still sending it is not reset before it
// reads the answer) before the connection closes. A body read to its end
// keeps the connection alive as usual.
func closeUnread(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength == 0 { // no body; -1 is chunked
			next.ServeHTTP(w, r)
			return
		}
		body := &eofReader{ReadCloser: r.Body}
		r.Body = body
		next.ServeHTTP(&unreadWriter{ResponseWriter: w, body: body}, r)
	})
}

// eofReader records that its body was read to the end.
type eofReader struct {
	io.ReadCloser
	eof bool
}

func (b *eofReader) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// unreadWriter asks for the connection to be closed when the answer
// starts before the body was read to its end.
type unreadWriter struct {
	http.ResponseWriter
	body    *eofReader
	started bool
}

func (w *unreadWriter) WriteHeader(code int) {
	if !w.started {
		w.started = true
		if !w.body.eof {
			w.Header().Set("Connection", "close")
			_ = http.NewResponseController(w.ResponseWriter).SetReadDeadline(time.Now().Add(unreadGrace))
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *unreadWriter) Write(p []byte) (int, error) {
	if !w.started {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection (the publish
// body's read deadline, a flush).
func (w *unreadWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
