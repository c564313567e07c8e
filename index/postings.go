package index

import (
	"math"

	"github.com/RoaringBitmap/roaring/v2"
)

// Postings iterates a sorted, duplicate-free list of span ordinals (uint32
// positions of spans within one block or within the head).
//
// Contract:
//   - Ordinals come in strictly ascending order.
//   - At is valid only after Next or Seek returned true, and until the next
//     call of Next or Seek.
//   - Next advances to the next ordinal. Before the first call the iterator
//     stands before the first ordinal.
//   - Seek(v) advances to the first ordinal >= v and reports whether there is
//     one. It never moves backwards: if the current ordinal is already >= v,
//     the iterator stays where it is. Seek may be called before Next.
//   - Once Next or Seek returned false the iterator is exhausted and every
//     later call returns false; Err then tells whether it stopped because of
//     an error (for example corrupt postings data) or because it reached the
//     end.
//   - A Postings is not safe for concurrent use. The ordinals it yields stay
//     valid forever (they are plain integers).
//
// The combinators of this package (Intersect, Merge, Without) consume their
// inputs: an input handed to a combinator must not be used by the caller
// afterwards.
type Postings interface {
	Next() bool
	Seek(v uint32) bool
	At() uint32
	Err() error
}

// emptyPostings is the sentinel EmptyPostings returns. It has no fields, so
// boxing it in the interface does not allocate.
type emptyPostings struct{}

func (emptyPostings) Next() bool       { return false }
func (emptyPostings) Seek(uint32) bool { return false }
func (emptyPostings) At() uint32       { return 0 }
func (emptyPostings) Err() error       { return nil }

// EmptyPostings returns postings with no ordinals. Combinators recognise it
// (see IsEmpty) and short-circuit: Intersect with an empty input is empty,
// Merge drops it, Without(empty, x) is empty.
func EmptyPostings() Postings { return emptyPostings{} }

// IsEmpty reports whether p is the EmptyPostings sentinel. Postings that
// merely happen to yield nothing are not recognised.
func IsEmpty(p Postings) bool {
	_, ok := p.(emptyPostings)
	return ok
}

// errPostings yields nothing and reports an error.
type errPostings struct{ err error }

func (errPostings) Next() bool       { return false }
func (errPostings) Seek(uint32) bool { return false }
func (errPostings) At() uint32       { return 0 }
func (e errPostings) Err() error     { return e.err }

// ErrPostings returns postings that yield nothing and whose Err returns err.
func ErrPostings(err error) Postings { return errPostings{err: err} }

// listPostings iterates a sorted slice.
type listPostings struct {
	list []uint32
	i    int // index of the current ordinal; -1 before the first, len(list) when exhausted
	cur  uint32
}

// NewListPostings returns postings over list, which must be sorted
// ascending without duplicates. The slice is not copied: the caller must not
// modify it while the postings are in use. An empty list gives the
// EmptyPostings sentinel.
func NewListPostings(list []uint32) Postings {
	if len(list) == 0 {
		return EmptyPostings()
	}
	return &listPostings{list: list, i: -1}
}

func (p *listPostings) Next() bool {
	if p.i+1 >= len(p.list) {
		p.i = len(p.list)
		return false
	}
	p.i++
	p.cur = p.list[p.i]
	return true
}

func (p *listPostings) Seek(v uint32) bool {
	if p.i >= len(p.list) {
		return false
	}
	if p.i >= 0 && p.cur >= v {
		return true
	}
	// Gallop forward from the next position, then binary search the last
	// step: O(log distance), so seeking a long list from a short one costs
	// little.
	lo := p.i + 1
	n := len(p.list)
	if lo < n && p.list[lo] >= v {
		p.i, p.cur = lo, p.list[lo]
		return true
	}
	step := 1
	hi := lo + step
	for hi < n && p.list[hi] < v {
		lo = hi + 1
		step <<= 1
		hi = lo + step
	}
	if hi > n {
		hi = n
	}
	// The answer is in [lo, hi]: list[lo-1] < v, and list[hi] >= v or hi == n.
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if p.list[m] < v {
			lo = m + 1
		} else {
			hi = m
		}
	}
	p.i = lo
	if lo >= n {
		return false
	}
	p.cur = p.list[lo]
	return true
}

