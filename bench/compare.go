//go:build linux

package bench

// The side-by-side benchmark (issue 8): one generated workload, four
// contenders started by the harness in the same run,
//
//	(a) tracedb as a library (db.Open + Write, as bench/ingest);
//	(b) `tracedb serve` as a child process, fed over OTLP/gRPC;
//	(c) Jaeger v2 with its embedded Badger backend (default options);
//	(d) Jaeger v2 in front of `tracedb serve` over remote storage,
//
// the same OTLP stream (SendOTLP, same concurrency) to (b), (c) and (d),
// the same queries, with the same parameters, through Jaeger's HTTP API
// for (c) and (d) and through the query engine for (a). bench/README.md
// explains every figure; bench/compare is the program.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/internal/spangen"
	"github.com/tracedb/tracedb/query"
)

// Contender names one of the four systems compared.
type Contender int

const (
	ContenderLibrary       Contender = iota // (a) tracedb as a library
	ContenderServe                          // (b) tracedb serve, OTLP/gRPC
	ContenderJaegerBadger                   // (c) Jaeger v2 + Badger
	ContenderJaegerTracedb                  // (d) Jaeger v2 + tracedb serve (remote storage)
	numContenders
)

func (c Contender) String() string {
	switch c {
	case ContenderLibrary:
		return "tracedb library"
	case ContenderServe:
		return "tracedb serve"
	case ContenderJaegerBadger:
		return "Jaeger+Badger"
	case ContenderJaegerTracedb:
		return "Jaeger+tracedb"
	}
	return fmt.Sprintf("Contender(%d)", int(c))
}

// isTracedb reports whether c stores in tracedb (every contender but
// Jaeger+Badger): its searches must be exact and its dependencies complete.
func (c Contender) isTracedb() bool { return c != ContenderJaegerBadger }

// Letter returns the contender's letter in the list: a, b, c, d.
func (c Contender) Letter() string { return string(rune('a' + int(c))) }

// Sizes of the comparison.
const (
	compareSamples       = 400 // traces drawn from the workload for query parameters
	compareLastTraces    = 20  // the newest traces, polled until queryable
	compareSampledPolled = 30  // and as many of the samples
	compareSearchLimit   = 20
	compareRatePeriod    = 500 * time.Millisecond // ingest-rate sampling
	queryableTimeout     = 10 * time.Minute       // after the last acknowledgement
	queryablePoll        = 200 * time.Millisecond
	depsLookback         = time.Hour
	// queryKindBudget bounds the time one query kind may take on one
	// contender: slow kinds run fewer iterations than asked.
	queryKindBudget = 90 * time.Second
)

// traceFacts is what the harness knows about one generated trace.
type traceFacts struct {
	id    encoding.TraceID
	spans int // spans of the trace in the workload (the last may be cut)
	// One span of the trace, for query parameters.
	service, name string
	duration      time.Duration
	attrs         [][2]string // its string attributes of at most 64 bytes
}

// WorkloadFacts is what the harness recorded while generating the
// workload: samples to draw query parameters from, the newest traces, and
// the exact service graph, to check the answers against.
type WorkloadFacts struct {
	Spans, Traces      int64
	MinStart, MaxStart uint64 // span start times, Unix ns
	samples            []traceFacts
	last               []traceFacts
	// Calls counts, per (parent service, child service), the spans whose
	// parent span is in the same trace and in another service.
	Calls     map[[2]string]uint64
	CallTotal uint64
	Services  int
}

// factsGenerator observes the traces a generator hands to Generate.
type factsGenerator struct {
	g       spangen.Generator
	r       *rand.Rand
	want    int64 // spans Generate will take
	f       *WorkloadFacts
	seen    int64
	svcs    map[string]bool
	lastIdx int
}

func (fg *factsGenerator) Trace() []*encoding.Span {
	t := fg.g.Trace()
	n := min(int64(len(t)), fg.want-fg.seen)
	if n > 0 {
		fg.observe(t[:n])
	}
	fg.seen += int64(len(t))
	return t
}

func (fg *factsGenerator) observe(spans []*encoding.Span) {
	f := fg.f
	f.Spans += int64(len(spans))
	f.Traces++
	byID := make(map[encoding.SpanID]*encoding.Span, len(spans))
	for _, s := range spans {
		byID[s.SpanID] = s
	}
	for _, s := range spans {
		if f.MinStart == 0 || s.StartUnixNano < f.MinStart {
			f.MinStart = s.StartUnixNano
		}
		f.MaxStart = max(f.MaxStart, s.StartUnixNano)
		svc := s.ServiceName()
		if !fg.svcs[svc] {
			fg.svcs[svc] = true
			f.Services++
		}
		if p := byID[s.ParentSpanID]; p != nil && p.ServiceName() != svc {
			f.Calls[[2]string{p.ServiceName(), svc}]++
			f.CallTotal++
		}
	}
	tf := traceFacts{id: spans[0].TraceID, spans: len(spans)}
	s := spans[fg.r.IntN(len(spans))]
	tf.service, tf.name, tf.duration = s.ServiceName(), s.Name, time.Duration(s.EndUnixNano-s.StartUnixNano)
	for _, kv := range s.Attrs {
		if kv.Value.Type == encoding.ValueStr && len(kv.Value.Str) <= 64 {
			tf.attrs = append(tf.attrs, [2]string{kv.Key, kv.Value.Str})
		}
	}
	// The newest traces, in a ring.
	if len(f.last) < compareLastTraces {
		f.last = append(f.last, tf)
	} else {
		f.last[fg.lastIdx] = tf
		fg.lastIdx = (fg.lastIdx + 1) % compareLastTraces
	}
	if tf.service == "" || len(tf.attrs) == 0 {
		return
	}
	// Reservoir sampling: every trace equally likely.
	if len(f.samples) < compareSamples {
		f.samples = append(f.samples, tf)
	} else if i := fg.r.Int64N(f.Traces); i < compareSamples {
		f.samples[i] = tf
	}
}

