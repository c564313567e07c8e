package index

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/tracedb/tracedb/encoding"
)

// riceCases are lists of every shape the Rice coder meets: single
// ordinals at both ends of the range, runs, sparse and dense random sets,
// gaps long enough to need several windows of zeros.
func riceCases(r *rand.Rand) map[string][]uint32 {
	cases := map[string][]uint32{
		"zero":          {0},
		"max":           {math.MaxUint32},
		"both ends":     {0, math.MaxUint32},
		"run":           {5, 6, 7, 8, 9, 10, 11},
		"long gap":      {1, 1 << 20, 1<<20 + 1, 1<<20 + 2, 1<<20 + 3, 1<<20 + 4, 1<<20 + 5},
		"huge quotient": {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 5000},
	}
	for _, n := range []int{1, 5, 30, 100, 1000, 20000} {
		for _, span := range []uint32{uint32(n) * 2, 262144, math.MaxUint32} {
			set := map[uint32]bool{}
			for len(set) < n {
				set[r.Uint32N(span)] = true
			}
			var ords []uint32
			for v := range set {
				ords = append(ords, v)
			}
			slices.Sort(ords)
			cases[fmt.Sprintf("n=%d/span=%d", n, span)] = ords
		}
	}
	return cases
}

func TestRiceRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(30, 30))
	for name, ords := range riceCases(r) {
		t.Run(name, func(t *testing.T) {
			best, size := riceParam(ords)
			for k := uint(0); k <= riceMaxK; k++ {
				if riceBits(ords, k) > 1<<20 {
					continue // a k no writer would choose, too slow to test
				}
				b := appendRice([]byte{0xAA}, ords, k)[1:]
				if want := (riceBits(ords, k) + 7) / 8; uint64(len(b)) != want {
					t.Fatalf("k=%d: %d bytes, riceBits says %d", k, len(b), want)
				}
				if k == best && len(b) != size {
					t.Fatalf("k=%d: %d bytes, riceParam says %d", k, len(b), size)
				}
				if len(b) < size {
					t.Fatalf("k=%d takes %d bytes, less than the chosen k=%d (%d)", k, len(b), best, size)
				}
				got := make([]uint32, len(ords))
				// Trailing bytes (the next list) must not disturb decoding.
				n, err := decodeRice(append(b, 0xFF, 0xFF), k, uint64(len(ords)), got)
				if err != nil || n != len(b) || !slices.Equal(got, ords) {
					t.Fatalf("k=%d: decoded %d bytes of %d, %v; equal %v", k, n, len(b), err, slices.Equal(got, ords))
				}
				if n, err := decodeRice(b, k, uint64(len(ords)), nil); err != nil || n != len(b) {
					t.Fatalf("k=%d: skipped %d bytes of %d, %v", k, n, len(b), err)
				}
			}
		})
	}
}

// TestRiceCorrupt checks that decodeRice rejects what no writer makes, and
// never panics on any change of a valid list.
func TestRiceCorrupt(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
		k    uint
		card uint64
	}{
		{"empty", nil, 0, 1},
		{"no terminating one", []byte{0, 0, 0}, 0, 1},
		{"cut remainder", []byte{0x01}, 8, 1},
		{"padding not zero", []byte{0x03}, 0, 1},
		{"too many ordinals for the bytes", []byte{0xFF}, 3, 3},
		{"ordinal past 32 bits", []byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, 31, 3},
		{"k too large", []byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, 32, 1},
		{"quotient past 32 bits", append(make([]byte, 1<<20), 1), 12, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodeRice(tc.b, tc.k, tc.card, nil); !errors.Is(err, encoding.ErrCorrupt) {
				t.Fatalf("err = %v, want corruption", err)
			}
		})
	}
	r := rand.New(rand.NewPCG(31, 31))
	for _, ords := range riceCases(r) {
		k, _ := riceParam(ords)
		b := appendRice(nil, ords, k)
		out := make([]uint32, len(ords))
		for i := 0; i < 8*len(b); i += 1 + i/32 {
			bad := bytes.Clone(b)
			bad[i/8] ^= 1 << (i % 8)
			n, err := decodeRice(bad, k, uint64(len(ords)), out)
			if err == nil && (n > len(bad) || !slices.IsSorted(out)) {
				t.Fatalf("flip %d accepted: %d bytes, sorted %v", i, n, slices.IsSorted(out))
			} else if err != nil && !errors.Is(err, encoding.ErrCorrupt) {
				t.Fatal(err)
			}
		}
	}
}

func BenchmarkRiceDecode(b *testing.B) {
	r := rand.New(rand.NewPCG(32, 32))
	for _, n := range []int{30, 20000} {
		set := map[uint32]bool{}
		for len(set) < n {
			set[r.Uint32N(262144)] = true
		}
		var ords []uint32
		for v := range set {
			ords = append(ords, v)
		}
		slices.Sort(ords)
		k, _ := riceParam(ords)
		enc := appendRice(nil, ords, k)
		out := make([]uint32, n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				if _, err := decodeRice(enc, k, uint64(n), out); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/ordinal")
			b.ReportMetric(float64(len(enc))*8/float64(n), "bits/ordinal")
		})
	}
}
