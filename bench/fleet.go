package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// fleetSpec says which of a run's streams one process opens, and where. It
// crosses to worker processes as JSON, so it holds only what a worker
// can rebuild everything else from.
type fleetSpec struct {
	Kind       string        `json:"kind"` // "noticed", "nchan", "centrifugo" or "floor"
	Host       string        `json:"host"` // host:port of the server
	Lo         int           `json:"lo"`   // the streams [Lo, Hi) of the run
	Hi         int           `json:"hi"`
	Users      int           `json:"users"` // stream i belongs to user i % Users
	UserPrefix string        `json:"user_prefix"`
	Secret     string        `json:"secret,omitempty"` // noticed's or Centrifugo's HMAC secret: tokens are signed here
	TokenTTL   time.Duration `json:"token_ttl"`
	// Sources above 1 spreads the streams' source addresses over
	// 127.0.0.1 .. 127.0.0.<Sources>, each with its own ~28,000 ports.
	Sources int `json:"sources"`
	// InFlight bounds the connects under way (dial to first line); 0 none.
	InFlight int `json:"in_flight"`
}

func userName(prefix string, i int) string { return prefix + strconv.Itoa(i) }

// The replies of a fleet, which also cross from worker processes as JSON.
type (
	openReport struct {
		Opened   int64            `json:"opened"`
		Streams  int              `json:"streams"`
		Failures map[string]int64 `json:"failures,omitempty"` // refused opens, by reason
	}
	fleetStatus struct {
		Received  int64 `json:"received"` // distinct events
		Connected int64 `json:"connected"`
	}
	stormReport struct {
		Reconnected    int64         `json:"reconnected"`
		AllReconnected time.Duration `json:"all_reconnected"` // 0 unless all did
		CaughtUp       int64         `json:"caught_up"`
		AllCaughtUp    time.Duration `json:"all_caught_up"` // 0 unless all did
		CatchUp        hist          `json:"catch_up"`      // per stream
	}
	fleetReport struct {
		Streams    int              `json:"streams"`
		Received   int64            `json:"received"`
		Dups       int64            `json:"dups"`
		Misrouted  int64            `json:"misrouted"`
		Bad        int64            `json:"bad"`        // events that are not the benchmark's
		Gaps       int64            `json:"gaps"`       // noticed's "gap" events
		Unexpected int64            `json:"unexpected"` // open streams ended by the server
		Churned    int64            `json:"churned"`
		Failures   map[string]int64 `json:"failures,omitempty"`
		Latency    hist             `json:"latency"`
	}
)

// fleetAPI is a set of streams, in this process (fleet) or in a worker
// process (workerFleet).
type fleetAPI interface {
	// open starts every stream and returns when all are open or timeout
	// has passed.
	open(ctx context.Context, timeout time.Duration) (openReport, error)
	status(ctx context.Context) (fleetStatus, error)
	// drop closes every stream at once; they stay away until reconnect.
	drop(ctx context.Context) error
	// reconnect brings every dropped stream back with Last-Event-ID and
	// returns when each has expect distinct events in all, or timeout.
	reconnect(ctx context.Context, expect int64, timeout time.Duration) (stormReport, error)
	// churn closes this many random streams a second (0 stops), each
	// coming back at once with Last-Event-ID.
	churn(ctx context.Context, perSecond float64) error
	// finish closes everything and returns the counts.
	finish(ctx context.Context) (fleetReport, error)
}

// fleet runs a process's streams on a few event loops (loop_linux.go).
type fleet struct {
	spec    fleetSpec
	streams []*streamClient
	loops   []*loop
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup // the loops
	started bool

	received, dups, misrouted, bad, gaps, unexpected, churned atomic.Int64
	connected                                                 atomic.Int64 // sockets: connecting or connected
	opened                                                    atomic.Int64
	allOpened                                                 chan struct{}

	dropped atomic.Bool
	storm   atomic.Pointer[storm]

	mu        sync.Mutex
	lat       hist
	failures  map[string]int64
	stopChurn chan struct{}
}

// storm tracks one reconnect: when it began and who has caught up.
type storm struct {
	expect      int64
	start       time.Time
	n           int64
	reconnected atomic.Int64
	caught      atomic.Int64
	done        chan struct{}

	mu          sync.Mutex
	allBack     time.Duration
	allCaughtUp time.Duration
	catchUp     hist
}

func (st *storm) caughtUp(d time.Duration) {
	st.mu.Lock()
	st.catchUp.record(d)
	st.mu.Unlock()
	if st.caught.Add(1) == st.n {
		st.mu.Lock()
		st.allCaughtUp = d
		st.mu.Unlock()
		close(st.done)
	}
}

func (st *storm) back() {
	if st.reconnected.Add(1) == st.n {
		st.mu.Lock()
		st.allBack = time.Since(st.start)
		st.mu.Unlock()
	}
}