// GenerateCompare writes the workload of w and seed, spans spans in
// batches of batch, to out as a batch file (as Generate does) and returns
// what the comparison needs to know about it.
func GenerateCompare(out io.Writer, w Workload, seed uint64, spans, batch int) (*WorkloadFacts, error) {
	g, err := NewGenerator(w, seed)
	if err != nil {
		return nil, err
	}
	fg := &factsGenerator{g: g, r: rand.New(rand.NewPCG(seed, 0x5eed)), want: int64(spans),
		f: &WorkloadFacts{Calls: map[[2]string]uint64{}}, svcs: map[string]bool{}}
	if _, err := Generate(out, fg, spans, batch); err != nil {
		return nil, err
	}
	if len(fg.f.samples) == 0 {
		return nil, errors.New("generate: no trace to draw query parameters from")
	}
	return fg.f, nil
}

// CompareConfig is one run of the side-by-side benchmark.
type CompareConfig struct {
	BatchFile string // made by GenerateCompare
	Facts     *WorkloadFacts
	// WorkDir holds the stores and configs; each contender gets a
	// subdirectory.
	WorkDir    string
	TracedbBin string // for (b) and (d)
	JaegerBin  string // for (c) and (d)
	Load       LoadConfig
	// Iterations is how many times each query kind runs per contender,
	// with the same parameters for every contender. Dependencies run
	// min(Iterations, 20) times.
	Iterations int
	// Skip leaves contenders out.
	Skip map[Contender]bool
	// Log receives progress lines. Default: discarded.
	Log io.Writer
	// QueryProfile, when set, receives a pprof CPU profile of this
	// process while (a)'s queries run: the query engine alone.
	QueryProfile io.Writer

	// Described in the result only.
	Workload Workload
	Seed     uint64
	Batch    int
	Command  string
}

// RatePoint is the cumulative count of acknowledged spans at a time since
// the first Export.
type RatePoint struct {
	At    time.Duration
	Spans int64
}

// QueryKind names one of the compared queries.
type QueryKind int

const (
	QueryTraceByID QueryKind = iota
	QueryServiceOperation
	QueryOneAttribute
	QueryThreeAttributes
	QueryDurationRange
	QueryCombined
	QueryServices
	QueryDependencies
	numQueryKinds
)

func (k QueryKind) String() string {
	return [...]string{"trace by ID", "search service+operation", "search 1 attribute", "search 3 attributes",
		"search duration range", "search combined", "GetServices", "dependencies 1 h"}[k]
}

// QueryKinds returns every compared query kind, in the table's order.
func QueryKinds() []QueryKind {
	ks := make([]QueryKind, numQueryKinds)
	for i := range ks {
		ks[i] = QueryKind(i)
	}
	return ks
}

// isSearch reports whether k is a trace search whose answers are checked.
func (k QueryKind) isSearch() bool { return k >= QueryServiceOperation && k <= QueryCombined }

// KindStat is one query kind's figures on one contender.
type KindStat struct {
	Samples []time.Duration // sorted
	Results int64           // traces (or spans, services, calls) returned over all runs
	// Checked, Inexact: for searches, traces returned and, of them, those
	// in which no single span meets every condition of the query.
	Checked, Inexact int64
	// Calls is, for dependencies, the calls counted by the last run.
	Calls uint64
	Err   error
}

// Quantile returns the q-quantile (0..1) of the samples, nearest rank.
func (s *KindStat) Quantile(q float64) time.Duration {
	if len(s.Samples) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(s.Samples)))) - 1
	return s.Samples[min(max(i, 0), len(s.Samples)-1)]
}

// ContenderResult is one contender's figures.
type ContenderResult struct {
	Contender Contender
	Skipped   string // why it did not run; empty when it did
	Err       error
	// LoadAverage is /proc/loadavg's first three fields when the
	// contender started: the machine may be shared.
	LoadAverage string

	Spans int64
	// Wall is from the first Write or Export until every span is
	// queryable: (a) the last Write returned and the final Flush is done;
	// (b) every Export is acknowledged (tracedb's spans are readable once
	// acknowledged; the server's own counter is checked); (c), (d) Jaeger's
	// HTTP API returns every polled trace complete.
	Wall       time.Duration
	AckedAfter time.Duration // (b)–(d): until the last acknowledgement
	Drain      time.Duration // the writer's close: (a) final Flush; (b)–(d) SIGTERM to exit
	Retries    int64
	ExportP99  time.Duration
	Disk       DiskUsage // the store after the writer is closed
	RSSPeak    int64     // while ingesting; (d): both processes
	RSSNote    string
	Rate       []RatePoint
	Queries    [numQueryKinds]*KindStat
}

// SpansPerSecond is the sustained ingest rate.
func (r *ContenderResult) SpansPerSecond() float64 {
	if r.Wall <= 0 {
		return 0
	}
	return float64(r.Spans) / r.Wall.Seconds()
}

// BytesPerSpan is the allocated size of the store per span.
func (r *ContenderResult) BytesPerSpan() float64 {
	return float64(r.Disk.Allocated) / float64(max(r.Spans, 1))
}

// CompareResult is a whole run.
type CompareResult struct {
	Date                  time.Time
	Workload              Workload
	Seed                  uint64
	Batch                 int
	Load                  LoadConfig
	Iterations            int
	GOMAXPROCS, CPUs      int
	CPUModel              string
	LoadBefore, LoadAfter string
	Command               string
	Facts                 *WorkloadFacts
	Results               [numContenders]*ContenderResult
}

// searchParams is one search, the same for every contender.
type searchParams struct {
	service, operation string
	attrs              map[string]string
	durMin, durMax     time.Duration // 0: unset; whole microseconds
}

// queryPlan holds every query's parameters, drawn once.
type queryPlan struct {
	traceIDs []traceFacts
	searches [numQueryKinds][]searchParams
	// The searches' and dependencies' window.
	start, end time.Time
	depsEnd    time.Time
	iterations int
	depsIters  int
}

