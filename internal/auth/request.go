package auth

import (
	"net/http"
	"strings"
)

// CookieName is the cookie a browser can carry its token in, which keeps the
// token out of URLs and access logs.
const CookieName = "noticed_token"

// TokenFromRequest returns the token a request carries, or "" if none: an
// Authorization Bearer header first, then the query parameter token (native
// EventSource cannot set headers), then the noticed_token cookie. A source
// that is present but empty, or an Authorization header of another scheme,
// does not hide the ones after it. A caller that takes the cookie must
// check where the request comes from: a browser sends it whichever page
// asks.
func TokenFromRequest(r *http.Request) string {
	if t := ExplicitToken(r); t != "" {
		return t
	}
	if c, err := r.Cookie(CookieName); err == nil && c.Value != "" {
		return c.Value
	}
	return ""
}

// ExplicitToken is the token a request names itself, in the Authorization
// header or the token parameter, never the cookie a browser attaches on its
// own: what a request that changes something (a publish) must use, so that
// no other site's form can make a visitor's browser send it.
func ExplicitToken(r *http.Request) string {
	if t := bearer(r.Header.Get("Authorization")); t != "" {
		return t
	}
	return r.URL.Query().Get("token")
}

// bearer takes the token out of an Authorization value. The scheme is
// case-insensitive (RFC 9110 §11.1).
func bearer(h string) string {
	scheme, token, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}
