package query

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/index"
)

// The analytics differential test: LatencyHistogram and Rate against a
// brute-force model that scans every span written, over the same random
// workload and random queries as TestDifferential (model_test.go).
//
// Counts are of stored spans: an exact duplicate written twice counts
// twice (histogram.go says why), so the model counts every span written,
// duplicates included, which is what the workload keeps in w.spans.

// modelMatching returns the indexes of the spans that meet sc.
func (m *searchModel) modelMatching(sc SpanConditions) []int {
	q := sc.traceQuery()
	var attrs [][2]string
	for k, v := range q.Attributes {
		attrs = append(attrs, [2]string{k, v})
	}
	var out []int
	for i := range m.spans {
		if m.matches(i, q, attrs) {
			out = append(out, i)
		}
	}
	return out
}

// modelHistogram counts the matching spans per duration bucket.
func (m *searchModel) modelHistogram(sc SpanConditions) []uint64 {
	counts := make([]uint64, index.NumBuckets)
	for _, i := range m.modelMatching(sc) {
		counts[index.DurationBucket(m.spans[i].Duration())]++
	}
	return counts
}

// modelRate counts the matching spans per step.
func (m *searchModel) modelRate(q RateQuery) []RatePoint {
	first, end, step := q.StartTime.Start, q.StartTime.End, uint64(q.Step)
	var out []RatePoint
	for lo := first; ; lo += step {
		hi := end
		if end-lo >= step {
			hi = lo + step - 1
		}
		out = append(out, RatePoint{Start: lo, End: hi})
		if hi == end {
			break
		}
	}
	for _, i := range m.modelMatching(q.SpanConditions) {
		s := m.spans[i]
		p := &out[(s.StartUnixNano-first)/step]
		p.Requests++
		if s.StatusCode == 2 {
			p.Errors++
		}
	}
	return out
}

// conditionsOf keeps the span conditions of a generated query.
func conditionsOf(q TraceQuery) SpanConditions {
	return SpanConditions{Service: q.Service, Operation: q.Operation, Attributes: q.Attributes,
		StartTime: q.StartTime, DurationMin: q.DurationMin, DurationMax: q.DurationMax, Filter: q.Filter}
}

