package query

import (
	"cmp"
	"container/heap"
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/cespare/xxhash/v2"

	"github.com/tracedb/tracedb/encoding"
)

// SpanOrder is the order FindSpans returns spans in. Spans equal in the
// order's key are ordered by trace ID, then span ID, then a hash of their
// content, so that the order is total and pages are stable.
type SpanOrder uint8

// The span orders.
const (
	SpanStartDesc    SpanOrder = iota // newest start first (the default)
	SpanStartAsc                      // oldest start first
	SpanDurationDesc                  // longest first
	spanOrderCount
)

func (o SpanOrder) String() string {
	switch o {
	case SpanStartDesc:
		return "start time descending"
	case SpanStartAsc:
		return "start time ascending"
	case SpanDurationDesc:
		return "duration descending"
	}
	return fmt.Sprintf("SpanOrder(%d)", uint8(o))
}

// SpanQuery asks FindSpans for the spans that meet a TraceQuery's
// conditions. Its Limit is the most spans per page and its PageToken
// continues a span search (a trace search's token is refused).
type SpanQuery struct {
	TraceQuery
	Order SpanOrder
}

// SpanPage is one page of a span search.
type SpanPage struct {
	// Spans are the matching spans, in the query's order; an exact
	// duplicate (a span stored twice with the same content) comes once.
	// They are shared with the store and must not be modified.
	Spans []*encoding.Span
	// NextPageToken continues the search after Spans; "" when no span
	// follows them. Every matching span comes exactly once across the
	// pages while the data does not change.
	NextPageToken string
}

// FindSpans returns the spans (not the traces) that meet every condition
// of q on their own, in q.Order, at most q.Limit of them after
// q.PageToken's position. Errors are as FindTraceIDs's.
//
// Memory stays within the limit: the best Limit+1 spans are kept while the
// readers are read (newest first, or oldest first, skipping the readers
// that cannot beat the spans kept when the order is by start time; by
// duration, once the page is full only the duration buckets that can beat
// the shortest span kept are read).
func (e *Engine) FindSpans(ctx context.Context, q SpanQuery) (SpanPage, error) {
	if q.Order >= spanOrderCount {
		return SpanPage{}, fmt.Errorf("%w: unknown span order %d", ErrInvalidQuery, q.Order)
	}
	c, err := e.compile(&q.TraceQuery)
	if err != nil {
		return SpanPage{}, err
	}
	hash := xxhash.Sum64String(fmt.Sprintf("%d/%d", queryHash(&q.TraceQuery), q.Order))
	top := newTopSpans(q.Order, c.limit+1)
	if q.PageToken != "" {
		cur, err := decodePageToken(q.PageToken, pageSpans, hash)
		if err != nil {
			return SpanPage{}, err
		}
		if SpanOrder(cur.order) != q.Order {
			return SpanPage{}, fmt.Errorf("%w is for another span order", errPageToken)
		}
		k := spanKey{primary: cur.key, trace: cur.trace, span: cur.span, tie: cur.tie}
		top.after = &k
		c.narrowAfter(q.Order, cur.key)
	}
	readers, release, err := e.store.Readers(ctx)
	if err != nil {
		return SpanPage{}, fmt.Errorf("find spans: %w", err)
	}
	defer release()

	plan := c.plan(readers)
	var admits func(uint64) bool
	switch q.Order {
	case SpanStartAsc:
		slices.SortFunc(plan, func(a, b planned) int { return cmp.Compare(a.oldest, b.oldest) })
		admits = func(start uint64) bool { return !top.full() || start <= top.worst().primary }
	case SpanStartDesc:
		admits = func(start uint64) bool { return !top.full() || start >= top.worst().primary }
	}
	for _, p := range plan {
		if err := ctx.Err(); err != nil {
			return SpanPage{}, err
		}
		if top.full() {
			// Readers come in the order of their best possible key.
			if q.Order == SpanStartDesc && p.newest < top.worst().primary ||
				q.Order == SpanStartAsc && p.oldest > top.worst().primary {
				break
			}
		}
		rc := c
		if q.Order == SpanDurationDesc && top.full() {
			// Only spans at least as long as the shortest kept can
			// enter: the duration buckets below it are not read.
			n := *c
			n.raiseDurationMin(top.worst().primary)
			rc = &n
		}
		err := rc.each(ctx, p.r, p.info, admits, top.offer)
		if err != nil {
			return SpanPage{}, fmt.Errorf("find spans: %s: %w", readerName(p.info), err)
		}
	}
	page := SpanPage{}
	kept := top.sorted()
	if len(kept) > c.limit {
		kept = kept[:c.limit]
		k := kept[len(kept)-1].key
		cur := pageCursor{kind: pageSpans, order: byte(q.Order), hash: hash, key: k.primary, trace: k.trace, span: k.span, tie: k.tie}
		page.NextPageToken = cur.encode()
	}
	page.Spans = make([]*encoding.Span, len(kept))
	for i := range kept {
		page.Spans[i] = kept[i].s
	}
	return page, nil
}

// narrowAfter narrows c to the spans whose order key can follow key.
func (c *spanConds) narrowAfter(o SpanOrder, key uint64) {
	switch o {
	case SpanStartDesc:
		c.startMax = min(c.startMax, key)
	case SpanStartAsc:
		c.startMin = max(c.startMin, key)
	case SpanDurationDesc:
		if !c.hasDuration {
			c.hasDuration, c.durMin, c.durMax = true, 0, math.MaxUint64
		}
		c.durMax = min(c.durMax, key)
	}
	if c.startMin > c.startMax || (c.hasDuration && c.durMin > c.durMax) {
		c.empty = true
	}
}

