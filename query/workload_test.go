package query

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/index"
	"github.com/tracedb/tracedb/internal/spangen"
)

// This file builds the differential test's data: a seeded random workload
// written to a real store over several rounds (each round but the last
// flushed into blocks, the last left in the head), spread over many
// partitions, with traces whose spans arrive in different rounds and spans
// written twice.

// workloadConfig sizes a workload.
type workloadConfig struct {
	rounds         int     // write rounds; all but the last are flushed
	tracesPerRound int     // generated traces per round
	mixShare       float64 // share of traces from spangen.Mix
	window         time.Duration
	partitionWidth time.Duration
	rowGroupSpans  int
}

// workload is what the test wrote: every span, duplicates included, in
// write order, and catalogs to draw query values from.
type workload struct {
	spans    []*encoding.Span
	services []string // services of the generator, and of Mix
	ops      []string // span names seen
	start    uint64   // window start
	window   uint64   // window length, ns
}

// Generator vocabulary. Names and values repeat with a skew, so that
// postings have very different sizes.
var (
	wlServices = []string{"frontend", "checkout", "payment", "cart", "search", "auth"}
	// The last two are rare and make an ambiguous operation term with the
	// service "auth\x00db" (see spanConds.verifyNames).
	wlOps      = []string{"GET /", "GET /api/items", "POST /api/items", "db.query", "cache.get", "publish", "consume", "render", "GET /api/items/{id}", "db\x00query", "query"}
	wlMethods  = []string{"GET", "POST", "PUT", "DELETE"}
	wlRegions  = []string{"eu-west", "us-east", "ap-south"}
	wlCodes    = []int64{200, 201, 404, 500, 503}
	wlDoubles  = []float64{0.5, 1, 3.25, 1e21, 1e-7, math.Copysign(0, -1), math.Inf(1), math.NaN(), 123456789.125}
	wlExcTypes = []string{"IOError", "TimeoutError", "ValueError"}
	// wlLong are attribute values longer than the default indexed length.
	wlLong = func() []string {
		var out []string
		for i, n := range []int{257, 300, 600, 1000} {
			out = append(out, fmt.Sprintf("long-%d-", i)+strings.Repeat(string(rune('a'+i)), n))
		}
		// Exactly at the limit: indexed.
		return append(out, strings.Repeat("z", index.DefaultMaxValueLen))
	}()
	wlLongKey = strings.Repeat("k", index.DefaultMaxValueLen+1)
)

// wlGen generates the workload's own traces.
type wlGen struct {
	r         *rand.Rand
	start     uint64
	window    uint64
	resources [][]*encoding.Resource // per service
	odd       []*encoding.Resource   // resources without a string service.name
	scopes    []*encoding.Scope
	svcZipf   *rand.Zipf
	opZipf    *rand.Zipf
	userZipf  *rand.Zipf
}

func newWLGen(r *rand.Rand, start, window uint64) *wlGen {
	g := &wlGen{r: r, start: start, window: window,
		svcZipf:  rand.NewZipf(r, 1.4, 1, uint64(len(wlServices)-1)),
		opZipf:   rand.NewZipf(r, 1.2, 1, uint64(len(wlOps)-1)),
		userZipf: rand.NewZipf(r, 1.1, 1, 199),
	}
	for _, svc := range wlServices {
		var rs []*encoding.Resource
		for i := range 3 {
			attrs := []encoding.KeyValue{
				encoding.StrKV(encoding.ServiceNameKey, svc),
				encoding.StrKV("host.name", fmt.Sprintf("%s-%d", svc, i)),
				encoding.StrKV("region", wlRegions[i%len(wlRegions)]),
			}
			if i == 2 {
				attrs = append(attrs, encoding.IntKV("http.status_code", 500), encoding.StrKV("payload", wlLong[i]))
			}
			rs = append(rs, &encoding.Resource{Attrs: attrs, SchemaURL: "https://opentelemetry.io/schemas/1.26.0"})
		}
		g.resources = append(g.resources, rs)
	}
	g.odd = []*encoding.Resource{
		nil,
		{Attrs: []encoding.KeyValue{encoding.StrKV("host.name", "orphan")}},
		{Attrs: []encoding.KeyValue{encoding.IntKV(encoding.ServiceNameKey, 7), encoding.StrKV("region", "eu-west")}},
		{Attrs: []encoding.KeyValue{encoding.StrKV(encoding.ServiceNameKey, "auth\x00db")}},
	}
	g.scopes = []*encoding.Scope{
		nil,
		{Name: "lib-http", Version: "1.0", Attrs: []encoding.KeyValue{encoding.StrKV("lib.kind", "http")}},
		{Name: "lib-db", Attrs: []encoding.KeyValue{encoding.StrKV("region", "us-east"), encoding.StrKV("user.id", "u-1")}},
	}
	return g
}

