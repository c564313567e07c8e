package index

import (
	"slices"
	"sort"

	"github.com/tracedb/tracedb/encoding"
)

// TermHistograms holds, for the service and operation terms of one block,
// how many of the term's spans fall in each duration bucket: the latency
// histogram of a service or an operation over a block, precomputed when the
// block is written, so that a histogram over whole blocks reads no postings
// and no span. termhist.md draws the encoding.
type TermHistograms struct {
	terms []Term // sorted
	hists [][]BucketCount
	kinds []uint8 // per term, bit k set when a span of kind k carries it; nil when not kept (version 1)
}

// NoKinds is the kind mask BuildTermHistograms is given for spans whose
// kind is unknown to the caller.
const NoKinds uint8 = 0

// BucketCount is the number of spans in one duration bucket.
type BucketCount struct {
	Bucket uint16
	Count  uint32
}

// HistogramTerm reports whether term name gets a histogram: service and
// operation terms.
func HistogramTerm(name string) bool { return name == NameService || name == NameOperation }

// BuildTermHistograms returns the histograms of the terms of terms (sorted,
// those for which HistogramTerm holds are used) whose spans are lists[i];
// bucketOf maps a span's ordinal to its duration bucket and kindOf to its
// span kind (0 to 7), recorded per term as a mask of the kinds seen.
func BuildTermHistograms(terms []Term, lists [][]uint32, bucketOf []uint16, kindOf []uint8) *TermHistograms {
	h := &TermHistograms{kinds: []uint8{}}
	counts := make([]uint32, NumBuckets)
	for i, t := range terms {
		if !HistogramTerm(t.Name) {
			continue
		}
		lo, hi := uint16(NumBuckets-1), uint16(0)
		var mask uint8
		for _, ord := range lists[i] {
			b := bucketOf[ord]
			counts[b]++
			lo, hi = min(lo, b), max(hi, b)
			mask |= 1 << (kindOf[ord] & 7)
		}
		var hist []BucketCount
		for b := lo; b <= hi && len(lists[i]) > 0; b++ {
			if counts[b] > 0 {
				hist = append(hist, BucketCount{b, counts[b]})
				counts[b] = 0
			}
		}
		h.terms = append(h.terms, t)
		h.hists = append(h.hists, hist)
		h.kinds = append(h.kinds, mask)
	}
	return h
}

// KindsKept reports whether the histograms keep each term's kinds (version
// 2 and later).
func (h *TermHistograms) KindsKept() bool { return h.kinds != nil }

// Kinds returns the mask of the span kinds (bit k for kind k) of the spans
// carrying term t; known is false when the histograms do not keep kinds
// (version 1) or t has none.
func (h *TermHistograms) Kinds(t Term) (mask uint8, known bool) {
	if h.kinds == nil {
		return 0, false
	}
	i := sort.Search(len(h.terms), func(i int) bool { return h.terms[i].Compare(t) >= 0 })
	if i == len(h.terms) || h.terms[i] != t {
		return 0, false
	}
	return h.kinds[i], true
}

// KindOther is the kind bit of the spans whose kind is not one of OTLP's
// six (0 to 5) or 6: a reader must count those from postings.
const KindOther uint8 = 7

// KindBit returns the bit number of a kind term's value (KindValue) in a
// kind mask: the kind itself for "0" to "6", else KindOther.
func KindBit(v string) uint8 {
	if len(v) != 1 || v[0] < '0' || v[0] > '6' {
		return KindOther
	}
	return v[0] - '0'
}

// Get returns the histogram of term t, ascending by bucket; false when t
// has none (no span carries it, or its name gets no histogram).
func (h *TermHistograms) Get(t Term) ([]BucketCount, bool) {
	i := sort.Search(len(h.terms), func(i int) bool { return h.terms[i].Compare(t) >= 0 })
	if i == len(h.terms) || h.terms[i] != t {
		return nil, false
	}
	return h.hists[i], true
}

// Len returns the number of terms with a histogram.
func (h *TermHistograms) Len() int { return len(h.terms) }

// Term histograms format constants.
const (
	TermHistMagic   uint32 = 0x54444848 // "TDHH"
	TermHistVersion byte   = 2          // 2 added the kind mask of each term; 1 is still read
)

// Encode appends h's encoding to dst.
func (h *TermHistograms) Encode(dst []byte) []byte {
	e := encoding.Encbuf{B: dst}
	start := len(dst)
	e.PutBE32(TermHistMagic)
	if h.kinds == nil {
		e.PutByte(1) // decoded from version 1: no kinds to write
	} else {
		e.PutByte(TermHistVersion)
	}
	e.PutUvarint(uint64(len(h.terms)))
	for i, t := range h.terms {
		e.PutUvarintString(t.Name)
		e.PutUvarintString(t.Value)
		if h.kinds != nil {
			e.PutByte(h.kinds[i])
		}
		e.PutUvarint(uint64(len(h.hists[i])))
		prev := -1
		for _, bc := range h.hists[i] {
			e.PutUvarint(uint64(int(bc.Bucket) - prev - 1))
			e.PutUvarint(uint64(bc.Count))
			prev = int(bc.Bucket)
		}
	}
	e.PutBE32(encoding.Checksum(e.B[start:]))
	return e.B
}

// DecodeTermHistograms decodes what Encode wrote. Errors wrap
// encoding.ErrCorrupt.
func DecodeTermHistograms(b []byte) (*TermHistograms, error) {
	const what = "term histograms"
	d, v, err := encoding.OpenRecord(b, what, TermHistMagic, 1, TermHistVersion)
	if err != nil {
		return nil, err
	}
	n := d.UvarintInt(d.Len() / 3)
	h := &TermHistograms{}
	if n > 0 && d.Err() == nil {
		h.terms = make([]Term, n)
		h.hists = make([][]BucketCount, n)
	}
	if v >= 2 {
		h.kinds = make([]uint8, len(h.terms))
	}
	for i := range h.terms {
		h.terms[i] = Term{Name: d.UvarintString(), Value: d.UvarintString()}
		if i > 0 && d.Err() == nil && h.terms[i].Compare(h.terms[i-1]) <= 0 {
			d.Fail("terms out of order")
		}
		if h.kinds != nil {
			h.kinds[i] = d.Byte()
		}
		k := d.UvarintInt(min(NumBuckets, d.Len()/2))
		if k > 0 && d.Err() == nil {
			h.hists[i] = make([]BucketCount, k)
		}
		b := -1
		for j := range h.hists[i] {
			b += d.UvarintInt(NumBuckets) + 1
			c := d.UvarintInt(1<<32 - 1)
			if b >= NumBuckets {
				d.Fail("bucket out of range")
			}
			if d.Err() != nil {
				break
			}
			h.hists[i][j] = BucketCount{uint16(b), uint32(c)}
		}
	}
	if err := d.Err(); err != nil {
		return nil, err
	}
	if d.Len() != 0 {
		return nil, encoding.Corruptf(what, d.Offset(), "%d trailing bytes", d.Len())
	}
	return h, nil
}

// equalHists reports whether two histogram sets are equal (for tests).
func equalHists(a, b *TermHistograms) bool {
	return slices.Equal(a.terms, b.terms) && slices.Equal(a.kinds, b.kinds) &&
		slices.EqualFunc(a.hists, b.hists, func(x, y []BucketCount) bool { return slices.Equal(x, y) })
}
