package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/noticed/noticed/internal/auth"
	"github.com/noticed/noticed/internal/inbox"
	"github.com/noticed/noticed/internal/notice"
	"github.com/noticed/noticed/internal/routing"
	"github.com/noticed/noticed/internal/strictjson"
)

// ErrNotSupported is a backend without the inbox's ability; every backend
// of noticed has it, so only a Store from elsewhere gets this.
var ErrNotSupported = errors.New("this backend keeps no history")

// historyEntry is one notification as GET /notice/history gives it: its
// event type as an EventSource would name it, its data as it would be
// delivered.
type historyEntry struct {
	ID    string `json:"id"`
	Event string `json:"event"`
	Data  string `json:"data"`
}

type historyReply struct {
	Entries []historyEntry `json:"entries"`
	Next    *string        `json:"next"`
	Read    inbox.State    `json:"read"`
}

func (s *server) inboxStore() (inbox.Store, error) {
	st, ok := s.cfg.Store.(inbox.Store)
	if !ok {
		return nil, ErrNotSupported
	}
	return st, nil
}

// history serves GET /notice/history: the user's own with their token,
// anyone's (user=) with a publish token.
func (s *server) history(w http.ResponseWriter, r *http.Request) {
	claims, err := s.authenticate(auth.TokenFromRequest(r))
	if err != nil {
		writeError(w, err)
		return
	}
	q := r.URL.Query()
	user := claims.Subject
	if q.Has("user") {
		user = q.Get("user")
		if err := notice.ValidUserLen(user, s.cfg.MaxUserLen); err != nil {
			writeError(w, fmt.Errorf("%w: user: %v", ErrBadBody, err))
			return
		}
		if user != claims.Subject && !claims.Can("publish") {
			s.cfg.Metrics.AuthRefused.WithLabelValues("scope").Inc()
			writeError(w, fmt.Errorf("%w: another user's history needs a publish token", ErrForbidden))
			return
		}
	}
	limit := inbox.DefaultLimit
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 || n > inbox.MaxLimit {
			writeError(w, fmt.Errorf("%w: limit must be a whole number from 1 to %d", ErrBadBody, inbox.MaxLimit))
			return
		}
		limit = n
	}
	before := notice.Last
	if q.Has("before") {
		if before, err = notice.ParseID(q.Get("before")); err != nil {
			writeError(w, fmt.Errorf("%w: before must be an entry id, <ms>-<seq> or <ms>", ErrBadBody))
			return
		}
	}
	st, err := s.inboxStore()
	if err != nil {
		writeError(w, err)
		return
	}
	page, err := inbox.History(r.Context(), st, user, before, limit)
	if err != nil {
		s.backendError(w, r, "history", err)
		return
	}
	out := historyReply{Entries: make([]historyEntry, len(page.Entries)), Read: page.Read}
	for i, e := range page.Entries {
		event := e.Event
		if event == "" {
			event = "message"
		}
		out.Entries[i] = historyEntry{ID: e.ID.String(), Event: event, Data: e.Data}
	}
	if !page.Next.IsZero() {
		next := page.Next.String()
		out.Next = &next
	}
	writeJSON(w, http.StatusOK, out)
}

// markRead serves POST /notice/read: {"upTo":"<id>"} and/or
// {"ids":["<id>",…]}, with the user's own token.
func (s *server) markRead(w http.ResponseWriter, r *http.Request) {
	claims, err := s.authenticate(auth.TokenFromRequest(r))
	if err != nil {
		writeError(w, err)
		return
	}
	if r.URL.Query().Has("user") {
		writeError(w, ErrOwnOnly)
		return
	}
	body, err := readBody(w, r, s.cfg.MaxPayload)
	if err != nil {
		writeError(w, err)
		return
	}
	upTo, ids, err := parseMark(body, r.Header.Get("Content-Type"))
	if err != nil {
		writeError(w, err)
		return
	}
	st, err := s.inboxStore()
	if err != nil {
		writeError(w, err)
		return
	}
	state, err := inbox.Mark(r.Context(), st, claims.Subject, upTo, ids)
	if err != nil {
		if errors.Is(err, inbox.ErrUnknownID) {
			writeError(w, fmt.Errorf("%w: %v", ErrBadBody, err))
			return
		}
		s.backendError(w, r, "read", err)
		return
	}
	writeJSON(w, http.StatusOK, state)
}

// parseMark reads a mark body strictly: names as spelled, each once.
func parseMark(body []byte, contentType string) (*notice.ID, []notice.ID, error) {
	if mt, _, _ := mime.ParseMediaType(contentType); mt != "application/json" && contentType != "" {
		return nil, nil, fmt.Errorf("%w: Content-Type must be application/json", ErrBadBody)
	}
	var upTo *notice.ID
	var ids []notice.ID
	err := strictjson.Object(body, func(name string, v jsontext.Value) error {
		switch name {
		case "upTo":
			var t string
			if v.Kind() != '"' || json.Unmarshal(v, &t) != nil {
				return errors.New(`"upTo" must be an id string`)
			}
			id, err := notice.ParseID(t)
			if err != nil {
				return fmt.Errorf(`"upTo": %v`, err)
			}
			upTo = &id
		case "ids":
			var ts []string
			if v.Kind() != '[' || json.Unmarshal(v, &ts) != nil {
				return errors.New(`"ids" must be an array of id strings`)
			}
			if len(ts) > inbox.MaxIDs {
				return fmt.Errorf(`"ids": at most %d`, inbox.MaxIDs)
			}
			for _, t := range ts {
				id, err := notice.ParseID(t)
				if err != nil {
					return fmt.Errorf(`"ids": %q: %v`, t, err)
				}
				ids = append(ids, id)
			}
		default:
			return fmt.Errorf("unknown field %q", name)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrBadBody, err)
	}
	if upTo == nil && len(ids) == 0 {
		return nil, nil, fmt.Errorf(`%w: give "upTo" or "ids"`, ErrBadBody)
	}
	return upTo, ids, nil
}

// backendError answers a failed store call with 503 (or the client's own
// cancellation), counted and logged.
func (s *server) backendError(w http.ResponseWriter, r *http.Request, what string, err error) {
	s.cfg.Metrics.BackendErrors.WithLabelValues(what).Inc()
	s.log.Warn(what+" failed", "err", err)
	if !errors.Is(err, routing.ErrUnavailable) && r.Context().Err() == nil {
		err = fmt.Errorf("%w: %v", routing.ErrUnavailable, err)
	}
	writeError(w, err)
}