func newQueryPlan(f *WorkloadFacts, iterations int, seed uint64) *queryPlan {
	r := rand.New(rand.NewPCG(seed, 0x9e37))
	p := &queryPlan{iterations: iterations, depsIters: min(iterations, 20),
		start: time.Unix(0, int64(f.MinStart)).Add(-time.Second),
		end:   time.Unix(0, int64(f.MaxStart)).Add(time.Hour)}
	p.depsEnd = time.Unix(0, int64(f.MaxStart)).Add(time.Minute).Truncate(time.Minute)
	pick := func() traceFacts { return f.samples[r.IntN(len(f.samples))] }
	attrsOf := func(s traceFacts, n int) map[string]string {
		m := map[string]string{}
		for _, i := range r.Perm(len(s.attrs))[:min(n, len(s.attrs))] {
			m[s.attrs[i][0]] = s.attrs[i][1]
		}
		return m
	}
	us := func(d time.Duration) time.Duration { return d.Truncate(time.Microsecond) }
	for range iterations {
		p.traceIDs = append(p.traceIDs, pick())
		s := pick()
		p.searches[QueryServiceOperation] = append(p.searches[QueryServiceOperation], searchParams{service: s.service, operation: s.name})
		s = pick()
		p.searches[QueryOneAttribute] = append(p.searches[QueryOneAttribute], searchParams{service: s.service, attrs: attrsOf(s, 1)})
		s = pick()
		p.searches[QueryThreeAttributes] = append(p.searches[QueryThreeAttributes], searchParams{service: s.service, attrs: attrsOf(s, 3)})
		s = pick()
		d := max(us(s.duration), time.Microsecond)
		p.searches[QueryDurationRange] = append(p.searches[QueryDurationRange], searchParams{service: s.service, durMin: d, durMax: us(d*6/5) + time.Microsecond})
		s = pick()
		p.searches[QueryCombined] = append(p.searches[QueryCombined], searchParams{service: s.service, operation: s.name,
			attrs: attrsOf(s, 1), durMin: max(us(s.duration/2), time.Microsecond)})
	}
	return p
}

// checkSpan is a span as the exactness check sees it.
type checkSpan struct {
	service, name string
	duration      time.Duration
	attrs         map[string][]string // span and resource attributes, as strings
}

// meets reports whether s alone meets every condition of q. tol widens
// the duration bounds (Jaeger's API reports whole microseconds).
func (q *searchParams) meets(s *checkSpan, tol time.Duration) bool {
	if s.service != q.service || (q.operation != "" && s.name != q.operation) {
		return false
	}
	if q.durMin > 0 && s.duration+tol < q.durMin {
		return false
	}
	if q.durMax > 0 && s.duration > q.durMax+tol {
		return false
	}
	for k, v := range q.attrs {
		if !slices.Contains(s.attrs[k], v) {
			return false
		}
	}
	return true
}

// anyMeets reports whether one span of spans meets q.
func (q *searchParams) anyMeets(spans []checkSpan, tol time.Duration) bool {
	for i := range spans {
		if q.meets(&spans[i], tol) {
			return true
		}
	}
	return false
}

// queryBackend runs the compared queries on one contender. Each call
// returns the number of results and, for searches, a check that runs
// after the timing and returns how many of the answers have no single
// span meeting every condition.
type queryBackend interface {
	traceByID(ctx context.Context, t traceFacts) (int, error)
	search(ctx context.Context, q searchParams, p *queryPlan) (n int, check func() (inexact int, err error), err error)
	services(ctx context.Context) (int, error)
	dependencies(ctx context.Context, p *queryPlan) (uint64, error)
}

// runQueries runs the plan on b, sequentially, each kind for at most
// queryKindBudget.
func runQueries(ctx context.Context, b queryBackend, p *queryPlan, log func(string, ...any)) [numQueryKinds]*KindStat {
	var out [numQueryKinds]*KindStat
	for k := range numQueryKinds {
		st := &KindStat{}
		out[k] = st
		n := p.iterations
		if k == QueryDependencies {
			n = p.depsIters
		}
		began := time.Now()
		for i := range n {
			if ctx.Err() != nil || time.Since(began) > queryKindBudget {
				break
			}
			var (
				res   int
				check func() (int, error)
				calls uint64
				err   error
			)
			t0 := time.Now()
			switch {
			case k == QueryTraceByID:
				res, err = b.traceByID(ctx, p.traceIDs[i])
				if err == nil && res != p.traceIDs[i].spans {
					err = fmt.Errorf("trace %s: %d spans, want %d", p.traceIDs[i].id, res, p.traceIDs[i].spans)
				}
			case k.isSearch():
				res, check, err = b.search(ctx, p.searches[k][i], p)
			case k == QueryServices:
				res, err = b.services(ctx)
			case k == QueryDependencies:
				calls, err = b.dependencies(ctx, p)
				res = int(calls)
			}
			st.Samples = append(st.Samples, time.Since(t0))
			if err != nil {
				st.Err = fmt.Errorf("%s: %w", k, err)
				break
			}
			st.Results += int64(res)
			st.Calls = calls
			if check != nil {
				bad, err := check()
				if err != nil {
					st.Err = fmt.Errorf("%s: check: %w", k, err)
					break
				}
				st.Checked += int64(res)
				st.Inexact += int64(bad)
			}
		}
		slices.Sort(st.Samples)
		log("  %-26s %4d runs  p50 %-10s p99 %-10s %s", k, len(st.Samples), fmtDur(st.Quantile(0.5)), fmtDur(st.Quantile(0.99)), errString(st.Err))
	}
	return out
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return "error: " + err.Error()
}

// engineBackend queries a store through tracedb's query engine, in
// process; searches assemble the found traces whole (FindTraces), as
// Jaeger's API does.
type engineBackend struct {
	d *db.DB
	e *query.Engine
}

func (b *engineBackend) traceByID(ctx context.Context, t traceFacts) (int, error) {
	n := 0
	for td, err := range b.d.GetTrace(ctx, t.id, db.TimeRange{}) {
		if err != nil {
			return n, err
		}
		n += td.SpanCount()
	}
	return n, nil
}

