package encoding_test

import (
	"math/rand/v2"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/internal/spangen"
)

// BenchmarkOTLPDecode measures what ingest does with one OTLP Export
// request of 1,000 spans before the store: pdata's protobuf decode, then
// FromTraces into the span model. Per-span figures are the reported time
// divided by 1,000.
func BenchmarkOTLPDecode(b *testing.B) {
	for _, w := range []struct {
		name string
		gen  spangen.Generator
	}{
		{"clickhouse", spangen.NewClickHouseShape(rand.New(rand.NewPCG(1, 1)), false)},
		{"mix", spangen.NewMix(rand.New(rand.NewPCG(1, 1)))},
	} {
		spans := spangen.Spans(w.gen, 1000)
		wire, err := ptraceotlp.NewExportRequestFromTraces(encoding.ToTraces(spans)).MarshalProto()
		if err != nil {
			b.Fatal(err)
		}
		b.Run(w.name+"/unmarshal", func(b *testing.B) {
			b.SetBytes(int64(len(wire)))
			b.ReportAllocs()
			for b.Loop() {
				req := ptraceotlp.NewExportRequest()
				if err := req.UnmarshalProto(wire); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(w.name+"/unmarshal+FromTraces", func(b *testing.B) {
			b.SetBytes(int64(len(wire)))
			b.ReportAllocs()
			var dst []*encoding.Span
			var refs []encoding.SpanRef
			for b.Loop() {
				req := ptraceotlp.NewExportRequest()
				if err := req.UnmarshalProto(wire); err != nil {
					b.Fatal(err)
				}
				dst, refs = encoding.FromTraces(dst[:0], refs[:0], req.Traces())
				if len(dst) != len(spans) {
					b.Fatalf("%d spans, want %d", len(dst), len(spans))
				}
			}
		})
	}
}