// value returns an attribute for key with a skewed value of the key's type.
func (g *wlGen) attr(key string) encoding.KeyValue {
	r := g.r
	switch key {
	case "http.method":
		return encoding.StrKV(key, wlMethods[min(r.IntN(6), len(wlMethods)-1)])
	case "http.status_code":
		return encoding.IntKV(key, wlCodes[min(r.IntN(7), len(wlCodes)-1)])
	case "user.id":
		return encoding.StrKV(key, fmt.Sprintf("u-%d", g.userZipf.Uint64()))
	case "retry":
		return encoding.BoolKV(key, r.IntN(4) == 0)
	case "ratio":
		return encoding.DoubleKV(key, wlDoubles[r.IntN(len(wlDoubles))])
	case "payload":
		if r.IntN(3) == 0 {
			return encoding.StrKV(key, "short")
		}
		return encoding.StrKV(key, wlLong[r.IntN(len(wlLong))])
	case "tags":
		kids := []encoding.KeyValue{{Value: encoding.Value{Type: encoding.ValueStr, Str: "a"}}}
		if r.IntN(2) == 0 {
			kids = append(kids, encoding.KeyValue{Value: encoding.Value{Type: encoding.ValueInt, Num: 1}})
		}
		return encoding.KeyValue{Key: key, Value: encoding.Value{Type: encoding.ValueArray, Kids: kids}}
	case "meta":
		return encoding.KeyValue{Key: key, Value: encoding.Value{Type: encoding.ValueMap, Kids: []encoding.KeyValue{
			encoding.StrKV("b", wlRegions[r.IntN(2)]), encoding.IntKV("a", int64(r.IntN(2)))}}}
	case "blob":
		return encoding.KeyValue{Key: key, Value: encoding.Value{Type: encoding.ValueBytes, Str: string([]byte{0xff, byte(r.IntN(3))})}}
	case "error":
		// A literal "error" attribute: the error search reads the status.
		return encoding.BoolKV(key, r.IntN(2) == 0)
	case "empty":
		return encoding.KeyValue{Key: key}
	case wlLongKey:
		return encoding.StrKV(key, "v")
	case "region":
		return encoding.StrKV(key, wlRegions[min(r.IntN(4), len(wlRegions)-1)])
	}
	return encoding.StrKV(key, "x")
}

var wlSpanKeys = []string{"http.method", "http.status_code", "user.id", "retry", "ratio", "payload", "tags", "meta", "blob", "error", "empty", wlLongKey, "region"}

// duration returns a span duration: log-uniform over 1 ns to 10 s, with
// zeros and bucket edges.
func (g *wlGen) duration() uint64 {
	r := g.r
	switch r.IntN(20) {
	case 0:
		return 0
	case 1, 2:
		lo, hi := index.BucketBounds(uint16(r.IntN(1100)))
		if r.IntN(2) == 0 {
			return lo
		}
		return hi - 1
	}
	return uint64(math.Exp(r.Float64() * math.Log(10e9)))
}

// trace returns the spans of one generated trace.
func (g *wlGen) trace() []*encoding.Span {
	r := g.r
	var tid encoding.TraceID
	for tid.IsZero() {
		for i := range tid {
			tid[i] = byte(r.Uint32())
		}
	}
	base := g.start + r.Uint64N(g.window)
	// A fifth of the traces start their spans on a grid, at whole minutes
	// or a second later, so that many spans of different traces start at
	// the same nanosecond and results are ordered by trace ID.
	grid := r.IntN(5) == 0
	if grid {
		base -= base % 60e9
	}
	n := 1 + r.IntN(8)
	spans := make([]*encoding.Span, n)
	for i := range spans {
		s := &encoding.Span{TraceID: tid, Kind: int32(r.IntN(6))}
		for s.SpanID.IsZero() {
			for j := range s.SpanID {
				s.SpanID[j] = byte(r.Uint32())
			}
		}
		if i > 0 {
			s.ParentSpanID = spans[r.IntN(i)].SpanID
		}
		if r.IntN(30) == 0 {
			s.Resource = g.odd[r.IntN(len(g.odd))]
		} else {
			rs := g.resources[g.svcZipf.Uint64()]
			s.Resource = rs[r.IntN(len(rs))]
		}
		s.Scope = g.scopes[r.IntN(len(g.scopes))]
		s.Name = wlOps[g.opZipf.Uint64()]
		s.StartUnixNano = base + r.Uint64N(2e9)
		if grid {
			s.StartUnixNano = base + r.Uint64N(2)*1e9
		}
		s.EndUnixNano = s.StartUnixNano + g.duration()
		switch r.IntN(10) {
		case 0, 1:
			s.StatusCode = encoding.StatusError
			s.StatusMessage = "boom"
		case 2, 3:
			s.StatusCode = encoding.StatusOk
		}
		// Keys are unique within a list, as OTLP requires (pdata keeps one
		// value per key).
		for _, k := range r.Perm(len(wlSpanKeys))[:r.IntN(6)] {
			s.Attrs = append(s.Attrs, g.attr(wlSpanKeys[k]))
		}
		for range r.IntN(3) {
			ev := encoding.Event{TimeUnixNano: s.StartUnixNano + r.Uint64N(1e6), Name: "log"}
			if r.IntN(2) == 0 {
				ev.Name = "exception"
				ev.Attrs = append(ev.Attrs, encoding.StrKV("exception.type", wlExcTypes[r.IntN(len(wlExcTypes))]))
			}
			if k := wlSpanKeys[r.IntN(len(wlSpanKeys))]; r.IntN(3) == 0 {
				ev.Attrs = append(ev.Attrs, g.attr(k))
			}
			s.Events = append(s.Events, ev)
		}
		if i > 0 && r.IntN(8) == 0 {
			// Links are stored but not searched.
			s.Links = append(s.Links, encoding.Link{TraceID: tid, SpanID: spans[0].SpanID,
				Attrs: []encoding.KeyValue{encoding.StrKV("link.only", "yes"), g.attr("region")}})
		}
		spans[i] = s
	}
	return spans
}