func (b *engineBackend) search(ctx context.Context, q searchParams, p *queryPlan) (int, func() (int, error), error) {
	tq := query.TraceQuery{Service: q.service, Operation: q.operation, Attributes: q.attrs,
		DurationMin: q.durMin, DurationMax: q.durMax, Limit: compareSearchLimit,
		StartTime: db.TimeRange{Start: uint64(p.start.UnixNano()), End: uint64(p.end.UnixNano())}}
	var ids []encoding.TraceID
	for c, err := range b.e.FindTraces(ctx, tq) {
		if err != nil {
			return 0, nil, err
		}
		if len(ids) == 0 || ids[len(ids)-1] != c.Hit.TraceID {
			ids = append(ids, c.Hit.TraceID)
		}
	}
	check := func() (int, error) {
		bad := 0
		for _, id := range ids {
			var spans []checkSpan
			for s, err := range b.d.TraceSpans(ctx, id, db.TimeRange{}) {
				if err != nil {
					return bad, err
				}
				spans = append(spans, engineCheckSpan(s))
			}
			if !q.anyMeets(spans, 0) {
				bad++
			}
		}
		return bad, nil
	}
	return len(ids), check, nil
}

func engineCheckSpan(s *encoding.Span) checkSpan {
	c := checkSpan{service: s.ServiceName(), name: s.Name, duration: time.Duration(s.EndUnixNano - s.StartUnixNano),
		attrs: map[string][]string{}}
	add := func(kvs []encoding.KeyValue) {
		for _, kv := range kvs {
			if kv.Value.Type == encoding.ValueStr {
				c.attrs[kv.Key] = append(c.attrs[kv.Key], kv.Value.Str)
			}
		}
	}
	add(s.Attrs)
	if s.Resource != nil {
		add(s.Resource.Attrs)
	}
	return c
}

func (b *engineBackend) services(ctx context.Context) (int, error) {
	s, err := b.e.GetServices(ctx, db.TimeRange{})
	return len(s), err
}

func (b *engineBackend) dependencies(ctx context.Context, p *queryPlan) (uint64, error) {
	links, err := b.e.GetDependencies(ctx, db.TimeRange{Start: uint64(p.depsEnd.Add(-depsLookback).UnixNano()), End: uint64(p.depsEnd.UnixNano())})
	var n uint64
	for _, l := range links {
		n += l.CallCount
	}
	return n, err
}

// jaegerBackend queries Jaeger's HTTP API. The timing covers the request
// and reading the whole answer; decoding it for the check does not count.
type jaegerBackend struct{ api *jaegerAPI }

func (b *jaegerBackend) traceByID(ctx context.Context, t traceFacts) (int, error) {
	body, err := b.api.get(ctx, "/api/traces/"+t.id.String(), nil)
	if err != nil {
		return 0, err
	}
	trs, err := decodeJaeger[[]jaegerTrace](body)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, tr := range trs {
		n += len(tr.Spans)
	}
	return n, nil
}

func (b *jaegerBackend) search(ctx context.Context, q searchParams, p *queryPlan) (int, func() (int, error), error) {
	v := url.Values{}
	v.Set("service", q.service)
	if q.operation != "" {
		v.Set("operation", q.operation)
	}
	if len(q.attrs) > 0 {
		tags, err := json.Marshal(q.attrs)
		if err != nil {
			return 0, nil, err
		}
		v.Set("tags", string(tags))
	}
	if q.durMin > 0 {
		v.Set("minDuration", strconv.FormatInt(q.durMin.Microseconds(), 10)+"us")
	}
	if q.durMax > 0 {
		v.Set("maxDuration", strconv.FormatInt(q.durMax.Microseconds(), 10)+"us")
	}
	v.Set("start", strconv.FormatInt(p.start.UnixMicro(), 10))
	v.Set("end", strconv.FormatInt(p.end.UnixMicro(), 10))
	v.Set("limit", strconv.Itoa(compareSearchLimit))
	body, err := b.api.get(ctx, "/api/traces", v)
	if err != nil {
		return 0, nil, err
	}
	trs, err := decodeJaeger[[]jaegerTrace](body)
	if err != nil {
		return 0, nil, err
	}
	check := func() (int, error) {
		bad := 0
		for i := range trs {
			if !q.anyMeets(trs[i].spans(), time.Microsecond) {
				bad++
			}
		}
		return bad, nil
	}
	return len(trs), check, nil
}

func (b *jaegerBackend) services(ctx context.Context) (int, error) {
	body, err := b.api.get(ctx, "/api/services", nil)
	if err != nil {
		return 0, err
	}
	s, err := decodeJaeger[[]string](body)
	return len(s), err
}

func (b *jaegerBackend) dependencies(ctx context.Context, p *queryPlan) (uint64, error) {
	body, err := b.api.get(ctx, "/api/dependencies", url.Values{
		"endTs":    {strconv.FormatInt(p.depsEnd.UnixMilli(), 10)},
		"lookback": {strconv.FormatInt(depsLookback.Milliseconds(), 10)},
	})
	if err != nil {
		return 0, err
	}
	deps, err := decodeJaeger[[]jaegerDependency](body)
	var n uint64
	for _, d := range deps {
		n += d.CallCount
	}
	return n, err
}

