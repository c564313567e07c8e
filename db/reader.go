package db

import (
	"context"

	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/index"
)

// BlockInfo describes a reader: the head or one disk block.
type BlockInfo struct {
	Head      bool             // the in-memory head (then ID and Partition are zero)
	ID        encoding.BlockID // the block's ID
	Partition encoding.PartitionID
	MinStart  uint64 // earliest span start, Unix ns
	MaxStart  uint64 // latest span start, Unix ns
	MaxEnd    uint64 // latest span end, Unix ns
	Spans     uint64
	Traces    uint64
	Bytes     uint64 // encoded bytes on disk; 0 for the head
}

// BlockReader is what the head and every disk block offer to readers, so
// that one query path serves both. Span ordinals are dense from 0 within a
// reader. The store never deletes a block yet (compaction and retention
// will, and Snapshot will then pin the blocks it hands out until it is
// released), so a reader stays valid for the life of the store. Methods are
// safe for concurrent use. Spans passed to callbacks are
// immutable and may be retained.
type BlockReader interface {
	Info() BlockInfo
	// Postings returns the ordinals of spans carrying term t, ascending;
	// index.EmptyPostings() when none do.
	Postings(t index.Term) (index.Postings, error)
	// Values returns the sorted distinct values of term name.
	Values(name string) ([]string, error)
	// PostingsRange calls fn, in value order, with every value v of term
	// name such that from <= v < to (to "" means no upper bound) and its
	// postings, in one pass; it stops at fn's first error and returns it.
	PostingsRange(name, from, to string, fn func(value string, p index.Postings) error) error
	// MayContainTrace is false only when no span of trace id is here.
	MayContainTrace(id encoding.TraceID) bool
	// Spans calls fn with the span of each ordinal of ords, in order.
	Spans(ctx context.Context, ords index.Postings, fn func(ord uint32, s *encoding.Span) error) error
	// SpanTimes calls fn with the trace ID, start and end of the span of
	// each ordinal of ords, in order, reading only those fields: what a
	// search needs of the spans whose other conditions the postings
	// settled.
	SpanTimes(ctx context.Context, ords index.Postings, fn func(ord uint32, id encoding.TraceID, start, end uint64) error) error
	// DurationHistogram returns the spans carrying term t (a service or
	// operation term, see index.HistogramTerm) counted by duration bucket,
	// ascending, when the reader keeps such counts (known true; a nil
	// histogram then means no span carries t). When known is false the
	// caller counts from postings.
	DurationHistogram(t index.Term) (hist []index.BucketCount, known bool, err error)
	// TermKinds returns the span kinds of the spans carrying term t (a
	// service or operation term) as a mask, bit k for kind k and
	// index.KindOther for any other, when the reader keeps it (known true).
	TermKinds(t index.Term) (mask uint8, known bool, err error)
	// Edges returns the service-graph calls counted with this reader's
	// spans (see encoding.DependencyEdge), sorted by encoding.SortEdges;
	// every call is in exactly one reader. The slice must not be modified.
	Edges() []encoding.DependencyEdge
	// TraceSpans calls fn for each span of trace id here, in ascending start time.
	TraceSpans(ctx context.Context, id encoding.TraceID, fn func(s *encoding.Span) error) error
}

var (
	_ BlockReader = (*head)(nil)
	_ BlockReader = (*diskBlock)(nil)
)
