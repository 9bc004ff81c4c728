package strictjson

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
)

func TestObject(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		want     string // the members seen, name=value;...
		wantErr  error
	}{
		{"members in order", `{"b":1,"a":{"x":[1,"y"]}}`, `b=1;a={"x":[1,"y"]};`, nil},
		{"empty object", ` {} `, ``, nil},
		{"names are exact", `{"sub":"bob","Sub":"alice","SUB":"eve"}`, `sub="bob";Sub="alice";SUB="eve";`, nil},
		{"escaped name is unescaped", `{"s\u0075b":1}`, `sub=1;`, nil},
		{"duplicate", `{"sub":"bob","sub":"alice"}`, ``, ErrDuplicate},
		{"duplicate through an escape", `{"sub":"bob","s\u0075b":"alice"}`, ``, ErrDuplicate},
		{"duplicate nested", `{"a":{"x":1,"x":2}}`, ``, ErrDuplicate},
		{"duplicate in an array", `{"a":[{"x":1},{"x":1,"x":2}]}`, ``, ErrDuplicate},
		{"same name in sibling objects", `{"a":{"x":1},"b":{"x":2}}`, `a={"x":1};b={"x":2};`, nil},
		{"invalid UTF-8 in a value", "{\"a\":\"\xff\"}", ``, ErrInvalid},
		{"invalid UTF-8 in a name", "{\"\xc3\":1}", ``, ErrInvalid},
		{"invalid UTF-8 nested", "{\"a\":[\"ok\",{\"b\":\"\xed\xa0\x80\"}]}", ``, ErrInvalid},
		{"lone surrogate escape", `{"a":"\ud800"}`, ``, ErrInvalid},
		{"surrogate pair escape", `{"a":"\ud83d\ude00"}`, `a="\ud83d\ude00";`, nil},
		{"array", `[1]`, ``, ErrInvalid},
		{"string", `"x"`, ``, ErrInvalid},
		{"empty", ``, ``, ErrInvalid},
		{"truncated", `{"a":`, ``, ErrInvalid},
		{"trailing comma", `{"a":1,}`, ``, ErrInvalid},
		{"two values", `{"a":1} {}`, ``, ErrInvalid},
		{"trailing garbage", `{"a":1} x`, ``, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got strings.Builder
			err := Object([]byte(tt.in), func(name string, v jsontext.Value) error {
				fmt.Fprintf(&got, "%s=%s;", name, v)
				return nil
			})
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("Object(%q) = %v, want %v", tt.in, err, tt.wantErr)
			}
			if err == nil && got.String() != tt.want {
				t.Errorf("Object(%q) saw %s, want %s", tt.in, got.String(), tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "jsontext") {
				t.Errorf("error %q names the parser's package", err)
			}
		})
	}
}

func TestObjectStopsAtMemberError(t *testing.T) {
	t.Parallel()
	stop := errors.New("stop")
	calls := 0
	err := Object([]byte(`{"a":1,"b":2}`), func(string, jsontext.Value) error {
		calls++
		return stop
	})
	if err != stop || calls != 1 {
		t.Fatalf("got %v after %d calls, want stop after 1", err, calls)
	}
}

func TestObjectMessages(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{`{"a":{"x":1,"x":2}}`, `duplicate object member name "x" within "/a"`},
		{"{\"a\":\"\xff\"}", `invalid UTF-8 within "/a"`},
		{`[]`, `not a JSON object`},
		{`{"a":1} {}`, `more than one JSON value`},
	}
	for _, tt := range tests {
		err := Object([]byte(tt.in), func(string, jsontext.Value) error { return nil })
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Object(%q) = %v, want it to say %q", tt.in, err, tt.want)
		}
	}
}

// FuzzObject holds Object to its promise: whatever it accepts is valid
// I-JSON whose top-level names it reported once each.
func FuzzObject(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":{"b":[1,{"c":"\u00e9"}]}}`, `{"a":1,"a":2}`, "{\"a\":\"\xff\"}", `{"a":"\ud800"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		seen := map[string]bool{}
		err := Object(b, func(name string, v jsontext.Value) error {
			if seen[name] {
				t.Fatalf("name %q reported twice", name)
			}
			seen[name] = true
			if !v.IsValid() {
				t.Fatalf("member %q: invalid value %q", name, v)
			}
			return nil
		})
		if err == nil && !jsontext.Value(b).IsValid() {
			t.Fatalf("accepted %q, which is not valid I-JSON", b)
		}
		if err != nil && !errors.Is(err, ErrDuplicate) && !errors.Is(err, ErrInvalid) {
			t.Fatalf("error %v wraps neither sentinel", err)
		}
	})
}