// newFleet prepares spec's streams: their users, tokens and source
// addresses. Nothing connects until open.
func newFleet(spec fleetSpec) (*fleet, error) {
	if spec.Hi <= spec.Lo || spec.Users < 1 {
		return nil, errors.New("fleet: no streams")
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &fleet{spec: spec, ctx: ctx, cancel: cancel, allOpened: make(chan struct{}), failures: map[string]int64{}}
	tokens := map[int]string{}
	for i := spec.Lo; i < spec.Hi; i++ {
		u := i % spec.Users
		name := userName(spec.UserPrefix, u)
		s := &streamClient{f: f, user: []byte(name), fd: -1, backoff: 100 * time.Millisecond}
		switch {
		case nchanRoutes(spec.Kind):
			s.target = "/sub/" + name
		default:
			tok, ok := tokens[u]
			if !ok {
				var err error
				tok, err = signToken([]byte(spec.Secret), name, spec.TokenTTL)
				if err != nil {
					cancel()
					return nil, fmt.Errorf("signing a token for %s: %w", name, err)
				}
				tokens[u] = tok
			}
			if spec.Kind == "centrifugo" {
				s.target = centrifugoStreamTarget(tok)
			} else {
				s.target = "/notice?token=" + tok
			}
		}
		if spec.Sources > 1 {
			s.src = netip.AddrFrom4([4]byte{127, 0, 0, byte(1 + i%spec.Sources)})
		}
		f.streams = append(f.streams, s)
	}
	return f, nil
}

func (f *fleet) open(ctx context.Context, timeout time.Duration) (openReport, error) {
	if !f.started {
		f.started = true
		if err := f.startLoops(); err != nil {
			return openReport{}, err
		}
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-f.allOpened:
	case <-t.C:
	case <-ctx.Done():
		return openReport{}, ctx.Err()
	}
	return openReport{Opened: f.opened.Load(), Streams: len(f.streams), Failures: f.failureCounts()}, nil
}

// streamOpened is called on a stream's loop each time it gets its first
// line.
func (f *fleet) streamOpened(s *streamClient) {
	if !s.opened {
		s.opened = true
		if f.opened.Add(1) == int64(len(f.streams)) {
			close(f.allOpened)
		}
	}
	if st := f.storm.Load(); st != nil && !s.back {
		s.back = true
		st.back()
	}
}

func (f *fleet) openFailed(err error) {
	reason := err.Error()
	var se *statusError
	if errors.As(err, &se) {
		reason = se.Error()
	}
	if len(reason) > 120 {
		reason = reason[:120] + "..."
	}
	f.mu.Lock()
	f.failures[reason]++
	f.mu.Unlock()
}

func (f *fleet) failureCounts() map[string]int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.failures) == 0 {
		return nil
	}
	return maps.Clone(f.failures)
}

func (f *fleet) recordLatency(d time.Duration) {
	f.mu.Lock()
	f.lat.record(d)
	f.mu.Unlock()
}

func (f *fleet) stormState() *storm { return f.storm.Load() }

func (f *fleet) status(context.Context) (fleetStatus, error) {
	return fleetStatus{Received: f.received.Load(), Connected: f.connected.Load()}, nil
}

func (f *fleet) drop(ctx context.Context) error {
	// Set first, so that no stream starts a connection once its loop has
	// closed them all.
	f.dropped.Store(true)
	f.tellLoops(cmdDrop)
	for f.connected.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

func (f *fleet) reconnect(ctx context.Context, expect int64, timeout time.Duration) (stormReport, error) {
	st := &storm{expect: expect, start: time.Now(), n: int64(len(f.streams)), done: make(chan struct{})}
	f.storm.Store(st)
	f.dropped.Store(false)
	f.tellLoops(cmdResume)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-st.done:
	case <-t.C:
	case <-ctx.Done():
		return stormReport{}, ctx.Err()
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return stormReport{
		Reconnected:    st.reconnected.Load(),
		AllReconnected: st.allBack,
		CaughtUp:       st.caught.Load(),
		AllCaughtUp:    st.allCaughtUp,
		CatchUp:        st.catchUp,
	}, nil
}

func (f *fleet) churn(_ context.Context, perSecond float64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopChurn != nil {
		close(f.stopChurn)
		f.stopChurn = nil
	}
	if perSecond <= 0 {
		return nil
	}
	stop := make(chan struct{})
	f.stopChurn = stop
	go f.churnLoop(perSecond, stop)
	return nil
}

// churnLoop closes random open streams at perSecond, in small batches
// every 10 ms.
func (f *fleet) churnLoop(perSecond float64, stop chan struct{}) {
	start := time.Now()
	var done int64
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-f.ctx.Done():
			return
		case <-tick.C:
		}
		due := int64(time.Since(start).Seconds() * perSecond)
		for ; done < due; done++ {
			f.streams[rand.N(len(f.streams))].bounce()
		}
	}
}

func (f *fleet) finish(context.Context) (fleetReport, error) {
	_ = f.churn(context.Background(), 0)
	f.cancel()
	f.tellLoops(cmdStop)
	f.wg.Wait()
	failures := f.failureCounts()
	f.mu.Lock()
	defer f.mu.Unlock()
	return fleetReport{
		Streams:    len(f.streams),
		Received:   f.received.Load(),
		Dups:       f.dups.Load(),
		Misrouted:  f.misrouted.Load(),
		Bad:        f.bad.Load(),
		Gaps:       f.gaps.Load(),
		Unexpected: f.unexpected.Load(),
		Churned:    f.churned.Load(),
		Failures:   failures,
		Latency:    f.lat,
	}, nil
}

// rng is a random duration-sized number in [0, n).
func rng(n int64) int64 {
	if n <= 0 {
		return 0
	}
	return rand.Int64N(n)
}
