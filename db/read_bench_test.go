package db

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/internal/spangen"
)

// BenchmarkTraceByID reads whole traces by ID from a store of 1M
// ClickHouse-shape spans (100k traces of 10) in disk blocks, with no time
// hint: the bloom filters pick the blocks, the sparse row-group index the
// row group. It reports the median and p99 latency over the iterations.
func BenchmarkTraceByID(b *testing.B) {
	d := openTest(b, b.TempDir(), Options{Sync: SyncNone})
	defer d.Close()
	ctx := context.Background()
	ids := writeClickHouse(b, d, 1_000_000)
	r := rand.New(rand.NewPCG(5, 6))
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		id := ids[r.IntN(len(ids))]
		start := time.Now()
		n := 0
		for _, err := range d.TraceSpans(ctx, id, TimeRange{}) {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		lat = append(lat, time.Since(start))
		if n == 0 {
			b.Fatalf("trace %s: no spans", id)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// writeClickHouse writes n ClickHouse-shape spans (traces of 10) into d
// in batches of 1,000, flushes them into blocks, and returns the trace IDs.
func writeClickHouse(b *testing.B, d *DB, n int) []encoding.TraceID {
	b.Helper()
	g := spangen.NewClickHouseShape(rand.New(rand.NewPCG(3, 4)), false)
	var ids []encoding.TraceID
	for written := 0; written < n; written += 1000 {
		batch := spangen.Spans(g, 1000)
		for i, s := range batch {
			if i == 0 || s.TraceID != batch[i-1].TraceID {
				ids = append(ids, s.TraceID)
			}
		}
		if _, err := d.Write(context.Background(), encoding.ToTraces(batch)); err != nil {
			b.Fatal(err)
		}
	}
	if err := d.Flush(); err != nil {
		b.Fatal(err)
	}
	return ids
}

// BenchmarkOpen opens a closed store of 1M ClickHouse-shape spans in disk
// blocks for writing and closes it again: block metas, trace-ID filters,
// and the dependency tracker rebuilt from the newest blocks' span IDs and
// resources (restoreDeps), which is most of it.
func BenchmarkOpen(b *testing.B) {
	dir := b.TempDir()
	d := openTest(b, dir, Options{Sync: SyncNone})
	writeClickHouse(b, d, 1_000_000)
	if err := d.Close(); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		d, err := Open(dir, Options{Sync: SyncNone, CompactionInterval: -1})
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
