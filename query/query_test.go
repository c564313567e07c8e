package query

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
)

const testT0 = uint64(1_750_000_000_000_000_000)

func testTraceID(b byte) encoding.TraceID { return encoding.TraceID{0: 0xab, 15: b} }
func testSpanID(b byte) encoding.SpanID   { return encoding.SpanID{0: 0xcd, 7: b} }

func testResource(service string, attrs ...encoding.KeyValue) *encoding.Resource {
	return &encoding.Resource{Attrs: append([]encoding.KeyValue{encoding.StrKV(encoding.ServiceNameKey, service)}, attrs...)}
}

// span returns a span of trace tr starting at t0+start (ns) lasting dur.
func testSpan(tr, id byte, res *encoding.Resource, name string, start, dur uint64, attrs ...encoding.KeyValue) *encoding.Span {
	return &encoding.Span{TraceID: testTraceID(tr), SpanID: testSpanID(id), Resource: res, Name: name,
		StartUnixNano: testT0 + start, EndUnixNano: testT0 + start + dur, Attrs: attrs}
}

// openWith writes spans to a new store: those before flushAt into blocks,
// the rest into the head.
func openWith(t testing.TB, flushAt int, spans ...*encoding.Span) (*db.DB, *Engine) {
	t.Helper()
	d, err := db.Open(t.TempDir(), db.Options{Sync: db.SyncNone, RowGroupSpans: 16})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	ctx := context.Background()
	write := func(ss []*encoding.Span) {
		if len(ss) == 0 {
			return
		}
		res, err := d.Write(ctx, encoding.ToTraces(ss))
		if err != nil || len(res.Rejected) > 0 {
			t.Fatalf("write: %v %v", err, res.Rejected)
		}
	}
	flushAt = min(flushAt, len(spans))
	write(spans[:flushAt])
	if flushAt > 0 {
		if err := d.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	write(spans[flushAt:])
	e, err := NewEngine(d, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return d, e
}

func hitIDs(hits []TraceHit) []byte {
	var out []byte
	for _, h := range hits {
		out = append(out, h.TraceID[15])
	}
	return out
}

func TestFindTraceIDsSemantics(t *testing.T) {
	api, db1 := testResource("api", encoding.StrKV("region", "eu")), testResource("db")
	long := strings.Repeat("x", 300)
	errSpan := testSpan(4, 1, api, "GET", 400, 10)
	errSpan.StatusCode = encoding.StatusError
	okSpan := testSpan(5, 1, api, "GET", 500, 10)
	okSpan.StatusCode = encoding.StatusOk
	evSpan := testSpan(6, 1, db1, "query", 600, 10)
	evSpan.Events = []encoding.Event{{Name: "exception", Attrs: []encoding.KeyValue{encoding.StrKV("exception.type", "IOError")}}}
	linkSpan := testSpan(7, 1, db1, "query", 700, 10)
	linkSpan.Links = []encoding.Link{{TraceID: testTraceID(1), SpanID: testSpanID(1), Attrs: []encoding.KeyValue{encoding.StrKV("peer", "x")}}}
	scoped := testSpan(8, 1, db1, "query", 800, 10)
	scoped.Scope = &encoding.Scope{Name: "lib", Attrs: []encoding.KeyValue{encoding.StrKV("lib.kind", "sql")}}
	spans := []*encoding.Span{
		// Trace 1: the conditions hold on different spans only.
		testSpan(1, 1, api, "GET", 100, uint64(5*time.Millisecond), encoding.StrKV("http.method", "GET")),
		testSpan(1, 2, db1, "query", 110, uint64(50*time.Millisecond), encoding.IntKV("rows", 7)),
		// Trace 2: one span holds them all.
		testSpan(2, 1, api, "GET", 200, uint64(50*time.Millisecond), encoding.IntKV("rows", 7), encoding.BoolKV("cached", true)),
		testSpan(3, 1, api, "POST", 300, 1000, encoding.StrKV("body", long), encoding.DoubleKV("ratio", 0.5)),
		errSpan, okSpan, evSpan, linkSpan, scoped,
		testSpan(9, 1, testResource("api"), "GET", 900, 10, encoding.StrKV("body", long+"y")),
	}
	for _, flushAt := range []int{0, 5, len(spans)} {
		_, e := openWith(t, flushAt, spans...)
		for _, tc := range []struct {
			name string
			q    TraceQuery
			want []byte
		}{
			{"all newest first", TraceQuery{}, []byte{9, 8, 7, 6, 5, 4, 3, 2, 1}},
			{"service", TraceQuery{Service: "db"}, []byte{8, 7, 6, 1}},
			{"operation", TraceQuery{Service: "api", Operation: "GET"}, []byte{9, 5, 4, 2, 1}},
			{"same span, not spread", TraceQuery{Service: "api", Attributes: map[string]string{"rows": "7"}}, []byte{2}},
			{"duration on the same span", TraceQuery{Service: "api", DurationMin: 10 * time.Millisecond}, []byte{2}},
			{"duration max", TraceQuery{DurationMax: 10}, []byte{9, 8, 7, 6, 5, 4}},
			{"int as string", TraceQuery{Attributes: map[string]string{"rows": "7"}}, []byte{2, 1}},
			{"bool as string", TraceQuery{Attributes: map[string]string{"cached": "true"}}, []byte{2}},
			{"double as string", TraceQuery{Attributes: map[string]string{"ratio": "0.5"}}, []byte{3}},
			{"resource attribute", TraceQuery{Service: "api", Operation: "POST", Attributes: map[string]string{"region": "eu"}}, []byte{3}},
			{"scope attribute", TraceQuery{Attributes: map[string]string{"lib.kind": "sql"}}, []byte{8}},
			{"event attribute", TraceQuery{Attributes: map[string]string{"exception.type": "IOError"}}, []byte{6}},
			{"links are not searched", TraceQuery{Attributes: map[string]string{"peer": "x"}}, nil},
			{"long value", TraceQuery{Attributes: map[string]string{"body": long}}, []byte{3}},
			{"long value with service", TraceQuery{Service: "api", Attributes: map[string]string{"body": long + "y"}}, []byte{9}},
			{"error true", TraceQuery{Attributes: map[string]string{"error": "true"}}, []byte{4}},
			{"error false is status Ok", TraceQuery{Attributes: map[string]string{"error": "false"}}, []byte{5}},
			{"absent value", TraceQuery{Attributes: map[string]string{"rows": "8"}}, nil},
			{"absent service", TraceQuery{Service: "nope"}, nil},
			{"time range", TraceQuery{StartTime: db.TimeRange{Start: testT0 + 200, End: testT0 + 400}}, []byte{4, 3, 2}},
			{"time range open end", TraceQuery{StartTime: db.TimeRange{Start: testT0 + 800}}, []byte{9, 8}},
			{"limit", TraceQuery{Limit: 2}, []byte{9, 8}},
		} {
			got, err := e.FindTraceIDs(context.Background(), tc.q)
			if err != nil {
				t.Fatalf("flush at %d, %s: %v", flushAt, tc.name, err)
			}
			if g := hitIDs(got); string(g) != string(tc.want) {
				t.Errorf("flush at %d, %s: got traces %v, want %v", flushAt, tc.name, g, tc.want)
			}
		}
	}
}

// TestLatestMatchingStart checks that a trace ranks by its latest matching
// span, not its latest span.
func TestLatestMatchingStart(t *testing.T) {
	api := testResource("api")
	_, e := openWith(t, 2,
		testSpan(1, 1, api, "a", 100, 1), testSpan(1, 2, api, "b", 900, 1),
		testSpan(2, 1, api, "a", 500, 1),
	)
	got, err := e.FindTraceIDs(context.Background(), TraceQuery{Service: "api", Operation: "a"})
	if err != nil {
		t.Fatal(err)
	}
	want := []TraceHit{{testTraceID(2), testT0 + 500}, {testTraceID(1), testT0 + 100}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// TestAmbiguousOperation: the operation term "auth NUL db NUL query" is
// both span "db NUL query" of service auth and span "query" of service
// "auth NUL db"; each query must get only its own.
func TestAmbiguousOperation(t *testing.T) {
	a, b := testResource("auth"), testResource("auth\x00db")
	sa := testSpan(1, 1, a, "db\x00query", 100, 1)
	sa.Kind = encoding.KindClient
	sb := testSpan(2, 1, b, "query", 200, 1)
	sb.Kind = encoding.KindServer
	for _, flushAt := range []int{0, 2} {
		_, e := openWith(t, flushAt, sa, sb)
		ctx := context.Background()
		for _, tc := range []struct {
			q    TraceQuery
			want byte
		}{
			{TraceQuery{Service: "auth", Operation: "db\x00query"}, 1},
			{TraceQuery{Service: "auth\x00db", Operation: "query"}, 2},
		} {
			got, err := e.FindTraceIDs(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if g := hitIDs(got); len(g) != 1 || g[0] != tc.want {
				t.Errorf("flush at %d, %q/%q: got %v, want [%d]", flushAt, tc.q.Service, tc.q.Operation, g, tc.want)
			}
		}
		for svc, want := range map[string]Operation{"auth": {"db\x00query", encoding.KindClient}, "auth\x00db": {"query", encoding.KindServer}} {
			ops, err := e.GetOperations(ctx, OperationQuery{Service: svc})
			if err != nil {
				t.Fatal(err)
			}
			if len(ops) != 1 || ops[0] != want {
				t.Errorf("flush at %d, operations of %q: got %q, want [%q]", flushAt, svc, ops, want)
			}
		}
	}
}

func TestInvalidQueries(t *testing.T) {
	_, e := openWith(t, 0, testSpan(1, 1, testResource("api"), "GET", 0, 1))
	for _, tc := range []struct {
		name string
		q    TraceQuery
		msg  string
	}{
		{"negative limit", TraceQuery{Limit: -1}, "limit -1 is negative"},
		{"limit too large", TraceQuery{Limit: DefaultMaxLimit + 1}, "above the maximum 1500"},
		{"operation without service", TraceQuery{Operation: "GET"}, `operation "GET" given without a service`},
		{"duration min above max", TraceQuery{DurationMin: 2, DurationMax: 1}, "minimum duration 2ns is above the maximum 1ns"},
		{"negative duration", TraceQuery{DurationMin: -1}, "minimum duration -1ns is negative"},
		{"negative max duration", TraceQuery{DurationMax: -1}, "maximum duration -1ns is negative"},
		{"empty time range", TraceQuery{StartTime: db.TimeRange{Start: 5, End: 4}}, "start time range [5, 4] is empty"},
		{"error not boolean", TraceQuery{Attributes: map[string]string{"error": "maybe"}}, `attribute "error": value "maybe" is not true or false`},
		{"two at once", TraceQuery{Limit: -1, Operation: "x"}, "limit -1 is negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.FindTraceIDs(context.Background(), tc.q)
			if !errors.Is(err, ErrInvalidQuery) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want ErrInvalidQuery with %q", err, tc.msg)
			}
			for _, err := range e.FindTraces(context.Background(), tc.q) {
				if !errors.Is(err, ErrInvalidQuery) {
					t.Fatalf("FindTraces: got %v, want ErrInvalidQuery", err)
				}
			}
		})
	}
	if _, err := e.GetOperations(context.Background(), OperationQuery{}); !errors.Is(err, ErrInvalidQuery) {
		t.Errorf("GetOperations without service: got %v", err)
	}
	if _, err := e.GetServices(context.Background(), db.TimeRange{Start: 2, End: 1}); !errors.Is(err, ErrInvalidQuery) {
		t.Errorf("GetServices with an empty range: got %v", err)
	}
}

func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		ok   bool
	}{
		{"zero", Options{}, true},
		{"defaults", DefaultOptions(), true},
		{"default limit above max", Options{DefaultLimit: 50, MaxLimit: 10}, false},
		{"negative max", Options{MaxLimit: -1}, false},
		{"negative value length", Options{MaxIndexedValueLen: -1}, false},
	} {
		if err := tc.o.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
	o := DefaultOptions()
	if o.DefaultLimit != 20 || o.MaxLimit != DefaultMaxLimit || o.MaxIndexedValueLen != db.DefaultMaxIndexedValueLen {
		t.Errorf("DefaultOptions() = %+v", o)
	}
}

func TestFindTracesChunks(t *testing.T) {
	api := testResource("api")
	var spans []*encoding.Span
	for i := range 30 {
		spans = append(spans, testSpan(1, byte(i+1), api, "GET", uint64(i), 1))
	}
	spans = append(spans, testSpan(2, 1, api, "GET", 100, 1), spans[3]) // and a duplicate
	_, e := openWith(t, 10, spans...)
	var traces []byte
	n := map[byte]int{}
	for c, err := range e.FindTraces(context.Background(), TraceQuery{Service: "api"}) {
		if err != nil {
			t.Fatal(err)
		}
		if len(traces) == 0 || traces[len(traces)-1] != c.Hit.TraceID[15] {
			traces = append(traces, c.Hit.TraceID[15])
		}
		n[c.Hit.TraceID[15]] += c.Traces.SpanCount()
	}
	if string(traces) != string([]byte{2, 1}) || n[1] != 30 || n[2] != 1 {
		t.Fatalf("traces %v, spans %v", traces, n)
	}
	// Stopping early is allowed.
	for range e.FindTraces(context.Background(), TraceQuery{}) {
		break
	}
}

func TestGetServicesAndOperations(t *testing.T) {
	api, dbr := testResource("api"), testResource("db")
	noSvc := &encoding.Resource{Attrs: []encoding.KeyValue{encoding.StrKV("host.name", "h")}}
	s1 := testSpan(1, 1, api, "GET", 0, 1)
	s1.Kind = encoding.KindServer
	s2 := testSpan(1, 2, api, "GET", 1, 1)
	s2.Kind = encoding.KindClient
	s3 := testSpan(1, 3, api, "POST", 2, 1)
	s3.Kind = encoding.KindServer
	s4 := testSpan(2, 1, dbr, "query", 3_600_000_000_000, 1) // an hour later: another partition
	s5 := testSpan(2, 2, noSvc, "x", 4, 1)
	for _, flushAt := range []int{0, 3, 5} {
		_, e := openWith(t, flushAt, s1, s2, s3, s4, s5)
		ctx := context.Background()
		svcs, err := e.GetServices(ctx, db.TimeRange{})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(svcs, ",") != "api,db" {
			t.Errorf("flush at %d: services %q", flushAt, svcs)
		}
		for _, tc := range []struct {
			q    OperationQuery
			want []Operation
		}{
			{OperationQuery{Service: "api"}, []Operation{{"GET", encoding.KindServer}, {"GET", encoding.KindClient}, {"POST", encoding.KindServer}}},
			{OperationQuery{Service: "api", ByKind: true, Kind: encoding.KindServer}, []Operation{{"GET", encoding.KindServer}, {"POST", encoding.KindServer}}},
			{OperationQuery{Service: "api", ByKind: true, Kind: encoding.KindConsumer}, nil},
			{OperationQuery{Service: "db"}, []Operation{{"query", encoding.KindUnspecified}}},
			{OperationQuery{Service: "ap"}, nil},
		} {
			got, err := e.GetOperations(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Errorf("flush at %d, %+v: got %v, want %v", flushAt, tc.q, got, tc.want)
				continue
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("flush at %d, %+v: got %v, want %v", flushAt, tc.q, got, tc.want)
				}
			}
		}
	}
}

func TestCancelled(t *testing.T) {
	_, e := openWith(t, 1, testSpan(1, 1, testResource("api"), "GET", 0, 1), testSpan(2, 1, testResource("api"), "GET", 0, 1))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.FindTraceIDs(ctx, TraceQuery{}); !errors.Is(err, context.Canceled) {
		t.Errorf("FindTraceIDs: got %v", err)
	}
	if _, err := e.GetServices(ctx, db.TimeRange{}); !errors.Is(err, context.Canceled) {
		t.Errorf("GetServices: got %v", err)
	}
}
