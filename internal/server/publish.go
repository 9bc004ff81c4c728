package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/noticed/noticed/internal/inbox"
	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/routing"
	"github.com/noticed/noticed/internal/strictjson"
)

// publishRequest is a parsed POST /notice body.
type publishRequest struct {
	users []string // unique, in the order given
	many  bool     // asked with "users": answer with "ids"
	event string
	data  string
}

// jsonBody is the JSON form; user ids may be strings or integers, since
// producers often hold them as numbers.
type jsonBody struct {
	User  *userID
	Users []userID
	Event *string
	Data  json.RawMessage
}

type userID string

func (u *userID) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*u = userID(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil || bytes.ContainsAny(b, ".eE") {
		return fmt.Errorf("a user id must be a string or an integer, not %s", truncate(string(b), 20))
	}
	*u = userID(n)
	return nil
}

// limits bound what one publish may ask for.
type limits struct {
	users    int // users named (-max-users-per-publish)
	userLen  int // bytes of each user id (-max-user-len)
	eventLen int // bytes of the event type (-max-event-len)
}

// parsePublish reads a JSON or form body within lim.
func parsePublish(body []byte, contentType string, lim limits) (publishRequest, error) {
	mediaType, _, _ := mime.ParseMediaType(contentType)
	switch {
	case mediaType == "application/x-www-form-urlencoded":
		return parseForm(body, lim)
	case mediaType == "application/json", mediaType == "" && len(bytes.TrimSpace(body)) > 0 && bytes.TrimSpace(body)[0] == '{':
		return parseJSON(body, lim)
	}
	return publishRequest{}, fmt.Errorf("%w: Content-Type must be application/json or application/x-www-form-urlencoded", ErrBadBody)
}

// parseJSON reads the JSON form through strictjson: member names exactly
// as the contract spells them ("User" is an unknown field, not user), each
// at most once, and all text valid UTF-8. encoding/json alone would match
// names in any case, let the last of two win, and turn invalid UTF-8 into
// U+FFFD, so that different user ids would collapse into one user who is
// none of them.
func parseJSON(body []byte, lim limits) (publishRequest, error) {
	var b jsonBody
	err := strictjson.Object(body, func(name string, v jsontext.Value) error {
		switch name {
		case "user", "users", "event", "data":
		default:
			return fmt.Errorf("unknown field %q", name)
		}
		if v.Kind() == 'n' {
			return nil // null: as if not given
		}
		var err error
		switch name {
		case "user":
			b.User = new(userID)
			err = json.Unmarshal(v, b.User)
		case "users":
			if v.Kind() != '[' {
				return errors.New(`"users" must be an array of user ids`)
			}
			err = json.Unmarshal(v, &b.Users)
		case "event":
			if v.Kind() != '"' {
				return errors.New(`"event" must be a string`)
			}
			b.Event = new(string)
			err = json.Unmarshal(v, b.Event)
		case "data":
			b.Data = bytes.Clone(v)
		}
		return err
	})
	if err != nil {
		return publishRequest{}, fmt.Errorf("%w: %v", ErrBadBody, err)
	}
	var req publishRequest
	switch {
	case b.User != nil && b.Users != nil:
		return req, fmt.Errorf("%w: give either \"user\" or \"users\", not both", ErrBadBody)
	case b.User != nil:
		req.users = []string{string(*b.User)}
	case b.Users != nil:
		req.many = true
		for _, u := range b.Users {
			req.users = append(req.users, string(u))
		}
	default:
		return req, fmt.Errorf("%w: \"user\" or \"users\" is required", ErrBadBody)
	}
	if b.Event != nil {
		req.event = *b.Event
	}
	req.data = dataText(b.Data)
	return req, req.check(lim)
}

// dataText stores a JSON string as its text and any other value as its
// compact JSON, so `"data":{"a":1}` arrives as {"a":1}.
func dataText(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
		return s
	}
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return string(raw) // the decoder already checked it is valid
	}
	return buf.String()
}

func parseForm(body []byte, lim limits) (publishRequest, error) {
	v, err := url.ParseQuery(string(body))
	if err != nil {
		return publishRequest{}, fmt.Errorf("%w: malformed form: %v", ErrBadBody, err)
	}
	for key := range v {
		switch key {
		case "user", "users", "event", "data":
		default:
			return publishRequest{}, fmt.Errorf("%w: unknown field %q", ErrBadBody, key)
		}
	}
	for _, key := range []string{"user", "event", "data"} {
		if len(v[key]) > 1 {
			return publishRequest{}, fmt.Errorf("%w: %q given more than once (use \"users\" for several users)", ErrBadBody, key)
		}
	}
	var req publishRequest
	switch {
	case v.Has("user") && v.Has("users"):
		return req, fmt.Errorf("%w: give either \"user\" or \"users\", not both", ErrBadBody)
	case v.Has("user"):
		req.users = v["user"]
	case v.Has("users"):
		req.users, req.many = v["users"], true
	default:
		return req, fmt.Errorf("%w: \"user\" or \"users\" is required", ErrBadBody)
	}
	req.event = v.Get("event")
	req.data = v.Get("data")
	return req, req.check(lim)
}

// check validates the request and removes repeated users: each user gets
// one entry per publish.
func (req *publishRequest) check(lim limits) error {
	if len(req.users) == 0 {
		return fmt.Errorf("%w: \"users\" is empty", ErrBadBody)
	}
	if len(req.users) > lim.users {
		return fmt.Errorf("%w: at most %d users per publish", ErrBadBody, lim.users)
	}
	seen := make(map[string]bool, len(req.users))
	unique := req.users[:0:0]
	for _, u := range req.users {
		if err := notice.ValidUserLen(u, lim.userLen); err != nil {
			return fmt.Errorf("%w: user %q: %v", ErrBadBody, truncate(u, 40), err)
		}
		if !seen[u] {
			seen[u] = true
			unique = append(unique, u)
		}
	}
	req.users = unique
	if err := notice.ValidEventLen(req.event, lim.eventLen); err != nil {
		return fmt.Errorf("%w: %v", ErrBadBody, err)
	}
	if req.event == inbox.EventRead {
		// The user's read marks are "read" entries: a published one
		// would be taken for the user's own read state.
		return fmt.Errorf("%w: event type %q is reserved for read state (POST /notice/read)", ErrBadBody, inbox.EventRead)
	}
	// A JSON body's text is checked as it is parsed; a form's data is not,
	// and an event stream is text: bytes that are none would reach the
	// browser as U+FFFD.
	if !utf8.ValidString(req.data) {
		return fmt.Errorf("%w: data is not UTF-8", ErrBadBody)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func (req publishRequest) messages() []routing.Message {
	msgs := make([]routing.Message, len(req.users))
	for i, u := range req.users {
		msgs[i] = routing.Message{User: u, Event: req.event, Data: req.data}
	}
	return msgs
}

// readBody reads at most max bytes, answering ErrTooLarge past that.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	if r.ContentLength > max {
		return nil, fmt.Errorf("%w: over %d bytes", ErrTooLarge, max)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, fmt.Errorf("%w: over %d bytes", ErrTooLarge, max)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, ErrTimeout
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadBody, err)
	}
	return body, nil
}
