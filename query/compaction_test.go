package query

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tracedb/tracedb/db"
)

// readerTotals sums the blocks and encoded bytes of the store's readers.
func readerTotals(t *testing.T, d *db.DB) (blocks int, bytes, spans uint64) {
	t.Helper()
	snap, err := d.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	for _, r := range snap.Readers {
		info := r.Info()
		if !info.Head {
			blocks++
			bytes += info.Bytes
		}
		spans += info.Spans
	}
	return blocks, bytes, spans
}

// TestDifferentialAfterCompaction: compaction merges the workload's blocks
// (fewer blocks, fewer bytes, exact duplicates stored once) and every query
// still returns what the brute-force model of the written spans says.
func TestDifferentialAfterCompaction(t *testing.T) {
	cfg, queries := differentialSize()
	cfg.tracesPerRound /= 2
	queries /= 4
	seed := *flagSeed + 100
	d, w := buildWorkload(t, seed, cfg)
	e, err := NewEngine(d, Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := newSearchModel(w.spans, e.opts.MaxLimit)
	blocksBefore, bytesBefore, spansBefore := readerTotals(t, d)
	checkAgainstModel(t, e, m, w, seed, queries)

	start := time.Now()
	res, err := d.Compact(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	blocksAfter, bytesAfter, spansAfter := readerTotals(t, d)
	t.Logf("compaction %+v in %s: blocks %d -> %d, bytes %d -> %d, spans %d -> %d", res, time.Since(start).Round(time.Millisecond),
		blocksBefore, blocksAfter, bytesBefore, bytesAfter, spansBefore, spansAfter)
	if res.Groups == 0 || blocksAfter >= blocksBefore || bytesAfter >= bytesBefore {
		t.Fatalf("compaction did not shrink the store: %+v", res)
	}
	if res.SpansOut >= res.SpansIn || spansBefore-spansAfter != res.SpansIn-res.SpansOut {
		t.Fatalf("compaction read %d spans and wrote %d; the store went from %d to %d spans: want exact duplicates dropped, nothing else",
			res.SpansIn, res.SpansOut, spansBefore, spansAfter)
	}
	checkAgainstModel(t, e, m, w, seed+1, queries)
}

// TestQueriesDuringCompaction: searches and whole-trace reads running
// while compaction swaps blocks see every span exactly once: each answer
// equals the model's.
func TestQueriesDuringCompaction(t *testing.T) {
	cfg, _ := differentialSize()
	cfg.tracesPerRound = 300
	seed := *flagSeed + 200
	d, w := buildWorkload(t, seed, cfg)
	e, err := NewEngine(d, Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := newSearchModel(w.spans, e.opts.MaxLimit)
	done := make(chan struct{})
	var wg sync.WaitGroup
	var checked [2]int
	for g := range 2 {
		fg := newWorkloadFilterGen(w, seed+uint64(g)) // a generator is not safe for concurrent use
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-done:
					if i > 20 {
						return
					}
				default:
				}
				qg := &queryGen{r: rand.New(rand.NewPCG(seed, uint64(g*1_000_000+i))), w: w, maxLimit: e.opts.MaxLimit, fg: fg}
				q := qg.query()
				if m.invalid(q) {
					continue
				}
				got, err := e.FindTraceIDs(context.Background(), q)
				if err != nil {
					t.Errorf("query %+v: %v", q, err)
					return
				}
				want := m.find(q, e.opts.DefaultLimit)
				if !slices.Equal(got, want) {
					t.Errorf("during compaction, query %+v:\n got %v\nwant %v", q, got, want)
					return
				}
				if len(want) > 0 {
					// The newest trace, whole: the model's distinct spans.
					id := want[0].TraceID
					n := 0
					for td, err := range e.GetTrace(context.Background(), id, db.TimeRange{}) {
						if err != nil {
							t.Errorf("get trace %s: %v", id, err)
							return
						}
						n += td.SpanCount()
					}
					if wantN := len(m.traceSpans(id)); n != wantN {
						t.Errorf("during compaction, trace %s: %d spans, want %d", id, n, wantN)
						return
					}
				}
				checked[g]++
			}
		})
	}
	res, err := d.Compact(context.Background())
	close(done)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if res.Groups == 0 {
		t.Fatal("nothing was compacted")
	}
	t.Logf("%d and %d queries checked while %d groups (%d blocks) were compacted", checked[0], checked[1], res.Groups, res.BlocksIn)
}
