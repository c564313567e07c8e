package bench

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracedb/tracedb/db"
)

// TestRun runs the whole benchmark on a small workload and checks that
// the figures add up.
func TestRun(t *testing.T) {
	for _, w := range []Workload{WorkloadClickHouse, WorkloadMix} {
		t.Run(w.String(), func(t *testing.T) {
			const spans, batch = 3_000, 250
			tmp := t.TempDir()
			batchFile := writeBatchFile(t, w, spans, batch)
			res, err := Run(context.Background(), RunConfig{
				BatchFile: batchFile,
				Dir:       filepath.Join(tmp, "store"),
				// A small head, so that the run crosses background flushes.
				Options:  db.Options{Sync: db.SyncNone, MaxHeadSpans: 1000},
				Ingest:   IngestConfig{Concurrency: 3},
				Workload: w, Seed: 1, Batch: batch,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Ingest.Accepted != spans || res.Ingest.Rejected != 0 || res.Ingest.Batches != spans/batch {
				t.Errorf("ingest = %+v, want %d spans in %d batches", res.Ingest, spans, spans/batch)
			}
			if res.Ingest.Wall <= 0 || res.Ingest.CPU <= 0 || res.RSSPeak <= 0 {
				t.Errorf("wall %s, cpu %s, peak RSS %d: want all positive", res.Ingest.Wall, res.Ingest.CPU, res.RSSPeak)
			}
			// The small head makes background flushes happen, but how many
			// depends on how far the writers get before the flush loop
			// cuts the head: at least one, and blocks only from flushes.
			if res.Flushes < 1 || res.Blocks < 1 {
				t.Errorf("%d flushes, %d blocks: want at least 1 of each", res.Flushes, res.Blocks)
			}
			k := res.Keys
			if k.RowGroups.Bytes == 0 || k.PostingsDict.Keys != res.Blocks || k.Postings.Bytes == 0 || k.StoreMeta.Keys == 0 {
				t.Errorf("keys = %+v: want row groups, postings, one dictionary per block and store meta", k)
			}
			if res.Disk.Apparent < k.Total()/2 {
				t.Errorf("%d bytes on disk hold %d bytes of entries", res.Disk.Apparent, k.Total())
			}
			var names []string
			for _, s := range res.Subdirs {
				names = append(names, s.Name)
			}
			if got := strings.Join(names, " "); got != "badger/ wal/" {
				t.Errorf("store subdirectories = %q, want \"badger/ wal/\"", got)
			}
			var text bytes.Buffer
			if err := res.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"spans/s", "µs/span", "row groups", "badger/"} {
				if !strings.Contains(text.String(), want) {
					t.Errorf("text report lacks %q:\n%s", want, text.String())
				}
			}
		})
	}
}

func TestRunBadBatchFile(t *testing.T) {
	tmp := t.TempDir()
	file := smallBatchFile(t, 50, 10)
	path := filepath.Join(tmp, "cut.batches")
	if err := os.WriteFile(path, file[:len(file)-30], 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Run(context.Background(), RunConfig{
		BatchFile: path, Dir: filepath.Join(tmp, "store"),
		Options: db.Options{Sync: db.SyncNone}, Ingest: IngestConfig{Concurrency: 2},
	})
	if err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("err = %v, want the truncation reported", err)
	}
}
