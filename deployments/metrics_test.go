package deployments_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// promql is one expression from the alert rules or the dashboard.
type promql struct {
	where string
	expr  string
}

// alertExprs parses alerts.yml as `promtool check rules` does (strict YAML,
// PromQL, label and annotation templates) and returns each rule's expr.
func alertExprs(t *testing.T) []promql {
	t.Helper()
	groups, errs := rulefmt.ParseFile("prometheus/alerts.yml", false, model.UTF8Validation,
		parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Error(err)
	}
	if groups == nil {
		t.FailNow()
	}
	runbooks, err := os.ReadFile(filepath.Join(repoRoot, "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	var out []promql
	seen := map[string]bool{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("group %s: a recording rule; runbooks exist for alerts only", g.Name)
				continue
			}
			if seen[r.Alert] {
				t.Errorf("alert %s defined twice", r.Alert)
			}
			seen[r.Alert] = true
			if r.Labels["severity"] != "page" && r.Labels["severity"] != "ticket" {
				t.Errorf("%s: severity %q, want page or ticket", r.Alert, r.Labels["severity"])
			}
			want := "docs/operations.md#alert-" + strings.ToLower(r.Alert)
			if r.Annotations["runbook_url"] != want {
				t.Errorf("%s: runbook_url %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
			}
			if !strings.Contains(string(runbooks), "\n### Alert: "+r.Alert+"\n") {
				t.Errorf("%s: docs/operations.md has no runbook heading \"### Alert: %s\"", r.Alert, r.Alert)
			}
			out = append(out, promql{"alert " + r.Alert, r.Expr})
		}
	}
	return out
}

// grafanaVars stand in for the dashboard's variables so its queries parse.
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "$__interval", "1m", "$marketplace", ".*")

var labelValuesRe = regexp.MustCompile(`^label_values\((\w+),\s*(\w+)\)$`)

// dashboardExprs returns every query of the dashboard: panel targets (at
// any depth, rows included) and templating queries.
func dashboardExprs(t *testing.T) []promql {
	t.Helper()
	b, err := os.ReadFile("grafana/dashboards/bidder.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID        string `json:"uid"`
		Panels     []any  `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	var out []promql
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if title, ok := v["title"].(string); ok {
				path = title
			}
			if e, ok := v["expr"].(string); ok {
				out = append(out, promql{"panel " + path, grafanaVars.Replace(e)})
			}
			for _, c := range v {
				walk(path, c)
			}
		case []any:
			for _, c := range v {
				walk(path, c)
			}
		}
	}
	walk("", d.Panels)
	for _, v := range d.Templating.List {
		q, ok := v.Query.(map[string]any)
		if !ok {
			continue
		}
		s, _ := q["query"].(string)
		m := labelValuesRe.FindStringSubmatch(s)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(metric, label)", v.Name, s)
			continue
		}
		out = append(out, promql{"variable " + v.Name, fmt.Sprintf("group by (%s) (%s)", m[2], m[1])})
	}
	if len(out) < 10 {
		t.Fatalf("only %d queries found in the dashboard", len(out))
	}
	return out
}

// TestAlertRulesAndDashboardParse needs no running bidder: it is the
// promtool part (and Grafana's queries through the same PromQL parser).
func TestAlertRulesAndDashboardParse(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	for _, q := range append(alertExprs(t), dashboardExprs(t)...) {
		if _, err := p.ParseExpr(q.expr); err != nil {
			t.Errorf("%s: %v\n%s", q.where, err, q.expr)
		}
	}
}

// runningBidder is `bidder run` in embedded mode (in-process Redis and
// sandbox): every role in one process, asynq's queue metrics included.
type runningBidder struct {
	base   string
	stderr *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var (
	metricsURLRe = regexp.MustCompile(`"metrics":"(http://[^"]+)/metrics"`)
	sandboxURLRe = regexp.MustCompile(`"url":"(http://[^"]+)"`)
)

