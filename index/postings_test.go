package index

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/RoaringBitmap/roaring/v2"
)

// modelIter is the brute-force model of the Postings contract over a sorted
// slice.
type modelIter struct {
	s    []uint32
	i    int
	done bool
}

func newModelIter(s []uint32) *modelIter { return &modelIter{s: s, i: -1} }

func (m *modelIter) Next() bool {
	if m.done {
		return false
	}
	m.i++
	if m.i >= len(m.s) {
		m.done = true
		return false
	}
	return true
}

func (m *modelIter) Seek(v uint32) bool {
	if m.done {
		return false
	}
	if m.i >= 0 && m.s[m.i] >= v {
		return true
	}
	j := max(m.i, 0)
	for j < len(m.s) && m.s[j] < v {
		j++
	}
	if j >= len(m.s) {
		m.done = true
		return false
	}
	m.i = j
	return true
}

func (m *modelIter) At() uint32 { return m.s[m.i] }

// opaque hides the concrete type of a Postings so that no fast path applies.
type opaque struct{ Postings }

// failing yields its list and then fails.
type failing struct {
	Postings
	err error
}

func (f *failing) Err() error { return f.err }

var errTest = errors.New("test failure")

// randSet returns a random sorted set drawn from a universe whose size and
// position vary, so that roaring sees array, bitmap and run containers and
// ordinals near the top of the range.
func randSet(r *rand.Rand) []uint32 {
	var base, size uint32
	switch r.IntN(4) {
	case 0:
		base, size = 0, 64
	case 1:
		base, size = 0, 5000
	case 2:
		base, size = 0, 300000
	case 3:
		base, size = math.MaxUint32-2000, 2001
	}
	var out []uint32
	switch r.IntN(4) {
	case 0: // empty or tiny
		for n := r.IntN(3); n > 0; n-- {
			out = append(out, base+r.Uint32N(size))
		}
	case 1: // sparse
		for n := r.IntN(200); n > 0; n-- {
			out = append(out, base+r.Uint32N(size))
		}
	case 2: // dense: bitmap containers
		p := []float64{0.1, 0.5, 0.95}[r.IntN(3)]
		for v := uint32(0); v < min(size, 140000); v++ {
			if r.Float64() < p {
				out = append(out, base+v)
			}
		}
	case 3: // runs
		for n := 1 + r.IntN(5); n > 0; n-- {
			lo := r.Uint32N(size)
			for v, k := lo, r.IntN(3000); k > 0 && v < size; v, k = v+1, k-1 {
				out = append(out, base+v)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// leaf returns postings over set in a random representation.
func leaf(r *rand.Rand, set []uint32) Postings {
	switch r.IntN(4) {
	case 0:
		return NewListPostings(set)
	case 1:
		return NewBitmapPostings(roaring.BitmapOf(set...))
	case 2:
		return opaque{NewListPostings(set)}
	default:
		if len(set) > 0 && set[len(set)-1] < math.MaxUint32 && set[len(set)-1]-set[0]+1 == uint32(len(set)) {
			return NewRangePostings(set[0], set[len(set)-1]+1)
		}
		return NewBitmapPostings(roaring.BitmapOf(set...))
	}
}

func intersectModel(sets ...[]uint32) []uint32 {
	if len(sets) == 0 {
		return nil
	}
	out := slices.Clone(sets[0])
	for _, s := range sets[1:] {
		out = slices.DeleteFunc(out, func(v uint32) bool { _, ok := slices.BinarySearch(s, v); return !ok })
	}
	return out
}

func mergeModel(sets ...[]uint32) []uint32 {
	var out []uint32
	for _, s := range sets {
		out = append(out, s...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func withoutModel(full, drop []uint32) []uint32 {
	return slices.DeleteFunc(slices.Clone(full), func(v uint32) bool { _, ok := slices.BinarySearch(drop, v); return ok })
}

// randTree builds a random combination of postings and its model result.
func randTree(r *rand.Rand, depth int) (Postings, []uint32) {
	if depth == 0 || r.IntN(3) == 0 {
		s := randSet(r)
		return leaf(r, s), s
	}
	n := 1 + r.IntN(4)
	its := make([]Postings, n)
	sets := make([][]uint32, n)
	for i := range its {
		its[i], sets[i] = randTree(r, depth-1)
	}
	switch r.IntN(3) {
	case 0:
		return Intersect(its...), intersectModel(sets...)
	case 1:
		return Merge(its...), mergeModel(sets...)
	default:
		return Without(its[0], its[n-1]), withoutModel(sets[0], sets[n-1])
	}
}

// checkAgainstModel drives p and the model with the same random Next and
// Seek calls and fails on the first difference.
func checkAgainstModel(t *testing.T, r *rand.Rand, p Postings, want []uint32) {
	t.Helper()
	m := newModelIter(want)
	var last uint32
	for step := 0; ; step++ {
		var got, exp bool
		var op string
		switch k := r.IntN(10); {
		case k < 5:
			op = "Next()"
			got, exp = p.Next(), m.Next()
		default:
			var v uint32
			switch {
			case len(want) == 0 || k == 5:
				v = r.Uint32()
			case k == 6:
				v = last // at or behind the current position
			case k == 7:
				v = want[r.IntN(len(want))]
			default:
				v = want[r.IntN(len(want))] + uint32(r.IntN(3))
			}
			op = fmt.Sprintf("Seek(%d)", v)
			got, exp = p.Seek(v), m.Seek(v)
		}
		if got != exp {
			t.Fatalf("step %d: %s = %v, want %v", step, op, got, exp)
		}
		if !got {
			if err := p.Err(); err != nil {
				t.Fatalf("step %d: unexpected error %v", step, err)
			}
			// Exhausted iterators stay exhausted.
			if p.Next() || p.Seek(0) {
				t.Fatalf("step %d: exhausted iterator moved", step)
			}
			return
		}
		if p.At() != m.At() {
			t.Fatalf("step %d: %s: At() = %d, want %d", step, op, p.At(), m.At())
		}
		last = p.At()
	}
}

func TestPostingsAgainstModel(t *testing.T) {
	for _, tc := range []struct {
		name  string
		depth int
		iters int
	}{
		{"leaves", 0, 300},
		{"one level", 1, 600},
		{"nested", 3, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(tc.depth)))
			for i := 0; i < tc.iters; i++ {
				p, want := randTree(r, tc.depth)
				checkAgainstModel(t, r, p, want)
			}
		})
	}
}

func TestCombinatorsAgainstModel(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	type build func(its []Postings, sets [][]uint32) (Postings, []uint32)
	for _, tc := range []struct {
		name string
		fn   build
	}{
		{"intersect", func(its []Postings, sets [][]uint32) (Postings, []uint32) {
			return Intersect(its...), intersectModel(sets...)
		}},
		{"merge", func(its []Postings, sets [][]uint32) (Postings, []uint32) {
			return Merge(its...), mergeModel(sets...)
		}},
		{"without", func(its []Postings, sets [][]uint32) (Postings, []uint32) {
			return Without(its[0], its[len(its)-1]), withoutModel(sets[0], sets[len(sets)-1])
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := 0; i < 250; i++ {
				n := 1 + r.IntN(5)
				// Correlated sets, so that intersections are not all empty.
				common := randSet(r)
				sets := make([][]uint32, n)
				for j := range sets {
					sets[j] = mergeModel(randSet(r), intersectModel(common, randSet(r)), common[:r.IntN(len(common)+1)])
				}
				mk := func() []Postings {
					its := make([]Postings, n)
					for j := range its {
						its[j] = leaf(r, sets[j])
					}
					return its
				}
				p, want := tc.fn(mk(), sets)
				checkAgainstModel(t, r, p, want)

				p, _ = tc.fn(mk(), sets)
				got, err := Expand(p)
				if err != nil || !slices.Equal(got, want) && len(got)+len(want) > 0 {
					t.Fatalf("Expand: %v, %d ordinals, want %d", err, len(got), len(want))
				}
				p, _ = tc.fn(mk(), sets)
				if c, err := Cardinality(p); err != nil || c != uint64(len(want)) {
					t.Fatalf("Cardinality = %d, %v; want %d", c, err, len(want))
				}
				p, _ = tc.fn(mk(), sets)
				bm, err := ToBitmap(p)
				if err != nil || bm.GetCardinality() != uint64(len(want)) || !slices.Equal(bm.ToArray(), want) && len(want) > 0 {
					t.Fatalf("ToBitmap: %v, %d ordinals, want %d", err, bm.GetCardinality(), len(want))
				}
			}
		})
	}
}

func TestIntersectCardinality(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	for i := 0; i < 300; i++ {
		n := 1 + r.IntN(4)
		common := randSet(r)
		sets := make([][]uint32, n)
		for j := range sets {
			sets[j] = mergeModel(randSet(r), common)
		}
		want := intersectModel(sets...)
		for _, bitmaps := range []bool{true, false} {
			its := make([]Postings, n)
			for j := range its {
				if bitmaps {
					its[j] = NewBitmapPostings(roaring.BitmapOf(sets[j]...))
				} else {
					its[j] = leaf(r, sets[j])
				}
			}
			if c, err := IntersectCardinality(its...); err != nil || c != uint64(len(want)) {
				t.Fatalf("bitmaps %v: IntersectCardinality = %d, %v; want %d", bitmaps, c, err, len(want))
			}
		}

		base := randSet(r)
		each := make([]Postings, n)
		for j := range each {
			each[j] = leaf(r, sets[j])
		}
		got, err := IntersectCardinalities(leaf(r, base), each)
		if err != nil {
			t.Fatal(err)
		}
		for j := range sets {
			if w := uint64(len(intersectModel(base, sets[j]))); got[j] != w {
				t.Fatalf("IntersectCardinalities[%d] = %d, want %d", j, got[j], w)
			}
		}
	}
}

func TestPostingsSentinelsAndErrors(t *testing.T) {
	list := func() Postings { return NewListPostings([]uint32{1, 2, 3}) }
	bm := func() Postings { return NewBitmapPostings(roaring.BitmapOf(2, 3, 4)) }
	fail := func() Postings { return &failing{NewListPostings([]uint32{1, 2, 3, 5}), errTest} }
	for _, tc := range []struct {
		name      string
		p         Postings
		wantEmpty bool
		want      []uint32
		wantErr   error
	}{
		{"empty list is the sentinel", NewListPostings(nil), true, nil, nil},
		{"empty bitmap is the sentinel", NewBitmapPostings(roaring.New()), true, nil, nil},
		{"empty range is the sentinel", NewRangePostings(5, 5), true, nil, nil},
		{"intersect nothing", Intersect(), true, nil, nil},
		{"intersect with empty", Intersect(list(), EmptyPostings(), bm()), true, nil, nil},
		{"merge nothing", Merge(), true, nil, nil},
		{"merge empties", Merge(EmptyPostings(), EmptyPostings()), true, nil, nil},
		{"merge drops empty", Merge(EmptyPostings(), list()), false, []uint32{1, 2, 3}, nil},
		{"without from empty", Without(EmptyPostings(), list()), true, nil, nil},
		{"without empty", Without(list(), EmptyPostings()), false, []uint32{1, 2, 3}, nil},
		{"bitmap fast path", Intersect(bm(), NewBitmapPostings(roaring.BitmapOf(3, 4, 9))), false, []uint32{3, 4}, nil},
		{"range", NewRangePostings(7, 10), false, []uint32{7, 8, 9}, nil},
		{"range and list", Intersect(NewRangePostings(2, 4), list()), false, []uint32{2, 3}, nil},
		{"intersect error", Intersect(list(), ErrPostings(errTest)), false, nil, errTest},
		{"merge error", Merge(list(), ErrPostings(errTest)), false, nil, errTest},
		{"without error", Without(list(), ErrPostings(errTest)), false, nil, errTest},
		{"failing leaf", fail(), false, []uint32{1, 2, 3, 5}, errTest},
		{"intersect failing", Intersect(NewRangePostings(0, 100), fail()), false, []uint32{1, 2, 3, 5}, errTest},
		{"merge failing", Merge(bm(), fail()), false, []uint32{1, 2, 3, 4, 5}, errTest},
		{"without failing drop", Without(NewRangePostings(0, 10), fail()), false, []uint32{0, 4}, errTest},
		{"without failing full", Without(fail(), bm()), false, []uint32{1, 5}, errTest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if IsEmpty(tc.p) != tc.wantEmpty {
				t.Fatalf("IsEmpty = %v, want %v", IsEmpty(tc.p), tc.wantEmpty)
			}
			var got []uint32
			for tc.p.Next() {
				got = append(got, tc.p.At())
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			if err := tc.p.Err(); !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("Err() = %v, want %v", err, tc.wantErr)
			}
			if _, err := Expand(tc.p); tc.wantErr != nil && err == nil {
				t.Fatalf("Expand after error: no error")
			}
		})
	}
}

func TestIntersectAtMaxOrdinal(t *testing.T) {
	top := []uint32{math.MaxUint32 - 1, math.MaxUint32}
	p := Intersect(NewListPostings(top), opaque{NewListPostings(top)})
	got, err := Expand(p)
	if err != nil || !slices.Equal(got, top) {
		t.Fatalf("got %v, %v", got, err)
	}
	if p.Next() {
		t.Fatal("Next after the end")
	}
}

func BenchmarkIntersect(b *testing.B) {
	const universe = 1 << 20
	r := rand.New(rand.NewPCG(4, 4))
	mk := func(density float64) []uint32 {
		var s []uint32
		for v := uint32(0); v < universe; v++ {
			if r.Float64() < density {
				s = append(s, v)
			}
		}
		return s
	}
	service := mk(0.2) // one service of five
	attr := mk(0.0005) // one attribute value
	bucket := mk(0.01) // one duration bucket
	for _, tc := range []struct {
		name string
		mk   func(s []uint32) Postings
	}{
		{"bitmap", func(s []uint32) Postings { return NewBitmapPostings(roaring.BitmapOf(s...)) }},
		{"list", func(s []uint32) Postings { return NewListPostings(s) }},
	} {
		bms := [3]*roaring.Bitmap{roaring.BitmapOf(service...), roaring.BitmapOf(attr...), roaring.BitmapOf(bucket...)}
		for _, bm := range bms {
			bm.RunOptimize()
		}
		post := func(i int, s []uint32) Postings {
			if tc.name == "bitmap" {
				return NewBitmapPostings(bms[i])
			}
			return tc.mk(s)
		}
		b.Run(tc.name+"/service&attr", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Expand(Intersect(post(0, service), post(1, attr))); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"/service&bucket/cardinality", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := IntersectCardinality(post(0, service), post(2, bucket)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"/service&attr&bucket", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Expand(Intersect(post(0, service), post(1, attr), post(2, bucket))); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
