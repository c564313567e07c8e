package db

import (
	"slices"
	"strings"
	"unsafe"

	"github.com/zeebo/xxh3"

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
	// ids finds a term's ID by a hash of the term (see termTable).
	ids termTable
	buf []byte // scratch for hashing

	// The term IDs of each resource and scope seen: every span of a
	// ResourceSpans shares its *Resource, so its terms are interned once.
	resTerms   map[*encoding.Resource][]uint32
	scopeTerms map[*encoding.Scope][]uint32

	byID   []index.Term        // term of each ID; strings owned
	lists  [][]uint32          // ordinals of each ID, ascending
	byName map[string][]uint32 // IDs of each term name, in creation order
	// The term IDs of every span, in chunks that are never grown, so that
	// a head's millions of IDs are never copied: span ord's IDs are
	// spanIDs[spanPos[ord]>>spanIDsChunkBits] from offset
	// spanPos[ord]&(spanIDsChunk-1), spanLen[ord] of them.
	spanIDs  [][]uint32
	spanPos  []uint32
	spanLen  []uint32
	nSpanIDs int // the IDs in spanIDs

	scratch []uint32
	ids32   []uint32 // the term IDs of a batch being added

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
		ids:        newTermTable(),
		resTerms:   map[*encoding.Resource][]uint32{},
		scopeTerms: map[*encoding.Scope][]uint32{},
		byName:     map[string][]uint32{},
	}
	return x
}

// spanTerms holds the own terms (index.TermExtractor.SpanOwnTerms) of a
// batch of spans, extracted and hashed before the head's lock is taken, so
// that concurrent writers do this work in parallel and the locked part
// only looks terms up. A spanTerms is reused from batch to batch.
type spanTerms struct {
	x       *index.TermExtractor
	buf     []byte           // each term as its name, 0xff, its value, concatenated
	refs    []termRef        // where each term sits in buf
	keys    []xxh3.Uint128   // hash of each term: of its bytes in buf
	spanEnd []uint32         // spanEnd[i] is where span i's terms end in refs and keys
	fn      func(index.Term) // add, bound once
}

// termRef locates a term in spanTerms.buf: its name is buf[start:sep] and
// its value buf[sep+1:end].
type termRef struct{ start, sep, end uint32 }

func newSpanTerms(maxIndexedValueLen int) *spanTerms {
	st := &spanTerms{x: index.NewTermExtractor(maxIndexedValueLen)}
	st.fn = st.add
	return st
}

// extract replaces the content of st with the own terms of spans.
func (st *spanTerms) extract(spans []*encoding.Span) {
	st.buf, st.refs, st.keys, st.spanEnd = st.buf[:0], st.refs[:0], st.keys[:0], st.spanEnd[:0]
	for _, s := range spans {
		st.x.SpanOwnTerms(s, st.fn)
		st.spanEnd = append(st.spanEnd, uint32(len(st.keys)))
	}
}

// add appends t; name and value are separated by a byte no term name
// contains (headIndex.key hashes the same bytes).
func (st *spanTerms) add(t index.Term) {
	start := len(st.buf)
	st.buf = append(st.buf, t.Name...)
	sep := len(st.buf)
	st.buf = append(append(st.buf, 0xff), t.Value...)
	st.refs = append(st.refs, termRef{uint32(start), uint32(sep), uint32(len(st.buf))})
	st.keys = append(st.keys, xxh3.Hash128(st.buf[start:]))
}

// term returns term i of st; its strings are borrowed from st.buf.
func (st *spanTerms) term(i int) index.Term {
	r := st.refs[i]
	return index.Term{Name: unsafeString(st.buf[r.start:r.sep]), Value: unsafeString(st.buf[r.sep+1 : r.end])}
}

// unsafeString returns b as a string without copying; b must not change
// while the string is used.
func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// add indexes spans, whose own terms st holds, under ordinals first,
// first+1, …, which must be the next ordinals.
func (x *headIndex) add(first uint32, spans []*encoding.Span, st *spanTerms) {
	// Look every term up first, then add the ordinals: the lookups are
	// cache misses independent of each other, which the CPU overlaps when
	// nothing waits on their results.
	ids := slices.Grow(x.ids32[:0], len(st.keys))[:len(st.keys)]
	for i, k := range st.keys {
		slot := x.ids.find(k)
		if slot.id == 0 {
			x.newTerm(slot, k, st.term(i))
		}
		ids[i] = slot.id - 1
	}
	x.ids32 = ids
	lo := uint32(0)
	for i, s := range spans {
		ord := first + uint32(i)
		res, ok := x.resTerms[s.Resource]
		if !ok {
			for _, t := range x.terms.ResourceTerms(s.Resource) {
				res = append(res, x.intern(t))
			}
			res = appendUnique(nil, res)
			x.resTerms[s.Resource] = res
		}
		scope, ok := x.scopeTerms[s.Scope]
		if !ok {
			for _, t := range x.terms.ScopeTerms(s.Scope) {
				scope = append(scope, x.intern(t))
			}
			scope = appendUnique(nil, scope)
			x.scopeTerms[s.Scope] = scope
		}
		// The span's term IDs, each once: resource, scope and own terms
		// have names of their own, so only the own ones can repeat (two
		// events of one name). Deduplicating here, rather than by looking
		// at the end of each postings list, spares a cache miss per term:
		// the appends below only store.
		hi := st.spanEnd[i]
		x.scratch = append(append(x.scratch[:0], res...), scope...)
		x.scratch = appendUnique(x.scratch, ids[lo:hi])
		lo = hi
		for _, id := range x.scratch {
			x.lists[id] = append(x.lists[id], ord)
		}
		x.appendSpanIDs(x.scratch)
	}
}

