// Package strictjson reads a JSON object the one way it can be read: member
// names matched exactly, each at most once, all text valid UTF-8 (RFC 7493,
// I-JSON). encoding/json is lenient on all three: it matches names without
// regard to case, lets the last of two equal names win, and turns invalid
// UTF-8 into U+FFFD. Two readers of one token or body can then disagree on
// what it says (a signed {"sub":"bob","Sub":"alice"} was alice's), and
// different user ids can collapse into one. Tokens and publish bodies are
// read through here first.
package strictjson

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/go-json-experiment/json/jsontext"
)

// The errors Object wraps: ErrDuplicate for a name given twice in one
// object, at any depth; ErrInvalid for everything else it refuses.
var (
	ErrDuplicate = errors.New("duplicate member name")
	ErrInvalid   = errors.New("invalid JSON")
)

// Error is a refusal with the parser's own detail, which names where in
// the input the problem is (a JSON pointer and a byte offset).
type Error struct {
	kind   error // ErrDuplicate or ErrInvalid
	detail string
}

func (e *Error) Error() string { return e.detail }
func (e *Error) Unwrap() error { return e.kind }

// Object reads b, which must hold one JSON object and nothing else but
// white space, and calls member with each member's exact name and raw value
// in the order given. The value is valid only during the call: keep a copy
// to hold it longer. Nested objects and arrays are checked as a whole
// before member sees them. The first error member returns stops the walk
// and is returned as it is.
func Object(b []byte, member func(name string, value jsontext.Value) error) error {
	dec := decoders.Get().(*jsontext.Decoder)
	defer func() {
		dec.Reset(noInput) // lets go of b
		decoders.Put(dec)
	}()
	// A *bytes.Buffer is read in place, without a copy.
	dec.Reset(bytes.NewBuffer(b))
	tok, err := dec.ReadToken()
	if err != nil {
		return refusal(err)
	}
	if tok.Kind() != '{' {
		return &Error{ErrInvalid, "not a JSON object"}
	}
	for dec.PeekKind() == '"' {
		tok, err := dec.ReadToken()
		if err != nil {
			return refusal(err)
		}
		name := tok.String() // before the next read voids tok
		value, err := dec.ReadValue()
		if err != nil {
			return refusal(err)
		}
		if err := member(name, value); err != nil {
			return err
		}
	}
	if _, err := dec.ReadToken(); err != nil { // the closing brace
		return refusal(err)
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		if err != nil {
			return refusal(err)
		}
		return &Error{ErrInvalid, fmt.Sprintf("more than one JSON value (another starts after byte %d)", dec.InputOffset())}
	}
	return nil
}

// Decoders are reused: every token checked and every publish goes through
// here, and a decoder keeps the buffers it grew for the names it has seen.
var (
	decoders = sync.Pool{New: func() any { return jsontext.NewDecoder(noInput) }}
	noInput  = bytes.NewReader(nil)
)

// refusal keeps the parser's message, which says what and where, without
// the name of the package that wrote it.
func refusal(err error) error {
	kind := ErrInvalid
	if errors.Is(err, jsontext.ErrDuplicateName) {
		kind = ErrDuplicate
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &Error{kind, "unexpected end of JSON input"}
	}
	return &Error{kind, strings.TrimPrefix(err.Error(), "jsontext: ")}
}
