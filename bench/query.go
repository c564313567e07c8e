package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/query"
)

// QueryConfig sizes a query benchmark.
type QueryConfig struct {
	// Iterations is how many times each query kind runs, each time with
	// parameters drawn anew. Default 200.
	Iterations int
	// Seed draws the parameters.
	Seed uint64
}

// QueryStat is the latency of one kind of query over its iterations.
type QueryStat struct {
	Name    string
	Target  time.Duration // the target for the figure Percentile names; 0 when none
	Samples []time.Duration
	Results int // results summed over the iterations (traces, spans, links...)
	Note    string
}

// Percentile returns the q-th percentile (0..100) of the samples, nearest rank.
func (s *QueryStat) Percentile(q float64) time.Duration {
	if len(s.Samples) == 0 {
		return 0
	}
	x := slices.Clone(s.Samples)
	slices.Sort(x)
	i := int(float64(len(x))*q/100+0.5) - 1
	return x[min(max(i, 0), len(x)-1)]
}

// sample is a span drawn from the store to build query parameters from.
type sample struct {
	trace    encoding.TraceID
	service  string
	name     string
	duration time.Duration
	attrs    [][2]string // the span's own string attributes
}

// RunQueries measures the queries a Jaeger user makes, and tracedb's
// latency analytics, over the store's default tenant: the parameters are
// drawn from spans read from the store (not measured), each query kind runs
// cfg.Iterations times, sequentially.
func RunQueries(ctx context.Context, d *db.DB, cfg QueryConfig) ([]QueryStat, error) {
	if cfg.Iterations <= 0 {
		cfg.Iterations = 200
	}
	e, err := query.NewEngine(d, query.Options{})
	if err != nil {
		return nil, err
	}
	snap, err := d.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	defer snap.Release()
	var lo, hi uint64
	for i, r := range snap.Readers {
		info := r.Info()
		if i == 0 || info.MinStart < lo {
			lo = info.MinStart
		}
		hi = max(hi, info.MaxStart)
	}
	if hi == 0 {
		return nil, fmt.Errorf("the store is empty")
	}
	r := rand.New(rand.NewPCG(cfg.Seed, 0x9e37))
	samples, err := drawSamples(ctx, d, e, r, lo, hi, 400)
	if err != nil {
		return nil, err
	}
	pick := func() sample { return samples[r.IntN(len(samples))] }
	whole := db.TimeRange{Start: lo, End: hi}
	lastHour := db.TimeRange{Start: max(lo, hi-uint64(time.Hour)), End: hi}
	lastDay := db.TimeRange{Start: max(lo, hi-uint64(24*time.Hour)), End: hi}

	type kind struct {
		name   string
		target time.Duration
		note   string
		run    func() (int, error)
	}
	search := func(q query.TraceQuery) (int, error) {
		hits, err := e.FindTraceIDs(ctx, q)
		return len(hits), err
	}
	kinds := []kind{
		{"trace by ID (p99)", 5 * time.Millisecond, "no time hint", func() (int, error) {
			n := 0
			for td, err := range d.GetTrace(ctx, pick().trace, db.TimeRange{}) {
				if err != nil {
					return n, err
				}
				n += td.SpanCount()
			}
			if n == 0 {
				return 0, fmt.Errorf("a sampled trace has no spans")
			}
			return n, nil
		}},
		{"service + operation search (p50)", 10 * time.Millisecond, "limit 20, whole range", func() (int, error) {
			s := pick()
			return search(query.TraceQuery{Service: s.service, Operation: s.name, StartTime: whole, Limit: 20})
		}},
		{"one-attribute search (p50)", 5 * time.Millisecond, "service + 1 attribute, limit 20", func() (int, error) {
			s := pick()
			a := s.attrs[r.IntN(len(s.attrs))]
			return search(query.TraceQuery{Service: s.service, Attributes: map[string]string{a[0]: a[1]}, StartTime: whole, Limit: 20})
		}},
		{"three-attribute search (p50)", 0, "service + 3 attributes of one span, limit 20", func() (int, error) {
			s := pick()
			attrs := map[string]string{}
			for _, i := range r.Perm(len(s.attrs))[:min(3, len(s.attrs))] {
				attrs[s.attrs[i][0]] = s.attrs[i][1]
			}
			return search(query.TraceQuery{Service: s.service, Attributes: attrs, StartTime: whole, Limit: 20})
		}},
		{"duration-range search (p50)", 10 * time.Millisecond, "service + [d, 1.2 d], limit 20", func() (int, error) {
			s := pick()
			return search(query.TraceQuery{Service: s.service, DurationMin: s.duration, DurationMax: s.duration * 6 / 5, StartTime: whole, Limit: 20})
		}},
		{"combined search (p50)", 20 * time.Millisecond, "service + operation + attribute + duration ≥ d/2", func() (int, error) {
			s := pick()
			a := s.attrs[r.IntN(len(s.attrs))]
			return search(query.TraceQuery{Service: s.service, Operation: s.name, Attributes: map[string]string{a[0]: a[1]},
				DurationMin: s.duration / 2, StartTime: whole, Limit: 20})
		}},
		{"histogram 24 h, one service (p50)", 20 * time.Millisecond, "p50/p90/p95/p99 from per-block term histograms", func() (int, error) {
			h, err := e.LatencyHistogram(ctx, query.HistogramQuery{SpanConditions: query.SpanConditions{Service: pick().service, StartTime: lastDay}})
			return int(h.Total), err
		}},
		{"rate 1 h by minute, one service (p50)", 0, "requests and errors per minute, every span's start read", func() (int, error) {
			pts, err := e.Rate(ctx, query.RateQuery{SpanConditions: query.SpanConditions{Service: pick().service, StartTime: lastHour}, Step: time.Minute})
			n := 0
			for _, p := range pts {
				n += int(p.Requests)
			}
			return n, err
		}},
		{"dependencies 1 h (p50)", 20 * time.Millisecond, "every call counted", func() (int, error) {
			links, err := e.GetDependencies(ctx, lastHour)
			n := 0
			for _, l := range links {
				n += int(l.CallCount)
			}
			return n, err
		}},
		{"GetServices (p50)", 0, "", func() (int, error) {
			s, err := e.GetServices(ctx, db.TimeRange{})
			return len(s), err
		}},
		{"GetOperations (p50)", 0, "", func() (int, error) {
			ops, err := e.GetOperations(ctx, query.OperationQuery{Service: pick().service})
			return len(ops), err
		}},
	}
	var stats []QueryStat
	for _, k := range kinds {
		st := QueryStat{Name: k.name, Target: k.target, Note: k.note}
		for range cfg.Iterations {
			if err := ctx.Err(); err != nil {
				return stats, err
			}
			start := time.Now()
			n, err := k.run()
			st.Samples = append(st.Samples, time.Since(start))
			if err != nil {
				return stats, fmt.Errorf("%s: %w", k.name, err)
			}
			st.Results += n
		}
		stats = append(stats, st)
	}
	return stats, nil
}