// startBinary runs bidder with args in dir and returns the first match of re
// in its log, waiting up to 15 s.
func startBinary(t *testing.T, dir string, env []string, re *regexp.Regexp, args ...string) (string, *lockedBuffer) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}, env...)
	stderr := &lockedBuffer{}
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); pw.Close(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("bidder %v stderr (tail):\n%s", args, tail(stderr.String(), 3000))
		}
	})
	found := make(chan string, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			_, _ = stderr.Write(append(sc.Bytes(), '\n'))
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case v := <-found:
		return v, stderr
	case <-readDone:
		<-done
		t.Fatalf("bidder %v exited (%v):\n%s", args, cmd.ProcessState, stderr.String())
	case <-time.After(15 * time.Second):
		t.Fatalf("bidder %v: no %s in its log within 15s:\n%s", args, re, stderr.String())
	}
	return "", nil
}

// startBidderRun starts a faulty `bidder sandbox` (errors, ambiguous answers,
// rate limits, so the error and reconciliation series exist too) and
// `bidder run` against it with an in-process Redis (no redis section):
// every role in one process, asynq's queue metrics included.
func startBidderRun(t *testing.T) *runningBidder {
	t.Helper()
	const token = "deploy-test-token"
	sbURL, _ := startBinary(t, t.TempDir(), nil, sandboxURLRe, "sandbox", "--listen", "127.0.0.1:0",
		"--tokens", token, "--postings", "40", "--rate", "5", "--error-rate", "0.1", "--ambiguous-rate", "0.2",
		"--rate-limit-rate", "0.05", "--retry-after", "1s")
	emb, err := os.ReadFile(filepath.Join(repoRoot, "configs", "embedded.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.Replace(string(emb), "    embedded: true\n",
		"    base_url: "+sbURL+"\n    token_env: SANDBOX_TOKEN\n", 1)
	if doc == string(emb) {
		t.Fatal("configs/embedded.yaml has no `embedded: true` marketplace to point at the sandbox")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bidder.yaml"), []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	base, stderr := startBinary(t, dir, []string{"BIDDER_HTTP_ADDR=127.0.0.1:0", "SANDBOX_TOKEN=" + token}, metricsURLRe, "run")
	return &runningBidder{base: base, stderr: stderr}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (b *runningBidder) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(b.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

func sumOf(f *dto.MetricFamily, label, value string) float64 {
	total := 0.0
	if f == nil {
		return 0
	}
	for _, m := range f.Metric {
		for _, l := range m.Label {
			if l.GetName() == label && l.GetValue() == value && m.Counter != nil {
				total += m.Counter.GetValue()
			}
		}
	}
	return total
}

// sourceStrings is every Go string literal of the root module's non-test
// code: where a label value that no series shows yet must at least appear.
func sourceStrings(t *testing.T) string {
	t.Helper()
	var sb strings.Builder
	err := filepath.WalkDir(repoRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "deployments", "bench", "test", "testdata":
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sb.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sb.String()
}

// targetLabels are attached by Prometheus at scrape time, not by bidder.
var targetLabels = map[string]bool{"job": true, "instance": true}

// prometheusOwn are series Prometheus makes itself.
var prometheusOwn = map[string]bool{"up": true}

// TestMetricsExist scrapes a running `bidder run` after it placed a bid and
// checks every metric, label and label value the alert rules and the
// dashboard name: a renamed metric breaks this test, not the pager.
func TestMetricsExist(t *testing.T) {
	queries := append(alertExprs(t), dashboardExprs(t)...)
	b := startBidderRun(t)

	// Until a bid is placed and every metric an alert names has a series:
	// scans, bids, errors and asynq's collector report at their own pace.
	alertMetrics := map[string]bool{}
	for _, q := range queries {
		if !strings.HasPrefix(q.where, "alert ") {
			continue
		}
		if e, err := parser.NewParser(parser.Options{}).ParseExpr(q.expr); err == nil {
			parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
				if vs, ok := n.(*parser.VectorSelector); ok && !prometheusOwn[vs.Name] {
					alertMetrics[vs.Name] = true
				}
				return nil
			})
		}
	}
	var fams map[string]*dto.MetricFamily
	deadline := time.Now().Add(40 * time.Second)
	for {
		fams = b.scrape(t)
		var missing []string
		for name := range alertMetrics {
			if fams[name] == nil {
				missing = append(missing, name)
			}
		}
		if sumOf(fams["bidder_bids_total"], "outcome", "placed") > 0 && len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			// Fall through: the checks below name each missing metric.
			t.Logf("after 40s: placed bids %v, alert metrics without series %v", sumOf(fams["bidder_bids_total"], "outcome", "placed"), missing)
			break
		}
		time.Sleep(250 * time.Millisecond)
	}

	// The probe paths the manifests use, on the real process.
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get(b.base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", path, resp.StatusCode)
		}
	}

	src := sourceStrings(t)
	if !strings.Contains(src, `Name: "bidder_lock_acquire_total"`) {
		t.Fatal("the source walk found no metric declarations")
	}
	labelValues := func(f *dto.MetricFamily) map[string]map[string]bool {
		m := map[string]map[string]bool{}
		for _, s := range f.Metric {
			for _, l := range s.Label {
				if m[l.GetName()] == nil {
					m[l.GetName()] = map[string]bool{}
				}
				m[l.GetName()][l.GetValue()] = true
			}
		}
		if f.GetType() == dto.MetricType_HISTOGRAM {
			m["le"] = map[string]bool{}
		}
		return m
	}
	p := parser.NewParser(parser.Options{})
	checked := 0
	for _, q := range queries {
		expr, err := p.ParseExpr(q.expr)
		if err != nil {
			t.Errorf("%s: %v", q.where, err)
			continue
		}
		known := map[string]bool{"job": true, "instance": true} // labels available to grouping
		unverified := false
		var groupings [][]string
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			switch n := n.(type) {
			case *parser.AggregateExpr:
				groupings = append(groupings, n.Grouping)
			case *parser.VectorSelector:
				name := n.Name
				if prometheusOwn[name] {
					return nil
				}
				f := fams[name]
				if f == nil {
					for _, suf := range []string{"_bucket", "_sum", "_count"} {
						if h := fams[strings.TrimSuffix(name, suf)]; h != nil && strings.HasSuffix(name, suf) && h.GetType() == dto.MetricType_HISTOGRAM {
							f = h
						}
					}
				}
				if f == nil {
					// A vector nobody has touched yet has no series, so
					// /metrics omits it (bidder_enqueue_duplicates_total
					// before any duplicate enqueue). A panel may show such a
					// metric if the code declares it; an alert may not: a
					// rule on a metric that is not served never fires.
					base := name
					for _, suf := range []string{"_bucket", "_sum", "_count"} {
						base = strings.TrimSuffix(base, suf)
					}
					declared := regexp.MustCompile(`Name:\s+"(` + regexp.QuoteMeta(name) + `|` + regexp.QuoteMeta(base) + `)"`).MatchString(src)
					if strings.HasPrefix(q.where, "alert ") || !declared {
						t.Errorf("%s: metric %s is not in bidder's /metrics (declared in the source: %v)", q.where, name, declared)
					} else {
						t.Logf("%s: %s has no series yet in this run; declared in the source", q.where, name)
					}
					unverified = true
					return nil
				}
				checked++
				lv := labelValues(f)
				for l := range lv {
					known[l] = true
				}
				for _, m := range n.LabelMatchers {
					if m.Name == labels.MetricName || targetLabels[m.Name] {
						continue
					}
					vals, ok := lv[m.Name]
					if !ok {
						t.Errorf("%s: %s has no label %q (has %v)", q.where, name, m.Name, sortedKeys(lv))
						continue
					}
					// A value no series shows yet (result="stale" before any
					// stale write) must at least be one the code can produce.
					if m.Type == labels.MatchEqual && !vals[m.Value] && !strings.Contains(src, `"`+m.Value+`"`) {
						t.Errorf("%s: %s{%s=%q}: no series has that value and no string %q is in bidder's source", q.where, name, m.Name, m.Value, m.Value)
					}
				}
			}
			return nil
		})
		for _, g := range groupings {
			if unverified {
				break
			}
			for _, l := range g {
				if !known[l] {
					t.Errorf("%s: grouping by %q, a label none of its metrics has", q.where, l)
				}
			}
		}
	}
	if checked < 40 {
		t.Errorf("only %d selectors checked; the expression walk is broken", checked)
	}
}
