package db

import (
	"context"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/internal/spangen"
)

// Write benchmark shape: ClickHouse-shape batches of writeBenchBatch spans,
// cycled from a pool of writeBenchPool batches made before the timer runs.
const (
	writeBenchBatch = 1000
	writeBenchPool  = 64
)

// BenchmarkWrite measures Write alone, from 2×GOMAXPROCS goroutines: the
// WAL append, the head append and the background flushes that the writes
// cause. Spans are generated beforehand and written again and again (the
// store keeps every copy). The full ingest path, with unmarshalling, a
// final flush and bytes on disk, is bench/ingest.
func BenchmarkWrite(b *testing.B) {
	g := spangen.NewClickHouseShape(rand.New(rand.NewPCG(1, 2)), false)
	spans := spangen.Spans(g, writeBenchBatch*writeBenchPool)
	pool := make([]ptrace.Traces, writeBenchPool)
	for i := range pool {
		pool[i] = encoding.ToTraces(spans[i*writeBenchBatch : (i+1)*writeBenchBatch])
	}
	for _, mode := range []SyncMode{SyncNone, SyncGroup} {
		b.Run("sync="+mode.String(), func(b *testing.B) {
			d := openTest(b, b.TempDir(), Options{Sync: mode})
			defer func() {
				if err := d.Close(); err != nil {
					b.Error(err)
				}
			}()
			ctx := context.Background()
			var next atomic.Uint64
			b.SetParallelism(2)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					// Concurrent Writes may read the same batch: Write only reads td.
					td := pool[next.Add(1)%writeBenchPool]
					res, err := d.Write(ctx, td)
					if err != nil || res.Accepted != writeBenchBatch {
						b.Errorf("write: accepted %d of %d, err %v", res.Accepted, writeBenchBatch, err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)*writeBenchBatch/b.Elapsed().Seconds(), "spans/s")
		})
	}
}
