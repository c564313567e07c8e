package query

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/index"
)

// The differential test: a seeded random workload is written to a real
// store (blocks over many partitions, plus the head), then thousands of
// random queries are answered by the engine and by a brute-force model
// that scans the raw spans the test wrote. The answers must be equal.
//
// Rerun a failure with the seed it prints; run longer with, for example,
// go test ./query/ -run Differential -query.iterations=100000 -query.seed=7

var (
	flagIterations = flag.Int("query.iterations", 0, "random queries of the differential test (0: the default size)")
	flagSeed       = flag.Uint64("query.seed", 1, "seed of the differential test's workload and queries")
)

// searchModel answers queries by scanning every span written, applying the
// semantics of TraceQuery as documented, with nothing shared with the
// engine but index.ValueString (the definition of a value's string form).
type searchModel struct {
	spans    []*encoding.Span
	services []string // services[i] is spans[i]'s service
	traces   map[encoding.TraceID][]*encoding.Span
	maxLimit int
}

func newSearchModel(spans []*encoding.Span, maxLimit int) *searchModel {
	m := &searchModel{spans: spans, maxLimit: maxLimit, traces: map[encoding.TraceID][]*encoding.Span{}}
	for _, s := range spans {
		m.services = append(m.services, s.ServiceName())
		m.traces[s.TraceID] = append(m.traces[s.TraceID], s)
	}
	return m
}

// invalid reports whether q breaks a rule of TraceQuery.
func (m *searchModel) invalid(q TraceQuery) bool {
	if q.Operation != "" && q.Service == "" {
		return true
	}
	if q.Limit < 0 || q.Limit > m.maxLimit {
		return true
	}
	if q.DurationMin < 0 || q.DurationMax < 0 || (q.DurationMax > 0 && q.DurationMin > q.DurationMax) {
		return true
	}
	if q.StartTime.End > 0 && q.StartTime.Start > q.StartTime.End {
		return true
	}
	if v, ok := q.Attributes[ErrorAttribute]; ok {
		if _, err := strconv.ParseBool(v); err != nil {
			return true
		}
	}
	return false
}

// matches reports whether span i meets every condition of q, whose
// attributes are attrs (pairs).
func (m *searchModel) matches(i int, q TraceQuery, attrs [][2]string) bool {
	s := m.spans[i]
	if q.Service != "" && m.services[i] != q.Service {
		return false
	}
	if q.Operation != "" && s.Name != q.Operation {
		return false
	}
	if s.StartUnixNano < q.StartTime.Start || (q.StartTime.End > 0 && s.StartUnixNano > q.StartTime.End) {
		return false
	}
	d := s.EndUnixNano - s.StartUnixNano
	if q.DurationMin > 0 && d < uint64(q.DurationMin) {
		return false
	}
	if q.DurationMax > 0 && d > uint64(q.DurationMax) {
		return false
	}
	if q.Filter != nil && !naiveMatch(q.Filter.Expr(), s) {
		return false
	}
	for _, kv := range attrs {
		k, v := kv[0], kv[1]
		if k == ErrorAttribute {
			isErr, _ := strconv.ParseBool(v)
			want := int32(encoding.StatusOk)
			if isErr {
				want = encoding.StatusError
			}
			if s.StatusCode != want {
				return false
			}
			continue
		}
		if !modelHasAttr(s, k, v) {
			return false
		}
	}
	return true
}

// modelHasAttr looks for key=value in the span's, the scope's, the
// resource's and the events' attributes.
func modelHasAttr(s *encoding.Span, key, value string) bool {
	if listHas(s.Attrs, key, value) {
		return true
	}
	if s.Scope != nil && listHas(s.Scope.Attrs, key, value) {
		return true
	}
	if s.Resource != nil && listHas(s.Resource.Attrs, key, value) {
		return true
	}
	for _, ev := range s.Events {
		if listHas(ev.Attrs, key, value) {
			return true
		}
	}
	return false
}

