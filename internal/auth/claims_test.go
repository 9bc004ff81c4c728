package auth

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

// Claim names are matched exactly and each may be given once (RFC 7519
// §4; RFC 7515 §4 for the header): a token whose claims two readers could
// read differently is refused, and a name in another case is another,
// unknown claim. Dates are numbers only.
func TestVerifyReadsClaimsExactly(t *testing.T) {
	t.Parallel()
	v, err := NewVerifier(Config{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	const hs = `{"alg":"HS256","typ":"JWT"}`
	past, future := unix(-time.Hour), unix(time.Hour)
	tests := []struct {
		name, header, payload string
		want                  error
		wantSub               string
		wantScopes            []string
	}{
		{"Sub is not sub", hs, `{"sub":"bob","Sub":"alice"}`, nil, "bob", nil},
		{"Sub before sub", hs, `{"Sub":"alice","sub":"bob"}`, nil, "bob", nil},
		{"SUB alone is no sub", hs, `{"SUB":"alice"}`, ErrSubject, "", nil},
		{"Scope grants nothing", hs, `{"sub":"bob","Scope":"publish"}`, nil, "bob", nil},
		{"scope beside Scope", hs, `{"sub":"bob","scope":"read","SCOPE":"publish"}`, nil, "bob", []string{"read"}},
		{"Exp does not hide exp", hs, fmt.Sprintf(`{"sub":"bob","exp":%d,"Exp":%d}`, past, future), ErrExpired, "", nil},
		{"Nbf is no nbf", hs, fmt.Sprintf(`{"sub":"bob","Nbf":%d}`, future), nil, "bob", nil},

		{"sub twice", hs, `{"sub":"bob","sub":"alice"}`, ErrMalformed, "", nil},
		{"sub twice through an escape", hs, `{"sub":"bob","s\u0075b":"alice"}`, ErrMalformed, "", nil},
		{"scope twice", hs, `{"sub":"bob","scope":"read","scope":"publish"}`, ErrMalformed, "", nil},
		{"exp twice", hs, fmt.Sprintf(`{"sub":"bob","exp":%d,"exp":%d}`, past, future), ErrMalformed, "", nil},
		{"a name twice deep inside", hs, `{"sub":"bob","ctx":{"a":[{"k":1,"k":2}]}}`, ErrMalformed, "", nil},
		{"lone surrogate in sub", hs, `{"sub":"\ud800"}`, ErrMalformed, "", nil},
		{"another lone surrogate in sub", hs, `{"sub":"\udc00"}`, ErrMalformed, "", nil},
		{"invalid UTF-8 in an unknown claim", hs, "{\"sub\":\"bob\",\"x\":\"\xff\"}", ErrMalformed, "", nil},
		{"payload not an object", hs, `["sub","bob"]`, ErrMalformed, "", nil},

		{"exp as a numeric string", hs, fmt.Sprintf(`{"sub":"bob","exp":"%d"}`, future), ErrMalformed, "", nil},
		{"exp as a date string", hs, `{"sub":"bob","exp":"2099-01-01T00:00:00Z"}`, ErrMalformed, "", nil},
		{"nbf as a string", hs, fmt.Sprintf(`{"sub":"bob","nbf":"%d"}`, past), ErrMalformed, "", nil},
		{"iat as a string", hs, fmt.Sprintf(`{"sub":"bob","iat":"%d"}`, past), ErrMalformed, "", nil},
		{"exp null", hs, `{"sub":"bob","exp":null}`, ErrMalformed, "", nil},
		{"exp a fraction", hs, fmt.Sprintf(`{"sub":"bob","exp":%d.5}`, future), nil, "bob", nil},
		{"iss a number", hs, `{"sub":"bob","iss":7}`, ErrMalformed, "", nil},

		{"alg twice in the header", `{"alg":"none","alg":"HS256"}`, `{"sub":"bob"}`, ErrMalformed, "", nil},
		{"kid twice in the header", `{"alg":"HS256","kid":"a","kid":"b"}`, `{"sub":"bob"}`, ErrMalformed, "", nil},
		{"crit naming a claim", `{"alg":"HS256","crit":["exp"]}`, `{"sub":"bob"}`, ErrMalformed, "", nil},
		{"crit naming an extension", `{"alg":"HS256","crit":["b64"],"b64":false}`, `{"sub":"bob"}`, ErrMalformed, "", nil},
		{"crit empty", `{"alg":"HS256","crit":[]}`, `{"sub":"bob"}`, ErrMalformed, "", nil},
		{"Crit is another parameter", `{"alg":"HS256","Crit":["exp"]}`, `{"sub":"bob"}`, nil, "bob", nil},
		{"invalid UTF-8 in the header", "{\"alg\":\"HS256\",\"x\":\"\xff\"}", `{"sub":"bob"}`, ErrMalformed, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tok := signRawHeader(t, testSecret, tt.header, tt.payload)
			got, err := v.Verify(tok)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Verify(%s.%s) = %+v, %v; want %v", tt.header, tt.payload, got, err, tt.want)
			}
			if err != nil {
				if leaksToken(err.Error(), tok) {
					t.Errorf("error %q quotes the token", err)
				}
				return
			}
			if got.Subject != tt.wantSub || !slices.Equal(got.Scopes, tt.wantScopes) {
				t.Errorf("got sub %q scopes %q, want %q %q", got.Subject, got.Scopes, tt.wantSub, tt.wantScopes)
			}
		})
	}
}
