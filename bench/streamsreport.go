package main

import (
	"cmp"
	"encoding/csv"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// memPerStream is what each open stream added to the server's memory:
// proportional set size (each shared page split among the processes that
// map it, so nginx's workers do not count their shared memory twice);
// resident size where Pss cannot be read.
func (r *runResult) memPerStream() float64 {
	if !r.HaveServer || r.Opened == 0 {
		return 0
	}
	before, idle := r.Before.PSS, r.Idle.PSS
	if before == 0 || idle == 0 {
		before, idle = r.Before.RSS, r.Idle.RSS
	}
	return float64(idle-before) / float64(r.Opened)
}

// cpuPerOpen is the server's CPU from before the first dial to the idle
// sample (opening, then the settle pause, when idle streams cost next to
// nothing), per stream opened, in µs.
func (r *runResult) cpuPerOpen() float64 {
	if !r.HaveServer || r.Opened == 0 {
		return 0
	}
	return float64((r.Idle.CPU - r.Before.CPU).Microseconds()) / float64(r.Opened)
}

func (r *runResult) openRate() float64 {
	if r.OpenTime <= 0 {
		return 0
	}
	return float64(r.Opened) / r.OpenTime.Seconds()
}

func (r *runResult) delivered() float64 {
	if r.Window <= 0 {
		return 0
	}
	return float64(r.Report.Latency.N) / r.Window.Seconds()
}

func perEvent(cpu time.Duration, events int64) float64 {
	if events == 0 {
		return 0
	}
	return float64(cpu) / float64(events) / float64(time.Microsecond)
}

func share(cpu, window time.Duration) float64 {
	if window <= 0 {
		return 0
	}
	return 100 * cpu.Seconds() / window.Seconds()
}

func via(r *runResult) string {
	switch r.Publish {
	case "xadd":
		return "XADD"
	case "post":
		if r.PostBatch > 1 {
			return fmt.Sprintf("POST (batches of %d)", r.PostBatch)
		}
		return "POST"
	}
	return "nothing"
}

// writeRun reports one run as it ends.
func writeRun(w io.Writer, r *runResult) {
	users := r.Streams / r.PerUser
	fmt.Fprintf(w, "\n## %s, %s: %d streams (%d users × %d)", r.Target, r.Mode, r.Streams, users, r.PerUser)
	if r.Rate > 0 {
		fmt.Fprintf(w, ", %g events/s via %s", r.Rate, via(r))
	} else if r.Mode == "storm" {
		fmt.Fprintf(w, ", published via %s", via(r))
	}
	switch r.Mode {
	case "load":
		if r.Rate > 0 {
			fmt.Fprintf(w, " for %v", r.Duration)
		}
	case "storm":
		fmt.Fprintf(w, ", %d behind", r.Behind)
	case "soak":
		fmt.Fprintf(w, " for %v, %g streams/s churned", r.Duration, r.Soak.churnOrZero())
	}
	fmt.Fprintln(w)
	if r.ServerVer != "" || r.RedisVer != "" {
		fmt.Fprintf(w, "server: %s; Redis %s\n", orNA(r.ServerVer), orNA(r.RedisVer))
	}
	if r.OpenTime > 0 {
		fmt.Fprintf(w, "opened %d streams in %.2f s: %.0f streams/s", r.Opened, r.OpenTime.Seconds(), r.openRate())
		if r.InFlight > 0 {
			fmt.Fprintf(w, ", at most %d connecting at once", r.InFlight)
		}
		if r.Procs > 1 {
			fmt.Fprintf(w, ", from %d processes", r.Procs)
		}
		fmt.Fprintln(w)
	} else {
		fmt.Fprintf(w, "opened %d of %d streams\n", r.Opened, r.Streams)
	}
	if len(r.OpenFailures) > 0 {
		fmt.Fprintf(w, "refused or failed connects (each retried): %s\n", countsText(r.OpenFailures))
	}
	if r.HaveServer && r.Idle.Procs > 0 {
		fmt.Fprintf(w, "server memory: RSS %s at rest, %s with the streams open and idle (PSS %s, %s): %.1f KiB per stream; %d open files\n",
			mib(r.Before.RSS), mib(r.Idle.RSS), mib(r.Before.PSS), mib(r.Idle.PSS), r.memPerStream()/1024, r.Idle.FDs)
		fmt.Fprintf(w, "server CPU from the first open to the idle sample: %.1f µs per stream opened\n", r.cpuPerOpen())
	}
	if r.Sent > 0 || r.PubFailed > 0 {
		fmt.Fprintf(w, "events: sent %d", r.Sent)
		if r.PubRate > 0 {
			fmt.Fprintf(w, " (%.0f/s while publishing)", r.PubRate)
		}
		fmt.Fprintf(w, ", deliveries due %d, received %d, lost %d, duplicated %d, misrouted %d\n",
			r.Expected, r.Report.Received, r.lost(), r.Report.Dups, r.Report.Misrouted)
		var extra []string
		if r.Report.Bad > 0 {
			extra = append(extra, fmt.Sprintf("%d events not the benchmark's", r.Report.Bad))
		}
		if r.Report.Gaps > 0 {
			extra = append(extra, fmt.Sprintf("%d gap events", r.Report.Gaps))
		}
		if r.Report.Unexpected > 0 {
			extra = append(extra, fmt.Sprintf("%d open streams ended by the server (reconnected with Last-Event-ID)", r.Report.Unexpected))
		}
		if r.Report.Churned > 0 {
			extra = append(extra, fmt.Sprintf("%d streams closed and reopened by churn", r.Report.Churned))
		}
		if r.PubFailed > 0 {
			extra = append(extra, fmt.Sprintf("%d publishes failed (first: %s)", r.PubFailed, r.PubFirstErr))
		}
		if len(extra) > 0 {
			fmt.Fprintf(w, "also: %s\n", strings.Join(extra, "; "))
		}
	}
	if h := &r.Report.Latency; h.N > 0 {
		fmt.Fprintf(w, "latency (send to receipt, %d events", h.N)
		if r.Mode == "soak" {
			fmt.Fprintf(w, ", replays after churn included")
		}
		fmt.Fprintf(w, "): p50 %s, p90 %s, p99 %s, p99.9 %s, max %s\n",
			ms(h.quantile(0.5)), ms(h.quantile(0.9)), ms(h.quantile(0.99)), ms(h.quantile(0.999)), ms(time.Duration(h.Max)))
		fmt.Fprintf(w, "delivered: %.0f events/s\n", r.delivered())
	}
	if r.Window > 0 && r.WindowSent > 0 {
		if r.Mode == "storm" {
			fmt.Fprintf(w, "CPU from the reconnect until all caught up (%.1f s, %d events published while away):", r.Window.Seconds(), r.WindowSent)
		} else {
			fmt.Fprintf(w, "CPU in the window (%.1f s, %d events):", r.Window.Seconds(), r.WindowSent)
		}
		if r.HaveServer {
			fmt.Fprintf(w, " server %.1f%% of a core, %.1f µs per event;", share(r.ServerCPU, r.Window), perEvent(r.ServerCPU, r.WindowSent))
		}
		if r.HaveRedis {
			fmt.Fprintf(w, " Redis %.1f%% of a core, %.1f µs per event", share(r.RedisCPU, r.Window), perEvent(r.RedisCPU, r.WindowSent))
		}
		fmt.Fprintln(w)
	}
	if r.HaveRedis && r.WindowSent > 0 && len(r.RedisCmds) > 0 {
		fmt.Fprintf(w, "Redis commands per event: %s\n", commandsPerEvent(r.RedisCmds, r.WindowSent))
	}
	if r.Mode == "storm" && r.Storm.Reconnected > 0 {
		st := r.Storm
		fmt.Fprintf(w, "storm: %d of %d streams back", st.Reconnected, r.Streams)
		if st.AllReconnected > 0 {
			fmt.Fprintf(w, " (all in %.2f s)", st.AllReconnected.Seconds())
		}
		fmt.Fprintf(w, ", %d caught up", st.CaughtUp)
		if st.AllCaughtUp > 0 {
			fmt.Fprintf(w, ": all caught up %d behind in %.2f s", r.Behind, st.AllCaughtUp.Seconds())
		}
		fmt.Fprintf(w, "; per stream p50 %s, p99 %s, max %s\n",
			ms(st.CatchUp.quantile(0.5)), ms(st.CatchUp.quantile(0.99)), ms(time.Duration(st.CatchUp.Max)))
	}
	if r.Soak != nil && len(r.Soak.during) > 0 {
		fmt.Fprint(w, r.Soak.table())
		for _, v := range r.Soak.verdicts {
			fmt.Fprintf(w, "- %s\n", v)
		}
		if r.Soak.flat {
			fmt.Fprintln(w, "soak: flat")
		} else {
			fmt.Fprintln(w, "soak: NOT flat")
		}
	}
	if r.Err != nil {
		fmt.Fprintf(w, "ERROR: %v\n", r.Err)
	}
	if r.ok() {
		fmt.Fprintln(w, "result: ok")
	} else {
		fmt.Fprintln(w, "result: FAIL")
	}
}

func (s *soakResult) churnOrZero() float64 {
	if s == nil {
		return 0
	}
	return s.churn
}

func orNA(s string) string {
	if s == "" {
		return "n/a"
	}
	return s
}

func countsText(m map[string]int64) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s ×%d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// writeSummary is every run in one table, then noticed's figures as
// ratios to Nchan's and Centrifugo's for the runs measured on both.
func writeSummary(w io.Writer, rs []*runResult) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprint(w, "\n## Summary\n\n")
	fmt.Fprint(w, "| target | mode | via | streams | events/s | opened/s | sent | lost | dup | misrouted | p50 | p99 | p99.9 | max | delivered/s | KiB/stream | server µs/event | Redis µs/event | storm caught up / soak | ok |\n")
	fmt.Fprint(w, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range rs {
		h := &r.Report.Latency
		caught := "-"
		if r.Soak != nil {
			caught = "flat"
			if !r.Soak.flat {
				caught = "NOT flat"
			}
		}
		if r.Mode == "storm" {
			caught = "no"
			if r.Storm.AllCaughtUp > 0 {
				caught = fmt.Sprintf("%.2f s", r.Storm.AllCaughtUp.Seconds())
			}
		}
		ok := "yes"
		if !r.ok() {
			ok = "**NO**"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %d | %s | %.0f | %d | %d | %d | %d | %s | %s | %s | %s | %.0f | %.1f | %s | %s | %s | %s |\n",
			r.Target, r.Mode, via(r), r.Streams, rateText(r.Rate), r.openRate(), r.Sent, r.lost(), r.Report.Dups, r.Report.Misrouted,
			msOrDash(h, 0.5), msOrDash(h, 0.99), msOrDash(h, 0.999), msOrDash(h, 1),
			r.delivered(), r.memPerStream()/1024,
			cpuOrDash(r.HaveServer, r.ServerCPU, r.WindowSent), cpuOrDash(r.HaveRedis, r.RedisCPU, r.WindowSent), caught, ok)
	}
	writeRatios(w, rs)
}

func msOrDash(h *hist, q float64) string {
	if h.N == 0 {
		return "-"
	}
	if q >= 1 {
		return ms(time.Duration(h.Max))
	}
	return ms(h.quantile(q))
}

func cpuOrDash(have bool, cpu time.Duration, events int64) string {
	if !have || events == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", perEvent(cpu, events))
}

// rivals are the servers noticed's figures are divided by, and the name
// of each in a heading.
var rivals = []struct{ kind, name string }{{"nchan", "Nchan"}, {"centrifugo", "Centrifugo"}}

// writeRatios divides noticed's figures by each rival's (Nchan's,
// Centrifugo's), run by run (same mode, streams and rate): below 1 noticed
// is faster or smaller, except for streams opened per second, where above
// 1 is better.
func writeRatios(w io.Writer, rs []*runResult) {
	for _, rv := range rivals {
		writeRatiosTo(w, rs, rv.kind, rv.name)
	}
}

func writeRatiosTo(w io.Writer, rs []*runResult, kind, name string) {
	type key struct {
		mode    string
		streams int
		rate    float64
	}
	rival := map[key]*runResult{}
	for _, r := range rs {
		if r.Target == kind && r.Err == nil {
			rival[key{r.Mode, r.Streams, r.Rate}] = r
		}
	}
	var lines []string
	for _, r := range rs {
		n, ok := rival[key{r.Mode, r.Streams, r.Rate}]
		if r.Target != "noticed" || !ok || r.Err != nil {
			continue
		}
		a, b := &r.Report.Latency, &n.Report.Latency
		lines = append(lines, fmt.Sprintf("| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |",
			r.Mode, via(r), r.Streams, rateText(r.Rate),
			ratio(a.quantile(0.5).Seconds(), b.quantile(0.5).Seconds()),
			ratio(a.quantile(0.99).Seconds(), b.quantile(0.99).Seconds()),
			ratio(a.quantile(0.999).Seconds(), b.quantile(0.999).Seconds()),
			ratio(float64(a.Max), float64(b.Max)),
			ratio(r.memPerStream(), n.memPerStream()),
			ratio(perEvent(r.ServerCPU, r.WindowSent), perEvent(n.ServerCPU, n.WindowSent)),
			ratio(perEvent(r.RedisCPU, r.WindowSent), perEvent(n.RedisCPU, n.WindowSent)),
			ratio(r.openRate(), n.openRate()),
			ratio(r.Storm.AllCaughtUp.Seconds(), n.Storm.AllCaughtUp.Seconds())))
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintf(w, "\n## noticed ÷ %s\n\nBelow 1: noticed is faster or uses less; for streams opened per second, above 1 is better. %s is always sent POSTs.\n\n", name, name)
	fmt.Fprint(w, "| mode | noticed via | streams | events/s | p50 | p99 | p99.9 | max | memory/stream | server CPU/event | Redis CPU/event | opened/s | storm catch-up |\n")
	fmt.Fprint(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}

func ratio(a, b float64) string {
	if a <= 0 || b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

var csvHeader = []string{
	"time", "mode", "target", "publish", "streams", "per_user", "rate", "duration_s", "procs",
	"opened", "open_s", "open_per_s",
	"sent", "window_sent", "pub_rate", "expected", "received", "lost", "dups", "misrouted", "bad", "gaps", "server_ended", "churned", "pub_failed",
	"p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "latency_n", "delivered_per_s",
	"rss_before_mib", "rss_idle_mib", "pss_before_mib", "pss_idle_mib", "mem_per_stream_kib", "fds_idle",
	"server_cpu_pct", "server_cpu_us_per_event", "redis_cpu_pct", "redis_cpu_us_per_event",
	"storm_behind", "storm_all_back_s", "storm_all_caught_up_s", "storm_p50_s", "storm_p99_s",
	"soak_flat", "ok", "error",
}

// publishColumn is "xadd", "post", or "post/N" for batches of N events
// (a column of its own would shift every later one in existing files).
func publishColumn(r *runResult) string {
	if r.Publish == "post" && r.PostBatch > 1 {
		return "post/" + strconv.Itoa(r.PostBatch)
	}
	return r.Publish
}

// appendCSV adds r as one row to path, with the header first when the
// file is new or empty.
func appendCSV(path string, r *runResult) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	cw := csv.NewWriter(f)
	if st.Size() == 0 {
		if err := cw.Write(csvHeader); err != nil {
			return err
		}
	}
	h, st2 := &r.Report.Latency, &r.Storm
	msf := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds()*1000, 'f', 3, 64) }
	num := func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
	mibf := func(b int64) string { return num(float64(b) / (1 << 20)) }
	lat := func(q float64) string {
		if h.N == 0 {
			return ""
		}
		return msf(h.quantile(q))
	}
	maxLat := ""
	if h.N > 0 {
		maxLat = msf(time.Duration(h.Max))
	}
	opt := func(have bool, v string) string {
		if !have {
			return ""
		}
		return v
	}
	soakFlat := ""
	if r.Soak != nil {
		soakFlat = strconv.FormatBool(r.Soak.flat)
	}
	errText := ""
	if r.Err != nil {
		// One line, so that line-based readers (scripts/plots.sh) keep rows whole.
		errText = strings.Join(strings.Fields(r.Err.Error()), " ")
	}
	row := []string{
		time.Now().UTC().Format(time.RFC3339), r.Mode, r.Target, publishColumn(r), strconv.Itoa(r.Streams), strconv.Itoa(r.PerUser),
		num(r.Rate), num(r.Duration.Seconds()), strconv.Itoa(max(r.Procs, 1)),
		strconv.FormatInt(r.Opened, 10), num(r.OpenTime.Seconds()), num(r.openRate()),
		strconv.FormatInt(r.Sent, 10), strconv.FormatInt(r.WindowSent, 10), num(r.PubRate), strconv.FormatInt(r.Expected, 10),
		strconv.FormatInt(r.Report.Received, 10), strconv.FormatInt(r.lost(), 10), strconv.FormatInt(r.Report.Dups, 10),
		strconv.FormatInt(r.Report.Misrouted, 10), strconv.FormatInt(r.Report.Bad, 10), strconv.FormatInt(r.Report.Gaps, 10),
		strconv.FormatInt(r.Report.Unexpected, 10), strconv.FormatInt(r.Report.Churned, 10), strconv.FormatInt(r.PubFailed, 10),
		lat(0.5), lat(0.9), lat(0.99), lat(0.999), maxLat, strconv.FormatInt(h.N, 10), num(r.delivered()),
		opt(r.HaveServer, mibf(r.Before.RSS)), opt(r.HaveServer, mibf(r.Idle.RSS)),
		opt(r.HaveServer, mibf(r.Before.PSS)), opt(r.HaveServer, mibf(r.Idle.PSS)),
		opt(r.HaveServer, num(r.memPerStream()/1024)), opt(r.HaveServer, strconv.Itoa(r.Idle.FDs)),
		opt(r.HaveServer && r.WindowSent > 0, num(share(r.ServerCPU, r.Window))), opt(r.HaveServer && r.WindowSent > 0, num(perEvent(r.ServerCPU, r.WindowSent))),
		opt(r.HaveRedis && r.WindowSent > 0, num(share(r.RedisCPU, r.Window))), opt(r.HaveRedis && r.WindowSent > 0, num(perEvent(r.RedisCPU, r.WindowSent))),
		opt(r.Mode == "storm", strconv.Itoa(r.Behind)), opt(r.Mode == "storm", num(st2.AllReconnected.Seconds())),
		opt(r.Mode == "storm", num(st2.AllCaughtUp.Seconds())), opt(r.Mode == "storm", num(st2.CatchUp.quantile(0.5).Seconds())),
		opt(r.Mode == "storm", num(st2.CatchUp.quantile(0.99).Seconds())),
		soakFlat, strconv.FormatBool(r.ok()), errText,
	}
	if err := cw.Write(row); err != nil {
		return err
	}
	cw.Flush()
	return cw.Error()
}

// commandsPerEvent lists the commands Redis ran in the window, costliest
// first, as calls and microseconds per event (INFO commandstats; the
// run's own INFO calls left out).
func commandsPerEvent(cmds map[string]commandStat, events int64) string {
	names := slices.SortedFunc(maps.Keys(cmds), func(a, b string) int { return cmp.Compare(cmds[b].usec, cmds[a].usec) })
	var parts []string
	for _, n := range names {
		if n == "info" {
			continue
		}
		c := cmds[n]
		parts = append(parts, fmt.Sprintf("%s %.2f calls %.1f µs", n, float64(c.calls)/float64(events), float64(c.usec)/float64(events)))
	}
	return strings.Join(parts, ", ")
}

func rateText(rate float64) string {
	if rate == 0 {
		return "-"
	}
	return strconv.FormatFloat(rate, 'g', -1, 64)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", d.Seconds()*1000) }
