package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"time"
)

// redisServer is a redis-server process this program started and owns: the
// only kind of Redis it flushes, configures freely, or kills.
type redisServer struct {
	cmd  *exec.Cmd
	dir  string
	port int
	out  bytes.Buffer
	done chan struct{}
}

// startRedis runs redis-server on a free port of 127.0.0.1, with nothing
// persisted, and returns once it answers PING.
func startRedis(ctx context.Context) (*redisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server not found (apt-get install redis-server), or give -redis URL")
	}
	dir, err := os.MkdirTemp("", "noticed-bench-redis-")
	if err != nil {
		return nil, err
	}
	// A port found free may be taken before redis-server binds it: a server
	// that exits at once is tried again on another.
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
		s := &redisServer{dir: dir, port: port, done: make(chan struct{})}
		s.cmd = exec.Command(bin,
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", dir)
		s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
		dieWithParent(s.cmd)
		if err := s.cmd.Start(); err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("start redis-server: %w", err)
		}
		go func() {
			_ = s.cmd.Wait()
			close(s.done)
		}()
		if lastErr = s.waitReady(ctx); lastErr == nil {
			return s, nil
		}
		s.kill()
	}
	_ = os.RemoveAll(dir)
	return nil, lastErr
}

func (s *redisServer) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if pingRedis(s.addr()) == nil {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("redis-server on port %d exited at start:\n%s", s.port, s.out.String())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on port %d did not answer PING within 10s", s.port)
		}
	}
}

func (s *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

func (s *redisServer) url() string { return "redis://" + s.addr() + "/0" }

// kill stops the server at once and waits for it to exit.
func (s *redisServer) kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// close kills the server and removes its directory.
func (s *redisServer) close() {
	s.kill()
	_ = os.RemoveAll(s.dir)
}
