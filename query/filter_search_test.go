package query

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/index"
)

// newWorkloadFilterGen returns a generator of random filters over values
// drawn from a sample of the workload's spans; queryGen sets its random
// source per query.
func newWorkloadFilterGen(w *workload, seed uint64) *filterGen {
	r := rand.New(rand.NewPCG(seed, 0xf11e))
	sample := make([]*encoding.Span, 0, 400)
	for range cap(sample) {
		sample = append(sample, w.spans[r.IntN(len(w.spans))])
	}
	return newFilterGen(r, sample)
}

// filter returns a random compiled filter for a query anchored on span s:
// conditions the anchor meets (which give term sets and bounds to the
// plan), random trees from filterGen (which exercise every operator and
// level), or both and-ed.
func (g *queryGen) filter(s *encoding.Span) *Filter {
	r := g.r
	g.fg.r = r
	var args []Expr
	for range 1 + r.IntN(3) {
		switch r.IntN(8) {
		case 0:
			args = append(args, Eq(Field(LevelResource, "service"), StrConst(s.ServiceName())))
		case 1:
			args = append(args, In(Field(LevelSpan, "name"), StrList(s.Name, g.w.ops[r.IntN(len(g.w.ops))])))
		case 2:
			if kv, ok := anchorAttr(r, s); ok {
				v, _ := index.ValueString(&kv.Value)
				args = append(args, Eq(Attr(LevelAny, kv.Key), AnyConst(v)))
			}
		case 3:
			t := time.Unix(0, int64(min(s.StartUnixNano, math.MaxInt64)))
			if r.IntN(2) == 0 {
				args = append(args, Gte(Field(LevelSpan, "startTime"), TimestampConst(t.Add(-time.Duration(r.IntN(int(time.Minute)))))))
			} else {
				args = append(args, Lte(Field(LevelSpan, "startTime"), TimestampConst(t.Add(time.Duration(r.IntN(int(time.Minute)))))))
			}
		case 4:
			d := time.Duration(min(s.Duration(), math.MaxInt64/2))
			args = append(args, Lt(Field(LevelSpan, "duration"), DurationConst(d+time.Duration(r.IntN(1000)))))
		case 5:
			args = append(args, Eq(Field(LevelSpan, "status"), StrConst(statusWord(s.StatusCode))))
		default:
			args = append(args, g.fg.pred(2, nil))
		}
	}
	if len(args) == 0 {
		return nil
	}
	e := args[0]
	if len(args) > 1 {
		e = And(args...)
	}
	f, err := Compile(e)
	if err != nil {
		return nil // a random tree may be invalid; the query goes without
	}
	return f
}

// anchorAttr picks an attribute of s's span or resource, what an
// unqualified attribute reference reads.
func anchorAttr(r *rand.Rand, s *encoding.Span) (encoding.KeyValue, bool) {
	kvs := s.Attrs
	if s.Resource != nil && r.IntN(3) == 0 {
		kvs = s.Resource.Attrs
	}
	if len(kvs) == 0 {
		return encoding.KeyValue{}, false
	}
	return kvs[r.IntN(len(kvs))], true
}

// TestFilterSearch checks the filter's part in a search on a small store
// by hand: same-span semantics with the Jaeger parameters, term sets that
// prune, bounds that empty the search.
func TestFilterSearch(t *testing.T) {
	api, web := testResource("api"), testResource("web")
	_, e := openWith(t, 2,
		testSpan(1, 1, api, "GET", 100, 10, encoding.StrKV("http.method", "GET"), encoding.IntKV("http.status", 500)),
		testSpan(1, 2, web, "render", 110, 50, encoding.StrKV("http.method", "POST")),
		testSpan(2, 1, api, "POST", 200, 30, encoding.StrKV("http.method", "POST"), encoding.IntKV("http.status", 200)),
		testSpan(3, 1, web, "GET", 300, 5, encoding.StrKV("http.method", "GET")),
	)
	parse := func(s string) *Filter {
		t.Helper()
		x, err := ParseFilter(s)
		if err != nil {
			t.Fatalf("parse %q: %v", s, err)
		}
		f, err := Compile(x)
		if err != nil {
			t.Fatalf("compile %q: %v", s, err)
		}
		return f
	}
	cases := []struct {
		name   string
		q      TraceQuery
		filter string
		want   []byte
	}{
		{"attr", TraceQuery{}, `attr["http.method"] = "POST"`, []byte{2, 1}},
		{"same span as service", TraceQuery{Service: "api"}, `attr["http.method"] = "POST"`, []byte{2}},
		{"number as any", TraceQuery{}, `span.attr["http.status"] = 500`, []byte{1}},
		{"or", TraceQuery{}, `span.name = "render" or span.name = "POST"`, []byte{2, 1}},
		{"not", TraceQuery{Service: "web"}, `not span.name = "render"`, []byte{3}},
		{"bounds", TraceQuery{}, `span.duration >= 20ms`, nil},
		{"duration bounds", TraceQuery{DurationMin: 20}, `span.duration < 40ns`, []byte{2}},
		{"contradiction", TraceQuery{DurationMin: 20}, `span.duration < 10ns`, nil},
		{"service in", TraceQuery{}, `resource.service in ["web", "x"] and span.name in ["GET", "render"]`, []byte{3, 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := c.q
			q.Filter = parse(c.filter)
			got, err := e.FindTraceIDs(context.Background(), q)
			if err != nil {
				t.Fatal(err)
			}
			if g := hitIDs(got); string(g) != string(c.want) {
				t.Errorf("got traces %v, want %v", g, c.want)
			}
		})
	}
	// A filter that contradicts the start range is empty, not invalid.
	_, err := e.FindTraceIDs(context.Background(), TraceQuery{StartTime: db.TimeRange{Start: 250, End: 400}, Filter: parse(`span.startTime < time("1970-01-01T00:00:00.0000002Z")`)})
	if err != nil {
		t.Errorf("contradicting start bounds: %v", err)
	}
	if errors.Is(err, ErrInvalidQuery) {
		t.Error("contradicting bounds refused")
	}
}

