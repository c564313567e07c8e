package query

import (
	"container/heap"
	"slices"

	"github.com/tracedb/tracedb/encoding"
)

// topTraces keeps the best limit traces seen so far, a trace's rank being
// the latest start among its matching spans (see TraceHit). Spans are
// offered one by one, a trace possibly many times and from several
// readers; memory stays within limit entries.
//
// Why a trace's rank comes out right although it may be offered, dropped
// and offered again: the worst kept rank only rises once the set is full.
// A trace dropped (or refused) with rank r had r at most the worst kept
// rank then, so any later offer that gets it back in carries a rank above
// r, and every offer it missed while out ranked below the worst kept rank
// at the time. So a kept entry holds the trace's best rank offered so far,
// and a trace of the true top limit, once offered its best rank, is never
// dropped (that would take limit better traces).
type topTraces struct {
	limit int
	h     hitHeap
}

func newTopTraces(limit int) *topTraces {
	return &topTraces{limit: limit, h: hitHeap{pos: make(map[encoding.TraceID]int, limit)}}
}

// better reports whether a ranks before b: newer, then smaller trace ID.
func better(a, b TraceHit) bool {
	if a.Start != b.Start {
		return a.Start > b.Start
	}
	return a.TraceID.Compare(b.TraceID) < 0
}

// full reports whether limit traces are kept.
func (t *topTraces) full() bool { return len(t.h.hits) >= t.limit }

// worst returns the worst kept trace; only valid when some are kept.
func (t *topTraces) worst() TraceHit { return t.h.hits[0] }

// admits reports whether a span of some trace starting at start may still
// change the result: false when the result is full and start is older than
// every kept trace. A span starting exactly at the worst kept start may win
// on trace ID, so it is admitted.
func (t *topTraces) admits(start uint64) bool {
	return t.limit > 0 && (!t.full() || start >= t.h.hits[0].Start)
}

// offer records a matching span of trace id starting at start.
func (t *topTraces) offer(id encoding.TraceID, start uint64) {
	if t.limit <= 0 {
		return
	}
	hit := TraceHit{TraceID: id, Start: start}
	if t.full() && !better(hit, t.h.hits[0]) {
		return // a kept entry of id, if any, ranks at least as well
	}
	if i, ok := t.h.pos[id]; ok {
		if better(hit, t.h.hits[i]) {
			t.h.hits[i] = hit
			heap.Fix(&t.h, i)
		}
		return
	}
	if t.full() {
		heap.Pop(&t.h)
	}
	heap.Push(&t.h, hit)
}

// sorted returns the kept traces, best first.
func (t *topTraces) sorted() []TraceHit {
	out := slices.Clone(t.h.hits)
	slices.SortFunc(out, func(a, b TraceHit) int {
		if better(a, b) {
			return -1
		}
		if better(b, a) {
			return 1
		}
		return 0
	})
	return out
}

// hitHeap is a min-heap of hits, the worst at the top, with the position
// of each trace ID.
type hitHeap struct {
	hits []TraceHit
	pos  map[encoding.TraceID]int
}

func (h *hitHeap) Len() int           { return len(h.hits) }
func (h *hitHeap) Less(i, j int) bool { return better(h.hits[j], h.hits[i]) }
func (h *hitHeap) Swap(i, j int) {
	h.hits[i], h.hits[j] = h.hits[j], h.hits[i]
	h.pos[h.hits[i].TraceID] = i
	h.pos[h.hits[j].TraceID] = j
}

func (h *hitHeap) Push(x any) {
	hit := x.(TraceHit)
	h.pos[hit.TraceID] = len(h.hits)
	h.hits = append(h.hits, hit)
}

func (h *hitHeap) Pop() any {
	n := len(h.hits) - 1
	hit := h.hits[n]
	h.hits = h.hits[:n]
	delete(h.pos, hit.TraceID)
	return hit
}
