package server

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/noticed/noticed/internal/auth"
)

// ErrForeignOrigin refuses a request that carries the noticed_token cookie
// from a page of another origin: a browser attaches the cookie to any
// request to noticed, whoever's page asks for it, so without this check a
// cross-site form could publish (CSRF) and any site could open a visitor's
// stream.
var ErrForeignOrigin = errors.New("the noticed_token cookie was sent from a foreign origin")

// originPolicy says which browser origins may send the cookie: the
// request's own (pages noticed serves, or serves beside, such as the dev
// demo page) and those named one by one in -cors-origins. "*" names none:
// it lets any origin in without credentials.
type originPolicy struct {
	exact   map[string]bool
	wild    []wildcard // "https://*.example.com", as go-chi/cors matches them
	proxies Proxies    // whose X-Forwarded-Proto and -Host say what the own origin is
}

type wildcard struct{ prefix, suffix string }

func newOriginPolicy(corsOrigins []string, proxies Proxies) *originPolicy {
	p := &originPolicy{exact: map[string]bool{}, proxies: proxies}
	for _, o := range corsOrigins {
		o = strings.ToLower(o)
		if o == "*" {
			// No credentials with "*" (see New): no origin may send the
			// cookie on its strength, however else it is listed.
			return &originPolicy{exact: map[string]bool{}, proxies: proxies}
		}
		if prefix, suffix, ok := strings.Cut(o, "*"); ok {
			p.wild = append(p.wild, wildcard{prefix, suffix})
			continue
		}
		p.exact[normalOrigin(o)] = true
	}
	return p
}

// check refuses a request with the cookie and an Origin that is neither
// the request's own nor allowed. A request without an Origin header is
// let through: browsers send one on every cross-origin request that could
// carry the cookie (EventSource, fetch, a form's POST), and other clients
// are not tricked into sending a cookie.
func (p *originPolicy) check(r *http.Request) error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	if _, err := r.Cookie(auth.CookieName); err != nil {
		return nil
	}
	o := normalOrigin(origin)
	if o == "" {
		return fmt.Errorf("%w: Origin %q names no origin the cookie may come from", ErrForeignOrigin, truncate(origin, 60))
	}
	if o == p.own(r) || p.exact[o] {
		return nil
	}
	for _, w := range p.wild {
		if len(o) >= len(w.prefix)+len(w.suffix) && strings.HasPrefix(o, w.prefix) && strings.HasSuffix(o, w.suffix) {
			return nil
		}
	}
	return fmt.Errorf("%w: it is accepted only from this server's own origin and those in -cors-origins", ErrForeignOrigin)
}

// own is the request's origin as the browser sees it: the scheme it
// reached noticed with and the Host it asked for; behind a trusted proxy,
// what the proxy's X-Forwarded-Proto and X-Forwarded-Host say (it may
// terminate TLS, or be reached under another name). "" when unknown.
func (p *originPolicy) own(r *http.Request) string {
	scheme, host := "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if peer := parseHost(r.RemoteAddr); peer.IsValid() && p.proxies.trusts(peer) {
		if v := firstValue(r.Header.Get("X-Forwarded-Proto")); v != "" {
			scheme = v
		}
		if v := firstValue(r.Header.Get("X-Forwarded-Host")); v != "" {
			host = v
		}
	}
	if host == "" {
		return ""
	}
	return normalOrigin(scheme + "://" + host)
}

// firstValue is the first of a comma-separated header's values: the one
// the proxy nearest the client wrote.
func firstValue(h string) string {
	v, _, _ := strings.Cut(h, ",")
	return strings.TrimSpace(v)
}

// normalOrigin puts an origin in the form two equal ones share: lower
// case, without the scheme's default port. Anything that is not
// scheme://host[:port] (such as "null", sent by sandboxed pages and files)
// becomes "", which matches nothing.
func normalOrigin(s string) string {
	u, err := url.Parse(strings.ToLower(strings.TrimSpace(s)))
	if err != nil || u.Scheme == "" || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return ""
	}
	host := u.Host
	switch {
	case u.Scheme == "http" && strings.HasSuffix(host, ":80"):
		host = strings.TrimSuffix(host, ":80")
	case u.Scheme == "https" && strings.HasSuffix(host, ":443"):
		host = strings.TrimSuffix(host, ":443")
	}
	return u.Scheme + "://" + host
}

// sameOrigin is the middleware that applies the policy to the routes a
// token opens.
func (s *server) sameOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.origins.check(r); err != nil {
			s.cfg.Metrics.AuthRefused.WithLabelValues("origin").Inc()
			writeError(w, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}