// countingReader counts the spans a reader decodes.
type countingReader struct {
	BlockReader
	n *int
}

func (r countingReader) Spans(ctx context.Context, ords index.Postings, fn func(uint32, *encoding.Span) error) error {
	return r.BlockReader.Spans(ctx, ords, func(o uint32, s *encoding.Span) error {
		*r.n++
		return fn(o, s)
	})
}

// TestFilterPrunes checks that a filter's terms and bounds cut the spans
// decoded, not only the result.
func TestFilterPrunes(t *testing.T) {
	api := testResource("api")
	var spans []*encoding.Span
	for i := range 100 {
		spans = append(spans, testSpan(byte(i), 1, api, "GET", uint64(i)*10, uint64(i+1), encoding.StrKV("k", "v"+strconv.Itoa(i))))
	}
	d, _ := openWith(t, 50, spans...)
	var decoded int
	e, err := NewEngineWithStore(&wrapStore{inner: dbStore{d}, wrap: func(r BlockReader) BlockReader { return countingReader{r, &decoded} }}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		filter     string
		hits, most int
	}{
		{`span.attr["k"] = "v7"`, 1, 1},
		{`span.attr["k"] in ["v7", "v8"] and resource.service = "api"`, 2, 2},
		{`span.attr["k"] =~ "v7"`, 11, 100},
		{`span.duration >= 95ns and span.attr["k"] =~ "v"`, 6, 10},
		{`span.startTime <= time("` + time.Unix(0, int64(testT0+30)).UTC().Format(time.RFC3339Nano) + `") and exists(attr["k"])`, 4, 50},
	}
	for _, c := range cases {
		x, err := ParseFilter(c.filter)
		if err != nil {
			t.Fatal(err)
		}
		f, err := Compile(x)
		if err != nil {
			t.Fatal(err)
		}
		decoded = 0
		hits, err := e.FindTraceIDs(context.Background(), TraceQuery{Filter: f, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(hits) != c.hits || decoded > c.most {
			t.Errorf("%s: %d hits, %d spans decoded; want %d hits, at most %d decoded", c.filter, len(hits), decoded, c.hits, c.most)
		}
	}
}

// FuzzFilterSearch runs arbitrary filter texts, with a service and a
// limit, against a small store and checks that the engine answers as the
// model (which evaluates the filter with the naive evaluator) does.
func FuzzFilterSearch(f *testing.F) {
	cfg := workloadConfig{rounds: 2, tracesPerRound: 150, mixShare: 0.2, window: 10 * time.Minute,
		partitionWidth: time.Minute, rowGroupSpans: 16}
	d, w := buildWorkload(f, 5, cfg)
	e, err := NewEngine(d, Options{})
	if err != nil {
		f.Fatal(err)
	}
	m := newSearchModel(w.spans, e.opts.MaxLimit)
	f.Add(`resource.service = "frontend" and span.attr["http.method"] = "GET"`, "", 20)
	f.Add(`span.name in ["GET /", "db.query"] or span.duration > 10ms`, "checkout", 5)
	f.Add(`some(event, event.name = "exception")`, "", 100)
	f.Add(`not exists(attr["region"]) and span.status = "error"`, "payment", 1500)
	f.Add(`span.startTime >= time("2025-01-01T00:00:00Z") and attr["user.id"] = any("u-3")`, "", 3)
	f.Fuzz(func(t *testing.T, text, service string, limit int) {
		x, err := ParseFilter(text)
		if err != nil {
			return
		}
		fl, err := Compile(x)
		if err != nil {
			return
		}
		q := TraceQuery{Service: service, Limit: limit, Filter: fl}
		m.check(t, e, q, fmt.Sprintf("%s (service %q, limit %d)", text, service, limit))
	})
}
