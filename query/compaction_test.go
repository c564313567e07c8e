package query

import (
	"context"
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
