package notice

import (
	"strings"
	"testing"
)

func TestParseID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want ID
		ok   bool
	}{
		{"0", Zero, true},
		{"0-0", Zero, true},
		{"1732600000000-3", ID{1732600000000, 3}, true},
		{"17", ID{17, 0}, true},
		{"18446744073709551615-18446744073709551615", ID{1<<64 - 1, 1<<64 - 1}, true},
		{"18446744073709551616-0", Zero, false},
		{"", Zero, false},
		{"-", Zero, false},
		{"1-", Zero, false},
		{"-1", Zero, false},
		{"+1-0", Zero, false},
		{"1-0-0", Zero, false},
		{" 1-0", Zero, false},
		{"1_0", Zero, false},
		{"abc", Zero, false},
		{"$", Zero, false},
	}
	for _, tt := range tests {
		got, err := ParseID(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseID(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestIDOrder(t *testing.T) {
	t.Parallel()
	ids := []ID{{0, 0}, {0, 1}, {1, 0}, {1, 5}, {2, 0}}
	for i := range ids {
		for j := range ids {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := ids[i].Compare(ids[j]); got != want {
				t.Errorf("%v.Compare(%v) = %d, want %d", ids[i], ids[j], got, want)
			}
		}
	}
}

func FuzzParseID(f *testing.F) {
	for _, s := range []string{"0", "1-0", "1732600000000-3", "x", "1-", "99999999999999999999-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID(s)
		if err != nil {
			return
		}
		// An accepted id always prints back to an equivalent id.
		again, err := ParseID(id.String())
		if err != nil || again != id {
			t.Fatalf("%q parsed to %v, which reparses to %v, %v", s, id, again, err)
		}
		if strings.ContainsAny(s, " \r\n\x00") {
			t.Fatalf("accepted %q", s)
		}
	})
}

func TestFromFields(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		fields []string
		event  string
		data   string
	}{
		{"data and event", []string{"event", "a", "data", "x"}, "a", "x"},
		{"data only", []string{"data", "x"}, "", "x"},
		{"fields as JSON in order", []string{"zeta", "1", "event", "e", "alpha", "two\n\"q\""}, "e", `{"zeta":"1","alpha":"two\n\"q\""}`},
		{"nothing", nil, "", "{}"},
	}
	for _, tt := range tests {
		got := FromFields(ID{1, 0}, tt.fields)
		if got.Event != tt.event || got.Data != tt.data {
			t.Errorf("%s: got %q %q, want %q %q", tt.name, got.Event, got.Data, tt.event, tt.data)
		}
	}
}

func TestValidUser(t *testing.T) {
	t.Parallel()
	good := []string{"42", "alice@example.com", "ünï", strings.Repeat("a", 200)}
	bad := []string{"", strings.Repeat("a", 201), "a b", "a\tb", "{a}", "a}", "a\x00", "a\x7f", "\xff", "a\u00a0b"}
	for _, u := range good {
		if err := ValidUser(u); err != nil {
			t.Errorf("ValidUser(%q) = %v", u, err)
		}
	}
	for _, u := range bad {
		if err := ValidUser(u); err == nil {
			t.Errorf("ValidUser(%q) accepted", u)
		}
	}
}

func TestValidEvent(t *testing.T) {
	t.Parallel()
	if err := ValidEventLen(strings.Repeat("e", 64), MaxEventLen); err != nil {
		t.Error(err)
	}
	for _, e := range []string{strings.Repeat("e", 65), "a\nb", "a\rb", "\x00"} {
		if ValidEventLen(e, MaxEventLen) == nil {
			t.Errorf("ValidEventLen(%q, MaxEventLen) accepted", e)
		}
	}
}

func TestValidLenLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"user at a lowered limit", ValidUserLen("abcd", 4), true},
		{"user over a lowered limit", ValidUserLen("abcde", 4), false},
		{"user limit above the contract's is the contract's", ValidUserLen(strings.Repeat("a", 201), 500), false},
		{"user limit 0 is the contract's", ValidUserLen(strings.Repeat("a", 200), 0), true},
		{"event at a lowered limit", ValidEventLen("abcd", 4), true},
		{"event over a lowered limit", ValidEventLen("abcde", 4), false},
		{"event limit above the contract's is the contract's", ValidEventLen(strings.Repeat("e", 65), 255), false},
		{"event rules still apply", ValidEventLen("a\nb", 10), false},
	}
	for _, tt := range tests {
		if got := tt.err == nil; got != tt.want {
			t.Errorf("%s: err %v, want ok=%v", tt.name, tt.err, tt.want)
		}
	}
}
