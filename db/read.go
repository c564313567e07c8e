package db

import (
	"bytes"
	"cmp"
	"container/heap"
	"context"
	"errors"
	"iter"
	"slices"
	"sync/atomic"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracedb/tracedb/encoding"
)

// TimeRange bounds span start times, in Unix nanoseconds, both ends
// inclusive. The zero TimeRange is unbounded.
type TimeRange struct {
	Start, End uint64
}

func (r TimeRange) unbounded() bool { return r == TimeRange{} }

// overlaps reports whether a reader whose spans start in [minStart,
// maxStart] and end by maxEnd can hold spans of interest to r.
func (r TimeRange) overlaps(info BlockInfo) bool {
	if r.unbounded() {
		return true
	}
	end := r.End
	if end == 0 {
		end = ^uint64(0)
	}
	return info.MinStart <= end && max(info.MaxStart, info.MaxEnd) >= r.Start
}

// Snapshot is a consistent view of one tenant's readers: the heads and the
// blocks at the moment it was taken. Every span is in exactly one of them.
// The snapshot pins its blocks: retention may drop them from the store, but
// their data stays readable until Release. Call Release exactly once when
// done; a snapshot never released keeps dropped blocks on disk.
type Snapshot struct {
	Tenant  string
	Readers []BlockReader

	blocks   []*diskBlock
	released atomic.Bool
}

// Release unpins the snapshot's blocks. The readers must not be used after
// it. Calls after the first do nothing.
func (s *Snapshot) Release() {
	if s.released.Swap(true) {
		return
	}
	for _, b := range s.blocks {
		b.unpin()
	}
}

// Snapshot returns the readers of the context's tenant.
func (db *DB) Snapshot(ctx context.Context) (*Snapshot, error) {
	tenant, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	if db.isClosed() {
		return nil, ErrClosed
	}
	db.mu.Lock()
	t := db.mu.tenants[tenant]
	db.mu.Unlock()
	snap := &Snapshot{Tenant: tenant}
	if t == nil {
		return snap, nil
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, b := range t.mu.blocks {
		b.pin()
		snap.blocks = append(snap.blocks, b)
		snap.Readers = append(snap.Readers, b)
	}
	for _, h := range t.mu.frozen {
		snap.Readers = append(snap.Readers, h)
	}
	if t.mu.head != nil {
		snap.Readers = append(snap.Readers, t.mu.head)
	}
	return snap, nil
}

// TraceSpans yields every span of trace id for the context's tenant, from
// the heads and every block that holds part of it, in a stable order:
// start time, then span ID, then arrival. A span stored more than once
// with identical content (a client retry) is yielded once; spans that share
// a span ID but differ are all yielded. Only readers whose time range
// overlaps r are read (the zero TimeRange reads all). Memory stays bounded
// by one row group per reader, whatever the trace's size.
func (db *DB) TraceSpans(ctx context.Context, id encoding.TraceID, r TimeRange) iter.Seq2[*encoding.Span, error] {
	return func(yield func(*encoding.Span, error) bool) {
		snap, err := db.Snapshot(ctx)
		if err != nil {
			yield(nil, err)
			return
		}
		defer snap.Release()
		var srcs []BlockReader
		for _, rd := range snap.Readers {
			if rd.MayContainTrace(id) && r.overlaps(rd.Info()) {
				srcs = append(srcs, rd)
			}
		}
		mergeTraceSpans(ctx, srcs, id, yield)
	}
}

// GetTrace yields trace id as chunks of at most Options.TraceChunkSpans
// spans each, in TraceSpans' order. A trace with no spans yields nothing.
func (db *DB) GetTrace(ctx context.Context, id encoding.TraceID, r TimeRange) iter.Seq2[ptrace.Traces, error] {
	return func(yield func(ptrace.Traces, error) bool) {
		b := encoding.NewTracesBuilder()
		for s, err := range db.TraceSpans(ctx, id, r) {
			if err != nil {
				yield(ptrace.Traces{}, err)
				return
			}
			b.Add(s)
			if b.Len() >= db.opts.TraceChunkSpans && !yield(b.Take(), nil) {
				return
			}
		}
		if b.Len() > 0 {
			yield(b.Take(), nil)
		}
	}
}

// mergeTraceSpans merges the trace's spans from every source in (start,
// span ID) order and drops exact duplicates. Each source is pulled lazily.
func mergeTraceSpans(ctx context.Context, srcs []BlockReader, id encoding.TraceID, yield func(*encoding.Span, error) bool) {
	h := &spanHeap{}
	var stops []func()
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()
	for i, src := range srcs {
		next, stop := iter.Pull2(func(yield func(*encoding.Span, error) bool) {
			errStop := errors.New("stop")
			err := src.TraceSpans(ctx, id, func(s *encoding.Span) error {
				if !yield(s, nil) {
					return errStop
				}
				return nil
			})
			if err != nil && err != errStop {
				yield(nil, err)
			}
		})
		stops = append(stops, stop)
		s, err, ok := next()
		if err != nil {
			yield(nil, err)
			return
		}
		if ok {
			h.items = append(h.items, heapItem{s, i, next})
		}
	}
	heap.Init(h)
	// Spans come by start, then span ID: an exact duplicate is adjacent.
	var dups exactDups
	for h.Len() > 0 {
		top := &h.items[0]
		s := top.span
		next, err, ok := top.next()
		if err != nil {
			yield(nil, err)
			return
		}
		if ok {
			top.span = next
			heap.Fix(h, 0)
		} else {
			heap.Pop(h)
		}
		if dups.seen(s) {
			continue
		}
		if !yield(s, nil) {
			return
		}
	}
}

type heapItem struct {
	span *encoding.Span
	src  int
	next func() (*encoding.Span, error, bool)
}

type spanHeap struct{ items []heapItem }

func (h *spanHeap) Len() int { return len(h.items) }
func (h *spanHeap) Less(i, j int) bool {
	a, b := h.items[i], h.items[j]
	return cmp.Or(
		cmp.Compare(a.span.StartUnixNano, b.span.StartUnixNano),
		bytes.Compare(a.span.SpanID[:], b.span.SpanID[:]),
		cmp.Compare(a.src, b.src),
	) < 0
}
func (h *spanHeap) Swap(i, j int) { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *spanHeap) Push(x any)    { h.items = append(h.items, x.(heapItem)) }
func (h *spanHeap) Pop() any {
	x := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return x
}

// Tenants returns the names of the tenants the store holds spans of (in
// blocks or heads), sorted.
func (db *DB) Tenants() []string {
	db.mu.Lock()
	defer db.mu.Unlock()
	out := make([]string, 0, len(db.mu.tenants))
	for name, t := range db.mu.tenants {
		t.mu.RLock()
		has := len(t.mu.blocks) > 0 || len(t.mu.frozen) > 0 || t.mu.head != nil
		t.mu.RUnlock()
		if has {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}
