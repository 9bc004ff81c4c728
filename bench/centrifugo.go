package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Centrifugo (v6) is run as its documentation recommends for one-to-one
// notifications: the Redis engine, the unidirectional SSE transport
// (uni_sse), every connection subscribed server-side to its user's
// personal channel "#<user>", history on that channel for recovery, and
// publishing through the HTTP API with an API key. Its config keys and
// wire format are v6.9.1's (internal/configtypes, internal/unisse and the
// centrifugal/protocol JSON push encoding).

// centrifugoVersion is what scripts/bench-deps.sh installs.
const centrifugoVersion = "v6.9.1"

// findCentrifugo is -centrifugo-bin, or centrifugo on PATH, or in
// $(go env GOPATH)/bin where go install puts it.
func findCentrifugo(ctx context.Context, given string) (string, error) {
	if given != "" {
		if _, err := os.Stat(given); err != nil {
			return "", fmt.Errorf("-centrifugo-bin: %w", err)
		}
		// Absolute: it runs in a directory of its own.
		return filepath.Abs(given)
	}
	if p, err := exec.LookPath("centrifugo"); err == nil {
		return p, nil
	}
	if out, err := exec.CommandContext(ctx, "go", "env", "GOPATH").Output(); err == nil {
		for dir := range strings.SplitSeq(strings.TrimSpace(string(out)), string(os.PathListSeparator)) {
			p := filepath.Join(dir, "bin", "centrifugo")
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
	}
	return "", errors.New("centrifugo not found: go install github.com/centrifugal/centrifugo/v6@" + centrifugoVersion + " (or scripts/bench-deps.sh), or give -centrifugo-bin")
}

// centrifugoConfig is the config file for one run: listening on host,
// the run's Redis, tokens signed with secret, publishing with apiKey.
func centrifugoConfig(host, redisAddr, secret, apiKey string) ([]byte, error) {
	h, p, ok := strings.Cut(host, ":")
	port, err := strconv.Atoi(p)
	if !ok || err != nil {
		return nil, fmt.Errorf("centrifugo: bad listen address %q", host)
	}
	type m = map[string]any
	return json.MarshalIndent(m{
		"http_server": m{"address": h, "port": port},
		"log":         m{"level": "warn"},
		"engine":      m{"type": "redis", "redis": m{"address": []string{"redis://" + redisAddr}}},
		"client": m{
			"token": m{"hmac_secret_key": secret},
			// No personal_channel_namespace: the channel is "#<user>".
			"subscribe_to_user_personal_channel": m{"enabled": true},
		},
		"channel": m{"without_namespace": m{
			"history_size":   1000,
			"history_ttl":    "300s",
			"force_recovery": true,
		}},
		"uni_sse":  m{"enabled": true},
		"http_api": m{"key": apiKey},
		"health":   m{"enabled": true},
	}, "", "  ")
}

// startCentrifugo runs Centrifugo on a free loopback port with the run's
// Redis, its config file in a directory of its own.
func startCentrifugo(ctx context.Context, cfg config, bin string, t *target, rs *redisServer) error {
	dir, err := os.MkdirTemp("", "noticed-bench-centrifugo-")
	if err != nil {
		return err
	}
	t.stops = append(t.stops, func() { os.RemoveAll(dir) })
	t.secret, t.apiKey = randomHex(32), randomHex(16)
	path := filepath.Join(dir, "config.json")
	err = startOnFreePort(ctx, cfg, t, "centrifugo", "/health", 15*time.Second, func(host string) (*exec.Cmd, error) {
		conf, err := centrifugoConfig(host, rs.addr(), t.secret, t.apiKey)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, conf, 0o600); err != nil {
			return nil, err
		}
		cmd := exec.Command(bin, "--config", path)
		cmd.Dir = dir
		return cmd, nil
	})
	if err != nil {
		return err
	}
	t.version = "Centrifugo " + centrifugoBuildVersion(ctx, bin) + " (Redis engine, uni_sse)" + procsNote(cfg)
	return nil
}

// centrifugoBuildVersion is the module version the binary was built from:
// go install sets no version into what "centrifugo version" prints.
func centrifugoBuildVersion(ctx context.Context, bin string) string {
	out, err := exec.CommandContext(ctx, "go", "version", "-m", bin).Output()
	if err == nil {
		for line := range strings.SplitSeq(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) >= 3 && f[0] == "mod" && strings.HasPrefix(f[1], "github.com/centrifugal/centrifugo") {
				return f[2]
			}
		}
	}
	return "(version unknown)"
}

// centrifugoStreamTarget is the uni_sse request target for a connection
// token: the connect command goes in the cf_connect query parameter.
func centrifugoStreamTarget(token string) string {
	connect, _ := json.Marshal(map[string]string{"token": token})
	return "/connection/uni_sse?cf_connect=" + url.QueryEscape(string(connect))
}

// The uni_sse body is one "data: <push>" event per push, the push in the
// protocol's JSON encoding: {} a ping, {"connect":{...}} first,
// {"channel":"#u","pub":{"data":<the published JSON>,"offset":N}} a
// publication.
var (
	centrifugoPubPrefix = []byte(`,"pub":{"data":"`)
	errNotPublication   = errors.New("not a publication")
)

// centrifugoData returns the benchmark payload of a publication push (the
// JSON string it was published as; it holds nothing JSON escapes), or
// errNotPublication for a push that is none (ping, connect), or another
// error for a publication that is malformed.
func centrifugoData(push []byte) ([]byte, error) {
	if !bytes.HasPrefix(push, []byte(`{"channel":"`)) {
		return nil, errNotPublication
	}
	i := bytes.Index(push, centrifugoPubPrefix)
	if i < 0 {
		return nil, errNotPublication
	}
	rest := push[i+len(centrifugoPubPrefix):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 || bytes.IndexByte(rest[:end], '\\') >= 0 {
		return nil, errors.New("publication data not a plain JSON string")
	}
	return rest[:end], nil
}

// appendCentrifugoPublish appends the HTTP API publish command for one
// event: the payload as a JSON string, to the user's personal channel.
func appendCentrifugoPublish(dst []byte, user string, seq, sentNs int64, phase byte) []byte {
	// User names and payloads hold nothing JSON must escape.
	dst = append(dst, `{"channel":"#`...)
	dst = append(dst, user...)
	dst = append(dst, `","data":"`...)
	dst = appendPayload(dst, user, seq, sentNs, phase)
	return append(dst, `"}`...)
}

// centrifugoAPIError is the error in an HTTP API answer: Centrifugo
// answers 200 with {"error":{...}} when a command fails.
func centrifugoAPIError(answer []byte) error {
	var a struct {
		Error *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(answer, &a); err != nil {
		return fmt.Errorf("answer not JSON: %.100q", answer)
	}
	if a.Error != nil {
		return fmt.Errorf("error %d %s", a.Error.Code, a.Error.Message)
	}
	return nil
}