// raiseDurationMin narrows c to the spans lasting at least d.
func (c *spanConds) raiseDurationMin(d uint64) {
	if !c.hasDuration {
		c.hasDuration, c.durMin, c.durMax = true, 0, math.MaxUint64
	}
	c.durMin = max(c.durMin, d)
	if c.durMin > c.durMax {
		c.empty = true
	}
}

// spanKey is a span's position in a SpanOrder.
type spanKey struct {
	primary uint64 // start time or duration
	trace   encoding.TraceID
	span    encoding.SpanID
	tie     uint64 // spanHash
}

// rankedSpan is a span with its key.
type rankedSpan struct {
	key spanKey
	s   *encoding.Span
}

// topSpans keeps the best limit spans in an order, exact duplicates once
// (an exact duplicate has the same key, content hash included), and only
// those after a position when one is set.
type topSpans struct {
	desc  bool // the primary key ranks descending
	order SpanOrder
	limit int
	after *spanKey
	h     []rankedSpan // a heap, the worst kept at the top
	kept  map[spanKey]bool
}

func newTopSpans(o SpanOrder, limit int) *topSpans {
	return &topSpans{order: o, desc: o != SpanStartAsc, limit: limit, kept: make(map[spanKey]bool, limit)}
}

// cmpKeys orders a before b when it ranks first.
func (t *topSpans) cmpKeys(a, b spanKey) int {
	c := cmp.Compare(a.primary, b.primary)
	if t.desc {
		c = -c
	}
	return cmp.Or(c, a.trace.Compare(b.trace), slices.Compare(a.span[:], b.span[:]), cmp.Compare(a.tie, b.tie))
}

func (t *topSpans) full() bool         { return len(t.h) >= t.limit }
func (t *topSpans) worst() spanKey     { return t.h[0].key }
func (t *topSpans) Len() int           { return len(t.h) }
func (t *topSpans) Less(i, j int) bool { return t.cmpKeys(t.h[i].key, t.h[j].key) > 0 }
func (t *topSpans) Swap(i, j int)      { t.h[i], t.h[j] = t.h[j], t.h[i] }
func (t *topSpans) Push(x any)         { t.h = append(t.h, x.(rankedSpan)) }
func (t *topSpans) Pop() any {
	n := len(t.h) - 1
	x := t.h[n]
	t.h = t.h[:n]
	return x
}

// offer records a matching span.
func (t *topSpans) offer(s *encoding.Span) {
	if t.limit <= 0 {
		return
	}
	primary := s.StartUnixNano
	if t.order == SpanDurationDesc {
		primary = s.Duration()
	}
	if t.full() && t.cmpKeys(spanKey{primary: primary, trace: s.TraceID, span: s.SpanID}, t.worst()) > 0 {
		return // ranks after the worst kept whatever its hash: refused before hashing
	}
	k := spanKey{primary: primary, trace: s.TraceID, span: s.SpanID, tie: spanHash(s)}
	if t.after != nil && t.cmpKeys(k, *t.after) <= 0 {
		return
	}
	if t.kept[k] {
		return
	}
	if t.full() {
		if t.cmpKeys(k, t.worst()) >= 0 {
			return
		}
		delete(t.kept, heap.Pop(t).(rankedSpan).key)
	}
	t.kept[k] = true
	heap.Push(t, rankedSpan{key: k, s: s})
}

// sorted returns the kept spans, best first.
func (t *topSpans) sorted() []rankedSpan {
	out := slices.Clone(t.h)
	slices.SortFunc(out, func(a, b rankedSpan) int { return t.cmpKeys(a.key, b.key) })
	return out
}

// spanHash hashes every field of s, its resource and its scope: exact
// duplicates hash alike, and spans that share IDs but differ almost surely
// do not.
func spanHash(s *encoding.Span) uint64 {
	e := encoding.Encbuf{B: encoding.AppendRow(nil, s, 0, 0)}
	if r := s.Resource; r != nil {
		e.PutByte(1)
		putHashKVs(&e, r.Attrs)
		e.PutUvarint(uint64(r.DroppedAttrs))
		e.PutUvarintString(r.SchemaURL)
	} else {
		e.PutByte(0)
	}
	if sc := s.Scope; sc != nil {
		e.PutByte(1)
		e.PutUvarintString(sc.Name)
		e.PutUvarintString(sc.Version)
		putHashKVs(&e, sc.Attrs)
		e.PutUvarint(uint64(sc.DroppedAttrs))
		e.PutUvarintString(sc.SchemaURL)
	} else {
		e.PutByte(0)
	}
	return xxhash.Sum64(e.B)
}

func putHashKVs(e *encoding.Encbuf, kvs []encoding.KeyValue) {
	e.PutUvarint(uint64(len(kvs)))
	for i := range kvs {
		e.PutUvarintString(kvs[i].Key)
		v := &kvs[i].Value
		e.PutByte(byte(v.Type))
		e.PutUvarintString(v.Str)
		e.PutUvarint(v.Num)
		putHashKVs(e, v.Kids)
	}
}
