// Package query is tracedb's query engine: it answers trace searches with
// Jaeger's parameters, and lists services and operations, from the head and
// the disk blocks alike, through the small reader interface declared here.
//
// Searches follow Jaeger's semantics, made exact: a trace matches when one
// of its spans satisfies every condition at once. The plan for each reader
// intersects the postings of the conditions the index can answer (the
// service, the operation, attribute values, the status, duration buckets)
// and verifies the rest on the candidate spans only; see plan.go. A
// structured filter (filter.go) joins the same plan: its terms narrow the
// candidates, its bounds the ranges, and Match has the last word
// (filter_search.go).
//
// Trace searches (FindTraceIDsPage, FindTraceSummaries) and span searches
// (FindSpans, in three orders) return pages, continued by opaque tokens
// that name a position in the result order (page.go, page.md).
//
// query imports db, index and encoding; nothing of tracedb imports query
// but the server, the CLI and the benchmarks.
package query

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"runtime"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/index"
)

// BlockReader is what the engine needs of one reader, the head or a disk
// block; db.BlockReader satisfies it. The contract is db.BlockReader's:
// ordinals are dense from 0 within a reader, postings ascend, methods are
// safe for concurrent use, and spans handed to fn are immutable.
type BlockReader interface {
	// Info describes the reader; the engine uses its start-time range and
	// span count to skip it or to scan it.
	Info() db.BlockInfo
	// Postings returns the ordinals of the spans carrying term t, ascending;
	// index.EmptyPostings() when none do.
	Postings(t index.Term) (index.Postings, error)
	// Values returns the sorted distinct values of term name.
	Values(name string) ([]string, error)
	// SpanTimes calls fn with the trace ID, start and end of the span of
	// each ordinal of ords, in order, reading only those fields, and stops
	// at fn's first error, which it returns.
	SpanTimes(ctx context.Context, ords index.Postings, fn func(ord uint32, id encoding.TraceID, start, end uint64) error) error
	// DurationHistogram returns the spans carrying term t (a service or
	// operation term) counted by duration bucket when the reader keeps
	// such counts (known true); otherwise the engine counts from postings.
	DurationHistogram(t index.Term) (hist []index.BucketCount, known bool, err error)
	// TermKinds returns the span kinds of the spans carrying term t (a
	// service or operation term) as a mask, bit k for kind k and
	// index.KindOther for any other, when the reader keeps it (known true).
	TermKinds(t index.Term) (mask uint8, known bool, err error)
	// Edges returns the service-graph calls counted with the reader's
	// spans, sorted by encoding.SortEdges; every call is in exactly one
	// reader.
	Edges() []encoding.DependencyEdge
	// Spans calls fn with the span of each ordinal of ords, in order, and
	// stops at fn's first error, which it returns.
	Spans(ctx context.Context, ords index.Postings, fn func(ord uint32, s *encoding.Span) error) error
}

// Store is where the engine reads from. *db.DB is adapted to it by
// NewEngine; other stores (a fan-out over several nodes, a test double)
// implement it directly.
type Store interface {
	// Readers returns a consistent view of the context's tenant: every
	// span is in exactly one reader. The readers stay valid until release
	// is called; release must be called exactly once when err is nil.
	Readers(ctx context.Context) (readers []BlockReader, release func(), err error)
	// GetTrace yields every span of trace id (exact duplicates once) as
	// chunks of bounded size; a trace with no spans yields nothing. Only
	// readers whose span times overlap r are read; the zero TimeRange
	// reads all.
	GetTrace(ctx context.Context, id encoding.TraceID, r db.TimeRange) iter.Seq2[ptrace.Traces, error]
}

// dbStore adapts a *db.DB to Store.
type dbStore struct{ d *db.DB }

func (s dbStore) Readers(ctx context.Context) ([]BlockReader, func(), error) {
	snap, err := s.d.Snapshot(ctx)
	if err != nil {
		return nil, nil, err
	}
	rs := make([]BlockReader, len(snap.Readers))
	for i, r := range snap.Readers {
		rs[i] = r
	}
	return rs, snap.Release, nil
}

func (s dbStore) GetTrace(ctx context.Context, id encoding.TraceID, r db.TimeRange) iter.Seq2[ptrace.Traces, error] {
	return s.d.GetTrace(ctx, id, r)
}