func (p *listPostings) At() uint32 { return p.cur }
func (p *listPostings) Err() error { return nil }

// fresh reports whether no ordinal has been consumed yet.
func (p *listPostings) fresh() bool { return p.i < 0 }

// rangePostings yields every ordinal in [lo, hi).
type rangePostings struct {
	next, hi      uint32 // next is the next ordinal to yield
	cur           uint32
	started, done bool
}

// NewRangePostings returns postings of every ordinal in [lo, hi), for
// example all spans of a block (lo 0, hi the span count). lo >= hi gives the
// EmptyPostings sentinel.
func NewRangePostings(lo, hi uint32) Postings {
	if lo >= hi {
		return EmptyPostings()
	}
	return &rangePostings{next: lo, hi: hi}
}

func (p *rangePostings) Next() bool {
	if p.done || p.next >= p.hi {
		p.done = true
		return false
	}
	p.cur = p.next
	p.next++
	p.started = true
	return true
}

func (p *rangePostings) Seek(v uint32) bool {
	if p.done {
		return false
	}
	if p.started && p.cur >= v {
		return true
	}
	if v > p.next {
		p.next = v
	}
	return p.Next()
}

func (p *rangePostings) At() uint32 { return p.cur }
func (p *rangePostings) Err() error { return nil }

// bitmapPostings iterates a roaring bitmap. The bitmap is only read.
type bitmapPostings struct {
	bm   *roaring.Bitmap
	it   roaring.IntPeekable // nil until the first Next or Seek
	cur  uint32
	done bool
}

// NewBitmapPostings returns postings over b. b is only read, never
// modified, but the caller must not modify it while the postings are in use.
// An empty bitmap gives the EmptyPostings sentinel.
//
// Bitmap-backed postings that have not been advanced yet let the
// combinators and Cardinality, IntersectCardinality and ToBitmap work on
// whole bitmaps instead of iterating.
func NewBitmapPostings(b *roaring.Bitmap) Postings {
	if b == nil || b.IsEmpty() {
		return EmptyPostings()
	}
	return &bitmapPostings{bm: b}
}

func (p *bitmapPostings) Next() bool {
	if p.done {
		return false
	}
	if p.it == nil {
		p.it = p.bm.Iterator()
	}
	if !p.it.HasNext() {
		p.done = true
		return false
	}
	p.cur = p.it.Next()
	return true
}

func (p *bitmapPostings) Seek(v uint32) bool {
	if p.done {
		return false
	}
	if p.it == nil {
		p.it = p.bm.Iterator()
	} else if p.cur >= v {
		return true
	}
	p.it.AdvanceIfNeeded(v)
	return p.Next()
}

func (p *bitmapPostings) At() uint32 { return p.cur }
func (p *bitmapPostings) Err() error { return nil }

// freshBitmap returns the bitmap behind p when p is bitmap-backed and has
// not been advanced, so that whole-bitmap operations give the same result
// as iterating p.
func freshBitmap(p Postings) (*roaring.Bitmap, bool) {
	if b, ok := p.(*bitmapPostings); ok && b.it == nil && !b.done {
		return b.bm, true
	}
	return nil, false
}

// freshBitmaps returns the bitmaps behind its when every one of them is a
// fresh bitmap-backed postings.
func freshBitmaps(its []Postings) ([]*roaring.Bitmap, bool) {
	for _, p := range its {
		if _, ok := freshBitmap(p); !ok {
			return nil, false
		}
	}
	bms := make([]*roaring.Bitmap, len(its))
	for i, p := range its {
		bms[i], _ = freshBitmap(p)
	}
	return bms, true
}

