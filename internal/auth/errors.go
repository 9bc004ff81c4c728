package auth

import "errors"

// Each sentinel is one reason a request is refused with 401. They are wrapped
// with %w and a fixed detail so callers can map them with errors.Is; no
// message ever carries the token or any text taken from it, because these
// messages end up in logs and response bodies.
var (
	ErrNoToken     = errors.New("no token")
	ErrMalformed   = errors.New("malformed token")
	ErrSignature   = errors.New("bad token signature")
	ErrExpired     = errors.New("token expired")
	ErrNotYetValid = errors.New("token not valid yet")
	ErrIssuer      = errors.New("wrong token issuer")
	ErrAudience    = errors.New("wrong token audience")
	ErrSubject     = errors.New("bad token subject")
	ErrUnknownKey  = errors.New("unknown key id")
	ErrNeedKid     = errors.New("token needs a kid")
)

// reasons is ordered so that Reason is stable even for an error that wraps
// more than one sentinel.
var reasons = []struct {
	err   error
	label string
}{
	{ErrNoToken, "no_token"},
	{ErrMalformed, "malformed"},
	{ErrSignature, "signature"},
	{ErrExpired, "expired"},
	{ErrNotYetValid, "not_yet_valid"},
	{ErrIssuer, "issuer"},
	{ErrAudience, "audience"},
	{ErrSubject, "subject"},
	{ErrUnknownKey, "unknown_key"},
	{ErrNeedKid, "no_kid"},
}

// Reason returns a short label for err that is safe to use as a metric label
// value: its set of values is fixed, so it cannot blow up cardinality. It
// returns "" for nil and "other" for an error that is none of ours.
func Reason(err error) string {
	if err == nil {
		return ""
	}
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.label
		}
	}
	return "other"
}

// Refused reports whether err is one of the reasons a token is refused,
// which the HTTP layer answers with 401.
func Refused(err error) bool {
	if err == nil {
		return false
	}
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return true
		}
	}
	return false
}
