package db

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracedb/tracedb/encoding"
)

// manualClock is a Clock that tests move by hand.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func blockCount(t *testing.T, d *DB) int {
	t.Helper()
	snap, err := d.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range snap.Readers {
		if !r.Info().Head {
			n++
		}
	}
	return n
}

func TestFlushOnHeadAge(t *testing.T) {
	clock := &manualClock{now: time.Unix(1_700_000_000, 0)}
	opts := testOptions()
	opts.Clock = clock
	opts.MaxHeadAge = time.Minute
	d := openTest(t, t.TempDir(), opts)
	defer d.Close()
	mustWrite(t, d, context.Background(), makeTraces(spanSpec{trace: 1, span: 1, service: "a", name: "x", dur: 1}))
	time.Sleep(1500 * time.Millisecond) // the loop checks every second
	if n := blockCount(t, d); n != 0 {
		t.Fatalf("%d blocks before the head is old", n)
	}
	clock.Add(61 * time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for blockCount(t, d) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("head older than MaxHeadAge was not flushed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestFlushOnHeadSpans(t *testing.T) {
	opts := testOptions()
	opts.MaxHeadSpans = 50
	d := openTest(t, t.TempDir(), opts)
	defer d.Close()
	for i := byte(1); i <= 60; i++ {
		mustWrite(t, d, context.Background(), makeTraces(spanSpec{trace: i, span: i, service: "a", name: "x", dur: 1}))
	}
	deadline := time.Now().Add(10 * time.Second)
	for blockCount(t, d) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("head over MaxHeadSpans was not flushed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHugeTraceStreamsInChunks: a trace of tens of thousands of spans
// comes back whole, in chunks no larger than TraceChunkSpans, in order.
func TestHugeTraceStreamsInChunks(t *testing.T) {
	opts := testOptions()
	opts.RowGroupSpans = 1024
	opts.TraceChunkSpans = 5000
	d := openTest(t, t.TempDir(), opts)
	defer d.Close()
	ctx := context.Background()
	const total = 30_000
	id := traceID(42)
	for batch := 0; batch < total/1000; batch++ {
		td := ptrace.NewTraces()
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", "big")
		spans := rs.ScopeSpans().AppendEmpty().Spans()
		for i := range 1000 {
			n := batch*1000 + i
			s := spans.AppendEmpty()
			s.SetTraceID(pcommon.TraceID(id))
			s.SetSpanID(pcommon.SpanID{1, byte(n >> 16), byte(n >> 8), byte(n)})
			s.SetStartTimestamp(pcommon.Timestamp(t0 + uint64(n)*1000))
			s.SetEndTimestamp(pcommon.Timestamp(t0 + uint64(n)*1000 + 500))
			s.SetName("op")
		}
		mustWrite(t, d, ctx, td)
		if batch == 10 {
			if err := d.Flush(); err != nil { // a third on disk, the rest in the head
				t.Fatal(err)
			}
		}
	}
	var got, chunks int
	last := uint64(0)
	for chunk, err := range d.GetTrace(ctx, id, TimeRange{}) {
		if err != nil {
			t.Fatal(err)
		}
		chunks++
		if chunk.SpanCount() > opts.TraceChunkSpans {
			t.Fatalf("chunk of %d spans, limit %d", chunk.SpanCount(), opts.TraceChunkSpans)
		}
		spans, _ := encoding.FromTraces(nil, nil, chunk)
		for _, s := range spans {
			if s.StartUnixNano < last {
				t.Fatalf("span at %d after one at %d", s.StartUnixNano, last)
			}
			last = s.StartUnixNano
		}
		got += chunk.SpanCount()
	}
	if got != total || chunks != total/opts.TraceChunkSpans {
		t.Fatalf("got %d spans in %d chunks, want %d in %d", got, chunks, total, total/opts.TraceChunkSpans)
	}
}

// TestTornWALTailIsCutAndReported: garbage after the last record (a write
// torn by a crash) is cut, counted in the metrics, and loses nothing that
// was acknowledged.
func TestTornWALTailIsCutAndReported(t *testing.T) {
	dir := t.TempDir()
	d := openTest(t, dir, testOptions())
	mustWrite(t, d, context.Background(), makeTraces(spanSpec{trace: 1, span: 1, service: "a", name: "kept", dur: 1}))
	d.closeWithoutFlush(t)
	segs, err := filepath.Glob(filepath.Join(dir, walDir, "*"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("wal segments: %v %v", segs, err)
	}
	sort.Strings(segs)
	last := segs[len(segs)-1]
	f, err := os.OpenFile(last, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0, 0, 1, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3}) // a record header promising 64 KiB, then nothing
	f.Close()
	opts := testOptions()
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	d = openTest(t, dir, opts)
	defer d.Close()
	if got := collect(t, d, context.Background(), traceID(1)); len(got) != 1 || got[0].Name != "kept" {
		t.Fatalf("after torn tail: %d spans", len(got))
	}
	if n := testutil.ToFloat64(d.metrics.walReplayCuts); n != 1 {
		t.Errorf("replay cuts metric = %v, want 1", n)
	}
}

func TestSecondOpenIsRefused(t *testing.T) {
	dir := t.TempDir()
	d := openTest(t, dir, testOptions())
	defer d.Close()
	if d2, err := Open(dir, testOptions()); err == nil {
		d2.Close()
		t.Fatal("a second Open of a store in use succeeded")
	}
}

// TestLargeSpansSplitRowGroups: row groups end by bytes as well as by span
// count, so a block of huge spans is not one huge value.
func TestLargeSpansSplitRowGroups(t *testing.T) {
	opts := testOptions()
	opts.RowGroupSpans = 4096
	opts.Limits.MaxAttributeValueBytes = 1 << 20
	opts.Limits.MaxSpanBytes = 2 << 20
	d := openTest(t, t.TempDir(), opts)
	defer d.Close()
	ctx := context.Background()
	big := string(make([]byte, 600<<10))
	for i := byte(1); i <= 60; i++ {
		mustWrite(t, d, ctx, makeTraces(spanSpec{trace: 1, span: i, service: "a", name: "big", start: uint64(i), dur: 1,
			attrs: map[string]string{"payload": big}}))
	}
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	snap, _ := d.Snapshot(ctx)
	var groups int
	for _, r := range snap.Readers {
		if b, ok := r.(*diskBlock); ok {
			groups += len(b.meta.RowGroups)
			for _, g := range b.meta.RowGroups {
				if g.Spans > maxRowGroupBytes/(600<<10)+1 {
					t.Errorf("row group of %d spans of 600 KiB", g.Spans)
				}
			}
		}
	}
	if groups < 2 {
		t.Fatalf("%d row groups for 36 MiB of spans", groups)
	}
	if got := collect(t, d, ctx, traceID(1)); len(got) != 60 {
		t.Fatalf("read back %d spans, want 60", len(got))
	}
}
