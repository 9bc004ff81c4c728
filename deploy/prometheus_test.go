package deploy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestAlertRules checks the rules with Prometheus' own tool, and runs
// their unit tests, which fire every alert from sample series.
func TestAlertRules(t *testing.T) {
	t.Parallel()
	promtool := need(t, "promtool", "prometheus")
	run(t, time.Minute, promtool, "check", "rules", "prometheus/alerts.yml")
	run(t, 2*time.Minute, promtool, "test", "rules", "prometheus/alerts_test.yml")

	// Every alert has a unit test, and a reason for the operator.
	rules := readFile(t, "prometheus/alerts.yml")
	tests := readFile(t, "prometheus/alerts_test.yml")
	alerts := regexp.MustCompile(`(?m)^\s+- alert: (\S+)$`).FindAllStringSubmatch(rules, -1)
	if len(alerts) == 0 {
		t.Fatal("no alerts in alerts.yml")
	}
	for _, a := range alerts {
		if !regexp.MustCompile(`alertname: ` + a[1] + `\n\s+eval_time: \S+\n\s+exp_alerts:\n`).MatchString(tests) {
			t.Errorf("alert %s: no unit test expects it to fire", a[1])
		}
	}
	if n := strings.Count(rules, "\n          reason: "); n != len(alerts) {
		t.Errorf("%d alerts, %d reasons", len(alerts), n)
	}
}

// dashboard is the part of Grafana's JSON model the tests read.
type dashboard struct {
	Panels []struct {
		Type       string          `json:"type"`
		Title      string          `json:"title"`
		Datasource json.RawMessage `json:"datasource"`
		Targets    []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	var d dashboard
	if err := json.Unmarshal([]byte(readFile(t, "grafana/noticed.json")), &d); err != nil {
		t.Fatalf("grafana/noticed.json: %v", err)
	}
	return d
}

// grafanaVars are the dashboard's variables, replaced by what Grafana
// would put there, so that promtool can parse each query.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$job", ".*", "$instance", ".*")

// TestDashboardQueries parses every query of the dashboard with promtool,
// as recording rules: a query Prometheus cannot parse fails here, not on
// an operator's screen.
func TestDashboardQueries(t *testing.T) {
	t.Parallel()
	promtool := need(t, "promtool", "prometheus")
	d := readDashboard(t)
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	n := 0
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 || len(p.Datasource) == 0 {
			t.Errorf("panel %q: no query or no data source", p.Title)
		}
		for _, tg := range p.Targets {
			n++
			q, _ := json.Marshal(grafanaVars.Replace(tg.Expr))
			fmt.Fprintf(&rules, "      - record: dashboard:query%d\n        expr: %s\n", n, q)
		}
	}
	path := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(path, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, time.Minute, promtool, "check", "rules", path)
	t.Logf("%d panels, %d queries parsed", len(d.Panels), n)
}

// metricName finds the names of noticed's own series, Go's and the
// process's in a query ("up" is Prometheus' and is left out).
var metricName = regexp.MustCompile(`\b(?:noticed|go|process)_[a-z0-9_]+\b`)

// TestMetricNamesExist starts noticed and reads its /metrics: every
// series the rules and the dashboard name must be there, so renaming a
// metric fails this test instead of silencing an alert or a panel.
func TestMetricNamesExist(t *testing.T) {
	t.Parallel()
	exported := scrape(t, startNoticed(t))
	used := map[string][]string{}
	for _, m := range metricName.FindAllString(readFile(t, "prometheus/alerts.yml"), -1) {
		used[m] = append(used[m], "alerts.yml")
	}
	for _, p := range readDashboard(t).Panels {
		for _, tg := range p.Targets {
			for _, m := range metricName.FindAllString(tg.Expr, -1) {
				used[m] = append(used[m], fmt.Sprintf("dashboard %q", p.Title))
			}
		}
	}
	if len(used) == 0 {
		t.Fatal("no metric names found in the rules and the dashboard")
	}
	names := make([]string, 0, len(used))
	for m := range used {
		names = append(names, m)
	}
	sort.Strings(names)
	for _, m := range names {
		if !exported[m] {
			t.Errorf("%s (used in %s) is not in noticed's /metrics", m, strings.Join(used[m], ", "))
		}
	}
	t.Logf("%d metric names used, all exported: %v", len(names), names)
}

// startNoticed runs the binary on a free port of loopback and returns its
// base URL once it listens.
func startNoticed(t *testing.T) string {
	t.Helper()
	cmd := exec.Command(binary, "-addr", "127.0.0.1:0", "-jwt-secret", "deploy-test-secret-deploy-test-secret")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	listening := regexp.MustCompile(`"msg":"noticed listening","addr":"([^"]+)"`)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	select {
	case addr := <-found:
		return "http://" + addr
	case <-time.After(30 * time.Second):
		t.Fatal("noticed did not say it was listening within 30s")
	}
	return ""
}

// scrape returns the names of the samples at base's /metrics.
func scrape(t *testing.T, base string) map[string]bool {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	names := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