// RunCompare runs every contender not skipped, one after the other, and
// returns their figures. A contender that fails is reported with its
// error; the others still run. Every child process is stopped before
// RunCompare returns.
func RunCompare(ctx context.Context, cfg CompareConfig) (*CompareResult, error) {
	cfg.Load.fillDefaults()
	if cfg.Iterations <= 0 {
		cfg.Iterations = 100
	}
	logf := func(format string, args ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, format+"\n", args...)
		}
	}
	res := &CompareResult{Date: time.Now().UTC(), Workload: cfg.Workload, Seed: cfg.Seed, Batch: cfg.Batch, Load: cfg.Load,
		Iterations: cfg.Iterations, GOMAXPROCS: runtime.GOMAXPROCS(0), CPUs: runtime.NumCPU(), CPUModel: cpuModel(),
		LoadBefore: loadAverage(), Command: cfg.Command, Facts: cfg.Facts}
	plan := newQueryPlan(cfg.Facts, cfg.Iterations, cfg.Seed)
	for c := range numContenders {
		r := &ContenderResult{Contender: c}
		res.Results[c] = r
		switch {
		case cfg.Skip[c]:
			r.Skipped = "skipped (-skip)"
			continue
		case (c == ContenderServe || c == ContenderJaegerTracedb) && cfg.TracedbBin == "":
			r.Skipped = "no tracedb binary"
			continue
		case (c == ContenderJaegerBadger || c == ContenderJaegerTracedb) && cfg.JaegerBin == "":
			r.Skipped = "no Jaeger binary (-jaeger or TRACEDB_JAEGER_BIN)"
			continue
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		dir := filepath.Join(cfg.WorkDir, c.Letter())
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return res, err
		}
		r.LoadAverage = loadAverage()
		logf("(%s) %s: load average %s", c.Letter(), c, r.LoadAverage)
		var err error
		switch c {
		case ContenderLibrary:
			err = runCompareLibrary(ctx, cfg, dir, plan, r, logf)
		case ContenderServe:
			err = runCompareServe(ctx, cfg, dir, plan, r, logf)
		case ContenderJaegerBadger, ContenderJaegerTracedb:
			err = runCompareJaeger(ctx, cfg, dir, c, plan, r, logf)
		}
		if err != nil {
			r.Err = err
			logf("(%s) %s failed: %v", c.Letter(), c, err)
		}
		if os.Getenv("TRACEDB_COMPARE_KEEP") == "" {
			_ = os.RemoveAll(dir) // disk figures are taken; free the space for the next
		}
	}
	res.LoadAfter = loadAverage()
	return res, nil
}

func runCompareLibrary(ctx context.Context, cfg CompareConfig, dir string, plan *queryPlan, r *ContenderResult, logf func(string, ...any)) error {
	store := filepath.Join(dir, "store")
	ir, err := Run(ctx, RunConfig{BatchFile: cfg.BatchFile, Dir: store, Ingest: IngestConfig{Concurrency: cfg.Load.Concurrency},
		Workload: cfg.Workload, Seed: cfg.Seed, Batch: cfg.Batch})
	if err != nil {
		return err
	}
	r.Spans, r.Wall, r.Drain = ir.Ingest.Accepted, ir.Ingest.Wall, ir.Ingest.Flush
	r.Disk, r.RSSPeak, r.RSSNote = ir.Disk, ir.RSSPeak, "this process (VmHWM since after generation)"
	logf("(a) ingested %d spans in %.2f s: %.0f spans/s, %.1f B/span, peak RSS %.0f MiB", r.Spans, r.Wall.Seconds(), r.SpansPerSecond(), r.BytesPerSpan(), float64(r.RSSPeak)/mib)
	d, err := db.Open(store, db.Options{CompactionInterval: -1})
	if err != nil {
		return err
	}
	defer d.Close()
	e, err := query.NewEngine(d, query.Options{})
	if err != nil {
		return err
	}
	if cfg.QueryProfile != nil {
		if err := pprof.StartCPUProfile(cfg.QueryProfile); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	r.Queries = runQueries(ctx, &engineBackend{d: d, e: e}, plan, logf)
	return nil
}

// progressConns dials n connections to addr whose unary calls count the
// acknowledged Exports.
func progressConns(addr string, n int, acked *atomic.Int64) ([]*grpc.ClientConn, func() error, error) {
	count := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		if err == nil {
			acked.Add(1)
		}
		return err
	}
	var conns []*grpc.ClientConn
	closeAll := func() error {
		var errs []error
		for _, c := range conns {
			errs = append(errs, c.Close())
		}
		return errors.Join(errs...)
	}
	for range n {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithUnaryInterceptor(count))
		if err != nil {
			return nil, nil, errors.Join(fmt.Errorf("dial %s: %w", addr, err), closeAll())
		}
		conns = append(conns, cc)
	}
	return conns, closeAll, nil
}