func TestAnalyticsDifferential(t *testing.T) {
	cfg, queries := differentialSize()
	if *flagIterations == 0 {
		queries /= 4 // each query makes four calls; keep go test ./query/ short
	}
	seed := *flagSeed
	d, w := buildWorkload(t, seed, cfg)
	e, err := NewEngine(d, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// eRange is the same engine over readers that walk bucket postings
	// with PostingsRange (db's readers do not offer it yet).
	eRange, err := NewEngineWithStore(&wrapStore{inner: dbStore{d}, wrap: func(r BlockReader) BlockReader { return rangingReader{r} }}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := newSearchModel(w.spans, e.opts.MaxLimit)
	fg := newWorkloadFilterGen(w, seed)
	ctx := context.Background()
	var stats struct{ invalid, hist, settled, spans, points int }
	var decoded uint64
	var engineTime time.Duration
	steps := []time.Duration{time.Minute, 2 * time.Minute, 5 * time.Minute, 30 * time.Second, 7 * time.Second, 13 * time.Minute}
	for i := range queries {
		g := &queryGen{r: rand.New(rand.NewPCG(seed^0xa11a, uint64(i))), w: w, maxLimit: e.opts.MaxLimit, fg: fg}
		q := g.query()
		q.Limit, q.PageToken = 0, ""
		sc := conditionsOf(q)

		t0 := time.Now()
		h, err := e.LatencyHistogram(ctx, HistogramQuery{sc})
		engineTime += time.Since(t0)
		if m.invalid(q) {
			stats.invalid++
			if !errors.Is(err, ErrInvalidQuery) {
				t.Fatalf("seed %d query %d %+v: got error %v, want ErrInvalidQuery", seed, i, q, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("seed %d query %d %+v: %v", seed, i, q, err)
		}
		want := m.modelHistogram(sc)
		if !slices.Equal(h.Counts, want) {
			t.Fatalf("seed %d query %d %+v: histogram differs:\n got %v\nwant %v", seed, i, q, nonZero(h.Counts), nonZero(want))
		}
		checkHistogramSummary(t, h)
		if i%4 == 0 {
			hr, err := eRange.LatencyHistogram(ctx, HistogramQuery{sc})
			if err != nil || !slices.Equal(hr.Counts, want) {
				t.Fatalf("seed %d query %d %+v: with PostingsRange: %v, histogram %v, want %v", seed, i, q, err, nonZero(hr.Counts), nonZero(want))
			}
		}
		stats.hist++
		stats.spans += int(h.Total)
		decoded += h.Decoded
		if tq := sc.traceQuery(); sc.StartTime == (db.TimeRange{}) {
			// The promise: a query the postings settle, over whole
			// readers, decodes no span (edge duration buckets aside).
			c, _ := e.compile(&tq)
			if c.settledByPostings() && !c.hasDuration && h.Decoded != 0 {
				t.Fatalf("seed %d query %d %+v: %d spans decoded, want none", seed, i, q, h.Decoded)
			}
		}
		if h.Decoded == 0 {
			stats.settled++
		}

		// Rate over the query's range, or the whole window, in a random step.
		rq := RateQuery{SpanConditions: sc, Step: steps[g.r.IntN(len(steps))]}
		if rq.StartTime.End == 0 {
			rq.StartTime = db.TimeRange{Start: w.start + uint64(g.r.IntN(3))*uint64(time.Minute), End: w.start + w.window}
		}
		if r := &rq.StartTime; (r.End-r.Start)/uint64(rq.Step) >= MaxRateSteps {
			// An open-ended generated range: clamp it to the window.
			r.Start, r.End = max(r.Start, w.start), min(r.End, w.start+w.window)
			r.End = max(r.End, r.Start)
		}
		t0 = time.Now()
		pts, err := e.Rate(ctx, rq)
		engineTime += time.Since(t0)
		if err != nil {
			t.Fatalf("seed %d rate query %d %+v: %v", seed, i, rq, err)
		}
		if wantPts := m.modelRate(rq); !slices.Equal(pts, wantPts) {
			t.Fatalf("seed %d rate query %d %+v:\n got %v\nwant %v", seed, i, rq, pts, wantPts)
		}
		stats.points += len(pts)
		if i%4 == 0 {
			if ptsRange, err := eRange.Rate(ctx, rq); err != nil || !slices.Equal(ptsRange, pts) {
				t.Fatalf("seed %d rate query %d %+v: with PostingsRange: %v, %v, want %v", seed, i, rq, err, ptsRange, pts)
			}
		}
	}
	t.Logf("seed %d: %d spans written; %d queries: %d invalid, %d histograms (%d from cardinalities alone, %d spans counted, %d decoded), %d rate points; engine %s",
		seed, len(w.spans), queries, stats.invalid, stats.hist, stats.settled, stats.spans, decoded, stats.points, engineTime.Round(time.Millisecond))
	if stats.settled == 0 {
		t.Errorf("no histogram was computed from cardinalities alone")
	}
}

// rangingReader adds PostingsRange to a reader, built on Values and
// Postings, so that the tests take the engine's path for readers that
// offer it.
type rangingReader struct{ BlockReader }

func (r rangingReader) PostingsRange(name, from, to string, fn func(string, index.Postings) error) error {
	values, err := r.Values(name)
	if err != nil {
		return err
	}
	for _, v := range values {
		if v < from || to != "" && v >= to {
			continue
		}
		p, err := r.Postings(index.Term{Name: name, Value: v})
		if err != nil {
			return err
		}
		if err := fn(v, p); err != nil {
			return err
		}
	}
	return nil
}

// TestAnalyticsReaderErrors checks that a failing reader fails
// LatencyHistogram and Rate with an error that names the reader and wraps
// the cause, and that the readers are released.
func TestAnalyticsReaderErrors(t *testing.T) {
	api := testResource("api")
	d, _ := openWith(t, 1, testSpan(1, 1, api, "GET", 0, 100), testSpan(2, 1, api, "GET", 5, 1000))
	cond := SpanConditions{Service: "api", DurationMin: 101, StartTime: db.TimeRange{Start: testT0, End: testT0 + 1<<40}}
	for _, fail := range []string{"postings", "values", "spans"} {
		s := &wrapStore{inner: dbStore{d}, wrap: func(r BlockReader) BlockReader { return failingReader{r, fail} }}
		e, err := NewEngineWithStore(s, Options{})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		for name, run := range map[string]func() error{
			"histogram": func() error { _, err := e.LatencyHistogram(ctx, HistogramQuery{cond}); return err },
			"rate": func() error {
				_, err := e.Rate(ctx, RateQuery{cond, time.Hour})
				return err
			},
		} {
			if err := run(); !errors.Is(err, errInjected) || !strings.Contains(err.Error(), "block ") && !strings.Contains(err.Error(), "head") {
				t.Errorf("%s with failing %s: got %v, want the injected error with the reader's name", name, fail, err)
			}
		}
		if s.released != s.readers {
			t.Errorf("failing %s: %d views taken, %d released", fail, s.readers, s.released)
		}
	}
}

// checkHistogramSummary checks Total, MinBucket and MaxBucket against
// Counts.
func checkHistogramSummary(t *testing.T, h Histogram) {
	t.Helper()
	var total uint64
	lo, hi := -1, -1
	for b, n := range h.Counts {
		total += n
		if n > 0 {
			if lo < 0 {
				lo = b
			}
			hi = b
		}
	}
	if lo < 0 {
		lo, hi = 0, 0
	}
	if h.Total != total || int(h.MinBucket) != lo || int(h.MaxBucket) != hi {
		t.Fatalf("summary total %d buckets [%d, %d], want %d [%d, %d]", h.Total, h.MinBucket, h.MaxBucket, total, lo, hi)
	}
}

// nonZero returns the non-empty buckets of counts, for failure messages.
func nonZero(counts []uint64) map[int]uint64 {
	out := map[int]uint64{}
	for b, n := range counts {
		if n > 0 {
			out[b] = n
		}
	}
	return out
}

// TestHistogramQuantiles checks that quantiles from the histogram are
// within 2% of the exact nearest-rank quantile of the matching durations.
func TestHistogramQuantiles(t *testing.T) {
	cfg, _ := differentialSize()
	d, w := buildWorkload(t, *flagSeed+1, cfg)
	e, err := NewEngine(d, Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := newSearchModel(w.spans, e.opts.MaxLimit)
	ctx := context.Background()
	conds := []SpanConditions{{}}
	for _, svc := range w.services {
		conds = append(conds, SpanConditions{Service: svc})
	}
	conds = append(conds,
		SpanConditions{Attributes: map[string]string{ErrorAttribute: "true"}},
		SpanConditions{StartTime: db.TimeRange{Start: w.start + w.window/3, End: w.start + w.window/2}},
		SpanConditions{DurationMin: time.Millisecond, DurationMax: time.Second},
	)
	checked := 0
	for _, sc := range conds {
		h, err := e.LatencyHistogram(ctx, HistogramQuery{sc})
		if err != nil {
			t.Fatal(err)
		}
		var durs []uint64
		for _, i := range m.modelMatching(sc) {
			durs = append(durs, m.spans[i].Duration())
		}
		slices.Sort(durs)
		if len(durs) == 0 {
			if _, ok := h.Quantile(0.5); ok {
				t.Errorf("%+v: quantile of an empty histogram", sc)
			}
			continue
		}
		for _, q := range []float64{0.5, 0.9, 0.95, 0.99, 0, 1} {
			got, ok := h.Quantile(q)
			if !ok {
				t.Fatalf("%+v: no p%g", sc, q*100)
			}
			rank := max(int(math.Ceil(q*float64(len(durs)))), 1)
			exact := float64(durs[rank-1])
			if diff := math.Abs(float64(got) - exact); diff > 0.02*exact {
				t.Errorf("%+v: p%g = %d, exact %g (%d spans): off by %.2f%%", sc, q*100, got, exact, len(durs), 100*diff/exact)
			}
			checked++
		}
	}
	t.Logf("%d quantiles over %d queries within 2%%", checked, len(conds))
}

func TestRatePoint(t *testing.T) {
	for _, tc := range []struct {
		p                      RatePoint
		seconds, reqs, errs, r float64
	}{
		{RatePoint{Start: 0, End: uint64(time.Second) - 1, Requests: 10, Errors: 2}, 1, 10, 2, 0.2},
		{RatePoint{Start: 5, End: 5 + uint64(2*time.Second) - 1, Requests: 10, Errors: 0}, 2, 5, 0, 0},
		{RatePoint{Start: 0, End: uint64(time.Minute) - 1}, 60, 0, 0, 0},
	} {
		if got := tc.p.Seconds(); got != tc.seconds {
			t.Errorf("%+v: Seconds %g, want %g", tc.p, got, tc.seconds)
		}
		if got := tc.p.RequestRate(); got != tc.reqs {
			t.Errorf("%+v: RequestRate %g, want %g", tc.p, got, tc.reqs)
		}
		if got := tc.p.ErrorRate(); got != tc.errs {
			t.Errorf("%+v: ErrorRate %g, want %g", tc.p, got, tc.errs)
		}
		if got := tc.p.ErrorRatio(); got != tc.r {
			t.Errorf("%+v: ErrorRatio %g, want %g", tc.p, got, tc.r)
		}
	}
}

// TestRateInvalid checks that Rate refuses malformed steps and ranges.
func TestRateInvalid(t *testing.T) {
	cfg, _ := differentialSize()
	cfg.rounds, cfg.tracesPerRound = 1, 10
	d, _ := buildWorkload(t, 1, cfg)
	e, err := NewEngine(d, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		q    RateQuery
	}{
		{"no end", RateQuery{SpanConditions{StartTime: db.TimeRange{Start: 1}}, time.Second}},
		{"no step", RateQuery{SpanConditions{StartTime: db.TimeRange{Start: 1, End: 10}}, 0}},
		{"negative step", RateQuery{SpanConditions{StartTime: db.TimeRange{Start: 1, End: 10}}, -1}},
		{"too many steps", RateQuery{SpanConditions{StartTime: db.TimeRange{Start: 0, End: MaxRateSteps}}, 1}},
		{"reversed range", RateQuery{SpanConditions{StartTime: db.TimeRange{Start: 10, End: 1}}, 1}},
		{"operation without service", RateQuery{SpanConditions{Operation: "x", StartTime: db.TimeRange{Start: 1, End: 10}}, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := e.Rate(context.Background(), tc.q); !errors.Is(err, ErrInvalidQuery) {
				t.Fatalf("got %v, want ErrInvalidQuery", err)
			}
		})
	}
	pts, err := e.Rate(context.Background(), RateQuery{SpanConditions{StartTime: db.TimeRange{Start: 0, End: MaxRateSteps - 1}}, 1})
	if err != nil || len(pts) != MaxRateSteps {
		t.Fatalf("MaxRateSteps steps: %d points, %v", len(pts), err)
	}
}

func BenchmarkLatencyHistogram(b *testing.B) {
	e, w := benchEngine(b)
	mid := w.start + w.window/2
	for _, bc := range []struct {
		name string
		sc   SpanConditions
	}{
		{"all", SpanConditions{}},
		{"service", SpanConditions{Service: "frontend"}},
		{"service+operation", SpanConditions{Service: "frontend", Operation: "GET /api/items"}},
		{"service+attribute", SpanConditions{Service: "frontend", Attributes: map[string]string{"region": "eu-west"}}},
		{"service, 10 min", SpanConditions{Service: "frontend", StartTime: db.TimeRange{Start: mid, End: mid + uint64(10*time.Minute)}}},
		{"service, duration range", SpanConditions{Service: "frontend", DurationMin: time.Millisecond, DurationMax: time.Second}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var h Histogram
			for b.Loop() {
				var err error
				if h, err = e.LatencyHistogram(context.Background(), HistogramQuery{bc.sc}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(h.Total), "spans")
			b.ReportMetric(float64(h.Decoded), "decoded")
		})
	}
}

func BenchmarkRate(b *testing.B) {
	e, w := benchEngine(b)
	q := RateQuery{SpanConditions{Service: "frontend", StartTime: db.TimeRange{Start: w.start, End: w.start + w.window}}, time.Minute}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Rate(context.Background(), q); err != nil {
			b.Fatal(err)
		}
	}
}
