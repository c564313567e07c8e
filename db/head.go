package db

import (
	"bytes"
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/index"
)

// head holds a tenant's recent spans in memory, readable the instant they
// are appended. Spans get ordinals in arrival order; the postings map terms
// to ordinals. A head is appended to until the store cuts it; then it is
// frozen (read-only) until its blocks are visible, and then dropped.
//
// Concurrency: append takes mu; readers take mu.RLock only to capture the
// span slice and a trace's ordinals. Captured slices stay valid because the
// head only appends: an append never rewrites an element a reader can see.
type head struct {
	created time.Time

	mu struct {
		sync.RWMutex
		index    *headIndex
		spans    []*encoding.Span
		traces   map[encoding.TraceID][]uint32
		bytes    int64
		minStart uint64
		maxStart uint64
		maxEnd   uint64
	}
}

func newHead(now time.Time, maxIndexedValueLen int) *head {
	h := &head{created: now}
	h.mu.traces = make(map[encoding.TraceID][]uint32)
	h.mu.index = newHeadIndex(maxIndexedValueLen)
	return h
}

// append adds spans whose approximate encoded sizes sum to bytes.
func (h *head) append(spans []*encoding.Span, bytes int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range spans {
		ord := uint32(len(h.mu.spans))
		h.mu.spans = append(h.mu.spans, s)
		h.mu.traces[s.TraceID] = append(h.mu.traces[s.TraceID], ord)
		h.mu.index.add(ord, s)
		if len(h.mu.spans) == 1 || s.StartUnixNano < h.mu.minStart {
			h.mu.minStart = s.StartUnixNano
		}
		h.mu.maxStart = max(h.mu.maxStart, s.StartUnixNano)
		h.mu.maxEnd = max(h.mu.maxEnd, s.EndUnixNano)
	}
	h.mu.bytes += bytes
}

// stats returns the span count and approximate bytes.
func (h *head) stats() (spans int, bytes int64) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.mu.spans), h.mu.bytes
}

// allSpans returns the spans appended so far, in ordinal order. The slice
// must not be modified.
func (h *head) allSpans() []*encoding.Span {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.mu.spans
}

// Info describes the head as a reader.
func (h *head) Info() BlockInfo {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return BlockInfo{
		Head:     true,
		MinStart: h.mu.minStart,
		MaxStart: h.mu.maxStart,
		MaxEnd:   h.mu.maxEnd,
		Spans:    uint64(len(h.mu.spans)),
		Traces:   uint64(len(h.mu.traces)),
	}
}

// Postings returns the ordinals of the head's spans that carry term t.
func (h *head) Postings(t index.Term) (index.Postings, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.mu.index.postings(t), nil
}

// Values returns the sorted values of term name in the head.
func (h *head) Values(name string) ([]string, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.mu.index.values(name), nil
}

// frozenIndex returns the index of a head that no longer takes appends
// (the store cut it); it may then be read without the lock.
func (h *head) frozenIndex() *headIndex {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.mu.index
}

// MayContainTrace reports whether the head holds spans of trace id.
func (h *head) MayContainTrace(id encoding.TraceID) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	_, ok := h.mu.traces[id]
	return ok
}

// Spans calls fn for each ordinal of ords with its span.
func (h *head) Spans(ctx context.Context, ords index.Postings, fn func(ord uint32, s *encoding.Span) error) error {
	spans := h.allSpans()
	for i := 0; ords.Next(); i++ {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		ord := ords.At()
		if int(ord) >= len(spans) {
			break // a posting appended after spans was captured
		}
		if err := fn(ord, spans[ord]); err != nil {
			return err
		}
	}
	return ords.Err()
}

// TraceSpans calls fn for every span of trace id, in ascending start time.
func (h *head) TraceSpans(ctx context.Context, id encoding.TraceID, fn func(s *encoding.Span) error) error {
	h.mu.RLock()
	spans := h.mu.spans
	ords := slices.Clone(h.mu.traces[id])
	h.mu.RUnlock()
	trace := make([]*encoding.Span, len(ords))
	for i, o := range ords {
		trace[i] = spans[o]
	}
	slices.SortStableFunc(trace, compareStartSpanID)
	for i, s := range trace {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := fn(s); err != nil {
			return err
		}
	}
	return nil
}

// compareStartSpanID orders a trace's spans: start time, then span ID.
func compareStartSpanID(a, b *encoding.Span) int {
	return cmp.Or(cmp.Compare(a.StartUnixNano, b.StartUnixNano), bytes.Compare(a.SpanID[:], b.SpanID[:]))
}
