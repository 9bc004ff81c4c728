package server

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseProxies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    string // the prefixes, space-separated; "error" for an error
		trusted []string
		not     []string
	}{
		{"", "", nil, []string{"127.0.0.1"}},
		{" 127.0.0.1 , 10.0.0.0/8,::1,fd00::/8 ", "127.0.0.1/32 10.0.0.0/8 ::1/128 fd00::/8", []string{"127.0.0.1", "10.200.0.1", "::1", "fd12::1"}, []string{"127.0.0.2", "11.0.0.1", "::2"}},
		{"10.1.2.3/8", "10.0.0.0/8", []string{"10.9.9.9"}, nil},
		{"::ffff:192.168.0.0/112", "192.168.0.0/16", []string{"192.168.4.4"}, []string{"192.169.0.1"}},
		{"::ffff:127.0.0.1", "127.0.0.1/32", []string{"127.0.0.1"}, nil},
		{"localhost", "error", nil, nil},
		{"10.0.0.0/33", "error", nil, nil},
		{"fe80::1%eth0", "error", nil, nil},
		{"::ffff:0.0.0.0/64", "error", nil, nil},
	}
	for _, tt := range tests {
		p, err := ParseProxies(tt.in)
		if tt.want == "error" {
			if err == nil {
				t.Errorf("ParseProxies(%q) = %v, want an error", tt.in, p)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseProxies(%q): %v", tt.in, err)
			continue
		}
		var got []string
		for _, prefix := range p {
			got = append(got, prefix.String())
		}
		if strings.Join(got, " ") != tt.want {
			t.Errorf("ParseProxies(%q) = %q, want %q", tt.in, got, tt.want)
		}
		for _, a := range tt.trusted {
			if !p.trusts(netip.MustParseAddr(a).Unmap()) {
				t.Errorf("%q does not trust %s", tt.in, a)
			}
		}
		for _, a := range tt.not {
			if p.trusts(netip.MustParseAddr(a).Unmap()) {
				t.Errorf("%q trusts %s", tt.in, a)
			}
		}
	}
}

func TestClientAddr(t *testing.T) {
	t.Parallel()
	proxies, err := ParseProxies("127.0.0.1, 10.0.0.0/8, fd00::/8")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		peer string
		xff  []string
		want string
	}{
		{"no proxy, no header", "198.51.100.7:5555", nil, "198.51.100.7"},
		{"untrusted peer: header ignored", "198.51.100.7:5555", []string{"203.0.113.1"}, "198.51.100.7"},
		{"trusted peer, no header", "127.0.0.1:40000", nil, "127.0.0.1"},
		{"trusted peer names the client", "127.0.0.1:40000", []string{"203.0.113.1"}, "203.0.113.1"},
		{"spoofed entries left of the client are ignored", "127.0.0.1:40000", []string{"1.1.1.1, 203.0.113.1"}, "203.0.113.1"},
		{"a chain of trusted proxies is walked", "127.0.0.1:40000", []string{"1.1.1.1, 203.0.113.1, 10.0.0.5, 10.0.0.6"}, "203.0.113.1"},
		{"several header lines, in order", "127.0.0.1:40000", []string{"1.1.1.1, 203.0.113.1", "10.0.0.5"}, "203.0.113.1"},
		{"every entry trusted: the leftmost", "127.0.0.1:40000", []string{"10.0.0.9, 10.0.0.5"}, "10.0.0.9"},
		{"garbage stops the walk at the hop that wrote it", "127.0.0.1:40000", []string{"203.0.113.1, unknown, 10.0.0.5"}, "10.0.0.5"},
		{"garbage right away: the peer", "127.0.0.1:40000", []string{"203.0.113.1, nope"}, "127.0.0.1"},
		{"empty entries are skipped", "127.0.0.1:40000", []string{"203.0.113.1, ,", ""}, "203.0.113.1"},
		{"entries with ports", "127.0.0.1:40000", []string{"203.0.113.1:1234"}, "203.0.113.1"},
		{"IPv6 entries", "[fd00::1]:80", []string{"[2001:db8::7]:443, fd00::2"}, "2001:db8::7"},
		{"IPv6 in brackets without a port", "[fd00::1]:80", []string{"[2001:db8::7]"}, "2001:db8::7"},
		{"IPv4-mapped peer is the IPv4 proxy", "[::ffff:127.0.0.1]:80", []string{"203.0.113.1"}, "203.0.113.1"},
		{"zone dropped", "[fe80::1%eth0]:80", nil, "fe80::1"},
		{"peer not an address", "pipe", []string{"203.0.113.1"}, "invalid IP"},
	}
	for _, tt := range tests {
		if got := proxies.ClientAddr(tt.peer, tt.xff).String(); got != tt.want {
			t.Errorf("%s: ClientAddr(%q, %q) = %s, want %s", tt.name, tt.peer, tt.xff, got, tt.want)
		}
	}
	var none Proxies
	if got := none.ClientAddr("127.0.0.1:1", []string{"203.0.113.1"}).String(); got != "127.0.0.1" {
		t.Errorf("trusting no one: %s, want the peer", got)
	}
}

// FuzzForwardedFor: X-Forwarded-For is whatever a client sends. Whatever
// it holds, the client named is the peer or an address the header gave,
// never a trusted proxy unless every hop was one, and only ever read from
// a trusted peer.
func FuzzForwardedFor(f *testing.F) {
	f.Add("127.0.0.1:40000", "1.1.1.1, 203.0.113.1, 10.0.0.5")
	f.Add("198.51.100.7:5555", "203.0.113.1")
	f.Add("[fd00::1]:80", "[2001:db8::7]:443, fd00::2,,")
	f.Add("[::ffff:127.0.0.1]:80", "::ffff:10.0.0.1, unknown")
	f.Add("127.0.0.1:1", "[fe80::1%25eth0]:80")
	proxies, err := ParseProxies("127.0.0.1, 10.0.0.0/8, fd00::/8")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, peer, xff string) {
		got := proxies.ClientAddr(peer, []string{xff})
		p := parseHost(peer)
		if !p.IsValid() {
			if got.IsValid() {
				t.Fatalf("peer %q is not an address, but the client is %s", peer, got)
			}
			return
		}
		if !got.IsValid() || got.Zone() != "" || got.Is4In6() {
			t.Fatalf("client %v: want a valid address without zone or IPv4 mapping", got)
		}
		if !proxies.trusts(p) {
			if got != p {
				t.Fatalf("untrusted peer %s, client %s: the header was believed", p, got)
			}
			return
		}
		if got == p {
			return
		}
		found := false
		for _, e := range strings.Split(xff, ",") {
			if parseHost(strings.TrimSpace(e)) == got {
				found = true
			}
		}
		if !found {
			t.Fatalf("client %s is neither the peer nor in %q", got, xff)
		}
	})
}