func listHas(kvs []encoding.KeyValue, key, value string) bool {
	for i := range kvs {
		if kvs[i].Key != key {
			continue
		}
		if str, ok := index.ValueString(&kvs[i].Value); ok && str == value {
			return true
		}
	}
	return false
}

// find returns the answer to q: for each trace with a matching span, the
// latest start of its matching spans; newest first, then by trace ID; cut
// at the limit.
// check runs q on the engine and fails t unless the answer is the model's:
// ErrInvalidQuery for an invalid query, else the same hits. label names
// the query in messages.
func (m *searchModel) check(t *testing.T, e *Engine, q TraceQuery, label string) {
	t.Helper()
	got, err := e.FindTraceIDs(context.Background(), q)
	if m.invalid(q) {
		if !errors.Is(err, ErrInvalidQuery) {
			t.Fatalf("%s: got %v, want ErrInvalidQuery", label, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s: %v", label, err)
	}
	if want := m.find(q, e.opts.DefaultLimit); !slices.Equal(got, want) {
		t.Fatalf("%s:\n got %v\nwant %v", label, got, want)
	}
}

func (m *searchModel) find(q TraceQuery, defaultLimit int) []TraceHit {
	var attrs [][2]string
	for k, v := range q.Attributes {
		attrs = append(attrs, [2]string{k, v})
	}
	latest := map[encoding.TraceID]uint64{}
	for i, s := range m.spans {
		if !m.matches(i, q, attrs) {
			continue
		}
		if t, ok := latest[s.TraceID]; !ok || s.StartUnixNano > t {
			latest[s.TraceID] = s.StartUnixNano
		}
	}
	hits := make([]TraceHit, 0, len(latest))
	for id, t := range latest {
		hits = append(hits, TraceHit{TraceID: id, Start: t})
	}
	slices.SortFunc(hits, func(a, b TraceHit) int {
		return cmp.Or(cmp.Compare(b.Start, a.Start), a.TraceID.Compare(b.TraceID))
	})
	limit := q.Limit
	if limit == 0 {
		limit = defaultLimit
	}
	return hits[:min(limit, len(hits))]
}

// traceSpans returns the distinct spans of trace id (exact duplicates
// once), ordered by start time, then span ID.
func (m *searchModel) traceSpans(id encoding.TraceID) []*encoding.Span {
	var out []*encoding.Span
	for _, s := range m.traces[id] {
		if !slices.ContainsFunc(out, s.Equal) {
			out = append(out, s)
		}
	}
	sortSpans(out)
	return out
}

// sortSpans orders spans by start time, then span ID.
func sortSpans(spans []*encoding.Span) {
	slices.SortStableFunc(spans, func(a, b *encoding.Span) int {
		return cmp.Or(cmp.Compare(a.StartUnixNano, b.StartUnixNano), slices.Compare(a.SpanID[:], b.SpanID[:]))
	})
}

// operations returns the distinct operations of service among the spans
// that start in r (or all spans, for the zero range).
func (m *searchModel) operations(service string, byKind bool, kind int32, r db.TimeRange) map[Operation]bool {
	out := map[Operation]bool{}
	for i, s := range m.spans {
		if m.services[i] != service || !inRange(s, r) || (byKind && s.Kind != kind) {
			continue
		}
		out[Operation{Name: s.Name, Kind: s.Kind}] = true
	}
	return out
}

// servicesIn returns the distinct non-empty services of the spans that
// start in r.
func (m *searchModel) servicesIn(r db.TimeRange) map[string]bool {
	out := map[string]bool{}
	for i, s := range m.spans {
		if m.services[i] != "" && inRange(s, r) {
			out[m.services[i]] = true
		}
	}
	return out
}

func inRange(s *encoding.Span, r db.TimeRange) bool {
	return s.StartUnixNano >= r.Start && (r.End == 0 || s.StartUnixNano <= r.End)
}

// queryGen draws random queries around the workload's spans: most
// conditions are taken from an anchor span, so that answers are rarely
// empty, and the rest are absent values, long values, the error tag,
// bounds inside duration buckets and invalid parameters.
type queryGen struct {
	r        *rand.Rand
	w        *workload
	maxLimit int
	// fg, when set, adds structured filters to a share of the queries
	// (see filter_search_test.go).
	fg *filterGen
}

func (g *queryGen) query() TraceQuery {
	r, w := g.r, g.w
	s := w.spans[r.IntN(len(w.spans))]
	var q TraceQuery
	switch x := r.IntN(20); {
	case x < 12:
		q.Service = s.ServiceName()
	case x < 13:
		q.Service = "no-such-service"
	case x < 15:
		q.Service = w.services[r.IntN(len(w.services))]
	}
	if q.Service != "" && r.IntN(2) == 0 {
		switch r.IntN(6) {
		case 0:
			q.Operation = "no-such-operation"
		case 1:
			q.Operation = w.ops[r.IntN(len(w.ops))]
		default:
			q.Operation = s.Name
		}
	}
	if n := []int{0, 0, 0, 1, 1, 1, 2, 2, 3}[r.IntN(9)]; n > 0 {
		q.Attributes = map[string]string{}
		for range n {
			k, v := g.attr(s)
			q.Attributes[k] = v
		}
	}
	if r.IntN(2) == 0 {
		q.StartTime = g.timeRange(s)
	}
	if r.IntN(3) == 0 {
		q.DurationMin, q.DurationMax = g.durations(s)
	}
	q.Limit = []int{0, 0, 1, 3, 3, 20, 20, 100, 100, g.maxLimit}[r.IntN(10)]
	if g.fg != nil && r.IntN(2) == 0 {
		q.Filter = g.filter(s)
	}
	if r.IntN(50) == 0 {
		g.breakRule(&q)
	}
	return q
}

// attr returns a key=value condition.
func (g *queryGen) attr(s *encoding.Span) (string, string) {
	r := g.r
	switch x := r.IntN(20); {
	case x < 12:
		// From the anchor, at any level (links included: they must not match).
		lists := [][]encoding.KeyValue{s.Attrs}
		if s.Scope != nil {
			lists = append(lists, s.Scope.Attrs)
		}
		if s.Resource != nil {
			lists = append(lists, s.Resource.Attrs)
		}
		for _, ev := range s.Events {
			lists = append(lists, ev.Attrs)
		}
		for _, l := range s.Links {
			lists = append(lists, l.Attrs)
		}
		kvs := lists[r.IntN(len(lists))]
		if len(kvs) == 0 {
			return "region", wlRegions[r.IntN(len(wlRegions))]
		}
		kv := kvs[r.IntN(len(kvs))]
		v, _ := index.ValueString(&kv.Value)
		if r.IntN(10) == 0 {
			v += "-absent"
		}
		return kv.Key, v
	case x < 15:
		return ErrorAttribute, []string{"true", "false", "1", "F", "TRUE"}[r.IntN(5)]
	case x < 18:
		gen := wlGen{r: r, userZipf: rand.NewZipf(r, 1.1, 1, 199)}
		kv := gen.attr(wlSpanKeys[r.IntN(len(wlSpanKeys))])
		v, _ := index.ValueString(&kv.Value)
		return kv.Key, v
	case x < 19:
		return "payload", wlLong[r.IntN(len(wlLong))]
	}
	return "no-such-key", "x"
}

// timeRange returns a start-time range around the anchor.
func (g *queryGen) timeRange(s *encoding.Span) db.TimeRange {
	r := g.r
	spread := func() uint64 { return r.Uint64N(g.w.window/4 + 1) }
	lo := s.StartUnixNano - min(s.StartUnixNano, spread())
	hi := s.StartUnixNano + spread()
	switch r.IntN(7) {
	case 0:
		return db.TimeRange{Start: lo}
	case 1:
		return db.TimeRange{End: hi}
	case 2:
		return db.TimeRange{Start: s.StartUnixNano, End: s.StartUnixNano}
	case 3:
		return db.TimeRange{Start: s.StartUnixNano + 1, End: hi}
	case 4:
		return db.TimeRange{Start: lo, End: s.StartUnixNano}
	}
	return db.TimeRange{Start: lo, End: hi}
}

// durations returns a duration range around the anchor's duration, with
// bounds on, next to and inside its bucket.
func (g *queryGen) durations(s *encoding.Span) (lo, hi time.Duration) {
	r := g.r
	d := min(s.EndUnixNano-s.StartUnixNano, math.MaxInt64/2)
	blo, bhi := index.BucketBounds(index.DurationBucket(d))
	pick := func() uint64 {
		switch r.IntN(6) {
		case 0:
			return d
		case 1:
			return d + 1
		case 2:
			return d - min(d, 1)
		case 3:
			return blo
		case 4:
			return bhi - 1
		}
		return blo + r.Uint64N(bhi-blo)
	}
	a, b := pick(), pick()
	if a > b {
		a, b = b, a
	}
	switch r.IntN(4) {
	case 0:
		return time.Duration(a), 0
	case 1:
		return 0, time.Duration(b)
	}
	return time.Duration(a), time.Duration(b)
}

// breakRule makes q invalid.
func (g *queryGen) breakRule(q *TraceQuery) {
	switch g.r.IntN(7) {
	case 0:
		q.Limit = -1
	case 1:
		q.Limit = g.maxLimit + 1
	case 2:
		q.Service, q.Operation = "", "GET /"
	case 3:
		q.DurationMin, q.DurationMax = 2*time.Second, time.Second
	case 4:
		q.DurationMin = -time.Nanosecond
	case 5:
		q.StartTime = db.TimeRange{Start: 10, End: 5}
	default:
		if q.Attributes == nil {
			q.Attributes = map[string]string{}
		}
		q.Attributes[ErrorAttribute] = "maybe"
	}
}

// differentialSize returns the workload and query counts: smaller under
// the race detector and -short.
func differentialSize() (cfg workloadConfig, queries int) {
	cfg = workloadConfig{
		rounds:         4,
		tracesPerRound: 1500,
		mixShare:       0.2,
		window:         40 * time.Minute,
		partitionWidth: time.Minute,
		rowGroupSpans:  64,
	}
	queries = 2000
	if raceEnabled || testing.Short() {
		cfg.tracesPerRound = 300
		queries = 400
	}
	if *flagIterations > 0 {
		queries = *flagIterations
	}
	return cfg, queries
}

func TestDifferential(t *testing.T) {
	cfg, queries := differentialSize()
	seed := *flagSeed
	built := time.Now()
	d, w := buildWorkload(t, seed, cfg)
	e, err := NewEngine(d, Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := newSearchModel(w.spans, e.opts.MaxLimit)
	t.Logf("seed %d: %d spans written in %s", seed, len(w.spans), time.Since(built).Round(time.Millisecond))
	checkAgainstModel(t, e, m, w, seed, queries)
}

// checkAgainstModel runs the differential checks: random searches, and
// FindTraces, summaries, services and operations, dependencies and
// pagination walks, each against the model.
func checkAgainstModel(t *testing.T, e *Engine, m *searchModel, w *workload, seed uint64, queries int) {
	t.Helper()
	fg := newWorkloadFilterGen(w, seed)

	ctx := context.Background()
	var stats struct{ invalid, empty, hits, full, traces, filtered int }
	var engineTime, modelTime time.Duration
	for i := range queries {
		g := &queryGen{r: rand.New(rand.NewPCG(seed, uint64(i))), w: w, maxLimit: e.opts.MaxLimit, fg: fg}
		q := g.query()
		if q.Filter != nil {
			stats.filtered++
		}
		t0 := time.Now()
		got, err := e.FindTraceIDs(ctx, q)
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
		t0 = time.Now()
		want := m.find(q, e.opts.DefaultLimit)
		modelTime += time.Since(t0)
		if !slices.Equal(got, want) {
			t.Fatalf("seed %d query %d %+v:\n got %d hits %v\nwant %d hits %v", seed, i, q, len(got), got, len(want), want)
		}
		if len(got) == 0 {
			stats.empty++
		} else {
			stats.hits++
		}
		if i%40 == 0 && len(want) > 0 {
			stats.full++
			stats.traces += checkFindTraces(t, e, m, q, want)
			checkSummaries(t, e, m, q, want)
		}
	}
	t.Logf("%d queries (%d with a filter): %d invalid, %d empty, %d with hits; %d FindTraces checked (%d traces); engine %s, model %s",
		queries, stats.filtered, stats.invalid, stats.empty, stats.hits, stats.full, stats.traces, engineTime.Round(time.Millisecond), modelTime.Round(time.Millisecond))

	checkServicesAndOperations(t, e, m, w, seed)
	checkDependencies(t, e, w, seed)
	checkPageWalks(t, e, m, w, fg, seed, max(queries/40, 10))
	checkSpanWalks(t, e, m, w, fg, seed, max(queries/40, 10))
}

// checkFindTraces checks that FindTraces yields, for each hit in order,
// every distinct span of the trace. It returns the number of traces.
func checkFindTraces(t *testing.T, e *Engine, m *searchModel, q TraceQuery, want []TraceHit) int {
	t.Helper()
	var order []TraceHit
	got := map[encoding.TraceID][]*encoding.Span{}
	for c, err := range e.FindTraces(context.Background(), q) {
		if err != nil {
			t.Fatalf("find traces %+v: %v", q, err)
		}
		if len(order) == 0 || order[len(order)-1] != c.Hit {
			order = append(order, c.Hit)
		}
		spans, _ := encoding.FromTraces(nil, nil, c.Traces)
		got[c.Hit.TraceID] = append(got[c.Hit.TraceID], spans...)
	}
	if !slices.Equal(order, want) {
		t.Fatalf("find traces %+v: hits %v, want %v", q, order, want)
	}
	for _, h := range want[:min(len(want), 50)] {
		// A chunk groups its spans by resource and scope, as OTLP does:
		// compare in the model's order.
		ws, gs := m.traceSpans(h.TraceID), got[h.TraceID]
		sortSpans(gs)
		if len(gs) != len(ws) {
			t.Fatalf("find traces %+v: trace %s has %d spans, want %d", q, h.TraceID, len(gs), len(ws))
		}
		for i := range gs {
			if !gs[i].Equal(ws[i]) {
				t.Fatalf("find traces %+v: trace %s span %d:\n got %+v\nwant %+v", q, h.TraceID, i, gs[i], ws[i])
			}
		}
	}
	return len(want)
}

// checkServicesAndOperations compares GetServices and GetOperations with
// the model: exactly over all time; over a range, between the exact
// answer (spans starting in the range) and the answer over all time, as
// readers are selected whole.
func checkServicesAndOperations(t *testing.T, e *Engine, m *searchModel, w *workload, seed uint64) {
	t.Helper()
	ctx := context.Background()
	r := rand.New(rand.NewPCG(seed, 1<<63))
	all := m.servicesIn(db.TimeRange{})
	for i := range 60 {
		var tr db.TimeRange
		if i > 0 {
			a, b := w.start+r.Uint64N(w.window), w.start+r.Uint64N(w.window)
			tr = db.TimeRange{Start: min(a, b), End: max(a, b)}
		}
		got, err := e.GetServices(ctx, tr)
		if err != nil {
			t.Fatalf("get services %+v: %v", tr, err)
		}
		exact := m.servicesIn(tr)
		gotSet := map[string]bool{}
		for _, s := range got {
			gotSet[s] = true
		}
		checkBetween(t, "services", tr, gotSet, exact, all)

		svc := w.services[r.IntN(len(w.services))]
		byKind, kind := r.IntN(2) == 0, int32(r.IntN(6))
		ops, err := e.GetOperations(ctx, OperationQuery{Service: svc, ByKind: byKind, Kind: kind, StartTime: tr})
		if err != nil {
			t.Fatalf("get operations %s: %v", svc, err)
		}
		if !slices.IsSortedFunc(ops, func(a, b Operation) int {
			return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Kind, b.Kind))
		}) {
			t.Fatalf("operations not sorted: %v", ops)
		}
		gotOps := map[Operation]bool{}
		for _, op := range ops {
			gotOps[op] = true
		}
		checkBetween(t, "operations of "+svc, tr, gotOps, m.operations(svc, byKind, kind, tr), m.operations(svc, byKind, kind, db.TimeRange{}))
	}
}

func checkBetween[K comparable](t *testing.T, what string, tr db.TimeRange, got, lo, hi map[K]bool) {
	t.Helper()
	for k := range lo {
		if !got[k] {
			t.Fatalf("%s in %+v: missing %v", what, tr, k)
		}
	}
	for k := range got {
		if !hi[k] {
			t.Fatalf("%s in %+v: %v never occurs", what, tr, k)
		}
	}
	if tr == (db.TimeRange{}) && len(got) != len(hi) {
		t.Fatalf("%s over all time: got %d, want %d", what, len(got), len(hi))
	}
}

// modelDependencies is GetDependencies by brute force over the spans in
// write order: a child is a distinct (trace ID, span ID, service) with a
// parent ID; its parent's service is that of the first span written with
// the parent's IDs; a call counts when the services differ and the child
// starts in r's minutes.
func modelDependencies(spans []*encoding.Span, r db.TimeRange) []DependencyLink {
	type spanKey struct {
		trace encoding.TraceID
		span  encoding.SpanID
	}
	type childKey struct {
		spanKey
		service string
	}
	svcOf := map[spanKey]string{}
	for _, s := range spans {
		if _, ok := svcOf[spanKey{s.TraceID, s.SpanID}]; !ok {
			svcOf[spanKey{s.TraceID, s.SpanID}] = s.ServiceName()
		}
	}
	lo, hi := encoding.MinuteOf(r.Start), ^uint32(0)
	if r.End != 0 {
		hi = encoding.MinuteOf(r.End)
	}
	counted := map[childKey]bool{}
	sums := map[[2]string]uint64{}
	for _, s := range spans {
		ck := childKey{spanKey{s.TraceID, s.SpanID}, s.ServiceName()}
		if s.ParentSpanID.IsZero() || s.ParentSpanID == s.SpanID || counted[ck] {
			continue
		}
		counted[ck] = true
		psvc, ok := svcOf[spanKey{s.TraceID, s.ParentSpanID}]
		if m := encoding.MinuteOf(s.StartUnixNano); !ok || psvc == ck.service || m < lo || m > hi {
			continue
		}
		sums[[2]string{psvc, ck.service}]++
	}
	var out []DependencyLink
	for k, n := range sums {
		out = append(out, DependencyLink{Parent: k[0], Child: k[1], CallCount: n})
	}
	slices.SortFunc(out, func(a, b DependencyLink) int {
		return cmp.Or(cmp.Compare(a.Parent, b.Parent), cmp.Compare(a.Child, b.Child))
	})
	return out
}

// checkDependencies compares GetDependencies with the model over the
// whole store and random time ranges.
func checkDependencies(t *testing.T, e *Engine, w *workload, seed uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 0xdeb))
	ranges := []db.TimeRange{{}, {Start: w.start, End: w.start + w.window}}
	for range 30 {
		a, b := w.start+r.Uint64N(w.window), w.start+r.Uint64N(w.window)
		ranges = append(ranges, db.TimeRange{Start: min(a, b), End: max(a, b)}, db.TimeRange{Start: a})
	}
	var calls uint64
	for _, tr := range ranges {
		got, err := e.GetDependencies(context.Background(), tr)
		if err != nil {
			t.Fatalf("seed %d: get dependencies %+v: %v", seed, tr, err)
		}
		want := modelDependencies(w.spans, tr)
		if !slices.Equal(got, want) {
			t.Fatalf("seed %d: get dependencies %+v:\n got %v\nwant %v", seed, tr, got, want)
		}
		if tr == (db.TimeRange{}) {
			for _, l := range got {
				calls += l.CallCount
			}
		}
	}
	if calls == 0 {
		t.Fatalf("seed %d: the workload has no cross-service calls to check", seed)
	}
	t.Logf("dependencies: %d ranges checked, %d calls in all", len(ranges), calls)
}
