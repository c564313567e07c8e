// Package spangen generates spans for tests and benchmarks. Every generator
// is deterministic: the same *rand.Rand (the same seed) and the same calls
// give the same spans.
//
// Three kinds of data:
//
//   - Random: adversarial variety for property tests (every value type,
//     nesting, extreme numbers, odd strings, shared and duplicated resources).
//   - ClickHouseShape: the workload of Jaeger's ClickHouse storage
//     benchmark (traces of 10 spans with 11 attributes each).
//   - Mix: a realistic microservice mix (HTTP, gRPC, SQL, Redis, Kafka,
//     high-cardinality IDs, errors with stack traces, slow outliers).
//
// Spans handed out are new and not shared with the generator, except for
// Resource and Scope pointers, which are shared the way an OTLP batch shares
// them (treat them as immutable).
package spangen

import (
	"math"
	"math/rand/v2"
	"slices"

	"github.com/tracedb/tracedb/encoding"
)

// Epoch is the start time of the first trace of ClickHouseShape and Mix:
// 2025-01-01T00:00:00Z in Unix nanoseconds.
const Epoch uint64 = 1735689600_000_000_000

// Generator makes whole traces.
type Generator interface {
	// Trace returns the spans of the next trace, roots first, each child
	// after its parent. Later traces start later.
	Trace() []*encoding.Span
}

// Spans returns the first n spans of g's next traces; the last trace may
// be cut short.
func Spans(g Generator, n int) []*encoding.Span {
	out := make([]*encoding.Span, 0, n)
	for len(out) < n {
		t := g.Trace()
		out = append(out, t[:min(len(t), n-len(out))]...)
	}
	return out
}

// Sort sorts spans by trace ID, then start time, then span ID: the order
// of a block's rows.
func Sort(spans []*encoding.Span) {
	slices.SortStableFunc(spans, func(a, b *encoding.Span) int {
		if c := a.TraceID.Compare(b.TraceID); c != 0 {
			return c
		}
		switch {
		case a.StartUnixNano < b.StartUnixNano:
			return -1
		case a.StartUnixNano > b.StartUnixNano:
			return 1
		}
		for i := range a.SpanID {
			if a.SpanID[i] != b.SpanID[i] {
				return int(a.SpanID[i]) - int(b.SpanID[i])
			}
		}
		return 0
	})
}

// traceID returns a random non-zero trace ID.
func traceID(r *rand.Rand) encoding.TraceID {
	var id encoding.TraceID
	for id.IsZero() {
		putU64(id[:8], r.Uint64())
		putU64(id[8:], r.Uint64())
	}
	return id
}

// spanID returns a random non-zero span ID.
func spanID(r *rand.Rand) encoding.SpanID {
	var id encoding.SpanID
	for id.IsZero() {
		putU64(id[:], r.Uint64())
	}
	return id
}

func putU64(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (56 - 8*i))
	}
}

// logUniform returns a duration in nanoseconds drawn log-uniformly from
// [lo, hi).
func logUniform(r *rand.Rand, lo, hi float64) uint64 {
	return uint64(lo * math.Pow(hi/lo, r.Float64()))
}
