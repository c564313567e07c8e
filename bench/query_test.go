package bench

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracedb/tracedb/db"
)

// TestRunQueries runs bench/query's queries over a small store (a block
// and a head) and checks that every kind ran and found what the store
// holds: the harness cannot rot between full runs.
func TestRunQueries(t *testing.T) {
	const spans, batch = 6_000, 500
	batchFile := writeBatchFile(t, WorkloadClickHouse, spans, batch)
	dir := filepath.Join(t.TempDir(), "store")
	if _, err := Run(context.Background(), RunConfig{BatchFile: batchFile, Dir: dir,
		Options: db.Options{Sync: db.SyncNone, MaxHeadSpans: 4000, RowGroupSpans: 256},
		Ingest:  IngestConfig{Concurrency: 2}, Workload: WorkloadClickHouse, Seed: 1, Batch: batch}); err != nil {
		t.Fatal(err)
	}
	d, err := db.Open(dir, db.Options{Sync: db.SyncNone, CompactionInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	const iterations = 5
	stats, err := RunQueries(t.Context(), d, QueryConfig{Iterations: iterations, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) < 10 {
		t.Fatalf("%d query kinds, want at least 10", len(stats))
	}
	for _, st := range stats {
		if len(st.Samples) != iterations {
			t.Errorf("%s: %d samples, want %d", st.Name, len(st.Samples), iterations)
		}
		// Every kind draws its parameters from stored spans, so each
		// finds something: spans, traces, calls, services.
		if st.Results <= 0 {
			t.Errorf("%s: %d results", st.Name, st.Results)
		}
	}
	if md := QueryMarkdown(stats); !strings.Contains(md, "rate 1 h by minute") || !strings.Contains(md, "histogram 24 h") {
		t.Errorf("markdown lacks a kind:\n%s", md)
	}
}
