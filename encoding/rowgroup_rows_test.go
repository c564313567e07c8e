package encoding_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/internal/spangen"
)

// checkPartial decodes rows [lo, hi) of b alone (PartialRows) and through
// Rows, and compares both with want, the whole group's spans, span by span,
// with the same sharing of resources and scopes.
func checkPartial(t *testing.T, c *encoding.Codec, b []byte, want []*encoding.Span, lo, hi int) {
	t.Helper()
	for _, how := range []string{"PartialRows", "Rows"} {
		g, err := c.DecodeRowGroup(b)
		if err != nil {
			t.Fatal(err)
		}
		var got []*encoding.Span
		if how == "Rows" {
			got, err = g.Rows(lo, hi)
		} else {
			got, err = g.PartialRows(lo, hi)
		}
		if err != nil {
			t.Fatalf("%s(%d, %d) of %d rows: %v", how, lo, hi, len(want), err)
		}
		if len(got) != hi-lo {
			t.Fatalf("%s(%d, %d): %d spans", how, lo, hi, len(got))
		}
		for j, s := range got {
			if !s.Equal(want[lo+j]) {
				t.Fatalf("%s(%d, %d): row %d differs:\n got %s\nwant %s", how, lo, hi, lo+j, dump(s), dump(want[lo+j]))
			}
		}
		checkSharing(t, want[lo:hi], got)
		// The group still decodes whole afterwards.
		if hi > lo {
			s, err := g.Span(lo)
			if err != nil || !s.Equal(want[lo]) {
				t.Fatalf("Span(%d) after %s: %v", lo, how, err)
			}
		}
	}
}

func TestRowGroupRowsRandom(t *testing.T) {
	c := newCodec(t)
	r := rand.New(rand.NewPCG(42, 42))
	for seed := range 40 {
		n := 1 + r.IntN(300)
		spans := spangen.Random(rand.New(rand.NewPCG(uint64(seed), 17)), n)
		spangen.Sort(spans)
		encs := []*encoding.RowGroupEncoder{c.NewRowGroupEncoder(), c.NewRawRowGroupEncoder()}
		b, err := encs[seed%2].Encode(nil, spans)
		if err != nil {
			t.Fatal(err)
		}
		want, g, err := decodeGroup(c, b)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(fmt.Sprintf("seed=%d/n=%d", seed, n), func(t *testing.T) {
			checkPartial(t, c, b, want, 0, n)
			checkPartial(t, c, b, want, n-1, n)
			checkPartial(t, c, b, want, 0, 1)
			for range 20 {
				lo := r.IntN(n + 1)
				hi := lo + r.IntN(min(n-lo, 12)+1)
				checkPartial(t, c, b, want, lo, hi)
			}
			// Whole traces, as trace-by-ID reads them.
			for range 10 {
				lo, hi := g.TraceRange(want[r.IntN(n)].TraceID)
				checkPartial(t, c, b, want, lo, hi)
			}
		})
	}
}

func TestRowGroupRowsWorkloads(t *testing.T) {
	c := newCodec(t)
	r := rand.New(rand.NewPCG(7, 8))
	for _, w := range workloads() {
		t.Run(w.name, func(t *testing.T) {
			spans := spangen.Spans(w.gen(1), 4096)
			spangen.Sort(spans)
			b := encodeGroup(t, c, spans)
			want, g, err := decodeGroup(c, b)
			if err != nil {
				t.Fatal(err)
			}
			for range 30 {
				lo, hi := g.TraceRange(want[r.IntN(len(want))].TraceID)
				checkPartial(t, c, b, want, lo, hi)
			}
			checkPartial(t, c, b, want, len(want)-5, len(want))
			checkPartial(t, c, b, want, 100, 1100) // through Rows: a full decode
		})
	}
}

func TestRowGroupRowsCorrupt(t *testing.T) {
	// Flipped bytes with repaired checksums reach the partial decoder: it
	// must not panic, must fail with ErrCorrupt or agree with the full
	// decode, and must succeed whenever the full decode does.
	c := newCodec(t)
	for gi, b := range smallGroups(t, c) {
		for i := range b {
			// One flip per byte, cycling through low, high and all bits
			// (TestRowGroupByteFlips does all three for the full decode).
			m := append([]byte(nil), b...)
			m[i] ^= []byte{0x01, 0x80, 0xff}[i%3]
			if f := encoding.FixRowGroupChecksums(m); f != nil {
				checkPartialFuzz(t, c, f, uint64(gi*len(b)+i))
			}
		}
	}
}

