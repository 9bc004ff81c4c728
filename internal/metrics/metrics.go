// Package metrics names what noticed counts, in Prometheus' text format.
package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics is every series noticed exports. Each package takes the one it
// is given, so tests can read them from a registry of their own.
type Metrics struct {
	StreamsOpen     prometheus.Gauge
	MaxConns        prometheus.Gauge
	StreamsOpened   prometheus.Counter
	FollowedUsers   prometheus.Gauge
	EventsDelivered prometheus.Counter
	EventsReplayed  prometheus.Counter
	EventsPublished prometheus.Counter
	EventsRead      prometheus.Counter
	ReadDelay       prometheus.Histogram
	GapsSent        prometheus.Counter
	SlowClosed      prometheus.Counter
	StreamsRefused  *prometheus.CounterVec
	AuthRefused     *prometheus.CounterVec
	BackendErrors   *prometheus.CounterVec
}

// New registers the series with reg, along with the Go runtime and process
// collectors.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		StreamsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "noticed_streams_open", Help: "Event streams open on this instance.",
		}),
		MaxConns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "noticed_max_conns", Help: "Open streams this instance accepts (-max-conns, or what its open-files limit allows); 0: no limit.",
		}),
		StreamsOpened: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "noticed_streams_opened_total", Help: "Event streams accepted since start.",
		}),
		FollowedUsers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "noticed_followed_users", Help: "Users whose stream this instance follows (users with an open stream here).",
		}),
		EventsDelivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "noticed_events_delivered_total", Help: "Events written to streams, live and replayed.",
		}),
		EventsReplayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "noticed_events_replayed_total", Help: "Events written to streams from history after Last-Event-ID.",
		}),
		EventsPublished: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "noticed_events_published_total", Help: "Entries appended through POST /notice.",
		}),
		EventsRead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "noticed_events_read_total", Help: "Entries taken for live fan-out, read from the backend or, when this instance published them, from the append's answer (once per instance, whatever the number of streams).",
		}),
		ReadDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "noticed_event_read_delay_seconds",
			Help: "Time from an entry's id (its append, by the backend's clock) to this instance taking it for live fan-out: the wait a live event had before its streams were written.",
			// From a quiet instance's fraction of a millisecond to a
			// backend that was away for a minute.
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		GapsSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "noticed_gaps_sent_total", Help: "gap events sent: on a replay whose history after Last-Event-ID may have been lost, or on an open stream whose user lost entries before they were read.",
		}),
		SlowClosed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "noticed_slow_streams_closed_total", Help: "Streams closed because their client did not keep up (a full queue or a write past its deadline).",
		}),
		StreamsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "noticed_streams_refused_total", Help: "Stream requests refused, and streams closed for their client's input after the request (client_input), by reason.",
		}, []string{"reason"}),
		AuthRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "noticed_auth_refused_total", Help: "Requests refused for their token, by reason (origin: the cookie sent from a foreign origin).",
		}, []string{"reason"}),
		BackendErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "noticed_backend_errors_total", Help: "Failed backend calls, by operation.",
		}, []string{"op"}),
	}
	// Known reasons export 0 from the start, so dashboards see the series.
	for _, r := range []string{"no_token", "malformed", "signature", "expired", "not_yet_valid", "issuer", "audience", "subject", "unknown_key", "no_kid", "scope", "origin"} {
		m.AuthRefused.WithLabelValues(r)
	}
	for _, r := range []string{"user_limit", "instance_full", "shutting_down", "bad_last_event_id", "request_body", "client_input", "not_hijackable"} {
		m.StreamsRefused.WithLabelValues(r)
	}
	for _, op := range []string{"append", "read", "follow", "unfollow", "replay"} {
		m.BackendErrors.WithLabelValues(op)
	}
	reg.MustRegister(
		m.StreamsOpen, m.MaxConns, m.StreamsOpened, m.FollowedUsers, m.EventsDelivered, m.EventsReplayed,
		m.EventsPublished, m.EventsRead, m.ReadDelay, m.GapsSent, m.SlowClosed, m.StreamsRefused,
		m.AuthRefused, m.BackendErrors,
		// The scheduler's latency histogram (go_sched_latencies_seconds): how
		// long goroutines wait to run, which a busy instance's tail shows first.
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(collectors.MetricsScheduler)),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// RegisterReady exports noticed_ready: 1 while the backend answers ping,
// as /readyz would say at the moment of the scrape, labelled with the
// backend's kind (memory, file, redis), so that alerts tell a Redis that
// does not answer from an instance that cannot reach it.
func RegisterReady(reg prometheus.Registerer, backend string, ping func(context.Context) error) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "noticed_ready",
		Help:        "1 while the backend answers (GET /readyz is 200), 0 while it does not.",
		ConstLabels: prometheus.Labels{"backend": backend},
	}, func() float64 {
		// /readyz's own bound, well inside a scrape's timeout.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if ping(ctx) != nil {
			return 0
		}
		return 1
	}))
}

// Discard returns metrics registered nowhere, for tests and benchmarks
// that do not read them.
func Discard() *Metrics { return New(prometheus.NewRegistry()) }
