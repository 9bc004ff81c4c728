package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags([]string{"-mode", "load", "-target", "noticed,nchan", "-streams", "1000,10_000", "-rate", "5000,10000", "-per-user", "2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.targets) != 2 || len(cfg.streams) != 2 || cfg.streams[1] != 10000 || len(cfg.rates) != 2 || cfg.perUser != 2 {
		t.Errorf("parsed %+v", cfg)
	}
	cfg, err = parseFlags([]string{"-mode", "soak"}, io.Discard)
	if err != nil || cfg.duration != 10*time.Minute {
		t.Errorf("soak without -duration: %v, %v; want 10m", cfg.duration, err)
	}
	cfg, err = parseFlags([]string{"-mode", "soak", "-duration", "30s"}, io.Discard)
	if err != nil || cfg.duration != 30*time.Second {
		t.Errorf("soak -duration 30s: %v, %v", cfg.duration, err)
	}
	cfg, err = parseFlags([]string{"-mode", "load", "-url", "http://127.0.0.1:8000/", "-target", "noticed", "-jwt-secret", "s", "-publish", "post", "-server-pid", "12,34"}, io.Discard)
	if err != nil || cfg.url != "http://127.0.0.1:8000" || len(cfg.serverPIDs) != 2 {
		t.Errorf("-url: %+v, %v", cfg, err)
	}
	cfg, err = parseFlags(nil, io.Discard)
	if err != nil || cfg.mode != "load" || len(cfg.rates) != 1 || cfg.rates[0] != 2000 || len(cfg.streams) != 1 || cfg.streams[0] != 1000 {
		t.Errorf("defaults: %+v, %v; want load of 1000 streams at 2000/s", cfg, err)
	}
}

func TestParseFlagsRefuses(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-mode", "nope"}, "want load, storm or soak"},
		{[]string{"-mode", "load", "-target", "mercure"}, "want noticed, nchan, centrifugo or floor"},
		{[]string{"-mode", "storm", "-target", "noticed,floor"}, "goes with -mode load only"},
		{[]string{"-mode", "soak", "-target", "floor"}, "goes with -mode load only"},
		{[]string{"-mode", "storm", "-target", "centrifugo"}, "goes with -mode load only"},
		{[]string{"-mode", "load", "-target", "centrifugo", "-url", "http://127.0.0.1:8000"}, "give one -target, noticed or nchan"},
		{[]string{"-mode", "load", "-streams", "0"}, "not a positive count"},
		{[]string{"-mode", "load", "-streams", "10", "-per-user", "3"}, "not a multiple"},
		{[]string{"-mode", "soak", "-rate", "0"}, "soak needs events"},
		{[]string{"-mode", "load", "-publish", "carrier-pigeon"}, "want xadd or post"},
		{[]string{"-mode", "load", "-publish", "post", "-post-batch", "0"}, "-post-batch: 1 to 1000"},
		{[]string{"-mode", "load", "-url", "http://example.com:8000"}, "loopback addresses only"},
		{[]string{"-mode", "load", "-url", "https://127.0.0.1:8000"}, "want http://host:port"},
		{[]string{"-mode", "load", "-url", "http://127.0.0.1:8000", "-target", "noticed,nchan"}, "give one -target"},
		{[]string{"-mode", "load", "-url", "http://127.0.0.1:8000", "-publish", "post"}, "-jwt-secret"},
		{[]string{"-mode", "load", "-url", "http://127.0.0.1:8000", "-jwt-secret", "s"}, "give -redis"},
		{[]string{"-mode", "load", "-server-pid", "1"}, "go with -url"},
		{[]string{"-mode", "load", "-server-procs", "-1"}, "-server-procs: 0"},
		{[]string{"-mode", "load", "-url", "http://127.0.0.1:8000", "-jwt-secret", "s", "-redis", "redis://127.0.0.1:1", "-server-procs", "1"}, "not with -url"},
		{[]string{"-mode", "follow"}, "want load, storm or soak"},
		{[]string{"-rate", "fast"}, "is not a rate"},
		{[]string{"extra"}, "unexpected argument"},
	} {
		t.Setenv("NOTICED_JWT_SECRET", "")
		_, err := parseFlags(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one saying %q", tc.args, err, tc.want)
		}
	}
}

func TestRewriteNchanConf(t *testing.T) {
	conf := "pid /tmp/nchan-bench/nginx.pid;\nlisten 127.0.0.1:8090 reuseport;\nnchan_redis_server redis://127.0.0.1:6379;\n"
	got, err := rewriteNchanConf(conf, "127.0.0.1:4000", "127.0.0.1:5000", "/tmp/x", 0)
	if err != nil {
		t.Fatal(err)
	}
	want := "pid /tmp/x/nginx.pid;\nlisten 127.0.0.1:4000 reuseport;\nnchan_redis_server redis://127.0.0.1:5000;\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if _, err := rewriteNchanConf("listen 80;", "a", "b", "c", 0); err == nil {
		t.Error("a config without the lines to rewrite was accepted")
	}
	// -server-procs: the workers line is rewritten, and must be there.
	got, err = rewriteNchanConf("worker_processes 2;\n"+conf, "127.0.0.1:4000", "127.0.0.1:5000", "/tmp/x", 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := "worker_processes 1;\n" + want; got != want {
		t.Errorf("with procs 1: got\n%s\nwant\n%s", got, want)
	}
	if _, err := rewriteNchanConf(conf, "a", "b", "c", 1); err == nil {
		t.Error("procs 1 was accepted for a config without worker_processes 2")
	}
}
