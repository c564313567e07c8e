package db

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/internal/spangen"
)

// TestCloseDuringCompaction: Close while a compaction merges stops it
// early (or it had finished); either way Close succeeds and the reopened
// store holds every span exactly once.
func TestCloseDuringCompaction(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions()
	opts.MaxHeadSpans = 500
	opts.CompactionInterval = -1
	d := openTest(t, dir, opts)
	ctx := context.Background()
	g := spangen.NewClickHouseShape(rand.New(rand.NewPCG(9, 9)), false)
	var written []*encoding.Span
	for range 20 {
		batch := spangen.Spans(g, 500)
		written = append(written, batch...)
		mustWrite(t, d, ctx, encoding.ToTraces(batch))
		if err := d.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := d.Compact(ctx)
		done <- err
	}()
	if err := d.Close(); err != nil {
		t.Fatalf("close during compaction: %v", err)
	}
	if err := <-done; err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, context.Canceled) {
		t.Fatalf("compaction: %v", err)
	}
	d = openTest(t, dir, opts)
	defer d.Close()
	for id, want := range byTrace(written) {
		if got := collect(t, d, ctx, id); !sameSpans(got, want) {
			t.Fatalf("trace %s: %d spans after reopen, want %d", id, len(got), len(want))
		}
		if raw := rawCount(t, d, id); raw != len(want) {
			t.Fatalf("trace %s: %d stored copies of %d spans", id, raw, len(want))
		}
	}
}
