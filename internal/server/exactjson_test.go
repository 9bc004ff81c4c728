package server_test

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// signedPayload is a token whose payload is exactly payload, signed with
// the test secret: what a careless or hostile issuer could hand out.
func signedPayload(t *testing.T, payload string) string {
	t.Helper()
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString([]byte(payload))
	sig, err := jwt.SigningMethodHS256.Sign(signing, secret)
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + enc.EncodeToString(sig)
}

// A signed {"sub":"bob","Sub":"alice"} is bob's: claim names are matched
// exactly (RFC 7519), so Sub is an unknown claim. It used to open alice's
// stream, the last of the case-insensitive matches winning.
func TestClaimNamesAreExact(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	resp, s := e.open(url.Values{"token": {signedPayload(t, `{"sub":"bob","Sub":"alice"}`)}}.Encode(), nil)
	if s == nil {
		t.Fatalf("open: %d", resp.StatusCode)
	}
	e.mustPublish("alice", "secret", "for alice only")
	bobs := e.mustPublish("bob", "hello", "for bob")
	if ev := s.next(t); ev.ID != bobs || ev.Data != "for bob" {
		t.Fatalf("the stream got %+v, want bob's event %s", ev, bobs)
	}

	code, out := e.post("application/json", []byte(`{"user":"bob"}`), signedPayload(t, `{"sub":"p","Scope":"publish"}`))
	if code != http.StatusForbidden {
		t.Errorf(`publish with "Scope":"publish": %d %v, want 403`, code, out)
	}
}

// A token or a publish body that names a member twice is refused: which of
// the two counts is not for noticed to guess.
func TestDuplicateMembersRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	for _, payload := range []string{
		`{"sub":"bob","sub":"alice"}`,
		`{"sub":"bob","s\u0075b":"alice"}`,
		`{"sub":"bob","scope":"read","scope":"publish"}`,
		`{"sub":"bob","ctx":{"k":1,"k":2}}`,
	} {
		resp, s := e.open(url.Values{"token": {signedPayload(t, payload)}}.Encode(), nil)
		if s != nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("stream with token %s: %d, want 401", payload, resp.StatusCode)
			continue
		}
		assertJSONError(t, resp)
	}

	pub := token(t, "producer", "publish")
	for _, body := range []string{
		`{"user":"bob","user":"alice"}`,
		`{"user":"bob","us\u0065r":"alice"}`,
		`{"users":["bob"],"users":["alice"]}`,
		`{"user":"bob","event":"a","event":"b"}`,
		`{"user":"bob","data":{"k":1,"k":2}}`,
		`{"user":"bob","data":[{"k":1},{"k":1,"k":2}]}`,
	} {
		code, out := e.post("application/json", []byte(body), pub)
		if code != http.StatusBadRequest || !strings.Contains(out["error"].(string), "duplicate") {
			t.Errorf("publish %s: %d %v, want 400 naming the duplicate", body, code, out)
		}
	}
}

// Publish bodies are read with the member names the contract gives, case
// and all: any other spelling is an unknown field.
func TestPublishFieldNamesAreExact(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	pub := token(t, "producer", "publish")
	for _, body := range []string{
		`{"User":"x"}`,
		`{"USERS":["x"]}`,
		`{"user":"x","Event":"e"}`,
		`{"user":"x","Data":"d"}`,
		`{"users":["x"],"Users":["y"]}`,
	} {
		code, out := e.post("application/json", []byte(body), pub)
		if code != http.StatusBadRequest || !strings.Contains(out["error"].(string), "unknown field") {
			t.Errorf("publish %s: %d %v, want 400 unknown field", body, code, out)
		}
	}
}

// Invalid UTF-8 anywhere in a publish body, JSON or form, is 400, as the
// token check answers. encoding/json used to rewrite each
// bad byte to U+FFFD and deliver the event to that other user, and several
// such ids collapsed into one.
func TestPublishInvalidUTF8Refused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	// The user the bad ids used to be rewritten to.
	rewritten := e.subscribe("a\uFFFD")
	pub := token(t, "producer", "publish")
	for _, body := range []string{
		"{\"user\":\"a\xff\"}",
		"{\"users\":[\"a\xff\",\"a\xfe\",\"a\xc0\"]}",
		"{\"user\":\"a\xed\xa0\x80\"}", // a surrogate written as UTF-8
		`{"user":"a\ud800"}`,           // a lone surrogate escaped
		"{\"user\":\"a\uFFFD\",\"event\":\"e\xff\"}",
		"{\"user\":\"a\uFFFD\",\"data\":\"\xff\"}",
		"{\"user\":\"a\uFFFD\",\"data\":{\"k\xff\":1}}",
	} {
		for _, ctype := range []string{"application/json", ""} {
			code, out := e.post(ctype, []byte(body), pub)
			if code != http.StatusBadRequest || !strings.Contains(out["error"].(string), "UTF-8") && !strings.Contains(out["error"].(string), "surrogate") {
				t.Errorf("publish %q (Content-Type %q): %d %v, want 400 naming the bad text", body, ctype, code, out)
			}
		}
	}
	// The form path alike, data included: it used to store a form's data
	// as sent, bytes that are no text, on an event stream, which is.
	for _, body := range []string{
		"user=a%FF",
		"user=a%EF%BF%BD&event=e%FF",
		"user=a%EF%BF%BD&data=%FF",
		"users=a%EF%BF%BD&data=ok%C0%AF",
	} {
		code, out := e.post("application/x-www-form-urlencoded", []byte(body), pub)
		if code != http.StatusBadRequest || !strings.Contains(out["error"].(string), "UTF-8") {
			t.Errorf("form %q: %d %v, want 400 naming the bad text", body, code, out)
		}
	}
	// Nothing reached the user the bad ids would have become; a valid
	// publish to it still does.
	id := e.mustPublish("a\uFFFD", "", "real")
	if ev := rewritten.next(t); ev.ID != id {
		t.Fatalf("a\\uFFFD got %+v before its own event %s", ev, id)
	}
}

// Error bodies are plain JSON: what they quote of the request reads as it
// was sent. encoding/json's default HTML escaping turned "<" into "\u003c".
func TestErrorBodiesArePlainJSON(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	pub := token(t, "producer", "publish")
	req, _ := http.NewRequest(http.MethodPost, e.url+"/notice", strings.NewReader(`{"user":"x","<b>&amp;":1}`))
	req.Header.Set("Authorization", "Bearer "+pub)
	req.Header.Set("Content-Type", "application/json")
	checkPlain(t, req, http.StatusBadRequest, `unknown field \"<b>&amp;\"`)

	req, _ = http.NewRequest(http.MethodGet, e.url+"/a%3Cb%3E&", nil)
	checkPlain(t, req, http.StatusNotFound, `"error":"not found: /a<b>&"`)
}

func checkPlain(t *testing.T, req *http.Request, wantCode int, want string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantCode || !strings.Contains(string(body), want) {
		t.Errorf("%s %s: %d %s, want %d with %s", req.Method, req.URL.Path, resp.StatusCode, body, wantCode, want)
	}
	if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options %q, want nosniff", got)
	}
}
