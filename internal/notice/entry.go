package notice

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// Entry is one event of a user's stream, as it is delivered.
type Entry struct {
	ID ID
	// Event is the entry's "event" field; empty when absent.
	Event string
	// Data is the entry's "data" field or, when it has none, a JSON object
	// of its other fields (see FromFields).
	Data string
}

// FromFields builds an entry from a stream entry's field/value pairs, in the
// order Redis keeps them: "event" gives the type, "data" the payload; an
// entry without "data" is delivered as a JSON object of its fields other
// than "event", in their order, so producers that XADD structured fields
// still reach the browser intact.
func FromFields(id ID, fields []string) Entry {
	e := Entry{ID: id}
	hasData := false
	for i := 0; i+1 < len(fields); i += 2 {
		switch fields[i] {
		case "event":
			e.Event = fields[i+1]
		case "data":
			if !hasData {
				e.Data, hasData = fields[i+1], true
			}
		}
	}
	if hasData {
		return e
	}
	buf := []byte{'{'}
	first := true
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i] == "event" {
			continue
		}
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = appendJSONString(buf, fields[i])
		buf = append(buf, ':')
		buf = appendJSONString(buf, fields[i+1])
	}
	e.Data = string(append(buf, '}'))
	return e
}

func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

// Limits on what a user id and an event type may hold.
const (
	MaxUserLen  = 200
	MaxEventLen = 64
)

var (
	ErrBadUser  = errors.New("bad user id")
	ErrBadEvent = errors.New("bad event type")
)

// ValidUser checks a user id: 1 to 200 bytes of UTF-8 with no control
// characters, no white space and no braces (the braces delimit the Redis
// Cluster hash tag in the stream key).
func ValidUser(user string) error { return ValidUserLen(user, MaxUserLen) }

// ValidUserLen is ValidUser with a tighter length limit (-max-user-len);
// maxLen outside 1..MaxUserLen means MaxUserLen.
func ValidUserLen(user string, maxLen int) error {
	if maxLen < 1 || maxLen > MaxUserLen {
		maxLen = MaxUserLen
	}
	if len(user) == 0 || len(user) > maxLen {
		return fmt.Errorf("%w: must be 1 to %d bytes", ErrBadUser, maxLen)
	}
	if !utf8.ValidString(user) {
		return fmt.Errorf("%w: not UTF-8", ErrBadUser)
	}
	for _, r := range user {
		if unicode.IsControl(r) || unicode.IsSpace(r) || r == '{' || r == '}' {
			return fmt.Errorf("%w: %q is not allowed", ErrBadUser, r)
		}
	}
	return nil
}

// ValidEventLen checks an event type: at most maxLen bytes (-max-event-len;
// outside 1..MaxEventLen, MaxEventLen) of UTF-8 with no control characters.
// Empty means the default type, "message".
func ValidEventLen(event string, maxLen int) error {
	if maxLen < 1 || maxLen > MaxEventLen {
		maxLen = MaxEventLen
	}
	if len(event) > maxLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrBadEvent, maxLen)
	}
	if !utf8.ValidString(event) {
		return fmt.Errorf("%w: not UTF-8", ErrBadEvent)
	}
	for _, r := range event {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: control character %q", ErrBadEvent, r)
		}
	}
	return nil
}