// Intersect returns the ordinals present in every one of its (AND). It is
// empty when its is empty or any input is the EmptyPostings sentinel; an
// ErrPostings input is returned as is. When every input is a fresh
// bitmap-backed postings the result is computed at once with roaring;
// otherwise the inputs are leap-frogged lazily with Seek.
func Intersect(its ...Postings) Postings {
	if len(its) == 0 {
		return EmptyPostings()
	}
	for _, p := range its {
		if IsEmpty(p) {
			return EmptyPostings()
		}
		if _, ok := p.(errPostings); ok {
			return p
		}
	}
	if len(its) == 1 {
		return its[0]
	}
	if bms, ok := freshBitmaps(its); ok {
		return NewBitmapPostings(roaring.FastAnd(bms...))
	}
	return &intersectPostings{its: append([]Postings(nil), its...)}
}

type intersectPostings struct {
	its           []Postings
	cur           uint32
	started, done bool
	err           error
}

func (p *intersectPostings) Next() bool {
	if p.done {
		return false
	}
	if !p.started {
		p.started = true
		return p.seekAll(0)
	}
	if p.cur == math.MaxUint32 {
		p.done = true
		return false
	}
	return p.seekAll(p.cur + 1)
}

func (p *intersectPostings) Seek(v uint32) bool {
	if p.done {
		return false
	}
	if p.started && p.cur >= v {
		return true
	}
	p.started = true
	return p.seekAll(v)
}

// seekAll moves every input to its first ordinal >= target and repeats
// with the largest one found until they all agree.
func (p *intersectPostings) seekAll(target uint32) bool {
	for {
		agreed := true
		for _, it := range p.its {
			if !it.Seek(target) {
				p.done = true
				p.err = it.Err()
				return false
			}
			if a := it.At(); a != target {
				target = a
				agreed = false
			}
		}
		if agreed {
			p.cur = target
			return true
		}
	}
}

func (p *intersectPostings) At() uint32 { return p.cur }
func (p *intersectPostings) Err() error { return p.err }

// Merge returns the ordinals present in any of its (OR), each once.
// EmptyPostings inputs are dropped; an ErrPostings input is returned as is.
// When every input is a fresh bitmap-backed postings the result is computed
// at once with roaring; otherwise a lazy k-way merge over a heap.
func Merge(its ...Postings) Postings {
	live := make([]Postings, 0, len(its))
	for _, p := range its {
		if IsEmpty(p) {
			continue
		}
		if _, ok := p.(errPostings); ok {
			return p
		}
		live = append(live, p)
	}
	switch len(live) {
	case 0:
		return EmptyPostings()
	case 1:
		return live[0]
	}
	if bms, ok := freshBitmaps(live); ok {
		return NewBitmapPostings(roaring.FastOr(bms...))
	}
	return &mergePostings{its: live}
}

type mergePostings struct {
	its           []Postings // inputs; after the first call, the heap (min At at index 0)
	cur           uint32
	started, done bool
	err           error
}

func (p *mergePostings) Next() bool {
	if p.done {
		return false
	}
	if !p.started {
		p.started = true
		return p.init(func(it Postings) bool { return it.Next() })
	}
	// Move every input standing on the current ordinal past it.
	for len(p.its) > 0 && p.its[0].At() == p.cur {
		if !p.advanceTop(p.its[0].Next()) {
			return false
		}
	}
	return p.settle()
}

func (p *mergePostings) Seek(v uint32) bool {
	if p.done {
		return false
	}
	if !p.started {
		p.started = true
		return p.init(func(it Postings) bool { return it.Seek(v) })
	}
	if p.cur >= v {
		return true
	}
	for len(p.its) > 0 && p.its[0].At() < v {
		if !p.advanceTop(p.its[0].Seek(v)) {
			return false
		}
	}
	return p.settle()
}

