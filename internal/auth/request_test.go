package auth

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestTokenFromRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		auth     string
		query    string
		cookie   string
		want     string
		explicit string // what ExplicitToken finds: never the cookie
	}{
		{"none", "", "", "", "", ""},
		{"header", "Bearer h.h.h", "", "", "h.h.h", "h.h.h"},
		{"query", "", "q.q.q", "", "q.q.q", "q.q.q"},
		{"cookie", "", "", "c.c.c", "c.c.c", ""},
		{"header beats query and cookie", "Bearer h.h.h", "q.q.q", "c.c.c", "h.h.h", "h.h.h"},
		{"query beats cookie", "", "q.q.q", "c.c.c", "q.q.q", "q.q.q"},
		{"scheme lower case", "bearer h.h.h", "", "", "h.h.h", "h.h.h"},
		{"scheme upper case", "BEARER h.h.h", "", "", "h.h.h", "h.h.h"},
		{"extra spaces", "  Bearer   h.h.h  ", "", "", "h.h.h", "h.h.h"},
		{"other scheme falls through", "Basic dXNlcjpwdw==", "q.q.q", "", "q.q.q", "q.q.q"},
		{"empty bearer falls through", "Bearer ", "", "c.c.c", "c.c.c", ""},
		{"scheme alone", "Bearer", "", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			target := "/notice"
			if tt.query != "" {
				target += "?token=" + tt.query
			}
			r := httptest.NewRequest(http.MethodGet, target, nil)
			if tt.auth != "" {
				r.Header.Set("Authorization", tt.auth)
			}
			if tt.cookie != "" {
				r.AddCookie(&http.Cookie{Name: CookieName, Value: tt.cookie})
			}
			if got := TokenFromRequest(r); got != tt.want {
				t.Errorf("TokenFromRequest = %q, want %q", got, tt.want)
			}
			if got := ExplicitToken(r); got != tt.explicit {
				t.Errorf("ExplicitToken = %q, want %q", got, tt.explicit)
			}
		})
	}
}