// mixTrace returns a spangen.Mix trace moved to a random time of the
// window (Mix packs its traces 2 ms apart).
func (g *wlGen) mixTrace(m *spangen.Mix) []*encoding.Span {
	spans := m.Trace()
	shift := g.start + g.r.Uint64N(g.window) - spans[0].StartUnixNano
	for _, s := range spans {
		s.StartUnixNano += shift
		s.EndUnixNano += shift
		for i := range s.Events {
			s.Events[i].TimeUnixNano += shift
		}
	}
	return spans
}

// buildWorkload writes a workload to a new store in dir and returns the
// store and what was written.
func buildWorkload(t testing.TB, seed uint64, cfg workloadConfig) (*db.DB, *workload) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	d, err := db.Open(t.TempDir(), db.Options{
		Sync:           db.SyncNone,
		PartitionWidth: cfg.partitionWidth,
		RowGroupSpans:  cfg.rowGroupSpans,
	})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { d.Close() })

	w := &workload{start: spangen.Epoch, window: uint64(cfg.window)}
	g := newWLGen(r, w.start, w.window)
	mix := spangen.NewMix(r)
	ctx := context.Background()
	var late []*encoding.Span // spans held back to a later round
	// Duplicates are of spans written in this round or the one before, as
	// a client's retries are (dependency tracking dedups within a window
	// of two flushes).
	var prevRound, thisRound int
	for round := range cfg.rounds {
		prevRound, thisRound = thisRound, len(w.spans)
		var batch []*encoding.Span
		batch = append(batch, late...)
		late = nil
		for range cfg.tracesPerRound {
			var tr []*encoding.Span
			if r.Float64() < cfg.mixShare {
				tr = g.mixTrace(mix)
			} else {
				tr = g.trace()
			}
			for _, s := range tr {
				switch {
				case round+1 < cfg.rounds && r.IntN(25) == 0:
					late = append(late, s) // the trace straddles rounds
				case r.IntN(40) == 0 && len(w.spans) > prevRound:
					batch = append(batch, s, w.spans[prevRound+r.IntN(len(w.spans)-prevRound)]) // an exact duplicate
				default:
					batch = append(batch, s)
				}
			}
		}
		for len(batch) > 0 {
			n := min(len(batch), 500+r.IntN(500))
			res, err := d.Write(ctx, encoding.ToTraces(batch[:n]))
			if err != nil {
				t.Fatalf("write: %v", err)
			}
			if len(res.Rejected) > 0 {
				t.Fatalf("write rejected %d spans, first: %v", len(res.Rejected), res.Rejected[0])
			}
			w.spans = append(w.spans, batch[:n]...)
			batch = batch[n:]
		}
		if round+1 < cfg.rounds {
			if err := d.Flush(); err != nil {
				t.Fatalf("flush: %v", err)
			}
		}
	}
	seenSvc := map[string]bool{}
	seenOp := map[string]bool{}
	for _, s := range w.spans {
		if svc := s.ServiceName(); svc != "" && !seenSvc[svc] {
			seenSvc[svc] = true
			w.services = append(w.services, svc)
		}
		if !seenOp[s.Name] {
			seenOp[s.Name] = true
			w.ops = append(w.ops, s.Name)
		}
	}
	return d, w
}
