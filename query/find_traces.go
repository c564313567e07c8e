package query

import (
	"cmp"
	"context"
	"fmt"
	"iter"
	"runtime"
	"slices"
	"sync"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
)

// FindTraceIDs returns the traces that match q (see TraceQuery), newest
// first: ordered by the latest start among each trace's matching spans,
// then by trace ID, at most the query's limit of them, starting after
// q.PageToken's position when it is set. A query that breaks a rule gets
// an error wrapping ErrInvalidQuery. The search stops with the context's
// error when ctx is done. FindTraceIDsPage also returns the token of the
// next page.
func (e *Engine) FindTraceIDs(ctx context.Context, q TraceQuery) ([]TraceHit, error) {
	p, err := e.FindTraceIDsPage(ctx, q)
	return p.Hits, err
}

// TracePage is one page of a trace search.
type TracePage struct {
	Hits []TraceHit
	// NextPageToken continues the search after Hits; it is "" when no
	// trace follows them. Walking every page returns every matching trace
	// exactly once, in FindTraceIDs' order, as long as the data does not
	// change; a trace that gains a newer matching span between two pages
	// may be returned on both or on neither's side of the cursor, as its
	// rank moved.
	NextPageToken string
}

// FindTraceIDsPage is FindTraceIDs with pagination: it returns one page of
// at most the query's limit traces, and the token of the next.
//
// Readers are read newest first, and once the page is full a reader whose
// spans all start before the oldest result kept is skipped; memory stays
// within the limit whatever the number of matching spans. A page after
// the first first reads the matches newer than its token's position, to
// leave out the traces of earlier pages (a trace ranks by its newest
// matching span, so a trace with a match newer than the position was
// already returned): that costs a scan of those matches and memory for
// one trace ID per trace of the earlier pages.
func (e *Engine) FindTraceIDsPage(ctx context.Context, q TraceQuery) (TracePage, error) {
	c, err := e.compile(&q)
	if err != nil {
		return TracePage{}, err
	}
	hash := queryHash(&q)
	var after *TraceHit
	if q.PageToken != "" {
		cur, err := decodePageToken(q.PageToken, pageTraces, hash)
		if err != nil {
			return TracePage{}, err
		}
		after = &TraceHit{TraceID: cur.trace, Start: cur.key}
	}
	readers, release, err := e.store.Readers(ctx)
	if err != nil {
		return TracePage{}, fmt.Errorf("find traces: %w", err)
	}
	defer release()

	var earlier map[encoding.TraceID]bool
	if after != nil {
		if earlier, err = c.tracesUpTo(ctx, readers, *after); err != nil {
			return TracePage{}, fmt.Errorf("find traces: %w", err)
		}
		c.startMax = min(c.startMax, after.Start)
	}

	// One more than the page: whether it is found says whether a next
	// page exists.
	top := newTopTraces(c.limit + 1)
	for _, p := range c.plan(readers) {
		if err := ctx.Err(); err != nil {
			return TracePage{}, err
		}
		if !top.admits(p.newest) {
			break // every later reader is older still
		}
		err := c.eachHit(ctx, p.r, p.info, top.admits, func(h TraceHit) {
			if after != nil && (!better(*after, h) || earlier[h.TraceID]) {
				return
			}
			top.offer(h.TraceID, h.Start)
		})
		if err != nil {
			return TracePage{}, fmt.Errorf("find traces: %s: %w", readerName(p.info), err)
		}
	}
	page := TracePage{Hits: top.sorted()}
	if len(page.Hits) > c.limit {
		page.Hits = page.Hits[:c.limit]
		last := page.Hits[len(page.Hits)-1]
		cur := pageCursor{kind: pageTraces, hash: hash, key: last.Start, trace: last.TraceID}
		page.NextPageToken = cur.encode()
	}
	return page, nil
}

// tracesUpTo returns the traces that have a matching span ranking at or
// before position after: starting later than it, or at the same time with
// a trace ID not above its.
func (c *spanConds) tracesUpTo(ctx context.Context, readers []BlockReader, after TraceHit) (map[encoding.TraceID]bool, error) {
	newer := *c
	newer.startMin = max(c.startMin, after.Start)
	out := map[encoding.TraceID]bool{}
	if newer.startMin > newer.startMax {
		return out, nil
	}
	for _, p := range newer.plan(readers) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		err := newer.eachHit(ctx, p.r, p.info, nil, func(h TraceHit) {
			if !better(after, h) {
				out[h.TraceID] = true
			}
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", readerName(p.info), err)
		}
	}
	return out, nil
}

// planned is a reader a search reads.
type planned struct {
	r      BlockReader
	info   db.BlockInfo
	newest uint64 // the latest start a matching span of r can have
	oldest uint64 // the earliest start a matching span of r can have
}

// plan returns the readers that may hold matching spans, newest first.
func (c *spanConds) plan(readers []BlockReader) []planned {
	var plan []planned
	for _, r := range readers {
		if info := r.Info(); c.mayOverlap(info) {
			plan = append(plan, planned{r, info, min(info.MaxStart, c.startMax), max(info.MinStart, c.startMin)})
		}
	}
	slices.SortFunc(plan, func(a, b planned) int { return cmp.Compare(b.newest, a.newest) })
	return plan
}

