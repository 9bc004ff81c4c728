package main

import (
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/noticed/noticed/internal/auth"
	"github.com/noticed/noticed/internal/redistest"
)

// A malformed -redis names the part that is wrong, and never the password.
func TestBadRedisURLNamesThePart(t *testing.T) {
	t.Parallel()
	for url, want := range map[string]string{
		"redis+sentinel://u:s3cretpw@127.0.0.1:1":   "master_name",
		"redis+cluster://u:s3cretpw@127.0.0.1:1/2":  "database 0 only",
		"redis+shard://u:s3cretpw@127.0.0.1:1":      "+shard",
		"redis://u:s3cretpw@127.0.0.1:1?bogus=true": "bogus",
	} {
		out, err := exec.Command(binary, "-redis", url, "-jwt-secret", strings.Repeat("k", 32)).CombinedOutput()
		if err == nil || !strings.Contains(string(out), want) || strings.Contains(string(out), "s3cretpw") {
			t.Errorf("-redis %s: %v\n%s\nwant a failure naming %q, without the password", url, err, out, want)
		}
	}
}

// -publish-replicas 1: a publish no replica acknowledges in time is 503;
// once a replica follows the master, 200.
func TestPublishReplicas(t *testing.T) {
	t.Parallel()
	master := redistest.Start(t)
	secret := strings.Repeat("r", 32)
	p := start(t, nil, "-addr", "127.0.0.1:0", "-redis", master.URL(), "-jwt-secret", secret,
		"-publish-replicas", "1", "-publish-replicas-timeout", "100ms")
	tok, err := auth.Sign([]byte(secret), "producer", time.Hour, []string{"publish"}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	post := func() (int, string) {
		req, _ := http.NewRequest("POST", p.url+"/notice", strings.NewReader(`{"user":"42","data":"x"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 512)
		n, _ := resp.Body.Read(buf)
		b.Write(buf[:n])
		return resp.StatusCode, b.String()
	}
	if code, body := post(); code != http.StatusServiceUnavailable || !strings.Contains(body, "replicas") {
		t.Fatalf("publish with no replica: %d %s; want 503 naming the replicas", code, body)
	}
	redistest.Start(t, "--replicaof", "127.0.0.1", strconv.Itoa(master.Port()))
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, body := post()
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("publish with a replica: %d %s; want 200", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
