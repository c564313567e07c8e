package db

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/index"
)

// head holds a tenant's recent spans in memory, readable the instant they
// are appended. Spans get ordinals in arrival order; the head index maps
// terms to ordinals. A head is appended to until the store cuts it; then it
// is frozen (read-only) until its blocks are visible, and then dropped.
//
// Spans are kept as rows (encoding.AppendRow) in large arena chunks: a few
// hundred bytes per span with no pointers for the GC to chase, where the
// row model costs kilobytes in many small objects. Readers decode the rows
// they need.
//
// Concurrency: append takes mu; readers take mu.RLock only to capture the
// row slice and the resource and scope tables. Captured slices stay valid
// because the head only appends: an append never rewrites an element or an
// arena byte a reader can see.
type head struct {
	created time.Time
	deps    *depTracker // the tenant's; nil in tests of the head alone

	maxIndexedValueLen int
	// termScratch recycles the *spanTerms of prepareTerms, one per
	// concurrent writer.
	termScratch sync.Pool

	mu struct {
		sync.RWMutex
		index     *headIndex
		rows      [][]byte // row of each ordinal, pointing into arena chunks
		arena     []byte   // the chunk being filled; never grown past its capacity
		scratch   []byte   // a row being encoded
		resources []*encoding.Resource
		scopes    []*encoding.Scope
		resIdx    map[*encoding.Resource]uint32
		scopeIdx  map[*encoding.Scope]uint32
		traces    map[encoding.TraceID][]uint32
		edges     map[edgeKey]uint64 // service-graph calls counted in this head
		bytes     int64
		minStart  uint64
		maxStart  uint64
		maxEnd    uint64
	}
}

// arenaChunk is the size of the head's row arena chunks.
const arenaChunk = 1 << 20

// headTermBytes approximates what one indexed term of a span costs the
// head: its ordinal in a postings list and its ID in the span's term list.
const headTermBytes = 8

func newHead(now time.Time, maxIndexedValueLen int, deps *depTracker) *head {
	h := &head{created: now, deps: deps, maxIndexedValueLen: maxIndexedValueLen}
	h.mu.edges = map[edgeKey]uint64{}
	h.mu.traces = make(map[encoding.TraceID][]uint32)
	h.mu.index = newHeadIndex(maxIndexedValueLen)
	h.mu.resIdx = map[*encoding.Resource]uint32{}
	h.mu.scopeIdx = map[*encoding.Scope]uint32{}
	return h
}

// append adds spans to the head.
func (h *head) append(spans []*encoding.Span) {
	st := h.prepareTerms(spans)
	h.appendPrepared(spans, st)
	h.releaseTerms(st)
}

// prepareTerms extracts and hashes the own terms of spans for
// appendPrepared. It takes no lock: writers call it concurrently, before
// they queue for the head's. The result may be passed to any head's
// appendPrepared, then to releaseTerms.
func (h *head) prepareTerms(spans []*encoding.Span) *spanTerms {
	st, _ := h.termScratch.Get().(*spanTerms)
	if st == nil {
		st = newSpanTerms(h.maxIndexedValueLen)
	}
	st.extract(spans)
	return st
}

// releaseTerms recycles st, which must not be used afterwards.
func (h *head) releaseTerms(st *spanTerms) { h.termScratch.Put(st) }

// appendPrepared adds spans, whose own terms prepareTerms(spans) returned,
// to the head.
func (h *head) appendPrepared(spans []*encoding.Span, st *spanTerms) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.deps != nil {
		h.deps.observe(spans, func(k edgeKey) {
			if h.mu.edges[k] == 0 {
				h.mu.bytes += edgeBytes
			}
			h.mu.edges[k]++
		})
	}
	first := uint32(len(h.mu.rows))
	for _, s := range spans {
		ord := uint32(len(h.mu.rows))
		row := h.appendRowLocked(s)
		h.mu.rows = append(h.mu.rows, row)
		h.mu.traces[s.TraceID] = append(h.mu.traces[s.TraceID], ord)
		h.mu.bytes += int64(len(row) + 24)
		if ord == 0 || s.StartUnixNano < h.mu.minStart {
			h.mu.minStart = s.StartUnixNano
		}
		h.mu.maxStart = max(h.mu.maxStart, s.StartUnixNano)
		h.mu.maxEnd = max(h.mu.maxEnd, s.EndUnixNano)
	}
	terms, termBytes := h.mu.index.nSpanIDs, h.mu.index.termBytes
	h.mu.index.add(first, spans, st)
	h.mu.bytes += int64(h.mu.index.nSpanIDs-terms)*headTermBytes + h.mu.index.termBytes - termBytes
}

// appendRowLocked encodes s into the arena and returns its row.
func (h *head) appendRowLocked(s *encoding.Span) []byte {
	ri, ok := h.mu.resIdx[s.Resource]
	if !ok {
		ri = uint32(len(h.mu.resources))
		h.mu.resIdx[s.Resource] = ri
		h.mu.resources = append(h.mu.resources, s.Resource)
	}
	si, ok := h.mu.scopeIdx[s.Scope]
	if !ok {
		si = uint32(len(h.mu.scopes))
		h.mu.scopeIdx[s.Scope] = si
		h.mu.scopes = append(h.mu.scopes, s.Scope)
	}
	h.mu.scratch = encoding.AppendRow(h.mu.scratch[:0], s, ri, si)
	row := h.mu.scratch
	if len(h.mu.arena)+len(row) > cap(h.mu.arena) {
		// A new chunk: bytes already handed to readers are never copied
		// or reused.
		h.mu.arena = make([]byte, 0, max(arenaChunk, len(row)))
	}
	start := len(h.mu.arena)
	h.mu.arena = append(h.mu.arena, row...)
	return h.mu.arena[start:len(h.mu.arena):len(h.mu.arena)]
}