// Options configure an Engine. The zero value of a field means its default.
type Options struct {
	// MaxIndexedValueLen is the longest attribute value the engine looks
	// up in postings; longer ones it finds by reading spans. NewEngine
	// takes it from the store (db.DB.MaxIndexedValueLen) when it is 0 and
	// refuses a larger one, which would miss spans. NewEngineWithStore
	// defaults it to db.DefaultMaxIndexedValueLen (256).
	MaxIndexedValueLen int
	// DefaultLimit is the number of traces a search returns when its Limit
	// is 0. Default 20, Jaeger's default search depth.
	DefaultLimit int
	// MaxLimit is the largest Limit a search accepts; a larger one is
	// refused. It bounds the memory of one search (the top MaxLimit traces
	// are kept while reading). Default 1,500, the largest result count
	// Jaeger's UI offers.
	MaxLimit int
}

// Defaults of Options.
const (
	DefaultDefaultLimit = 20
	DefaultMaxLimit     = 1500
)

// DefaultOptions returns Options with every default filled in.
func DefaultOptions() Options {
	var o Options
	o.fillDefaults()
	return o
}

func (o *Options) fillDefaults() {
	if o.MaxIndexedValueLen == 0 {
		o.MaxIndexedValueLen = db.DefaultMaxIndexedValueLen
	}
	if o.DefaultLimit == 0 {
		o.DefaultLimit = DefaultDefaultLimit
	}
	if o.MaxLimit == 0 {
		o.MaxLimit = DefaultMaxLimit
	}
}

// Validate reports the options that are out of range, after defaults are
// filled in.
func (o Options) Validate() error {
	o.fillDefaults()
	var errs []error
	if o.MaxIndexedValueLen < 0 {
		errs = append(errs, fmt.Errorf("MaxIndexedValueLen %d is negative", o.MaxIndexedValueLen))
	}
	if o.MaxLimit < 0 {
		errs = append(errs, fmt.Errorf("MaxLimit %d is negative", o.MaxLimit))
	}
	if o.DefaultLimit < 0 || o.DefaultLimit > o.MaxLimit {
		errs = append(errs, fmt.Errorf("DefaultLimit %d is not in [1, MaxLimit %d]", o.DefaultLimit, o.MaxLimit))
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid query options: %w", errors.Join(errs...))
	}
	return nil
}

// Engine answers queries over a Store. It keeps no state between queries
// and is safe for concurrent use.
type Engine struct {
	store Store
	opts  Options
	// readAhead holds a token per trace being read ahead by FindTraces,
	// across all its calls: GOMAXPROCS of them, so that concurrent
	// searches do not multiply the reads in flight.
	readAhead chan struct{}
}

// NewEngine returns an engine over d.
func NewEngine(d *db.DB, opts Options) (*Engine, error) {
	switch n := d.MaxIndexedValueLen(); {
	case opts.MaxIndexedValueLen == 0:
		opts.MaxIndexedValueLen = n
	case opts.MaxIndexedValueLen > n:
		return nil, fmt.Errorf("invalid query options: MaxIndexedValueLen %d is above the store's %d", opts.MaxIndexedValueLen, n)
	}
	return NewEngineWithStore(dbStore{d}, opts)
}

// NewEngineWithStore returns an engine over any Store.
func NewEngineWithStore(s Store, opts Options) (*Engine, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.fillDefaults()
	return &Engine{store: s, opts: opts, readAhead: make(chan struct{}, runtime.GOMAXPROCS(0))}, nil
}

// readerName names a reader in error messages.
func readerName(info db.BlockInfo) string {
	if info.Head {
		return "head"
	}
	return "block " + info.ID.String()
}

// GetTrace yields every span of trace id (exact duplicates once) as chunks
// of bounded size, from the store; a trace with no spans yields nothing.
// Only readers whose span times overlap r are read; the zero TimeRange
// reads all. The trace is found by ID (block bloom filters and trace
// indexes), not searched for.
func (e *Engine) GetTrace(ctx context.Context, id encoding.TraceID, r db.TimeRange) iter.Seq2[ptrace.Traces, error] {
	return e.store.GetTrace(ctx, id, r)
}