// init positions every input with first and builds the heap.
func (p *mergePostings) init(first func(Postings) bool) bool {
	h := p.its[:0]
	for _, it := range p.its {
		if first(it) {
			h = append(h, it)
		} else if err := it.Err(); err != nil {
			p.err, p.done = err, true
			return false
		}
	}
	p.its = h
	for i := len(h)/2 - 1; i >= 0; i-- {
		p.down(i)
	}
	return p.settle()
}

// advanceTop restores the heap after the top input moved; ok is what its
// Next or Seek returned. It reports false when an input failed.
func (p *mergePostings) advanceTop(ok bool) bool {
	if ok {
		p.down(0)
		return true
	}
	if err := p.its[0].Err(); err != nil {
		p.err, p.done = err, true
		return false
	}
	last := len(p.its) - 1
	p.its[0] = p.its[last]
	p.its[last] = nil
	p.its = p.its[:last]
	if last > 0 {
		p.down(0)
	}
	return true
}

func (p *mergePostings) settle() bool {
	if len(p.its) == 0 {
		p.done = true
		return false
	}
	p.cur = p.its[0].At()
	return true
}

func (p *mergePostings) down(i int) {
	h := p.its
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h[r].At() < h[l].At() {
			m = r
		}
		if h[i].At() <= h[m].At() {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

func (p *mergePostings) At() uint32 { return p.cur }
func (p *mergePostings) Err() error { return p.err }

// Without returns the ordinals of full that are not in drop (AND NOT).
// Without(empty, x) is empty and Without(full, empty) is full; an
// ErrPostings argument is returned as is. Two fresh bitmap-backed
// arguments are combined at once with roaring.
func Without(full, drop Postings) Postings {
	if IsEmpty(full) {
		return EmptyPostings()
	}
	if _, ok := full.(errPostings); ok {
		return full
	}
	if _, ok := drop.(errPostings); ok {
		return drop
	}
	if IsEmpty(drop) {
		return full
	}
	if a, ok := freshBitmap(full); ok {
		if b, ok := freshBitmap(drop); ok {
			return NewBitmapPostings(roaring.AndNot(a, b))
		}
	}
	return &withoutPostings{full: full, drop: drop}
}

type withoutPostings struct {
	full, drop    Postings
	dropDone      bool // drop has no more ordinals
	cur           uint32
	started, done bool
	err           error
}

func (p *withoutPostings) Next() bool {
	if p.done {
		return false
	}
	p.started = true
	if !p.full.Next() {
		return p.finish(p.full.Err())
	}
	return p.skipDropped()
}

func (p *withoutPostings) Seek(v uint32) bool {
	if p.done {
		return false
	}
	if p.started && p.cur >= v {
		return true
	}
	p.started = true
	if !p.full.Seek(v) {
		return p.finish(p.full.Err())
	}
	return p.skipDropped()
}

// skipDropped advances full from its current ordinal to the first one that
// drop does not hold.
func (p *withoutPostings) skipDropped() bool {
	for {
		v := p.full.At()
		if !p.dropDone {
			if p.drop.Seek(v) {
				if p.drop.At() == v {
					if !p.full.Next() {
						return p.finish(p.full.Err())
					}
					continue
				}
			} else if err := p.drop.Err(); err != nil {
				return p.finish(err)
			} else {
				p.dropDone = true
			}
		}
		p.cur = v
		return true
	}
}

func (p *withoutPostings) finish(err error) bool {
	p.done, p.err = true, err
	return false
}

func (p *withoutPostings) At() uint32 { return p.cur }
func (p *withoutPostings) Err() error { return p.err }

// Expand consumes p and returns its ordinals in a new slice that the caller
// owns.
func Expand(p Postings) ([]uint32, error) {
	if b, ok := freshBitmap(p); ok {
		return b.ToArray(), nil
	}
	if l, ok := p.(*listPostings); ok && l.fresh() {
		l.i = len(l.list)
		return append([]uint32(nil), l.list...), nil
	}
	var out []uint32
	for p.Next() {
		out = append(out, p.At())
	}
	return out, p.Err()
}

// expandBatch is how many ordinals ToBitmap gathers before adding them to
// the bitmap at once.
const expandBatch = 1024

// ToBitmap consumes p and returns its ordinals as a bitmap.
//
// When p is a fresh bitmap-backed postings, the bitmap behind it is returned
// without copying: the result may be shared (for example with a block
// reader's cache) and must be treated as read-only. Clone it before
// modifying it.
func ToBitmap(p Postings) (*roaring.Bitmap, error) {
	if b, ok := freshBitmap(p); ok {
		p.(*bitmapPostings).done = true
		return b, nil
	}
	bm := roaring.New()
	if IsEmpty(p) {
		return bm, nil
	}
	if l, ok := p.(*listPostings); ok && l.fresh() {
		l.i = len(l.list)
		bm.AddMany(l.list)
		return bm, nil
	}
	var buf [expandBatch]uint32
	n := 0
	for p.Next() {
		buf[n] = p.At()
		n++
		if n == len(buf) {
			bm.AddMany(buf[:n])
			n = 0
		}
	}
	bm.AddMany(buf[:n])
	if err := p.Err(); err != nil {
		return nil, err
	}
	return bm, nil
}

// Cardinality consumes p and returns how many ordinals it holds. Fresh
// bitmap-backed and list-backed postings answer without iterating.
func Cardinality(p Postings) (uint64, error) {
	if b, ok := freshBitmap(p); ok {
		p.(*bitmapPostings).done = true
		return b.GetCardinality(), nil
	}
	switch q := p.(type) {
	case emptyPostings:
		return 0, nil
	case *listPostings:
		if q.fresh() {
			q.i = len(q.list)
			return uint64(len(q.list)), nil
		}
	case *rangePostings:
		if !q.started && !q.done {
			q.done = true
			return uint64(q.hi - q.next), nil
		}
	}
	var n uint64
	for p.Next() {
		n++
	}
	return n, p.Err()
}

// IntersectCardinality consumes its and returns the number of ordinals
// present in all of them, |AND(its...)|. When every input is a fresh
// bitmap-backed postings no intersection is materialised for two inputs
// (roaring's AndCardinality) and only one for more.
func IntersectCardinality(its ...Postings) (uint64, error) {
	if bms, ok := freshBitmaps(its); ok && len(bms) >= 2 {
		last := bms[len(bms)-1]
		if len(bms) == 2 {
			return bms[0].AndCardinality(last), nil
		}
		return roaring.FastAnd(bms[:len(bms)-1]...).AndCardinality(last), nil
	}
	return Cardinality(Intersect(its...))
}

// denseMaxWords bounds the dense bit set IntersectCardinalities builds
// from its base (2 MiB: ordinals up to 2^24).
const denseMaxWords = 1 << 18

// IntersectCardinalities consumes base and each of each, and returns
// |AND(base, each[i])| for every i: the shape of a latency histogram, where
// base selects the spans (a service, an operation, a filter) and each[i] is
// duration bucket i. base is turned into a bitmap once; bitmap-backed
// members of each then cost one roaring AndCardinality, others one bit
// test per ordinal in a dense copy of base (or a roaring membership test
// when base reaches past 2^24).
func IntersectCardinalities(base Postings, each []Postings) ([]uint64, error) {
	out := make([]uint64, len(each))
	bm, err := ToBitmap(base)
	if err != nil {
		return nil, err
	}
	if bm.IsEmpty() {
		return out, nil
	}
	var dense []uint64
	for i, p := range each {
		if b, ok := freshBitmap(p); ok {
			out[i] = bm.AndCardinality(b)
			continue
		}
		if dense == nil && bm.DenseSize() <= denseMaxWords {
			dense = bm.ToDense()
		}
		var n uint64
		if dense != nil {
			for p.Next() {
				if v := p.At(); int(v>>6) < len(dense) {
					n += dense[v>>6] >> (v & 63) & 1
				}
			}
		} else {
			for p.Next() {
				if bm.Contains(p.At()) {
					n++
				}
			}
		}
		if err := p.Err(); err != nil {
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}
