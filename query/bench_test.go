package query

import (
	"context"
	"testing"
	"time"

	"github.com/tracedb/tracedb/db"
)

// benchWorkload is the differential test's workload at its default size
// (about 32,000 spans in some 160 blocks over 40 partitions, plus the
// head). The figures that matter are bench/'s, on 10M spans; these show
// where the engine's time goes.
func benchEngine(b *testing.B) (*Engine, *workload) {
	b.Helper()
	cfg := workloadConfig{rounds: 4, tracesPerRound: 1500, mixShare: 0.2, window: 40 * time.Minute,
		partitionWidth: time.Minute, rowGroupSpans: db.DefaultRowGroupSpans}
	d, w := buildWorkload(b, 1, cfg)
	e, err := NewEngine(d, Options{})
	if err != nil {
		b.Fatal(err)
	}
	return e, w
}

func BenchmarkFindTraceIDs(b *testing.B) {
	e, w := benchEngine(b)
	mid := w.start + w.window/2
	for _, bc := range []struct {
		name string
		q    TraceQuery
	}{
		{"service", TraceQuery{Service: "frontend"}},
		{"service+operation", TraceQuery{Service: "frontend", Operation: "GET /api/items"}},
		{"one attribute", TraceQuery{Attributes: map[string]string{"user.id": "u-3"}}},
		{"three attributes", TraceQuery{Service: "frontend", Attributes: map[string]string{"http.method": "GET", "region": "eu-west", "http.status_code": "200"}}},
		{"duration range", TraceQuery{Service: "checkout", DurationMin: 100 * time.Millisecond, DurationMax: time.Second}},
		{"error", TraceQuery{Service: "frontend", Attributes: map[string]string{"error": "true"}}},
		{"long value", TraceQuery{Service: "frontend", Attributes: map[string]string{"payload": wlLong[1]}}},
		{"time range only", TraceQuery{StartTime: db.TimeRange{Start: mid, End: mid + uint64(time.Minute)}}},
		{"scan, limit 1500", TraceQuery{Limit: 1500}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.FindTraceIDs(context.Background(), bc.q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkGetServices(b *testing.B) {
	e, _ := benchEngine(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.GetServices(context.Background(), db.TimeRange{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetOperations(b *testing.B) {
	e, _ := benchEngine(b)
	for _, byKind := range []bool{false, true} {
		name := "all kinds"
		if byKind {
			name = "server kind"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.GetOperations(context.Background(), OperationQuery{Service: "frontend", ByKind: byKind, Kind: 2}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