// sendTracked sends the batch file to addr with SendOTLP and records the
// acknowledged spans every compareRatePeriod (acknowledged Exports × the
// batch size, the last batch counted whole).
func sendTracked(ctx context.Context, cfg CompareConfig, addr string, r *ContenderResult) (*LoadStats, error) {
	f, err := os.Open(cfg.BatchFile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br, err := NewBatchReader(f)
	if err != nil {
		return nil, err
	}
	var acked atomic.Int64
	conns, closeConns, err := progressConns(addr, cfg.Load.Conns, &acked)
	if err != nil {
		return nil, err
	}
	var (
		wg      sync.WaitGroup
		started = make(chan time.Time, 1)
		stop    = make(chan struct{})
	)
	wg.Go(func() {
		var t0 time.Time
		select {
		case t0 = <-started:
		case <-stop:
			return
		}
		r.Rate = append(r.Rate, RatePoint{0, 0})
		t := time.NewTicker(compareRatePeriod)
		defer t.Stop()
		for {
			select {
			case <-stop:
				r.Rate = append(r.Rate, RatePoint{time.Since(t0), min(acked.Load()*int64(cfg.Batch), cfg.Facts.Spans)})
				return
			case <-t.C:
				r.Rate = append(r.Rate, RatePoint{time.Since(t0), min(acked.Load()*int64(cfg.Batch), cfg.Facts.Spans)})
			}
		}
	})
	st, err := SendOTLP(ctx, conns, br, cfg.Load, func() { started <- time.Now() })
	close(stop)
	wg.Wait()
	if err = errors.Join(err, closeConns()); err != nil {
		return nil, err
	}
	if _, spans, ok := br.Trailer(); !ok || int64(spans) != cfg.Facts.Spans {
		return nil, fmt.Errorf("sent %d spans of the batch file, the workload has %d", spans, cfg.Facts.Spans)
	}
	if st.Rejected > 0 {
		return nil, fmt.Errorf("%d spans rejected", st.Rejected)
	}
	r.Spans, r.AckedAfter, r.Retries, r.ExportP99 = cfg.Facts.Spans, st.End.Sub(st.Start), st.Retries, st.Latency(0.99)
	return st, nil
}

func runCompareServe(ctx context.Context, cfg CompareConfig, dir string, plan *queryPlan, r *ContenderResult, logf func(string, ...any)) error {
	store := filepath.Join(dir, "store")
	s, err := startTracedbServe(ctx, cfg.TracedbBin, store)
	if err != nil {
		return err
	}
	defer s.Kill()
	st, err := sendTracked(ctx, cfg, s.otlpGRPC, r)
	if err != nil {
		return err
	}
	accepted, err := scrapeCounter("http://"+s.admin+"/metrics", "tracedb_server_spans_accepted_total", "")
	if err != nil {
		return err
	}
	if accepted != r.Spans {
		return fmt.Errorf("tracedb serve counted %d spans accepted, the workload has %d", accepted, r.Spans)
	}
	r.Wall = st.End.Sub(st.Start)
	r.RSSPeak, r.RSSNote = s.Peak(), "the child's VmHWM while ingesting"
	// The queries through serve's own gRPC API, after the peak was taken.
	conn, err := grpc.NewClient(s.storage, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return err
	}
	r.Queries = runQueries(ctx, newGRPCBackend(conn), plan, logf)
	if err := conn.Close(); err != nil {
		return err
	}
	t0 := time.Now()
	if err := s.Stop(true); err != nil {
		return err
	}
	r.Drain = time.Since(t0)
	if r.Disk, err = MeasureDisk(store); err != nil {
		return err
	}
	logf("(b) %d spans acknowledged in %.2f s: %.0f spans/s (%d retries), drain %.2f s, %.1f B/span, peak RSS %.0f MiB",
		r.Spans, r.Wall.Seconds(), r.SpansPerSecond(), r.Retries, r.Drain.Seconds(), r.BytesPerSpan(), float64(r.RSSPeak)/mib)
	return nil
}

func runCompareJaeger(ctx context.Context, cfg CompareConfig, dir string, c Contender, plan *queryPlan, r *ContenderResult, logf func(string, ...any)) (err error) {
	var (
		st       JaegerStorage
		storeDir string
		serve    *tracedbServe
	)
	if c == ContenderJaegerBadger {
		storeDir = filepath.Join(dir, "badger")
		st.BadgerDir = storeDir
	} else {
		storeDir = filepath.Join(dir, "store")
		if serve, err = startTracedbServe(ctx, cfg.TracedbBin, storeDir); err != nil {
			return err
		}
		defer serve.Kill()
		st.Remote = serve.storage
	}
	j, err := startJaeger(ctx, cfg.JaegerBin, dir, st)
	if err != nil {
		return err
	}
	defer j.Kill()
	ls, err := sendTracked(ctx, cfg, j.addrs.otlpGRPC, r)
	if err != nil {
		return fmt.Errorf("%w\njaeger log tail:\n%s", err, tail(j.out.String(), 4096))
	}
	logf("(%s) %d spans acknowledged by Jaeger in %.2f s (%d retries, export p99 %s); polling until queryable",
		c.Letter(), r.Spans, r.AckedAfter.Seconds(), r.Retries, fmtDur(r.ExportP99))
	b := &jaegerBackend{api: j.api}
	if err := waitQueryable(ctx, b, cfg.Facts, plan); err != nil {
		return err
	}
	if serve != nil {
		// Jaeger's exporter may still hold batches that the polled traces
		// do not show: wait until tracedb has stored every span.
		if err := waitAccepted(ctx, serve, r.Spans); err != nil {
			return err
		}
	}
	r.Wall = time.Since(ls.Start)
	r.RSSPeak, r.RSSNote = j.Peak(), "Jaeger's VmHWM"
	if serve != nil {
		r.RSSPeak += serve.Peak()
		r.RSSNote = fmt.Sprintf("Jaeger %.0f MiB + tracedb serve %.0f MiB", float64(j.Peak())/mib, float64(serve.Peak())/mib)
	}
	logf("(%s) queryable after %.2f s: %.0f spans/s, peak RSS %.0f MiB (%s)", c.Letter(), r.Wall.Seconds(), r.SpansPerSecond(), float64(r.RSSPeak)/mib, r.RSSNote)
	r.Queries = runQueries(ctx, b, plan, logf)
	t0 := time.Now()
	if err := j.Stop(false); err != nil {
		return err
	}
	if serve != nil {
		if err := serve.Stop(true); err != nil {
			return err
		}
	}
	r.Drain = time.Since(t0)
	if r.Disk, err = MeasureDisk(storeDir); err != nil {
		return err
	}
	logf("(%s) %.1f B/span on disk after close", c.Letter(), r.BytesPerSpan())
	return nil
}

// waitQueryable polls Jaeger's API until the newest traces and some of
// the samples are complete by ID, or queryableTimeout passes.
func waitQueryable(ctx context.Context, b *jaegerBackend, f *WorkloadFacts, plan *queryPlan) error {
	pending := slices.Clone(f.last)
	pending = append(pending, f.samples[:min(compareSampledPolled, len(f.samples))]...)
	deadline := time.Now().Add(queryableTimeout)
	var last error
	for {
		next := pending[:0]
		for _, t := range pending {
			n, err := b.traceByID(ctx, t)
			if err == nil && n != t.spans {
				err = fmt.Errorf("trace %s: %d spans of %d", t.id, n, t.spans)
			}
			if err != nil {
				next = append(next, t)
				last = err
			}
		}
		pending = next
		if len(pending) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d polled traces still incomplete %s after the last acknowledgement: %w", len(pending), queryableTimeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(queryablePoll):
		}
	}
}