// each calls fn with every span of r that matches, in ordinal order.
// admits, when not nil, is asked first about the span's start time and
// the span is skipped when it says no: the cheap check spares the
// verification.
func (c *spanConds) each(ctx context.Context, r BlockReader, info db.BlockInfo, admits func(start uint64) bool, fn func(s *encoding.Span)) error {
	ords, err := c.candidates(r, info)
	if err != nil {
		return err
	}
	return r.Spans(ctx, ords, func(_ uint32, s *encoding.Span) error {
		start := s.StartUnixNano
		if start < c.startMin || start > c.startMax || (admits != nil && !admits(start)) || !c.verifyRest(s) {
			return nil
		}
		fn(s)
		return nil
	})
}

// eachHit calls fn with the trace ID and start of every span of r that
// matches, in ordinal order, as each does. When the postings settled every
// condition but the start time and the duration, it reads only those
// fields of the candidates (BlockReader.SpanTimes), not whole spans.
func (c *spanConds) eachHit(ctx context.Context, r BlockReader, info db.BlockInfo, admits func(start uint64) bool, fn func(TraceHit)) error {
	if !c.settledByPostings() {
		return c.each(ctx, r, info, admits, func(s *encoding.Span) { fn(TraceHit{TraceID: s.TraceID, Start: s.StartUnixNano}) })
	}
	ords, err := c.candidates(r, info)
	if err != nil {
		return err
	}
	return r.SpanTimes(ctx, ords, func(_ uint32, id encoding.TraceID, start, end uint64) error {
		if start < c.startMin || start > c.startMax || (admits != nil && !admits(start)) || !c.durationMatches(start, end) {
			return nil
		}
		fn(TraceHit{TraceID: id, Start: start})
		return nil
	})
}

// durationMatches reports whether a span of these start and end meets the
// query's duration range (an end before the start is a duration of 0).
func (c *spanConds) durationMatches(start, end uint64) bool {
	if !c.hasDuration {
		return true
	}
	d := uint64(0)
	if end > start {
		d = end - start
	}
	return d >= c.durMin && d <= c.durMax
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
//
// Reading a trace is most of a search's time (its row groups are read and
// decompressed), so while a trace is yielded the next ones are read ahead
// on other goroutines: up to GOMAXPROCS traces per call, as long as the
// engine-wide read-ahead tokens last (a trace's turn comes without one, so
// calls never wait for each other). A trace read ahead holds up to
// readAheadChunks chunks until its turn.
func (e *Engine) FindTraces(ctx context.Context, q TraceQuery) iter.Seq2[TraceChunk, error] {
	return func(yield func(TraceChunk, error) bool) {
		hits, err := e.FindTraceIDs(ctx, q)
		if err != nil {
			yield(TraceChunk{}, err)
			return
		}
		ctx, cancel := context.WithCancel(ctx)
		var readers sync.WaitGroup
		defer readers.Wait() // no reader outlives the sequence
		defer cancel()
		read := func(h TraceHit, token bool) <-chan traceRead {
			// A sender blocked on a full channel holds one chunk more.
			ch := make(chan traceRead, readAheadChunks-1)
			readers.Go(func() {
				defer close(ch)
				if token {
					defer func() { <-e.readAhead }()
				}
				// The whole trace, not only the readers of the query's
				// time range: a trace's other spans may start outside it.
				for td, err := range e.store.GetTrace(ctx, h.TraceID, db.TimeRange{}) {
					select {
					case ch <- traceRead{td, err}:
					case <-ctx.Done():
						return
					}
					if err != nil {
						return
					}
				}
			})
			return ch
		}
		started := make([]<-chan traceRead, len(hits))
		next := 0 // the next hit to start reading
		window := max(1, runtime.GOMAXPROCS(0))
		for i, h := range hits {
			for next < min(i+window, len(hits)) {
				if next == i {
					started[next] = read(hits[next], false) // its turn: no token needed
				} else {
					select {
					case e.readAhead <- struct{}{}:
						started[next] = read(hits[next], true)
					default:
					}
				}
				if started[next] == nil {
					break
				}
				next++
			}
			for r := range started[i] {
				if r.err != nil {
					yield(TraceChunk{}, fmt.Errorf("find traces: read trace %s: %w", h.TraceID, r.err))
					return
				}
				if !yield(TraceChunk{Hit: h, Traces: r.td}, nil) {
					return
				}
			}
			started[i] = nil
			if err := ctx.Err(); err != nil {
				yield(TraceChunk{}, fmt.Errorf("find traces: %w", err))
				return
			}
		}
	}
}

// readAheadChunks is how many chunks of a trace read ahead of its turn
// FindTraces holds.
const readAheadChunks = 2

// traceRead is one chunk, or the error, of a trace read ahead.
type traceRead struct {
	td  ptrace.Traces
	err error
}
