package server

import (
	"fmt"
	"net/netip"
	"strings"
)

// Proxies are the peers whose X-Forwarded-For noticed believes
// (-trusted-proxies). Anyone can send the header, so from any other peer it
// is ignored.
type Proxies []netip.Prefix

// ParseProxies reads a comma-separated list of IP addresses and CIDR
// prefixes ("10.0.0.0/8, 127.0.0.1, ::1"). Empty trusts no one.
func ParseProxies(list string) (Proxies, error) {
	var out Proxies
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if strings.Contains(item, "/") {
			p, err := netip.ParsePrefix(item)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q: want an IP address or a CIDR prefix", item)
			}
			if p.Addr().Is4In6() {
				// ::ffff:10.0.0.0/104 and 10.0.0.0/8 are the same peers;
				// addresses are compared unmapped.
				if p.Bits() < 96 {
					return nil, fmt.Errorf("trusted proxy %q: an IPv4-mapped prefix needs at least 96 bits", item)
				}
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(item)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("trusted proxy %q: want an IP address or a CIDR prefix", item)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

func (p Proxies) trusts(a netip.Addr) bool {
	for _, prefix := range p {
		if prefix.Contains(a) {
			return true
		}
	}
	return false
}

// ClientAddr is the address noticed names a request's client by: its TCP
// peer, unless the peer is a trusted proxy; then the nearest address in
// X-Forwarded-For that is not a trusted proxy, walking from the right (each
// proxy appends the address it was reached from, so only the entries added
// by trusted proxies can be believed, and the first untrusted one found from
// the right is the client). An entry that is not an address stops the walk:
// the hop that wrote it is then the client as far as anyone can tell. The
// result is invalid only when the peer itself is not an address.
func (p Proxies) ClientAddr(remoteAddr string, forwardedFor []string) netip.Addr {
	client := parseHost(remoteAddr)
	if !client.IsValid() || !p.trusts(client) {
		return client
	}
	for i := len(forwardedFor) - 1; i >= 0; i-- {
		entries := strings.Split(forwardedFor[i], ",")
		for j := len(entries) - 1; j >= 0; j-- {
			entry := strings.TrimSpace(entries[j])
			if entry == "" {
				continue // "a, , b" or a trailing comma: nothing was said
			}
			a := parseHost(entry)
			if !a.IsValid() {
				return client
			}
			client = a
			if !p.trusts(a) {
				return client
			}
		}
	}
	return client
}

// parseHost reads "ip", "ip:port", "[ipv6]:port" or "[ipv6]", without a
// zone, IPv4-mapped IPv6 as IPv4; the zero Addr for anything else.
func parseHost(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().WithZone("").Unmap()
	}
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		s = s[1 : len(s)-1]
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return a.WithZone("").Unmap()
}