// waitAccepted polls serve's accepted-spans counter until it reaches
// spans, or queryableTimeout passes.
func waitAccepted(ctx context.Context, serve *tracedbServe, spans int64) error {
	deadline := time.Now().Add(queryableTimeout)
	for {
		n, err := scrapeCounter("http://"+serve.admin+"/metrics", "tracedb_server_spans_accepted_total", "")
		// More than spans is possible: Jaeger's exporter retries a write
		// whose answer it did not get (at least once delivery).
		switch {
		case err == nil && n >= spans:
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("tracedb serve accepted %d spans of %d %s after the last acknowledgement (%v)", n, spans, queryableTimeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(queryablePoll):
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// ---- the report ----

// Targets of issue 8, as ratios tracedb / Jaeger+Badger.
const (
	targetIngestRatio    = 25.0
	targetBytesRatio     = 0.05
	targetRSSRatio       = 0.33
	targetTraceByIDRatio = 0.5
	targetAttrRatio      = 0.5
	targetDurationRatio  = 0.1
	targetDepsRatio      = 0.02
)

// compareRow is one line of the table.
type compareRow struct {
	figure string
	values [numContenders]string
	ratio  string // tracedb / Jaeger+Badger, see ratioNote
	target string
	met    string
}

func (res *CompareResult) ok(c Contender) *ContenderResult {
	r := res.Results[c]
	if r == nil || r.Skipped != "" || r.Err != nil && r.Spans == 0 {
		return nil
	}
	return r
}

func (res *CompareResult) rows() []compareRow {
	var rows []compareRow
	f := func(format string, args ...any) string { return fmt.Sprintf(format, args...) }
	cell := func(c Contender, fn func(r *ContenderResult) string) string {
		r := res.ok(c)
		if r == nil {
			return "–"
		}
		return fn(r)
	}
	ratioRow := func(figure string, tracedb Contender, val func(r *ContenderResult) (float64, bool), format func(float64) string,
		target float64, higherBetter bool, targetText string) compareRow {
		row := compareRow{figure: figure, target: targetText, ratio: "–", met: "–"}
		var vals [numContenders]float64
		var have [numContenders]bool
		for c := range numContenders {
			row.values[c] = "–"
			if r := res.ok(c); r != nil {
				if v, ok := val(r); ok {
					vals[c], have[c] = v, true
					row.values[c] = format(v)
				}
			}
		}
		if have[tracedb] && have[ContenderJaegerBadger] && vals[ContenderJaegerBadger] > 0 {
			x := vals[tracedb] / vals[ContenderJaegerBadger]
			row.ratio = f("%.3g× (%s)", x, tracedb.Letter())
			if target > 0 {
				row.met = "no"
				if higherBetter && x >= target || !higherBetter && x <= target {
					row.met = "yes"
				}
			}
		}
		return row
	}
	rate := func(r *ContenderResult) (float64, bool) { return r.SpansPerSecond(), r.Wall > 0 }
	rows = append(rows, ratioRow("ingest until queryable, spans/s", ContenderServe, rate, func(v float64) string { return f("%.0f", v) },
		targetIngestRatio, true, "≥ 25×"))
	rows = append(rows, ratioRow("bytes on disk per span (allocated, after close)", ContenderServe,
		func(r *ContenderResult) (float64, bool) { return r.BytesPerSpan(), r.Disk.Files > 0 }, func(v float64) string { return f("%.1f", v) },
		targetBytesRatio, false, "≤ 0.05×"))
	rows = append(rows, ratioRow("peak RSS while ingesting, MiB", ContenderServe,
		func(r *ContenderResult) (float64, bool) { return float64(r.RSSPeak) / mib, r.RSSPeak > 0 }, func(v float64) string { return f("%.0f", v) },
		targetRSSRatio, false, "≤ 0.33×"))
	ms := func(v float64) string {
		if v < 1 {
			return f("%.3f", v)
		}
		return f("%.1f", v)
	}
	lat := func(k QueryKind, q float64) func(r *ContenderResult) (float64, bool) {
		return func(r *ContenderResult) (float64, bool) {
			s := r.Queries[k]
			if s == nil || len(s.Samples) == 0 || s.Err != nil {
				return 0, false
			}
			return float64(s.Quantile(q)) / 1e6, true
		}
	}
	type qrow struct {
		k      QueryKind
		q      float64
		target float64
		text   string
	}
	for _, qr := range []qrow{
		{QueryTraceByID, 0.5, 0, ""}, {QueryTraceByID, 0.99, targetTraceByIDRatio, "≤ 0.5×"},
		{QueryServiceOperation, 0.5, 0, ""}, {QueryServiceOperation, 0.99, 0, ""},
		{QueryOneAttribute, 0.5, targetAttrRatio, "≤ 0.5×"}, {QueryOneAttribute, 0.99, 0, ""},
		{QueryThreeAttributes, 0.5, targetAttrRatio, "≤ 0.5×"}, {QueryThreeAttributes, 0.99, 0, ""},
		{QueryDurationRange, 0.5, targetDurationRatio, "≤ 0.1×, exact"}, {QueryDurationRange, 0.99, 0, ""},
		{QueryCombined, 0.5, targetDurationRatio, "≤ 0.1×, exact"}, {QueryCombined, 0.99, 0, ""},
		{QueryServices, 0.5, 0, ""},
		{QueryDependencies, 0.5, targetDepsRatio, "≤ 0.02×, complete"},
	} {
		name := f("%s p%d, ms", qr.k, int(qr.q*100))
		rows = append(rows, ratioRow(name, ContenderJaegerTracedb, lat(qr.k, qr.q), ms, qr.target, false, qr.text))
	}
	// Exactness of the searches.
	for _, k := range []QueryKind{QueryServiceOperation, QueryOneAttribute, QueryThreeAttributes, QueryDurationRange, QueryCombined} {
		row := compareRow{figure: f("%s: answers with no single span meeting every condition", k), ratio: "–", met: "–"}
		exactAll := true
		for c := range numContenders {
			row.values[c] = cell(c, func(r *ContenderResult) string {
				s := r.Queries[k]
				if s == nil || s.Checked == 0 && s.Err == nil && len(s.Samples) == 0 {
					return "–"
				}
				return f("%d of %d", s.Inexact, s.Checked)
			})
			if r := res.ok(c); r != nil && c.isTracedb() && r.Queries[k] != nil && r.Queries[k].Inexact > 0 {
				exactAll = false
			}
		}
		if k == QueryDurationRange || k == QueryCombined {
			row.target = "0 (exact)"
			row.met = map[bool]string{true: "yes", false: "no"}[exactAll]
		}
		rows = append(rows, row)
	}
	// Completeness of dependencies.
	depRow := compareRow{figure: f("dependencies: calls counted of the %d in the workload", res.Facts.CallTotal), ratio: "–", target: "complete", met: "–"}
	complete := true
	for c := range numContenders {
		depRow.values[c] = cell(c, func(r *ContenderResult) string {
			s := r.Queries[QueryDependencies]
			if s == nil || len(s.Samples) == 0 || s.Err != nil {
				return "–"
			}
			if c.isTracedb() && s.Calls != res.Facts.CallTotal {
				complete = false
			}
			return f("%d (%.1f%%)", s.Calls, 100*float64(s.Calls)/float64(max(res.Facts.CallTotal, 1)))
		})
	}
	depRow.met = map[bool]string{true: "yes", false: "no"}[complete]
	rows = append(rows, depRow)
	return rows
}

// queryRatios returns, per query row, the ratio of contender t's figures
// to Jaeger+Badger's (c): for the engine in process (a) and tracedb
// serve's own gRPC API (b), what tracedb costs without Jaeger's query
// service (HTTP, adjusters, JSON) in front of it.
func (res *CompareResult) queryRatios(t Contender) []string {
	a, c := res.ok(t), res.ok(ContenderJaegerBadger)
	var out []string
	if a == nil || c == nil {
		return nil
	}
	for k := range numQueryKinds {
		sa, sc := a.Queries[k], c.Queries[k]
		if sa == nil || sc == nil || len(sa.Samples) == 0 || len(sc.Samples) == 0 || sc.Quantile(0.5) == 0 {
			continue
		}
		out = append(out, fmt.Sprintf("%s p50 %.3g×, p99 %.3g×", k,
			float64(sa.Quantile(0.5))/float64(sc.Quantile(0.5)), float64(sa.Quantile(0.99))/float64(sc.Quantile(0.99))))
	}
	return out
}

func (res *CompareResult) header() []string {
	h := []string{"figure"}
	for c := range numContenders {
		h = append(h, fmt.Sprintf("(%s) %s", c.Letter(), c))
	}
	return append(h, "ratio tracedb/Jaeger+Badger", "target", "met")
}

func (res *CompareResult) notes() []string {
	var n []string
	for c := range numContenders {
		r := res.Results[c]
		switch {
		case r == nil:
		case r.Skipped != "":
			n = append(n, fmt.Sprintf("(%s) %s: %s", c.Letter(), c, r.Skipped))
		default:
			line := fmt.Sprintf("(%s) %s (load average %s at its start): %d spans in %.2f s", c.Letter(), c, r.LoadAverage, r.Spans, r.Wall.Seconds())
			if c != ContenderLibrary {
				line += fmt.Sprintf(", last acknowledgement after %.2f s, export p99 %s, %d retries", r.AckedAfter.Seconds(), fmtDur(r.ExportP99), r.Retries)
			}
			line += fmt.Sprintf("; close/drain %.2f s; RSS: %s", r.Drain.Seconds(), r.RSSNote)
			for k, s := range r.Queries {
				if s != nil && s.Err != nil {
					line += fmt.Sprintf("; %s failed: %v", QueryKind(k), s.Err)
				} else if s != nil && len(s.Samples) < res.Iterations && QueryKind(k) != QueryDependencies {
					line += fmt.Sprintf("; %s: %d runs (time budget)", QueryKind(k), len(s.Samples))
				}
			}
			if r.Err != nil {
				line += fmt.Sprintf("; **failed**: %v", r.Err)
			}
			n = append(n, line)
		}
	}
	if er := res.queryRatios(ContenderLibrary); len(er) > 0 {
		n = append(n, "query engine in process (a) / Jaeger+Badger (c): "+strings.Join(er, "; "))
	}
	if er := res.queryRatios(ContenderServe); len(er) > 0 {
		n = append(n, "tracedb serve's gRPC storage API (b) / Jaeger+Badger (c): "+strings.Join(er, "; "))
	}
	return n
}

// WriteText prints the comparison for a person.
func (res *CompareResult) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "workload %s (seed %d): %d spans, %d traces, %d services, in requests of %d; %d OTLP clients\n",
		res.Workload, res.Seed, res.Facts.Spans, res.Facts.Traces, res.Facts.Services, res.Batch, res.Load.Concurrency)
	fmt.Fprintf(w, "machine: GOMAXPROCS %d, %d CPUs, %s; load average %s before, %s after\n\n", res.GOMAXPROCS, res.CPUs, res.CPUModel, res.LoadBefore, res.LoadAfter)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(res.header(), "\t"))
	for _, r := range res.rows() {
		fmt.Fprintln(tw, strings.Join(append(append([]string{r.figure}, r.values[:]...), r.ratio, r.target, r.met), "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, n := range res.notes() {
		fmt.Fprintln(w, "-", n)
	}
	return nil
}

// Markdown returns the comparison as a markdown section.
func (res *CompareResult) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n## %s: tracedb against Jaeger v2 + Badger, side by side\n\n", res.Date.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "- **Machine**: GOMAXPROCS %d, %d CPUs, `%s`; load average %s before, %s after (shared machine)\n", res.GOMAXPROCS, res.CPUs, res.CPUModel, res.LoadBefore, res.LoadAfter)
	fmt.Fprintf(&b, "- **Command**: `%s`\n", res.Command)
	fmt.Fprintf(&b, "- **Workload**: %s (seed %d), %d spans, %d traces, %d services; OTLP/gRPC requests of %d spans from %d %s clients; %d runs per query kind (dependencies %d), the same parameters for every contender\n",
		res.Workload, res.Seed, res.Facts.Spans, res.Facts.Traces, res.Facts.Services, res.Batch, res.Load.Concurrency, res.Load.Client, res.Iterations, min(res.Iterations, 20))
	b.WriteString("- **Ratio**: ingest, disk and RSS rows compare (b) with (c), the same OTLP stream; query rows compare (d) with (c), both through Jaeger's HTTP API\n\n")
	h := res.header()
	b.WriteString("| " + strings.Join(h, " | ") + " |\n|" + strings.Repeat("---|", len(h)) + "\n")
	for _, r := range res.rows() {
		b.WriteString("| " + strings.Join(append(append([]string{r.figure}, r.values[:]...), r.ratio, r.target, r.met), " | ") + " |\n")
	}
	b.WriteString("\n")
	for _, n := range res.notes() {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	return b.String()
}

// AppendMarkdown appends the comparison's section to the file at path.
func (res *CompareResult) AppendMarkdown(path string) (err error) {
	return appendFile(path, res.Markdown())
}
