package main

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// maxCostRatio is issue 3's bound: Redis CPU per event at the largest
// number of followed users within this factor of the smallest.
const maxCostRatio = 1.5

// result is one run: one number of followed users.
type result struct {
	users      int
	followTime time.Duration // to follow every user, from the first Subscribe to the last Start
	sent       int64         // warm-up and measured
	received   int64         // distinct, warm-up and measured
	dups       int64
	kicked     int64
	bad        int64
	measured   int64         // events sent in the measured window
	window     time.Duration // measured window, drain included
	redis      redisStats    // spent in the window
	lat        []time.Duration
}

func (r result) lost() int64 { return r.sent - r.received }

// cpuPerEvent is Redis CPU per measured event.
func (r result) cpuPerEvent() time.Duration {
	if r.measured == 0 {
		return 0
	}
	return time.Duration(r.redis.cpu / float64(r.measured) * float64(time.Second))
}

func (r result) ok() bool {
	return r.lost() == 0 && r.dups == 0 && r.kicked == 0 && r.bad == 0
}

// percentile of sorted durations, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

const tableHead = `| followed users | follow time | sent | received | lost | dup | Redis CPU/event | Redis CPU | p50 | p90 | p99 | max |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
`

func writeRow(w io.Writer, r result) {
	slices.Sort(r.lat)
	fmt.Fprintf(w, "| %d | %.1f s | %d | %d | %d | %d | %.1f µs | %.1f%% | %s | %s | %s | %s |\n",
		r.users, r.followTime.Seconds(), r.sent, r.received, r.lost(), r.dups,
		float64(r.cpuPerEvent())/float64(time.Microsecond),
		100*r.redis.cpu/r.window.Seconds(),
		ms(percentile(r.lat, 0.50)), ms(percentile(r.lat, 0.90)),
		ms(percentile(r.lat, 0.99)), ms(percentile(r.lat, 1)))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", d.Seconds()*1000) }

// writeCommands lists the commands Redis ran in the window, costliest
// first, as calls and microseconds per measured event.
func writeCommands(w io.Writer, r result) {
	names := slices.SortedFunc(maps.Keys(r.redis.commands), func(a, b string) int {
		return cmp.Compare(r.redis.commands[b].usec, r.redis.commands[a].usec)
	})
	var parts []string
	for _, n := range names {
		c := r.redis.commands[n]
		ev := float64(max(r.measured, 1))
		parts = append(parts, fmt.Sprintf("%s %.2f calls %.1f µs", n, float64(c.calls)/ev, float64(c.usec)/ev))
	}
	fmt.Fprintf(w, "%d users, per event: %s\n", r.users, strings.Join(parts, ", "))
}

// writeCheck states whether the cost bound holds and reports whether every
// check passed.
func writeCheck(w io.Writer, rs []result) bool {
	ok := true
	for _, r := range rs {
		if !r.ok() {
			ok = false
			fmt.Fprintf(w, "FAIL: %d users: %d lost, %d duplicated, %d streams closed as slow, %d frames without a send time\n",
				r.users, r.lost(), r.dups, r.kicked, r.bad)
		}
	}
	small := slices.MinFunc(rs, func(a, b result) int { return cmp.Compare(a.users, b.users) })
	large := slices.MaxFunc(rs, func(a, b result) int { return cmp.Compare(a.users, b.users) })
	if small.users == large.users {
		fmt.Fprintf(w, "check: one user count only; no bound to check\n")
		return ok
	}
	ratio := float64(large.cpuPerEvent()) / float64(small.cpuPerEvent())
	verdict := "holds"
	if !(ratio <= maxCostRatio) {
		verdict, ok = "does NOT hold", false
	}
	fmt.Fprintf(w, "check: Redis CPU per event at %d users is %.2f× that at %d users (%.1f µs vs %.1f µs): the %.1f× bound %s\n",
		large.users, ratio, small.users,
		float64(large.cpuPerEvent())/1e3, float64(small.cpuPerEvent())/1e3, maxCostRatio, verdict)
	return ok
}
