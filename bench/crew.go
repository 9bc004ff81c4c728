package main

import (
	"context"
	"errors"
	"sync"
	"time"
)

// maxStreamsPerProcess keeps each process under the 20,000 open files a
// process may have here, with room for its other descriptors.
const maxStreamsPerProcess = 15000

var (
	_ fleetAPI = (*fleet)(nil)
	_ fleetAPI = (*workerFleet)(nil)
)

// crew is every fleet of a run, in this process or in workers; each call
// goes to all of them at once and the replies are added up.
type crew []fleetAPI

// startCrew splits spec's streams [0, n) over procs processes: this one
// when procs is 1, else procs workers.
func startCrew(spec fleetSpec, n, procs int) (crew, error) {
	if procs <= 1 {
		spec.Lo, spec.Hi = 0, n
		f, err := newFleet(spec)
		if err != nil {
			return nil, err
		}
		return crew{f}, nil
	}
	var c crew
	inFlight := spec.InFlight
	for p := range procs {
		s := spec
		s.Lo, s.Hi = p*n/procs, (p+1)*n/procs
		if inFlight > 0 {
			s.InFlight = max(1, inFlight/procs)
		}
		w, err := startWorker(s)
		if err != nil {
			c.finish(context.Background())
			return nil, err
		}
		c = append(c, w)
	}
	return c, nil
}

// each runs fn for every fleet at once and joins the errors.
func (c crew) each(fn func(i int, f fleetAPI) error) error {
	errs := make([]error, len(c))
	var wg sync.WaitGroup
	for i, f := range c {
		wg.Go(func() { errs[i] = fn(i, f) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (c crew) open(ctx context.Context, timeout time.Duration) (openReport, error) {
	reps := make([]openReport, len(c))
	err := c.each(func(i int, f fleetAPI) (err error) {
		reps[i], err = f.open(ctx, timeout)
		return err
	})
	var sum openReport
	for _, r := range reps {
		sum.Opened += r.Opened
		sum.Streams += r.Streams
		sum.Failures = addCounts(sum.Failures, r.Failures)
	}
	return sum, err
}

func (c crew) received(ctx context.Context) (int64, error) {
	reps := make([]fleetStatus, len(c))
	err := c.each(func(i int, f fleetAPI) (err error) {
		reps[i], err = f.status(ctx)
		return err
	})
	var n int64
	for _, r := range reps {
		n += r.Received
	}
	return n, err
}

func (c crew) drop(ctx context.Context) error {
	return c.each(func(_ int, f fleetAPI) error { return f.drop(ctx) })
}

func (c crew) reconnect(ctx context.Context, expect int64, timeout time.Duration) (stormReport, error) {
	reps := make([]stormReport, len(c))
	err := c.each(func(i int, f fleetAPI) (err error) {
		reps[i], err = f.reconnect(ctx, expect, timeout)
		return err
	})
	var sum stormReport
	allBack, allCaught := true, true
	for _, r := range reps {
		sum.Reconnected += r.Reconnected
		sum.CaughtUp += r.CaughtUp
		sum.CatchUp.add(&r.CatchUp)
		allBack = allBack && r.AllReconnected > 0
		allCaught = allCaught && r.AllCaughtUp > 0
		sum.AllReconnected = max(sum.AllReconnected, r.AllReconnected)
		sum.AllCaughtUp = max(sum.AllCaughtUp, r.AllCaughtUp)
	}
	if !allBack {
		sum.AllReconnected = 0
	}
	if !allCaught {
		sum.AllCaughtUp = 0
	}
	return sum, err
}

// churn shares perSecond among the fleets.
func (c crew) churn(ctx context.Context, perSecond float64) error {
	return c.each(func(_ int, f fleetAPI) error { return f.churn(ctx, perSecond/float64(len(c))) })
}

func (c crew) finish(ctx context.Context) (fleetReport, error) {
	reps := make([]fleetReport, len(c))
	err := c.each(func(i int, f fleetAPI) (err error) {
		reps[i], err = f.finish(ctx)
		return err
	})
	var sum fleetReport
	for _, r := range reps {
		sum.Streams += r.Streams
		sum.Received += r.Received
		sum.Dups += r.Dups
		sum.Misrouted += r.Misrouted
		sum.Bad += r.Bad
		sum.Gaps += r.Gaps
		sum.Unexpected += r.Unexpected
		sum.Churned += r.Churned
		sum.Failures = addCounts(sum.Failures, r.Failures)
		sum.Latency.add(&r.Latency)
	}
	return sum, err
}

func addCounts(dst, src map[string]int64) map[string]int64 {
	if len(src) == 0 {
		return dst
	}
	if dst == nil {
		dst = map[string]int64{}
	}
	for k, v := range src {
		dst[k] += v
	}
	return dst
}
