package index

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tracedb/tracedb/encoding"
)

// randomTermHists builds histograms from random lists and returns them with
// the brute-force counts they must equal.
func randomTermHists(r *rand.Rand) (*TermHistograms, map[Term]map[uint16]uint32) {
	h, want, _ := randomTermHistsKinds(r)
	return h, want
}

// randomTermHistsKinds is randomTermHists with the kind masks the
// histograms must hold.
func randomTermHistsKinds(r *rand.Rand) (*TermHistograms, map[Term]map[uint16]uint32, map[Term]uint8) {
	n := 1 + r.IntN(3000)
	bucketOf := make([]uint16, n)
	kindOf := make([]uint8, n)
	kr := rand.New(rand.NewPCG(uint64(n), 99)) // apart from r, whose draws version 1's golden file pins
	for i := range bucketOf {
		bucketOf[i] = uint16(r.IntN(40) * r.IntN(NumBuckets/40))
		kindOf[i] = uint8(kr.IntN(6))
	}
	var terms []Term
	for i := range 1 + r.IntN(6) {
		terms = append(terms, Term{NameService, string(rune('a' + i))}, Term{NameOperation, OperationValue(string(rune('a'+i)), "op")})
	}
	terms = append(terms, Term{NameStatus, "error"}, Term{AttrTermName(LevelSpan, "k"), "v"})
	slices.SortFunc(terms, Term.Compare)
	lists := make([][]uint32, len(terms))
	want := map[Term]map[uint16]uint32{}
	masks := map[Term]uint8{}
	for i, t := range terms {
		for ord := range uint32(n) {
			if r.IntN(len(terms)) == 0 {
				lists[i] = append(lists[i], ord)
				if HistogramTerm(t.Name) {
					if want[t] == nil {
						want[t] = map[uint16]uint32{}
					}
					want[t][bucketOf[ord]]++
					masks[t] |= 1 << kindOf[ord]
				}
			}
		}
	}
	return BuildTermHistograms(terms, lists, bucketOf, kindOf), want, masks
}

func TestTermHistograms(t *testing.T) {
	for seed := range 50 {
		r := rand.New(rand.NewPCG(uint64(seed), 7))
		h, want, masks := randomTermHistsKinds(r)
		got, err := DecodeTermHistograms(h.Encode(nil))
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if !equalHists(got, h) {
			t.Fatalf("seed %d: round trip differs", seed)
		}
		for term, counts := range want {
			hist, ok := got.Get(term)
			if !ok {
				t.Fatalf("seed %d: no histogram for %s", seed, term)
			}
			if !slices.IsSortedFunc(hist, func(a, b BucketCount) int { return int(a.Bucket) - int(b.Bucket) }) {
				t.Fatalf("seed %d: %s: buckets out of order", seed, term)
			}
			if mask, ok := got.Kinds(term); !ok || mask != masks[term] {
				t.Fatalf("seed %d: %s: kinds %08b (%v), want %08b", seed, term, mask, ok, masks[term])
			}
			m := map[uint16]uint32{}
			for _, bc := range hist {
				m[bc.Bucket] = bc.Count
			}
			if len(m) != len(counts) {
				t.Fatalf("seed %d: %s: %d buckets, want %d", seed, term, len(m), len(counts))
			}
			for b, c := range counts {
				if m[b] != c {
					t.Fatalf("seed %d: %s bucket %d: %d, want %d", seed, term, b, m[b], c)
				}
			}
		}
		for _, term := range []Term{{NameStatus, "error"}, {NameService, "zz"}} {
			if _, ok := got.Get(term); ok {
				t.Fatalf("seed %d: histogram for %s", seed, term)
			}
		}
	}
}

func TestTermHistogramsCorruption(t *testing.T) {
	h, _ := randomTermHists(rand.New(rand.NewPCG(1, 2)))
	b := h.Encode(nil)
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x11
		if _, err := DecodeTermHistograms(c); !errors.Is(err, encoding.ErrCorrupt) {
			t.Fatalf("flip byte %d: %v, want ErrCorrupt", i, err)
		}
	}
	for n := range len(b) {
		if _, err := DecodeTermHistograms(b[:n]); !errors.Is(err, encoding.ErrCorrupt) {
			t.Fatalf("truncate to %d: %v, want ErrCorrupt", n, err)
		}
	}
}

// TestTermHistogramsGolden pins versions 1 (without kinds) and 2; -update
// rewrites the current version's file only.
func TestTermHistogramsGolden(t *testing.T) {
	h, _ := randomTermHists(rand.New(rand.NewPCG(42, 42)))
	v1 := &TermHistograms{terms: h.terms, hists: h.hists}
	for _, g := range []struct {
		file    string
		want    *TermHistograms
		current bool
	}{{"termhist_v1.bin", v1, false}, {"termhist_v2.bin", h, true}} {
		path := filepath.Join("testdata", g.file)
		if *update && g.current {
			if err := os.WriteFile(path, h.Encode(nil), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeTermHistograms(b)
		if err != nil {
			t.Fatalf("%s: %v", g.file, err)
		}
		if !equalHists(got, g.want) {
			t.Fatalf("%s decodes differently", g.file)
		}
		if _, known := got.Kinds(h.terms[0]); known != g.current {
			t.Fatalf("%s: kinds known %v", g.file, known)
		}
	}
}

func FuzzDecodeTermHistograms(f *testing.F) {
	h, _ := randomTermHists(rand.New(rand.NewPCG(3, 3)))
	f.Add(h.Encode(nil))
	f.Add((&TermHistograms{}).Encode(nil))
	if v1, err := os.ReadFile(filepath.Join("testdata", "termhist_v1.bin")); err == nil {
		f.Add(v1)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := DecodeTermHistograms(b)
		if err != nil {
			if !errors.Is(err, encoding.ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		again, err := DecodeTermHistograms(h.Encode(nil))
		if err != nil || !equalHists(again, h) {
			t.Fatalf("re-encoded histograms decode as %v, %v", again, err)
		}
	})
}
