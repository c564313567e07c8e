package db

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/protobuf/encoding/protowire"

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

// TestWriteEncodedOldClient: a request of an old OTLP client puts its
// spans in the deprecated instrumentation_library_spans (field 1000),
// which the receivers' decoder moves into scope_spans. Logged as the
// request's own bytes, it must replay to the same spans after a crash.
func TestWriteEncodedOldClient(t *testing.T) {
	var span, ils, rs, req []byte
	tid, sid := traceID(9), spanID(1)
	span = protowire.AppendTag(span, 1, protowire.BytesType)
	span = protowire.AppendBytes(span, tid[:])
	span = protowire.AppendTag(span, 2, protowire.BytesType)
	span = protowire.AppendBytes(span, sid[:])
	span = protowire.AppendTag(span, 5, protowire.BytesType)
	span = protowire.AppendString(span, "old")
	span = protowire.AppendTag(span, 7, protowire.Fixed64Type)
	span = protowire.AppendFixed64(span, t0)
	span = protowire.AppendTag(span, 8, protowire.Fixed64Type)
	span = protowire.AppendFixed64(span, t0+5)
	ils = protowire.AppendTag(ils, 2, protowire.BytesType) // InstrumentationLibrarySpans.spans
	ils = protowire.AppendBytes(ils, span)
	rs = protowire.AppendTag(rs, 1000, protowire.BytesType) // ResourceSpans.instrumentation_library_spans
	rs = protowire.AppendBytes(rs, ils)
	req = protowire.AppendTag(req, 1, protowire.BytesType) // ExportTraceServiceRequest.resource_spans
	req = protowire.AppendBytes(req, rs)

	decoded := ptraceotlp.NewExportRequest()
	if err := decoded.UnmarshalProto(req); err != nil {
		t.Fatal(err)
	}
	if n := decoded.Traces().SpanCount(); n != 1 {
		t.Fatalf("the receivers' decoder finds %d spans in the old request, want 1", n)
	}
	dir := t.TempDir()
	d := openTest(t, dir, testOptions())
	ctx := context.Background()
	if res, err := d.WriteEncoded(ctx, decoded.Traces(), req); err != nil || res.Accepted != 1 {
		t.Fatalf("write: %+v, %v", res, err)
	}
	d.closeWithoutFlush(t)
	d = openTest(t, dir, testOptions())
	defer d.Close()
	if got := collect(t, d, ctx, traceID(9)); len(got) != 1 || got[0].Name != "old" {
		t.Fatalf("after replay: %d spans, want the one acknowledged", len(got))
	}
}
