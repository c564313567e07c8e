package query

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/internal/spangen"
)

// TestFindTracesReadAhead checks FindTraces, which reads traces ahead on
// several goroutines: the traces come whole and in FindTraceIDs' order,
// stopping early or cancelling leaves no reader behind, and a cancelled
// context ends the sequence with the context's error.
func TestFindTracesReadAhead(t *testing.T) {
	// Traces of 10 spans yielded a span per chunk, so that a reader ahead
	// fills its channel and must be told to stop.
	d, err := db.Open(t.TempDir(), db.Options{Sync: db.SyncNone, RowGroupSpans: 64, TraceChunkSpans: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	g := spangen.NewClickHouseShape(rand.New(rand.NewPCG(5, 6)), false)
	for round := range 3 {
		if _, err := d.Write(ctx, encoding.ToTraces(spangen.Spans(g, 2000))); err != nil {
			t.Fatal(err)
		}
		if round < 2 {
			if err := d.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	e, err := NewEngine(d, Options{})
	if err != nil {
		t.Fatal(err)
	}
	q := TraceQuery{Service: "tracegen-01", Limit: 40}
	hits, err := e.FindTraceIDs(ctx, q)
	if err != nil || len(hits) < 20 {
		t.Fatalf("%d hits, %v", len(hits), err)
	}
	spanIDs := func(td ptrace.Traces) []encoding.SpanID {
		var out []encoding.SpanID
		for _, rs := range td.ResourceSpans().All() {
			for _, ss := range rs.ScopeSpans().All() {
				for _, s := range ss.Spans().All() {
					out = append(out, encoding.SpanID(s.SpanID()))
				}
			}
		}
		return out
	}
	base := runtime.NumGoroutine()

	// Whole and in order.
	var got []encoding.TraceID
	spans := map[encoding.TraceID]int{}
	for c, err := range e.FindTraces(ctx, q) {
		if err != nil {
			t.Fatal(err)
		}
		if n := len(got); n == 0 || got[n-1] != c.Hit.TraceID {
			got = append(got, c.Hit.TraceID)
		}
		spans[c.Hit.TraceID] += len(spanIDs(c.Traces))
	}
	if len(got) != len(hits) {
		t.Fatalf("FindTraces gave %d traces, FindTraceIDs %d", len(got), len(hits))
	}
	for i, h := range hits {
		if got[i] != h.TraceID {
			t.Fatalf("trace %d: %s, want %s", i, got[i], h.TraceID)
		}
		want := 0
		for td, err := range e.GetTrace(ctx, h.TraceID, db.TimeRange{}) {
			if err != nil {
				t.Fatal(err)
			}
			want += len(spanIDs(td))
		}
		if spans[h.TraceID] != want || want == 0 {
			t.Errorf("trace %s: %d spans, GetTrace gives %d", h.TraceID, spans[h.TraceID], want)
		}
	}

	// Many calls at once share the engine's read-ahead tokens; each
	// trace's turn needs none, so every call finishes with every trace
	// (a call that waited for a token held by another's stalled reader
	// would hang here).
	var wg sync.WaitGroup
	counts := make([]int, 8)
	for c := range counts {
		wg.Go(func() {
			for ch, err := range e.FindTraces(ctx, q) {
				if err != nil {
					t.Error(err)
					return
				}
				counts[c] += len(spanIDs(ch.Traces))
				if c%2 == 0 {
					time.Sleep(100 * time.Microsecond) // a slow consumer keeps its readers' tokens
				}
			}
		})
	}
	wg.Wait()
	total := 0
	for _, n := range spans {
		total += n
	}
	for c, n := range counts {
		if n != total {
			t.Errorf("concurrent call %d: %d spans, want %d", c, n, total)
		}
	}

	// Stopping early, then cancelling part-way: no reader outlives the
	// sequence, and the cancellation is reported.
	n := 0
	for _, err := range e.FindTraces(ctx, q) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 3 {
			break
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	var last error
	n = 0
	for _, err := range e.FindTraces(cctx, q) {
		if err != nil {
			last = err
			continue
		}
		if n++; n == 2 {
			cancel()
		}
	}
	cancel()
	if !errors.Is(last, context.Canceled) {
		t.Errorf("after cancel: last error %v, want context.Canceled", last)
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > base {
		t.Errorf("%d goroutines after the sequences ended, %d before", g, base)
	}
}
