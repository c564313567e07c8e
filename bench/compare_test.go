//go:build linux

package bench

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSearchParamsMeets(t *testing.T) {
	span := checkSpan{service: "api", name: "GET /", duration: 10 * time.Millisecond,
		attrs: map[string][]string{"k": {"v"}, "multi": {"x", "y"}}}
	for _, c := range []struct {
		name string
		q    searchParams
		tol  time.Duration
		want bool
	}{
		{"service", searchParams{service: "api"}, 0, true},
		{"other service", searchParams{service: "db"}, 0, false},
		{"operation", searchParams{service: "api", operation: "GET /"}, 0, true},
		{"other operation", searchParams{service: "api", operation: "POST /"}, 0, false},
		{"attribute", searchParams{service: "api", attrs: map[string]string{"k": "v"}}, 0, true},
		{"repeated key", searchParams{service: "api", attrs: map[string]string{"multi": "y"}}, 0, true},
		{"attribute missing", searchParams{service: "api", attrs: map[string]string{"k": "v", "z": "1"}}, 0, false},
		{"duration inside", searchParams{service: "api", durMin: 10 * time.Millisecond, durMax: 12 * time.Millisecond}, 0, true},
		{"duration below", searchParams{service: "api", durMin: 11 * time.Millisecond}, 0, false},
		{"duration above", searchParams{service: "api", durMax: 9 * time.Millisecond}, 0, false},
		{"duration within tolerance", searchParams{service: "api", durMin: 10*time.Millisecond + 500}, time.Microsecond, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := c.q.meets(&span, c.tol); got != c.want {
				t.Errorf("meets = %v, want %v", got, c.want)
			}
		})
	}
	// Conditions met by two different spans, never by one, are not a match.
	q := searchParams{service: "api", attrs: map[string]string{"k": "v"}, durMin: 20 * time.Millisecond}
	long := checkSpan{service: "api", duration: 30 * time.Millisecond}
	if q.anyMeets([]checkSpan{span, long}, 0) {
		t.Error("conditions met on different spans counted as a match")
	}
}

func TestGenerateCompareFacts(t *testing.T) {
	var buf bytes.Buffer
	f, err := GenerateCompare(&buf, WorkloadClickHouse, 1, 2005, 100)
	if err != nil {
		t.Fatal(err)
	}
	if f.Spans != 2005 || f.Traces != 201 {
		t.Errorf("%d spans in %d traces, want 2005 in 201", f.Spans, f.Traces)
	}
	// The ring of the newest traces holds the last one, cut to 5 spans.
	var cut bool
	for _, l := range f.last {
		cut = cut || l.spans == 5
	}
	if !cut || len(f.last) != compareLastTraces {
		t.Errorf("the newest traces %+v lack the cut one (5 spans)", f.last)
	}
	if f.CallTotal == 0 || f.Services != 4 || len(f.samples) == 0 {
		t.Errorf("calls %d, services %d, samples %d", f.CallTotal, f.Services, len(f.samples))
	}
	br, err := NewBatchReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := br.Next(); err != nil {
			break
		}
	}
	if _, spans, ok := br.Trailer(); !ok || spans != 2005 {
		t.Errorf("batch file holds %d spans (trailer read %v), want 2005", spans, ok)
	}
}

// TestCompareSmoke runs the whole comparison at a tiny size: the library
// always; `tracedb serve` and both Jaegers when TRACEDB_JAEGER_BIN names
// a Jaeger v2 binary (scripts/build-jaeger.sh prints its path).
func TestCompareSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds tracedb and starts processes")
	}
	dir := t.TempDir()
	jaeger := os.Getenv("TRACEDB_JAEGER_BIN")
	skip := map[Contender]bool{}
	var tracedbBin string
	if jaeger == "" {
		t.Log("TRACEDB_JAEGER_BIN is not set: only (a), the library, runs; see e2e/README.md")
		skip[ContenderServe], skip[ContenderJaegerBadger], skip[ContenderJaegerTracedb] = true, true, true
	} else {
		tracedbBin = filepath.Join(dir, "tracedb")
		if out, err := exec.Command("go", "build", "-o", tracedbBin, "github.com/tracedb/tracedb/cmd/tracedb").CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
	}
	batchFile := filepath.Join(dir, "w.batches")
	f, err := os.Create(batchFile)
	if err != nil {
		t.Fatal(err)
	}
	facts, err := GenerateCompare(f, WorkloadClickHouse, 1, 3000, 500)
	if err = errors.Join(err, f.Close()); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	res, err := RunCompare(t.Context(), CompareConfig{BatchFile: batchFile, Facts: facts, WorkDir: dir,
		TracedbBin: tracedbBin, JaegerBin: jaeger, Load: LoadConfig{Concurrency: 2}, Iterations: 3, Skip: skip,
		Log: &log, Workload: WorkloadClickHouse, Seed: 1, Batch: 500, Command: "test"})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	for c, r := range res.Results {
		if skip[Contender(c)] {
			continue
		}
		if r.Err != nil {
			t.Errorf("(%s): %v\n%s", r.Contender.Letter(), r.Err, log.String())
			continue
		}
		if r.Spans != 3000 || r.Wall <= 0 || r.Disk.Allocated <= 0 || r.RSSPeak <= 0 {
			t.Errorf("(%s): spans %d, wall %s, disk %d, rss %d", r.Contender.Letter(), r.Spans, r.Wall, r.Disk.Allocated, r.RSSPeak)
		}
		for k, s := range r.Queries {
			if s == nil || s.Err != nil || len(s.Samples) == 0 {
				t.Errorf("(%s) %s: %+v", r.Contender.Letter(), QueryKind(k), s)
			}
		}
		if Contender(c) == ContenderJaegerBadger {
			continue
		}
		// tracedb's answers are exact and its service graph complete.
		for _, k := range []QueryKind{QueryDurationRange, QueryCombined} {
			if s := r.Queries[k]; s != nil && s.Inexact != 0 {
				t.Errorf("(%s) %s: %d of %d answers inexact", r.Contender.Letter(), k, s.Inexact, s.Checked)
			}
		}
		if s := r.Queries[QueryDependencies]; s != nil && s.Calls != facts.CallTotal {
			t.Errorf("(%s) dependencies: %d calls, want %d", r.Contender.Letter(), s.Calls, facts.CallTotal)
		}
	}
	var text bytes.Buffer
	if err := res.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	md := res.Markdown()
	wants := []string{"ingest until queryable", "bytes on disk per span", "trace by ID p99", "dependencies: calls counted"}
	if jaeger != "" {
		wants = append(wants, "tracedb serve's gRPC storage API (b) / Jaeger+Badger (c)")
	}
	for _, want := range wants {
		if !strings.Contains(text.String(), want) || !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, text.String())
		}
	}
}
