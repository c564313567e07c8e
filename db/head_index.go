package db

import (
	"hash/maphash"
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
	ids     map[termKey]uint32
	h1, h2  maphash.Hash
	byID    []index.Term        // term of each ID; strings owned
	lists   [][]uint32          // ordinals of each ID, ascending
	byName  map[string][]uint32 // IDs of each term name, in creation order
	spanIDs []uint32            // term IDs of every span, concatenated in ordinal order
	spanEnd []uint32            // spanEnd[ord] is where span ord's IDs end in spanIDs

	scratch []uint32
}

// termKey is a term's 128-bit hash.
type termKey [2]uint64

func newHeadIndex(maxIndexedValueLen int) *headIndex {
	x := &headIndex{
		terms:  index.NewTermExtractor(maxIndexedValueLen),
		ids:    map[termKey]uint32{},
		byName: map[string][]uint32{},
	}
	x.h1.SetSeed(maphash.MakeSeed())
	x.h2.SetSeed(maphash.MakeSeed())
	return x
}

// add indexes the span with ordinal ord, which must be the next ordinal.
func (x *headIndex) add(ord uint32, s *encoding.Span) {
	x.scratch = x.scratch[:0]
	x.terms.SpanTerms(s, func(t index.Term) {
		id := x.intern(t)
		l := x.lists[id]
		if n := len(l); n > 0 && l[n-1] == ord {
			return // the same term twice in one span
		}
		x.lists[id] = append(l, ord)
		x.scratch = append(x.scratch, id)
	})
	x.spanIDs = append(x.spanIDs, x.scratch...)
	x.spanEnd = append(x.spanEnd, uint32(len(x.spanIDs)))
}

// key hashes t; name and value are separated by a byte no term name
// contains.
func (x *headIndex) key(t index.Term) termKey {
	var k termKey
	for i, h := range []*maphash.Hash{&x.h1, &x.h2} {
		h.Reset()
		h.WriteString(t.Name)
		h.WriteByte(0xff)
		h.WriteString(t.Value)
		k[i] = h.Sum64()
	}
	return k
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
