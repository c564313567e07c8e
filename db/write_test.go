package db

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/internal/spangen"
)

// TestWriteEncodedReplaysTheSameSpans writes with WriteEncoded, as the
// server does with a request's bytes, and checks that the WAL replay after
// a crash gives back exactly the accepted spans: the logged bytes when all
// are accepted, never the rejected ones when some are not.
func TestWriteEncodedReplaysTheSameSpans(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions()
	d := openTest(t, dir, opts)
	ctx := context.Background()

	r := rand.New(rand.NewPCG(5, 6))
	want := storable(spangen.Random(r, 300))
	td := encoding.ToTraces(want)
	wire, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	res, err := d.WriteEncoded(ctx, td, wire)
	if err != nil || len(res.Rejected) > 0 || res.Accepted != len(want) {
		t.Fatalf("write: %+v, %v", res, err)
	}

	// A request with rejected spans: the WAL must not log its bytes.
	mixed := makeTraces(
		spanSpec{trace: 201, span: 1, service: "a", name: "ok", dur: 10},
		spanSpec{trace: 201, span: 2, service: "a", name: "zero trace"},
		spanSpec{trace: 201, span: 3, service: "a", name: "ok too", dur: 1},
	)
	mixed.ResourceSpans().At(1).ScopeSpans().At(0).Spans().At(0).SetTraceID(pcommon.TraceID{})
	mixedWire, err := ptraceotlp.NewExportRequestFromTraces(mixed).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	res, err = d.WriteEncoded(ctx, mixed, mixedWire)
	if err != nil || res.Accepted != 2 || len(res.Rejected) != 1 {
		t.Fatalf("mixed write: %+v, %v", res, err)
	}

	d.closeWithoutFlush(t)
	d = openTest(t, dir, opts)
	defer d.Close()
	for id, w := range byTrace(want) {
		if got := collect(t, d, ctx, id); !sameSpans(got, w) {
			t.Fatalf("trace %s after replay: got %d spans, want %d, or contents differ", id, len(got), len(w))
		}
	}
	var names []string
	for _, s := range collect(t, d, ctx, traceID(201)) {
		names = append(names, s.Name)
	}
	if !slices.Equal(names, []string{"ok", "ok too"}) {
		t.Errorf("replayed %q, want only the two accepted spans", names)
	}
	if got := collect(t, d, ctx, encoding.TraceID{}); len(got) != 0 {
		t.Errorf("the rejected zero-trace-ID span came back from the WAL: %d spans", len(got))
	}
}
