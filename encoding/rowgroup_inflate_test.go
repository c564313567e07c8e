package encoding_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/internal/spangen"
)

// TestInflatedReadsTheSame checks that clones of an inflated row group give
// the same spans, times and partial rows as the group decoded from its
// bytes, again and again and from several goroutines at once (run with
// -race: readers must not write to the shared columns).
func TestInflatedReadsTheSame(t *testing.T) {
	c := newCodec(t)
	r := rand.New(rand.NewPCG(3, 4))
	for seed := range 12 {
		n := 1 + r.IntN(400)
		spans := spangen.Random(rand.New(rand.NewPCG(uint64(seed), 23)), n)
		spangen.Sort(spans)
		encs := []*encoding.RowGroupEncoder{c.NewRowGroupEncoder(), c.NewRawRowGroupEncoder()}
		b, err := encs[seed%2].Encode(nil, spans)
		if err != nil {
			t.Fatal(err)
		}
		want, _, err := decodeGroup(c, b)
		if err != nil {
			t.Fatal(err)
		}
		g, err := c.DecodeRowGroup(b)
		if err != nil {
			t.Fatal(err)
		}
		ig, err := g.Inflated()
		if err != nil {
			t.Fatal(err)
		}
		if ig.Size() < len(b)/2 {
			t.Errorf("seed %d: inflated size %d, encoded %d bytes", seed, ig.Size(), len(b))
		}
		wantStarts, wantEnds, err := g.Times()
		if err != nil {
			t.Fatal(err)
		}
		t.Run(fmt.Sprintf("seed=%d/n=%d", seed, n), func(t *testing.T) {
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			for w := range 4 {
				wg.Go(func() {
					rr := rand.New(rand.NewPCG(uint64(seed), uint64(w)))
					for range 6 {
						if err := checkInflated(ig.Clone(), want, wantStarts, wantEnds, rr); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
		})
	}
}

// checkInflated reads g in one of three ways and compares with want.
func checkInflated(g *encoding.RowGroup, want []*encoding.Span, starts, ends []uint64, r *rand.Rand) error {
	n := len(want)
	switch r.IntN(3) {
	case 0: // whole traces, partially decoded
		for range 5 {
			lo, hi := g.TraceRange(want[r.IntN(n)].TraceID)
			got, err := g.Rows(lo, hi)
			if err != nil {
				return err
			}
			for j, s := range got {
				if !s.Equal(want[lo+j]) {
					return fmt.Errorf("rows [%d,%d): row %d differs", lo, hi, lo+j)
				}
			}
		}
	case 1: // every span, fully decoded
		for i := range n {
			s, err := g.Span(i)
			if err != nil {
				return err
			}
			if !s.Equal(want[i]) {
				return fmt.Errorf("span %d differs", i)
			}
		}
	default: // times alone
		s, e, err := g.Times()
		if err != nil {
			return err
		}
		for i := range n {
			if s[i] != starts[i] || e[i] != ends[i] {
				return fmt.Errorf("times of row %d: %d-%d, want %d-%d", i, s[i], e[i], starts[i], ends[i])
			}
		}
	}
	return nil
}