// drawSamples reads n spans spread over [lo, hi]: a search in a random
// short window for each, then the span itself from its trace.
func drawSamples(ctx context.Context, d *db.DB, e *query.Engine, r *rand.Rand, lo, hi uint64, n int) ([]sample, error) {
	var out []sample
	for tries := 0; len(out) < n && tries < 20*n; tries++ {
		at := lo + r.Uint64N(hi-lo+1)
		hits, err := e.FindTraceIDs(ctx, query.TraceQuery{StartTime: db.TimeRange{Start: at, End: at + uint64(time.Second)}, Limit: 1})
		if err != nil {
			return nil, err
		}
		if len(hits) == 0 {
			continue
		}
		var spans []*encoding.Span
		for s, err := range d.TraceSpans(ctx, hits[0].TraceID, db.TimeRange{}) {
			if err != nil {
				return nil, err
			}
			spans = append(spans, s)
		}
		s := spans[r.IntN(len(spans))]
		smp := sample{trace: s.TraceID, service: s.ServiceName(), name: s.Name,
			duration: time.Duration(s.EndUnixNano - s.StartUnixNano)}
		for _, kv := range s.Attrs {
			if kv.Value.Type == encoding.ValueStr && len(kv.Value.Str) <= 64 {
				smp.attrs = append(smp.attrs, [2]string{kv.Key, kv.Value.Str})
			}
		}
		if smp.service == "" || len(smp.attrs) == 0 {
			continue
		}
		out = append(out, smp)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no span with a service and string attributes found to draw queries from")
	}
	return out, nil
}

// WriteQueryText prints the stats as a table.
func WriteQueryText(w io.Writer, stats []QueryStat) error {
	_, err := fmt.Fprintf(w, "%-36s %10s %10s %10s %12s  %s\n", "query", "p50", "p99", "target", "results/run", "note")
	for _, s := range stats {
		target := "-"
		if s.Target > 0 {
			target = fmtDur(s.Target)
		}
		if err == nil {
			_, err = fmt.Fprintf(w, "%-36s %10s %10s %10s %12.1f  %s\n", s.Name, fmtDur(s.Percentile(50)), fmtDur(s.Percentile(99)),
				target, float64(s.Results)/float64(max(1, len(s.Samples))), s.Note)
		}
	}
	return err
}

// QueryMarkdown renders the stats as a markdown table.
func QueryMarkdown(stats []QueryStat) string {
	var b strings.Builder
	b.WriteString("| query | p50 | p99 | target | met | results per run | note |\n|---|---|---|---|---|---|---|\n")
	for _, s := range stats {
		target, met := "–", "–"
		if s.Target > 0 {
			target = "≤ " + fmtDur(s.Target)
			got := s.Percentile(50)
			if strings.Contains(s.Name, "(p99)") {
				got = s.Percentile(99)
			}
			met = "yes"
			if got > s.Target {
				met = "**no**"
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %.1f | %s |\n", s.Name, fmtDur(s.Percentile(50)), fmtDur(s.Percentile(99)),
			target, met, float64(s.Results)/float64(max(1, len(s.Samples))), s.Note)
	}
	return b.String()
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.0f µs", float64(d)/1e3)
}
