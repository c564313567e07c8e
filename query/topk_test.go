package query

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/tracedb/tracedb/encoding"
)

// TestTopTraces offers random spans the way a search does (admits, then
// offer) and compares the result with sorting every trace's best rank.
func TestTopTraces(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := range 2000 {
		limit := []int{1, 2, 3, 5, 20}[r.IntN(5)]
		traces := 1 + r.IntN(40)
		top := newTopTraces(limit)
		best := map[encoding.TraceID]uint64{}
		for range r.IntN(200) {
			id := encoding.TraceID{15: byte(r.IntN(traces))}
			start := uint64(r.IntN(20)) // few distinct times: many ties
			if top.admits(start) {
				top.offer(id, start)
			}
			if b, ok := best[id]; !ok || start > b {
				best[id] = start
			}
		}
		var want []TraceHit
		for id, s := range best {
			want = append(want, TraceHit{TraceID: id, Start: s})
		}
		slices.SortFunc(want, func(a, b TraceHit) int {
			return cmp.Or(cmp.Compare(b.Start, a.Start), a.TraceID.Compare(b.TraceID))
		})
		want = want[:min(limit, len(want))]
		if got := top.sorted(); !slices.Equal(got, want) {
			t.Fatalf("iteration %d, limit %d: got %v, want %v", iter, limit, got, want)
		}
	}
}

func BenchmarkTopTracesOffer(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	ids := make([]encoding.TraceID, 1<<16)
	for i := range ids {
		ids[i] = encoding.TraceID{0: byte(i), 1: byte(i >> 8), 15: 1}
	}
	top := newTopTraces(20)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		start := uint64(i) + r.Uint64N(1000)
		if top.admits(start) {
			top.offer(ids[i&(len(ids)-1)], start)
		}
	}
}