// stats returns the span count and approximate bytes held.
func (h *head) stats() (spans int, bytes int64) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.mu.rows), h.mu.bytes
}

// headRows is a consistent capture of a head's rows and the tables their
// resource and scope indexes refer to.
type headRows struct {
	rows      [][]byte
	resources []*encoding.Resource
	scopes    []*encoding.Scope
}

func (r *headRows) span(ord uint32) (*encoding.Span, error) {
	s, err := encoding.DecodeRow(r.rows[ord], r.resources, r.scopes)
	if err != nil {
		return nil, fmt.Errorf("head span %d: %w", ord, err)
	}
	return s, nil
}

// capture returns the rows appended so far.
func (h *head) capture() headRows {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return headRows{h.mu.rows, h.mu.resources, h.mu.scopes}
}

// edgeBytes approximates what one edge of the head's service graph costs.
const edgeBytes = 64

// Edges returns the service-graph calls counted in the head so far.
func (h *head) Edges() []encoding.DependencyEdge {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return edgesOf(h.mu.edges)
}

// frozenEdges returns the edge counts of a head that no longer takes
// appends; the map must not be modified.
func (h *head) frozenEdges() map[edgeKey]uint64 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.mu.edges
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
		Spans:    uint64(len(h.mu.rows)),
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

// PostingsRange calls fn, in value order, with each value v of term name
// such that from <= v < to (to "" means no upper bound) and its postings.
func (h *head) PostingsRange(name, from, to string, fn func(value string, p index.Postings) error) error {
	type entry struct {
		value string
		list  []uint32
	}
	h.mu.RLock()
	x := h.mu.index
	var entries []entry
	for _, id := range x.byName[name] {
		if v := x.byID[id].Value; v >= from && (to == "" || v < to) {
			entries = append(entries, entry{v, x.lists[id]})
		}
	}
	h.mu.RUnlock()
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.value, b.value) })
	for _, e := range entries {
		if err := fn(e.value, index.NewListPostings(e.list)); err != nil {
			return err
		}
	}
	return nil
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
	rows := h.capture()
	for i := 0; ords.Next(); i++ {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		ord := ords.At()
		if int(ord) >= len(rows.rows) {
			break // a posting appended after the rows were captured
		}
		s, err := rows.span(ord)
		if err != nil {
			return err
		}
		if err := fn(ord, s); err != nil {
			return err
		}
	}
	return ords.Err()
}

// TermKinds is not kept by the head: known is false, and readers count
// kinds from the head's postings, which are in memory.
func (h *head) TermKinds(index.Term) (uint8, bool, error) { return 0, false, nil }

// DurationHistogram is not kept by the head: known is false.
func (h *head) DurationHistogram(index.Term) ([]index.BucketCount, bool, error) {
	return nil, false, nil
}

// SpanTimes calls fn with the trace ID, start and end of each ordinal's span.
func (h *head) SpanTimes(ctx context.Context, ords index.Postings, fn func(ord uint32, id encoding.TraceID, start, end uint64) error) error {
	rows := h.capture()
	for i := 0; ords.Next(); i++ {
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		ord := ords.At()
		if int(ord) >= len(rows.rows) {
			break // a posting appended after the rows were captured
		}
		id, start, end, err := encoding.RowTimes(rows.rows[ord])
		if err != nil {
			return err
		}
		if err := fn(ord, id, start, end); err != nil {
			return err
		}
	}
	return ords.Err()
}

// TraceSpans calls fn for every span of trace id, in ascending start time,
// then span ID. Rows are ordered by their keys and decoded one at a time,
// so a huge trace costs only its ordinals in memory.
func (h *head) TraceSpans(ctx context.Context, id encoding.TraceID, fn func(s *encoding.Span) error) error {
	h.mu.RLock()
	rows := headRows{h.mu.rows, h.mu.resources, h.mu.scopes}
	ords := slices.Clone(h.mu.traces[id])
	h.mu.RUnlock()
	type keyed struct {
		start  uint64
		spanID encoding.SpanID
		ord    uint32
	}
	keys := make([]keyed, len(ords))
	for i, o := range ords {
		_, start, spanID, err := encoding.RowKey(rows.rows[o])
		if err != nil {
			return fmt.Errorf("head span %d: %w", o, err)
		}
		keys[i] = keyed{start, spanID, o}
	}
	slices.SortStableFunc(keys, func(a, b keyed) int {
		return cmp.Or(cmp.Compare(a.start, b.start), bytes.Compare(a.spanID[:], b.spanID[:]))
	})
	for i, k := range keys {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		s, err := rows.span(k.ord)
		if err != nil {
			return err
		}
		if err := fn(s); err != nil {
			return err
		}
	}
	return nil
}
