package query

import (
	"fmt"
	"testing"
	"time"

	"github.com/tracedb/tracedb/db"
)

// FuzzFindTraceIDs runs arbitrary search parameters against a small store
// (blocks and head) and checks that the engine never panics, refuses
// exactly the queries the model calls invalid, and otherwise answers as
// the model does.
func FuzzFindTraceIDs(f *testing.F) {
	cfg := workloadConfig{rounds: 2, tracesPerRound: 150, mixShare: 0.2, window: 10 * time.Minute,
		partitionWidth: time.Minute, rowGroupSpans: 16}
	d, w := buildWorkload(f, 3, cfg)
	e, err := NewEngine(d, Options{})
	if err != nil {
		f.Fatal(err)
	}
	m := newSearchModel(w.spans, e.opts.MaxLimit)

	f.Add("frontend", "", "user.id", "u-1", 0, int64(0), int64(0), uint64(0), uint64(0))
	f.Add("checkout", "GET /", "error", "true", 5, int64(1000), int64(5e9), w.start, w.start+w.window/2)
	f.Add("", "", "payload", wlLong[0], 1500, int64(0), int64(0), uint64(0), uint64(0))
	f.Add("", "GET /", "region", "eu-west", -1, int64(-5), int64(1), uint64(9), uint64(3))
	f.Add("auth\x00db", "query", "", "", 3, int64(7), int64(7), uint64(1), uint64(0))
	f.Fuzz(func(t *testing.T, service, operation, key, value string, limit int, dmin, dmax int64, start, end uint64) {
		q := TraceQuery{Service: service, Operation: operation, Limit: limit,
			DurationMin: time.Duration(dmin), DurationMax: time.Duration(dmax),
			StartTime: db.TimeRange{Start: start, End: end}}
		if key != "" || value != "" {
			q.Attributes = map[string]string{key: value}
		}
		m.check(t, e, q, fmt.Sprintf("%+v", q))
	})
}
