// Package deploy holds what runs beside tracedb: Prometheus alerting rules
// and a Grafana dashboard. The test checks that they name only metrics, and
// labels of those metrics, that a store and a server really export.
package deploy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/server"
)

// recorder is a Registerer that remembers every metric described to it,
// with its variable labels, and registers it on a real registry too.
type recorder struct {
	*prometheus.Registry
	labels map[string]map[string]bool
}

var descRE = regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)

func (r *recorder) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 16)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		m := descRE.FindStringSubmatch(d.String())
		if m == nil {
			continue
		}
		ls := map[string]bool{}
		for _, l := range strings.Split(m[2], ",") {
			if l = strings.TrimSpace(l); l != "" {
				ls[l] = true
			}
		}
		r.labels[m[1]] = ls
	}
	return r.Registry.Register(c)
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// exported returns the metrics a store and a server export, by name.
func exported(t *testing.T) map[string]map[string]bool {
	t.Helper()
	rec := &recorder{Registry: prometheus.NewRegistry(), labels: map[string]map[string]bool{}}
	d, err := db.Open(t.TempDir(), db.Options{Registerer: rec})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	cfg := server.DefaultConfig()
	cfg.Listen = server.Listen{Storage: "127.0.0.1:0", Admin: server.Off, OTLPGRPC: server.Off, OTLPHTTP: server.Off,
		SamplingHTTP: "127.0.0.1:0", SamplingGRPC: server.Off}
	s, err := server.New(cfg, d, server.Options{Registerer: rec, Gatherer: rec.Registry})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if len(rec.labels) < 10 {
		t.Fatalf("only %d metrics recorded: %v", len(rec.labels), rec.labels)
	}
	return rec.labels
}

var (
	metricRE   = regexp.MustCompile(`\btracedb_[a-z0-9_]+`)
	selectorRE = regexp.MustCompile(`(tracedb_[a-z0-9_]+)\{([^}]*)\}`)
	matcherRE  = regexp.MustCompile(`([a-z_]+)\s*(=~|!=|!~|=)`)
	byRE       = regexp.MustCompile(`by \(([^)]*)\)`)
)

// checkExpr checks the metrics and labels of a PromQL expression.
func checkExpr(t *testing.T, where, expr string, metrics map[string]map[string]bool) {
	t.Helper()
	names := metricRE.FindAllString(expr, -1)
	if len(names) == 0 {
		t.Errorf("%s: %q names no tracedb metric", where, expr)
	}
	base := func(n string) string {
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(n, suf); ok {
				if _, known := metrics[b]; known {
					return b
				}
			}
		}
		return n
	}
	allLabels := map[string]bool{"le": true, "instance": true, "job": true}
	for _, n := range names {
		ls, ok := metrics[base(n)]
		if !ok {
			t.Errorf("%s: metric %s is not exported", where, n)
			continue
		}
		for l := range ls {
			allLabels[l] = true
		}
	}
	for _, m := range selectorRE.FindAllStringSubmatch(expr, -1) {
		for _, lm := range matcherRE.FindAllStringSubmatch(m[2], -1) {
			if !metrics[base(m[1])][lm[1]] {
				t.Errorf("%s: %s has no label %q", where, m[1], lm[1])
			}
		}
	}
	for _, m := range byRE.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(m[1], ",") {
			if l = strings.TrimSpace(l); !allLabels[l] {
				t.Errorf("%s: grouping by %q, a label none of its metrics has", where, l)
			}
		}
	}
}

func TestAlertRules(t *testing.T) {
	metrics := exported(t)
	b, err := os.ReadFile(filepath.Join("prometheus", "tracedb-alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Name  string
			Rules []struct {
				Alert, Expr string
				Labels      map[string]string
			}
		}
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			if r.Alert == "" || r.Labels["severity"] == "" {
				t.Errorf("rule %+v: want an alert name and a severity", r)
			}
			checkExpr(t, r.Alert, r.Expr, metrics)
		}
	}
	if n < 5 {
		t.Errorf("%d rules, want the five the issue names at least", n)
	}
}

func TestDashboard(t *testing.T) {
	metrics := exported(t)
	b, err := os.ReadFile(filepath.Join("grafana", "tracedb-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	if len(dash.Panels) == 0 {
		t.Fatal("no panels")
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			checkExpr(t, p.Title, tg.Expr, metrics)
		}
	}
}
