package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestPublishForms(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a, b := e.subscribe("pia"), e.subscribe("quin")
	pub := token(t, "producer", "publish")

	code, out := e.post("application/x-www-form-urlencoded", []byte("user=pia&event=greet&data=hello+pia"), pub)
	if code != 200 || out["id"] == nil {
		t.Fatalf("form publish: %d %v", code, out)
	}
	if ev := a.next(t); ev.ID != out["id"] || ev.Type != "greet" || ev.Data != "hello pia" {
		t.Fatalf("got %+v", ev)
	}

	code, out = e.post("application/json", []byte(`{"users":["pia","quin","pia"],"data":{ "b": 1, "a": [1, 2] }}`), pub)
	ids, _ := out["ids"].(map[string]any)
	if code != 200 || len(ids) != 2 {
		t.Fatalf("several users: %d %v", code, out)
	}
	for user, s := range map[string]*stream{"pia": a, "quin": b} {
		if ev := s.next(t); ev.ID != ids[user] || ev.Data != `{"b":1,"a":[1,2]}` {
			t.Errorf("%s got %+v, want id %v and compact JSON", user, ev, ids[user])
		}
		s.none(t)
	}

	// A number is taken as a user id; a JSON string is stored as is.
	r := e.subscribe("42")
	code, out = e.post("application/json", []byte(`{"user":42,"data":"plain \"text\""}`), pub)
	if code != 200 {
		t.Fatalf("numeric user: %d %v", code, out)
	}
	if ev := r.next(t); ev.Data != `plain "text"` {
		t.Errorf("got %q", ev.Data)
	}
}

func TestPublishErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{maxPayload: 1024})
	e.hostile()
	pub := token(t, "producer", "publish")
	many := make([]string, 1001)
	for i := range many {
		many[i] = "u" + strings.Repeat("x", i%5) + string(rune('a'+i%26)) + strings.Repeat("y", i/26)
	}
	manyJSON, _ := json.Marshal(map[string]any{"users": many})
	tests := []struct {
		name, ctype, body, token string
		want                     int
	}{
		{"no token", "application/json", `{"user":"a"}`, "", 401},
		{"bad token", "application/json", `{"user":"a"}`, "x.y.z", 401},
		{"no publish scope", "application/json", `{"user":"a"}`, token(t, "a"), 403},
		{"not JSON", "application/json", `{"user":`, pub, 400},
		{"no user", "application/json", `{"data":"x"}`, pub, 400},
		{"user and users", "application/json", `{"user":"a","users":["b"]}`, pub, 400},
		{"empty users", "application/json", `{"users":[]}`, pub, 400},
		{"bad user", "application/json", `{"user":"a b"}`, pub, 400},
		{"braces in user", "application/json", `{"user":"{a}"}`, pub, 400},
		{"float user", "application/json", `{"user":1.5}`, pub, 400},
		{"unknown field", "application/json", `{"user":"a","evnet":"x"}`, pub, 400},
		{"event too long", "application/json", `{"user":"a","event":"` + strings.Repeat("e", 65) + `"}`, pub, 400},
		{"event with newline", "application/json", `{"user":"a","event":"a\nb"}`, pub, 400},
		{"two values", "application/json", `{"user":"a"} {}`, pub, 400},
		{"bad content type", "text/plain", `user=a`, pub, 400},
		{"form without user", "application/x-www-form-urlencoded", `data=x`, pub, 400},
		{"form user twice", "application/x-www-form-urlencoded", `user=a&user=b`, pub, 400},
		{"too many users", "application/json", string(manyJSON), pub, 413},
		{"too large", "application/json", `{"user":"a","data":"` + strings.Repeat("x", 2000) + `"}`, pub, 413},
	}
	for _, tt := range tests {
		code, out := e.post(tt.ctype, []byte(tt.body), tt.token)
		if tt.name == "too many users" && len(manyJSON) <= 1024 {
			t.Fatal("test body too small")
		}
		if code != tt.want || out["error"] == nil || out["error"] == "" {
			t.Errorf("%s: %d %v, want %d with an error message", tt.name, code, out, tt.want)
		}
	}
}

func TestPublishTooManyUsers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{maxPayload: 1 << 20})
	e.hostile()
	many := make([]string, 1001)
	for i := range many {
		many[i] = "user" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + strings.Repeat("z", i/26)
	}
	code, out := e.publish(map[string]any{"users": many, "data": "x"})
	if code != http.StatusBadRequest || !strings.Contains(out["error"].(string), "1000") {
		t.Fatalf("1001 users: %d %v, want 400 naming the limit", code, out)
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.subscribe("rae")
	e.mustPublish("rae", "", "x")
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200, "/nope": 404} {
		resp, err := http.Get(e.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	resp, err := http.Get(e.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 1<<16)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	for _, name := range []string{"noticed_streams_open 1", "noticed_events_published_total 1", "noticed_events_delivered_total", "noticed_slow_streams_closed_total", "noticed_events_replayed_total", "noticed_auth_refused_total"} {
		if !strings.Contains(sb.String(), name) {
			t.Errorf("/metrics lacks %q", name)
		}
	}
}

func TestCORS(t *testing.T) {
	t.Parallel()
	tests := []struct {
		origins    []string
		origin     string
		wantOrigin string
		wantCreds  string
	}{
		{[]string{"https://app.example"}, "https://app.example", "https://app.example", "true"},
		{[]string{"https://app.example"}, "https://evil.example", "", ""},
		{[]string{"*"}, "https://any.example", "*", ""},
	}
	for _, tt := range tests {
		e := newEnv(t, envOptions{cors: tt.origins})
		e.hostile()
		req, _ := http.NewRequest(http.MethodGet, e.url+"/notice", nil)
		req.Header.Set("Origin", tt.origin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tt.wantOrigin {
			t.Errorf("%v from %s: Allow-Origin %q, want %q", tt.origins, tt.origin, got, tt.wantOrigin)
		}
		if got := resp.Header.Get("Access-Control-Allow-Credentials"); got != tt.wantCreds {
			t.Errorf("%v from %s: Allow-Credentials %q, want %q", tt.origins, tt.origin, got, tt.wantCreds)
		}
	}
}
