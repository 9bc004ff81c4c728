package server

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/noticed/noticed/internal/auth"
	"github.com/noticed/noticed/internal/notice"
)

// ErrNoPresence is an instance started with -presence=false.
var ErrNoPresence = errors.New("presence is off on this instance (-presence=false)")

// maxPresenceUsers bounds the users one GET /presence may name.
const maxPresenceUsers = 1000

type presenceInfo struct {
	Streams int        `json:"streams"`
	Since   *time.Time `json:"since"`
}

// presence serves GET /presence?user=42 (or users= repeated) to
// producers: each user's open streams across all instances, and since
// when the user has been online (null while offline).
func (s *server) presence(w http.ResponseWriter, r *http.Request) {
	// Never the cookie: it is a producer's question, like publishing.
	claims, err := s.authenticate(auth.ExplicitToken(r))
	if err != nil {
		writeError(w, err)
		return
	}
	if !claims.Can("publish") {
		s.cfg.Metrics.AuthRefused.WithLabelValues("scope").Inc()
		writeError(w, ErrForbidden)
		return
	}
	if s.cfg.Presence == nil {
		writeError(w, fmt.Errorf("%w: %w", ErrNotSupported, ErrNoPresence))
		return
	}
	q := r.URL.Query()
	users := append(q["user"], q["users"]...)
	if len(users) == 0 {
		writeError(w, fmt.Errorf("%w: name a user with user= (or users=, repeated)", ErrBadBody))
		return
	}
	if len(users) > maxPresenceUsers {
		writeError(w, fmt.Errorf("%w: at most %d users", ErrBadBody, maxPresenceUsers))
		return
	}
	seen := make(map[string]bool, len(users))
	unique := users[:0:0]
	for _, u := range users {
		if err := notice.ValidUserLen(u, s.cfg.MaxUserLen); err != nil {
			writeError(w, fmt.Errorf("%w: user %q: %v", ErrBadBody, truncate(u, 40), err))
			return
		}
		if !seen[u] {
			seen[u] = true
			unique = append(unique, u)
		}
	}
	infos, err := s.cfg.Presence.Counts(r.Context(), unique)
	if err != nil {
		s.backendError(w, r, "presence", err)
		return
	}
	out := make(map[string]presenceInfo, len(infos))
	for _, in := range infos {
		p := presenceInfo{Streams: in.Streams}
		if !in.Since.IsZero() {
			since := in.Since.UTC()
			p.Since = &since
		}
		out[in.User] = p
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": out})
}
