package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"
)

// A run with more streams than one process may hold (every stream is an
// open file, and a process may have at most 20,000 here) spreads them over
// worker processes: this same program run with -worker. The parent writes
// the worker's fleetSpec, then one request per line on its stdin; the
// worker answers each with one line on its stdout. Its stderr is the
// parent's.

// workerRequest is one call; Op names the fleetAPI method.
type workerRequest struct {
	Op        string        `json:"op"`
	Timeout   time.Duration `json:"timeout,omitempty"`
	Expect    int64         `json:"expect,omitempty"`
	PerSecond float64       `json:"per_second,omitempty"`
}

// workerReply carries the method's result, or its error.
type workerReply struct {
	Error  string       `json:"error,omitempty"`
	Open   *openReport  `json:"open,omitempty"`
	Status *fleetStatus `json:"status,omitempty"`
	Storm  *stormReport `json:"storm,omitempty"`
	Report *fleetReport `json:"report,omitempty"`
}

// workerMain serves one fleet over stdin and stdout until finish, or until
// stdin closes (the parent is gone).
func workerMain(ctx context.Context, stdin io.Reader, stdout io.Writer) error {
	dec := json.NewDecoder(bufio.NewReader(stdin))
	enc := json.NewEncoder(stdout)
	var spec fleetSpec
	if err := dec.Decode(&spec); err != nil {
		return fmt.Errorf("worker: reading its spec: %w", err)
	}
	f, err := newFleet(spec)
	if err != nil {
		return err
	}
	defer f.finish(ctx)
	for {
		var req workerRequest
		if err := dec.Decode(&req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("worker: reading a request: %w", err)
		}
		var rep workerReply
		switch req.Op {
		case "open":
			r, err := f.open(ctx, req.Timeout)
			rep.Open, rep.Error = &r, errText(err)
		case "status":
			r, err := f.status(ctx)
			rep.Status, rep.Error = &r, errText(err)
		case "drop":
			rep.Error = errText(f.drop(ctx))
		case "reconnect":
			r, err := f.reconnect(ctx, req.Expect, req.Timeout)
			rep.Storm, rep.Error = &r, errText(err)
		case "churn":
			rep.Error = errText(f.churn(ctx, req.PerSecond))
		case "finish":
			r, err := f.finish(ctx)
			rep.Report, rep.Error = &r, errText(err)
		default:
			rep.Error = fmt.Sprintf("unknown op %q", req.Op)
		}
		if err := enc.Encode(rep); err != nil {
			return err
		}
		if req.Op == "finish" {
			return nil
		}
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// workerFleet is a fleet in a worker process.
type workerFleet struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	enc  *json.Encoder
	dec  *json.Decoder
	done chan struct{}

	mu sync.Mutex // one call at a time
}

// startWorker runs this program with -worker for spec.
func startWorker(spec fleetSpec) (*workerFleet, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-worker")
	cmd.Stderr = os.Stderr
	dieWithParent(cmd)
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker: %w", err)
	}
	w := &workerFleet{cmd: cmd, in: in, enc: json.NewEncoder(in), dec: json.NewDecoder(bufio.NewReader(out)), done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(w.done)
	}()
	if err := w.enc.Encode(spec); err != nil {
		w.kill()
		return nil, fmt.Errorf("worker: %w", err)
	}
	return w, nil
}

// call sends req and waits for the reply; ctx ending kills the worker.
func (w *workerFleet) call(ctx context.Context, req workerRequest) (workerReply, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.enc.Encode(req); err != nil {
		return workerReply{}, fmt.Errorf("worker %d: %w", w.cmd.Process.Pid, err)
	}
	got := make(chan error, 1)
	var rep workerReply
	go func() { got <- w.dec.Decode(&rep) }()
	select {
	case err := <-got:
		if err != nil {
			return rep, fmt.Errorf("worker %d: no reply to %s: %w", w.cmd.Process.Pid, req.Op, err)
		}
	case <-ctx.Done():
		w.kill()
		return rep, ctx.Err()
	}
	if rep.Error != "" {
		return rep, fmt.Errorf("worker %d: %s: %s", w.cmd.Process.Pid, req.Op, rep.Error)
	}
	return rep, nil
}

func (w *workerFleet) kill() {
	_ = w.cmd.Process.Kill()
	<-w.done
}

func (w *workerFleet) open(ctx context.Context, timeout time.Duration) (openReport, error) {
	rep, err := w.call(ctx, workerRequest{Op: "open", Timeout: timeout})
	if err != nil || rep.Open == nil {
		return openReport{}, orMissing(err, "open")
	}
	return *rep.Open, nil
}

func (w *workerFleet) status(ctx context.Context) (fleetStatus, error) {
	rep, err := w.call(ctx, workerRequest{Op: "status"})
	if err != nil || rep.Status == nil {
		return fleetStatus{}, orMissing(err, "status")
	}
	return *rep.Status, nil
}

func (w *workerFleet) drop(ctx context.Context) error {
	_, err := w.call(ctx, workerRequest{Op: "drop"})
	return err
}

func (w *workerFleet) reconnect(ctx context.Context, expect int64, timeout time.Duration) (stormReport, error) {
	rep, err := w.call(ctx, workerRequest{Op: "reconnect", Expect: expect, Timeout: timeout})
	if err != nil || rep.Storm == nil {
		return stormReport{}, orMissing(err, "reconnect")
	}
	return *rep.Storm, nil
}

func (w *workerFleet) churn(ctx context.Context, perSecond float64) error {
	_, err := w.call(ctx, workerRequest{Op: "churn", PerSecond: perSecond})
	return err
}

// finish collects the worker's counts and waits for it to exit.
func (w *workerFleet) finish(ctx context.Context) (fleetReport, error) {
	rep, err := w.call(ctx, workerRequest{Op: "finish"})
	_ = w.in.Close()
	select {
	case <-w.done:
	case <-time.After(10 * time.Second):
		w.kill()
	}
	if err != nil || rep.Report == nil {
		return fleetReport{}, orMissing(err, "finish")
	}
	return *rep.Report, nil
}

func orMissing(err error, op string) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("worker: empty reply to %s", op)
}