// maxScanDedup is the number of term IDs up to which appendUnique
// compares each with the ones before it rather than sorting.
const maxScanDedup = 48

// appendUnique appends the elements of ids to dst, each once, in no
// particular order; it compares them only with each other, not with dst's.
func appendUnique(dst, ids []uint32) []uint32 {
	start := len(dst)
	if len(ids) <= maxScanDedup {
	next:
		for _, id := range ids {
			for _, d := range dst[start:] {
				if d == id {
					continue next
				}
			}
			dst = append(dst, id)
		}
		return dst
	}
	dst = append(dst, ids...)
	slices.Sort(dst[start:])
	return dst[:start+len(slices.Compact(dst[start:]))]
}

// spanIDsChunkBits sets the size of the chunks of headIndex.spanIDs.
const (
	spanIDsChunkBits = 16
	spanIDsChunk     = 1 << spanIDsChunkBits // term IDs per chunk; a span with more gets a chunk of its own
)

// appendSpanIDs records ids as the term IDs of the next span.
func (x *headIndex) appendSpanIDs(ids []uint32) {
	c := len(x.spanIDs) - 1
	if c < 0 || len(x.spanIDs[c])+len(ids) > cap(x.spanIDs[c]) {
		x.spanIDs = append(x.spanIDs, make([]uint32, 0, max(spanIDsChunk, len(ids))))
		c++
	}
	chunk := x.spanIDs[c]
	x.spanPos = append(x.spanPos, uint32(c)<<spanIDsChunkBits|uint32(len(chunk)))
	x.spanLen = append(x.spanLen, uint32(len(ids)))
	x.spanIDs[c] = append(chunk, ids...)
	x.nSpanIDs += len(ids)
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
	slot := x.ids.find(k)
	if slot.id == 0 {
		x.newTerm(slot, k, t)
	}
	return slot.id - 1
}

// newTerm gives t, whose key k is not in the table, the next ID, and puts
// it in slot, which x.ids.find(k) returned just now. t's strings may be
// borrowed: they are cloned. Afterwards slot holds the new ID (in the
// table's old slots if it grew, which stay readable).
func (x *headIndex) newTerm(slot *termSlot, k xxh3.Uint128, t index.Term) {
	t = index.Term{Name: strings.Clone(t.Name), Value: strings.Clone(t.Value)}
	id := uint32(len(x.byID))
	x.ids.insert(slot, k, id)
	x.byID = append(x.byID, t)
	x.lists = append(x.lists, nil)
	x.byName[t.Name] = append(x.byName[t.Name], id)
	x.termBytes += int64(len(t.Name)+len(t.Value)) + termOverhead
}

// postings returns the ordinals of term t as of now.
func (x *headIndex) postings(t index.Term) index.Postings {
	// Readers share the head under its read lock: the key is built in a
	// buffer of this call's own, never in x.buf, which writers use.
	b := make([]byte, 0, len(t.Name)+1+len(t.Value))
	b = append(append(append(b, t.Name...), 0xff), t.Value...)
	slot := x.ids.find(xxh3.Hash128(b))
	if slot.id == 0 {
		return index.EmptyPostings()
	}
	return index.NewListPostings(x.lists[slot.id-1])
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
	pos := x.spanPos[ord]
	off := pos & (spanIDsChunk - 1)
	return x.spanIDs[pos>>spanIDsChunkBits][off : off+x.spanLen[ord]]
}

// termTable maps term hashes to term IDs: an open-addressing hash table
// with linear probing over 16-byte slots, four to a cache line. A head's
// terms are many (10^5 and more) and probed in random order, so a lookup
// costs cache misses, not instructions: a slot holds all a lookup needs,
// and the first slot probed is almost always the last, so a lookup touches
// one cache line (Go's map touches a group's control word, then its slot,
// through a directory of tables).
//
// A term is identified by 96 bits of its 128-bit xxh3 hash, so that a hit
// need not be confirmed against the term's strings (two more cache
// misses): two of the terms of a head of n terms collide with probability
// about n²/2^97, below 2^-50 for ten million terms.
type termTable struct {
	slots []termSlot // a power of two of them
	n     int        // slots in use
}

// termSlot is one slot of a termTable. id is the term ID + 1; 0 marks an
// empty slot.
type termSlot struct {
	lo     uint64 // the hash's low 64 bits; its low bits choose the slot
	hi, id uint32 // 32 more bits of the hash; the term ID + 1
}

// termTableMinSlots is the initial size of a termTable.
const termTableMinSlots = 1 << 10

func newTermTable() termTable { return termTable{slots: make([]termSlot, termTableMinSlots)} }

// find returns the slot holding key k, or the empty slot where k would go.
// It only reads the table, so readers sharing the head's read lock may
// call it concurrently.
func (t *termTable) find(k xxh3.Uint128) *termSlot {
	mask := uint64(len(t.slots) - 1)
	hi := uint32(k.Hi)
	for i := k.Lo & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.id == 0 || (s.lo == k.Lo && s.hi == hi) {
			return s
		}
	}
}

// insert puts k with term ID id in slot, which find(k) returned just now,
// and grows the table past half full, so that probe sequences stay short.
func (t *termTable) insert(slot *termSlot, k xxh3.Uint128, id uint32) {
	*slot = termSlot{lo: k.Lo, hi: uint32(k.Hi), id: id + 1}
	t.n++
	if 2*t.n <= len(t.slots) {
		return
	}
	old := t.slots
	t.slots = make([]termSlot, 2*len(old))
	mask := uint64(len(t.slots) - 1)
	for _, s := range old {
		if s.id == 0 {
			continue
		}
		i := s.lo & mask
		for t.slots[i].id != 0 {
			i = (i + 1) & mask
		}
		t.slots[i] = s
	}
}