// checkPartialFuzz decodes b whole and, on a fresh RowGroup, a few row
// ranges alone (chosen from seed); see TestRowGroupRowsCorrupt.
func checkPartialFuzz(t *testing.T, c *encoding.Codec, b []byte, seed uint64) {
	pg, err := c.DecodeRowGroup(b)
	if err != nil {
		return
	}
	full, _, fullErr := decodeGroup(c, b)
	n := pg.Len()
	if n == 0 {
		return
	}
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	ranges := [][2]int{{0, 1}, {n - 1, n}, {0, n}}
	for range 3 {
		lo := r.IntN(n)
		ranges = append(ranges, [2]int{lo, lo + 1 + r.IntN(min(n-lo, 8))})
	}
	lo, hi := pg.TraceRange(pg.TraceID(r.IntN(n)))
	ranges = append(ranges, [2]int{lo, hi})
	for _, rg := range ranges {
		got, err := pg.PartialRows(rg[0], rg[1])
		switch {
		case err != nil && !errors.Is(err, encoding.ErrCorrupt):
			t.Fatalf("rows [%d,%d): error %v does not wrap ErrCorrupt", rg[0], rg[1], err)
		case err != nil && fullErr == nil:
			t.Fatalf("rows [%d,%d): %v, but the whole group decodes", rg[0], rg[1], err)
		case err != nil || fullErr != nil:
		default:
			for j, s := range got {
				if !s.Equal(full[rg[0]+j]) {
					t.Fatalf("rows [%d,%d): row %d differs from the full decode", rg[0], rg[1], rg[0]+j)
				}
			}
		}
	}
}

// BenchmarkRowGroupRows reads the rows of one trace (about 10) of a
// 4,096-span group with Rows, against BenchmarkRowGroupDecode's "trace",
// which reads them with Span.
func BenchmarkRowGroupRows(b *testing.B) {
	c := newCodec(b)
	for _, w := range workloads() {
		spans := spangen.Spans(w.gen(1), 4096)
		spangen.Sort(spans)
		enc := encodeGroup(b, c, spans)
		for _, at := range []struct {
			name string
			row  int
		}{{"first", 0}, {"middle", len(spans) / 2}, {"last", len(spans) - 1}} {
			b.Run(w.name+"/trace-"+at.name, func(b *testing.B) {
				id := spans[at.row].TraceID
				b.ReportAllocs()
				for b.Loop() {
					g, err := c.DecodeRowGroup(enc)
					if err != nil {
						b.Fatal(err)
					}
					lo, hi := g.TraceRange(id)
					if _, err := g.Rows(lo, hi); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkRowGroupInflatedRows is the store's cold trace read, by row
// group size: 65,536 spans are encoded in groups of N spans, and each
// iteration decodes one group, inflates it (every column decompressed, as
// the row-group cache keeps it) and reads the rows of a trace in its
// middle. It reports the groups' bytes/span beside the time: the trade
// behind db.Options.RowGroupSpans (the table in rowgroup.md).
func BenchmarkRowGroupInflatedRows(b *testing.B) {
	c := newCodec(b)
	for _, w := range workloads() {
		spans := spangen.Spans(w.gen(1), 65536)
		spangen.Sort(spans)
		for _, n := range []int{512, 1024, 2048, 4096, 8192} {
			var groups [][]byte
			var ids []encoding.TraceID
			total := 0
			for lo := 0; lo < len(spans); lo += n {
				g := encodeGroup(b, c, spans[lo:min(lo+n, len(spans))])
				groups = append(groups, g)
				ids = append(ids, spans[min(lo+n/2, len(spans)-1)].TraceID)
				total += len(g)
			}
			b.Run(fmt.Sprintf("%s/spans=%d", w.name, n), func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					g, err := c.DecodeRowGroup(groups[i%len(groups)])
					if err != nil {
						b.Fatal(err)
					}
					ig, err := g.Inflated()
					if err != nil {
						b.Fatal(err)
					}
					r := ig.Clone()
					lo, hi := r.TraceRange(ids[i%len(groups)])
					if _, err := r.Rows(lo, hi); err != nil || hi == lo {
						b.Fatalf("rows [%d,%d): %v", lo, hi, err)
					}
					i++
				}
				b.ReportMetric(float64(total)/float64(len(spans)), "bytes/span")
			})
		}
	}
}
