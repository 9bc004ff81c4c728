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
	// batch holds the events of an "events" body, each to its own user,
	// in the order given; users, event and data are then unused.
	batch []routing.Message
}

// jsonBody is the JSON form; user ids may be strings or integers, since
// producers often hold them as numbers.
type jsonBody struct {
	User   *userID
	Users  []userID
	Event  *string
	Data   json.RawMessage
	Events []routing.Message
	batch  bool // "events" was given (and not null)
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
		if name == "events" {
			if v.Kind() == 'n' {
				return nil
			}
			b.batch = true
			var err error
			b.Events, err = parseEvents(v, lim)
			return err
		}
		return b.member(name, v, true)
	})
	if err != nil {
		return publishRequest{}, fmt.Errorf("%w: %v", ErrBadBody, err)
	}
	var req publishRequest
	switch {
	case b.batch && (b.User != nil || b.Users != nil):
		return req, fmt.Errorf("%w: give either \"events\" or \"user\"/\"users\", not both", ErrBadBody)
	case b.batch && (b.Event != nil || b.Data != nil):
		return req, fmt.Errorf("%w: with \"events\", each event carries its own \"event\" and \"data\"", ErrBadBody)
	case b.batch:
		req.batch = b.Events
		return req, nil // each event was checked as it was read
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
		return req, fmt.Errorf("%w: \"user\", \"users\" or \"events\" is required", ErrBadBody)
	}
	if b.Event != nil {
		req.event = *b.Event
	}
	req.data = dataText(b.Data)
	return req, req.check(lim)
}

// member reads one member of a publish body, or with many false of one
// event of a batch, which names its one user and has no "users".
func (b *jsonBody) member(name string, v jsontext.Value, many bool) error {
	switch name {
	case "user", "event", "data":
	case "users":
		if many {
			break
		}
		fallthrough
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
}

// parseEvents reads the "events" array of a batch: each element an object
// with the members of a one-user publish, checked as one would be. v has
// been read whole (duplicates and UTF-8 checked) before it gets here.
func parseEvents(v jsontext.Value, lim limits) ([]routing.Message, error) {
	if v.Kind() != '[' {
		return nil, errors.New(`"events" must be an array of {"user","event","data"} objects`)
	}
	dec := jsontext.NewDecoder(bytes.NewReader(v))
	if _, err := dec.ReadToken(); err != nil { // [
		return nil, err
	}
	var msgs []routing.Message
	for dec.PeekKind() != ']' {
		elem, err := dec.ReadValue()
		if err != nil {
			return nil, err
		}
		i := len(msgs)
		if i == lim.users {
			return nil, fmt.Errorf("at most %d events per publish", lim.users)
		}
		if elem.Kind() != '{' {
			return nil, fmt.Errorf("events[%d] must be an object", i)
		}
		var b jsonBody
		if err := strictjson.Object(elem, func(name string, v jsontext.Value) error {
			return b.member(name, v, false)
		}); err != nil {
			return nil, fmt.Errorf("events[%d]: %v", i, err)
		}
		if b.User == nil {
			return nil, fmt.Errorf("events[%d]: \"user\" is required", i)
		}
		req := publishRequest{users: []string{string(*b.User)}, data: dataText(b.Data)}
		if b.Event != nil {
			req.event = *b.Event
		}
		if err := req.validate(lim); err != nil {
			return nil, fmt.Errorf("events[%d]: %w", i, err)
		}
		msgs = append(msgs, req.messages()[0])
	}
	if len(msgs) == 0 {
		return nil, errors.New(`"events" is empty`)
	}
	return msgs, nil
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
	if err := req.validate(lim); err != nil {
		return fmt.Errorf("%w: %v", ErrBadBody, err)
	}
	return nil
}

// validate is check without the ErrBadBody its caller wraps it in.
func (req *publishRequest) validate(lim limits) error {
	if len(req.users) == 0 {
		return errors.New(`"users" is empty`)
	}
	if len(req.users) > lim.users {
		return fmt.Errorf("at most %d users per publish", lim.users)
	}
	seen := make(map[string]bool, len(req.users))
	unique := req.users[:0:0]
	for _, u := range req.users {
		if err := notice.ValidUserLen(u, lim.userLen); err != nil {
			return fmt.Errorf("user %q: %v", truncate(u, 40), err)
		}
		if !seen[u] {
			seen[u] = true
			unique = append(unique, u)
		}
	}
	req.users = unique
	if err := notice.ValidEventLen(req.event, lim.eventLen); err != nil {
		return err
	}
	if req.event == inbox.EventRead {
		// The user's read marks are "read" entries: a published one
		// would be taken for the user's own read state.
		return fmt.Errorf("event type %q is reserved for read state (POST /notice/read)", inbox.EventRead)
	}
	// A JSON body's text is checked as it is parsed; a form's data is not,
	// and an event stream is text: bytes that are none would reach the
	// browser as U+FFFD.
	if !utf8.ValidString(req.data) {
		return errors.New("data is not UTF-8")
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
	if req.batch != nil {
		return req.batch
	}
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
