package query

import (
	"cmp"
	"context"
	"fmt"
	"iter"
	"slices"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
)

// FindTraceIDs returns the traces that match q (see TraceQuery), newest
// first: ordered by the latest start among each trace's matching spans,
// then by trace ID, at most the query's limit of them. A query that breaks
// a rule gets an error wrapping ErrInvalidQuery. The search stops with the
// context's error when ctx is done.
//
// Readers are read newest first, and once the limit is reached a reader
// whose spans all start before the oldest result kept is skipped; memory
// stays within the limit whatever the number of matching spans.
func (e *Engine) FindTraceIDs(ctx context.Context, q TraceQuery) ([]TraceHit, error) {
	c, err := e.compile(&q)
	if err != nil {
		return nil, err
	}
	readers, release, err := e.store.Readers(ctx)
	if err != nil {
		return nil, fmt.Errorf("find traces: %w", err)
	}
	defer release()

	type planned struct {
		r      BlockReader
		info   db.BlockInfo
		newest uint64 // the latest start a matching span of r can have
	}
	var plan []planned
	for _, r := range readers {
		if info := r.Info(); c.mayOverlap(info) {
			plan = append(plan, planned{r, info, min(info.MaxStart, c.startMax)})
		}
	}
	slices.SortFunc(plan, func(a, b planned) int { return cmp.Compare(b.newest, a.newest) })

	top := newTopTraces(c.limit)
	for _, p := range plan {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !top.admits(p.newest) {
			break // every later reader is older still
		}
		if err := c.search(ctx, p.r, p.info, top); err != nil {
			return nil, fmt.Errorf("find traces: %s: %w", readerName(p.info), err)
		}
	}
	return top.sorted(), nil
}

// search offers the matching spans of one reader to top.
func (c *spanConds) search(ctx context.Context, r BlockReader, info db.BlockInfo, top *topTraces) error {
	ords, err := c.candidates(r, info)
	if err != nil {
		return err
	}
	return r.Spans(ctx, ords, func(_ uint32, s *encoding.Span) error {
		start := s.StartUnixNano
		if start < c.startMin || start > c.startMax || !top.admits(start) || !c.verifyRest(s) {
			return nil
		}
		top.offer(s.TraceID, start)
		return nil
	})
}

// TraceChunk is a part of one trace found by FindTraces. A trace comes as
// one chunk or as several consecutive chunks with the same Hit.
type TraceChunk struct {
	Hit    TraceHit
	Traces ptrace.Traces
}

// FindTraces yields the traces FindTraceIDs finds, in its order, each in
// full (every span of the trace, matching or not, from every reader, exact
// duplicates once) and in chunks of bounded size, so that memory stays
// bounded whatever the traces' sizes. A trace whose spans vanished between
// the search and the read (dropped by retention) yields nothing. Errors
// are yielded once, and end the sequence.
func (e *Engine) FindTraces(ctx context.Context, q TraceQuery) iter.Seq2[TraceChunk, error] {
	return func(yield func(TraceChunk, error) bool) {
		hits, err := e.FindTraceIDs(ctx, q)
		if err != nil {
			yield(TraceChunk{}, err)
			return
		}
		for _, h := range hits {
			// The whole trace, not only the readers of the query's time
			// range: a trace's other spans may start outside it.
			for td, err := range e.store.GetTrace(ctx, h.TraceID, db.TimeRange{}) {
				if err != nil {
					yield(TraceChunk{}, fmt.Errorf("find traces: read trace %s: %w", h.TraceID, err))
					return
				}
				if !yield(TraceChunk{Hit: h, Traces: td}, nil) {
					return
				}
			}
		}
	}
}
