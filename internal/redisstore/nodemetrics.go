package redisstore

import (
	"github.com/prometheus/client_golang/prometheus"
)

// The per-node series: figures that belong to one Redis master, labelled
// with its address. They are read from the nodes at each scrape.
var (
	descPubSubUp = prometheus.NewDesc("noticed_redis_pubsub_up",
		"1 when this instance's Pub/Sub connection to the Redis master is up, 0 while it reconnects.", []string{"node"}, nil)
	descFollowed = prometheus.NewDesc("noticed_redis_followed_users",
		"Followed users whose keyspace channel is subscribed on the Redis master.", []string{"node"}, nil)
	descLosses = prometheus.NewDesc("noticed_redis_pubsub_lost_total",
		"Times the Pub/Sub connection to the Redis master failed (each followed by a resync). Resets when the node is replaced.", []string{"node"}, nil)
)

// Collector returns the per-node series for a Prometheus registry.
func (s *Store) Collector() prometheus.Collector { return nodeCollector{s} }

type nodeCollector struct{ s *Store }

func (c nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descPubSubUp
	ch <- descFollowed
	ch <- descLosses
}

func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.s.NodeStatus() {
		up := 0.0
		if st.PubSubUp {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descPubSubUp, prometheus.GaugeValue, up, st.Addr)
		ch <- prometheus.MustNewConstMetric(descFollowed, prometheus.GaugeValue, float64(st.Followed), st.Addr)
		ch <- prometheus.MustNewConstMetric(descLosses, prometheus.CounterValue, float64(st.Losses), st.Addr)
	}
}

// NodeStatus is what one Redis master looks like from this instance.
type NodeStatus struct {
	Addr     string
	PubSubUp bool // its Pub/Sub connection delivered since it last failed
	Followed int  // followed users subscribed there
	Losses   int  // times its Pub/Sub connection failed
}

// NodeStatus reports every node the store follows users on.
func (s *Store) NodeStatus() []NodeStatus {
	held := make(map[*node]int)
	s.followed.Range(func(_, v any) bool {
		s.mu.Lock()
		if n := v.(*follow).node; n != nil {
			held[n]++
		}
		s.mu.Unlock()
		return true
	})
	s.mu.Lock()
	nodes := make([]*node, 0, len(s.nodes))
	for _, n := range s.nodes {
		nodes = append(nodes, n)
	}
	s.mu.Unlock()
	out := make([]NodeStatus, 0, len(nodes))
	for _, n := range nodes {
		n.mu.Lock()
		out = append(out, NodeStatus{Addr: n.addr, PubSubUp: !n.lost, Followed: held[n], Losses: n.losses})
		n.mu.Unlock()
	}
	return out
}
