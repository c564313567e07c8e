package db

import (
	"github.com/zeebo/xxh3"
	"slices"
	"strings"

	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/index"
)

// headIndex is the head's postings. Each distinct term gets a dense ID on
// first sight; each ID has an append-only list of span ordinals, and each
// span keeps the IDs of its terms. Terms are thus extracted and hashed once
// per span, at Write: the flush builds the block's postings from the
// per-span term IDs in the block's order, with no string hashing at all.
//
// headIndex is not safe for concurrent use on its own: the head guards it
// with its mutex (writers exclusive, readers shared). Lists handed to
// readers stay valid because they are only ever appended to.
type headIndex struct {
	terms *index.TermExtractor
	// ids finds a term's ID by a 128-bit hash of the term, so that a lookup
	// touches only the map: confirming a hit against the term's strings
	// would cost two more cache misses per term, and with 128 bits two
	// distinct terms of one head colliding is a 2^-100 event.
	ids map[xxh3.Uint128]uint32
	buf []byte // scratch for hashing

	// The term IDs of each resource and scope seen: every span of a
	// ResourceSpans shares its *Resource, so its terms are interned once.
	resTerms   map[*encoding.Resource][]uint32
	scopeTerms map[*encoding.Scope][]uint32

	byID    []index.Term        // term of each ID; strings owned
	lists   [][]uint32          // ordinals of each ID, ascending
	byName  map[string][]uint32 // IDs of each term name, in creation order
	spanIDs []uint32            // term IDs of every span, concatenated in ordinal order
	spanEnd []uint32            // spanEnd[ord] is where span ord's IDs end in spanIDs

	scratch []uint32

	// termBytes approximates the memory the distinct terms take: their
	// strings, their map entry, their ID's slots. High-cardinality
	// attributes (request IDs) make it a large share of a head.
	termBytes int64
}

// termOverhead approximates what a new term costs beyond its strings.
const termOverhead = 160

func newHeadIndex(maxIndexedValueLen int) *headIndex {
	x := &headIndex{
		terms:      index.NewTermExtractor(maxIndexedValueLen),
		ids:        map[xxh3.Uint128]uint32{},
		resTerms:   map[*encoding.Resource][]uint32{},
		scopeTerms: map[*encoding.Scope][]uint32{},
		byName:     map[string][]uint32{},
	}
	return x
}

// add indexes the span with ordinal ord, which must be the next ordinal.
func (x *headIndex) add(ord uint32, s *encoding.Span) {
	x.scratch = x.scratch[:0]
	res, ok := x.resTerms[s.Resource]
	if !ok {
		for _, t := range x.terms.ResourceTerms(s.Resource) {
			res = append(res, x.intern(t))
		}
		x.resTerms[s.Resource] = res
	}
	scope, ok := x.scopeTerms[s.Scope]
	if !ok {
		for _, t := range x.terms.ScopeTerms(s.Scope) {
			scope = append(scope, x.intern(t))
		}
		x.scopeTerms[s.Scope] = scope
	}
	for _, id := range res {
		x.addID(ord, id)
	}
	for _, id := range scope {
		x.addID(ord, id)
	}
	x.terms.SpanOwnTerms(s, func(t index.Term) { x.addID(ord, x.intern(t)) })
	x.spanIDs = append(x.spanIDs, x.scratch...)
	x.spanEnd = append(x.spanEnd, uint32(len(x.spanIDs)))
}

// addID adds ord to the list of term id, once.
func (x *headIndex) addID(ord, id uint32) {
	l := x.lists[id]
	if n := len(l); n > 0 && l[n-1] == ord {
		return // the same term twice in one span
	}
	x.lists[id] = append(l, ord)
	x.scratch = append(x.scratch, id)
}

// key hashes t; name and value are separated by a byte no term name
// contains.
func (x *headIndex) key(t index.Term) xxh3.Uint128 {
	x.buf = append(append(append(x.buf[:0], t.Name...), 0xff), t.Value...)
	return xxh3.Hash128(x.buf)
}

// intern returns the ID of t, giving it one if it has none. t's strings
// may be borrowed: they are cloned when kept.
func (x *headIndex) intern(t index.Term) uint32 {
	k := x.key(t)
	if id, ok := x.ids[k]; ok {
		return id
	}
	t = index.Term{Name: strings.Clone(t.Name), Value: strings.Clone(t.Value)}
	id := uint32(len(x.byID))
	x.ids[k] = id
	x.byID = append(x.byID, t)
	x.lists = append(x.lists, nil)
	x.byName[t.Name] = append(x.byName[t.Name], id)
	x.termBytes += int64(len(t.Name)+len(t.Value)) + termOverhead
	return id
}

// postings returns the ordinals of term t as of now.
func (x *headIndex) postings(t index.Term) index.Postings {
	id, ok := x.ids[x.key(t)]
	if !ok {
		return index.EmptyPostings()
	}
	return index.NewListPostings(x.lists[id])
}

// values returns the sorted values of term name.
func (x *headIndex) values(name string) []string {
	ids := x.byName[name]
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = x.byID[id].Value
	}
	slices.Sort(out)
	return out
}

// termIDs returns the term IDs of span ord.
func (x *headIndex) termIDs(ord uint32) []uint32 {
	start := uint32(0)
	if ord > 0 {
		start = x.spanEnd[ord-1]
	}
	return x.spanIDs[start:x.spanEnd[ord]]
}
