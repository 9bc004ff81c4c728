// Package notice holds the few types every part of noticed agrees on: a
// stream entry, its id, and the rules for user ids and event types.
package notice

import (
	"errors"
	"strconv"
	"strings"
)

// ID is a stream entry id in Redis' "<ms>-<seq>" form. Ids of one user's
// stream strictly increase, so they order events and mark replay positions.
type ID struct {
	Ms  uint64
	Seq uint64
}

// Zero is the id before every entry: replaying after it replays everything.
var Zero ID

// Last is the largest id there is: no entry can follow it.
var Last = ID{Ms: 1<<64 - 1, Seq: 1<<64 - 1}

// ErrBadID is returned for text that is not an entry id.
var ErrBadID = errors.New("malformed event id")

// ParseID reads "<ms>-<seq>" or a bare "<ms>" (sequence 0), both in plain
// decimal digits, as Last-Event-ID and Redis give them.
func ParseID(s string) (ID, error) {
	msText, seqText, hasSeq := strings.Cut(s, "-")
	ms, err := parseUint(msText)
	if err != nil {
		return Zero, ErrBadID
	}
	if !hasSeq {
		return ID{Ms: ms}, nil
	}
	seq, err := parseUint(seqText)
	if err != nil {
		return Zero, ErrBadID
	}
	return ID{Ms: ms, Seq: seq}, nil
}

// parseUint accepts only ASCII digits: strconv alone would also take a sign
// or an underscore in some forms, which no entry id ever holds.
func parseUint(s string) (uint64, error) {
	if s == "" || len(s) > 20 {
		return 0, ErrBadID
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, ErrBadID
		}
	}
	return strconv.ParseUint(s, 10, 64)
}

// String gives the id as Redis writes it.
func (id ID) String() string {
	return string(id.AppendTo(make([]byte, 0, 41)))
}

// AppendTo appends the id's text to b, for encoders that avoid allocating.
func (id ID) AppendTo(b []byte) []byte {
	b = strconv.AppendUint(b, id.Ms, 10)
	b = append(b, '-')
	return strconv.AppendUint(b, id.Seq, 10)
}

// IsZero reports whether id is 0-0.
func (id ID) IsZero() bool { return id == Zero }

// Compare returns -1, 0 or +1 as id is before, equal to or after other.
func (id ID) Compare(other ID) int {
	switch {
	case id.Ms < other.Ms:
		return -1
	case id.Ms > other.Ms:
		return 1
	case id.Seq < other.Seq:
		return -1
	case id.Seq > other.Seq:
		return 1
	}
	return 0
}

// Less reports whether id comes before other.
func (id ID) Less(other ID) bool { return id.Compare(other) < 0 }
