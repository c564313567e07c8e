package db

import (
	"context"
	"encoding/binary"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/internal/spangen"
	"github.com/tracedb/tracedb/retention"
)

// diskUsage is what the filesystem allocated to the files under dir.
func diskUsage(t *testing.T, dir string) int64 {
	t.Helper()
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			total += st.Blocks * 512
		} else {
			total += fi.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return total
}

// writeHours writes traces of the Mix workload into each hour h of hours
// (counted from spangen.Epoch), flushing after each hour, and returns the
// trace IDs and span counts of each hour.
func writeHours(t *testing.T, d *DB, hours []int, tracesPerHour int) map[int]map[encoding.TraceID]int {
	t.Helper()
	ctx := context.Background()
	mix := spangen.NewMix(rand.New(rand.NewPCG(1, 2)))
	out := map[int]map[encoding.TraceID]int{}
	for _, h := range hours {
		out[h] = map[encoding.TraceID]int{}
		var batch []*encoding.Span
		for range tracesPerHour {
			tr := mix.Trace()
			shift := spangen.Epoch + uint64(h)*uint64(time.Hour) + 60e9 - tr[0].StartUnixNano
			for _, s := range tr {
				s.StartUnixNano += shift
				s.EndUnixNano += shift
				for i := range s.Events {
					s.Events[i].TimeUnixNano += shift
				}
				out[h][s.TraceID]++
			}
			batch = append(batch, tr...)
			if len(batch) >= 2000 {
				mustWrite(t, d, ctx, encoding.ToTraces(batch))
				batch = batch[:0]
			}
		}
		mustWrite(t, d, ctx, encoding.ToTraces(batch))
		if err := d.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// countTrace returns the spans of trace id the store returns.
func countTrace(t *testing.T, d *DB, id encoding.TraceID) int {
	t.Helper()
	n := 0
	for _, err := range d.TraceSpans(context.Background(), id, TimeRange{}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

// TestRetentionGivesDiskBack: after the TTL passes for half of the
// partitions, a retention pass makes the store's directory, as the
// filesystem measures it, shrink by at least 90% of what the expired
// partitions held, and every unexpired span is still there.
func TestRetentionGivesDiskBack(t *testing.T) {
	if testing.Short() {
		t.Skip("writes tens of megabytes")
	}
	dir := t.TempDir()
	clock := &manualClock{now: time.Unix(0, int64(spangen.Epoch))}
	opts := Options{
		Sync: SyncNone, Clock: clock, PartitionWidth: time.Hour,
		BadgerValueLogFileBytes: 4 << 20, WALSegmentSize: 1 << 20,
		Retention: retention.Policy{TTL: 2 * time.Hour}, RetentionInterval: time.Hour,
	}
	d := openTest(t, dir, opts)
	defer d.Close()
	traces := writeHours(t, d, []int{0, 1, 2, 3}, 6000)

	var expired, total uint64
	for _, p := range d.Partitions() {
		total += p.Bytes
		if int(p.ID) < int(encoding.PartitionOf(spangen.Epoch+2*uint64(time.Hour), time.Hour)) {
			expired += p.Bytes
		}
	}
	before := diskUsage(t, dir)
	t.Logf("before: %d partitions, %.1f MiB encoded (%.1f MiB expiring), %.1f MiB on disk",
		len(d.Partitions()), float64(total)/(1<<20), float64(expired)/(1<<20), float64(before)/(1<<20))

	// Each hour's spans run from h:01 for a few seconds: at 3:30 with a
	// TTL of 2 h, hours 0 and 1 are past it, hours 2 and 3 are not.
	clock.Add(3*time.Hour + 30*time.Minute)
	res, err := d.ApplyRetention(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Dropped) != 2 || res.BlocksHeld != 0 || res.BytesDropped != expired {
		t.Fatalf("retention %+v: want 2 partitions dropped, %d bytes, none held", res, expired)
	}
	after := diskUsage(t, dir)
	fell := before - after
	t.Logf("after: %.1f MiB on disk, fell %.1f MiB (%.0f%% of the expired bytes); %d value-log files rewritten, reclaim took %s",
		float64(after)/(1<<20), float64(fell)/(1<<20), 100*float64(fell)/float64(expired), res.ValueLogFreed, res.ReclaimElapsed)
	if float64(fell) < 0.9*float64(expired) {
		t.Errorf("disk fell by %d bytes, want at least 90%% of the %d expired", fell, expired)
	}

	// Every span of hours 2 and 3 is still stored; a sample of traces of
	// each hour reads back whole (or, expired, not at all).
	var wantSpans, gotSpans uint64
	for h, ids := range traces {
		for _, n := range ids {
			if h >= 2 {
				wantSpans += uint64(n)
			}
		}
	}
	snap, err := d.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range snap.Readers {
		gotSpans += r.Info().Spans
	}
	snap.Release()
	if gotSpans != wantSpans {
		t.Fatalf("%d spans stored after retention, want %d", gotSpans, wantSpans)
	}
	for h, ids := range traces {
		checked := 0
		for id, n := range ids {
			if checked++; checked > 300 {
				break
			}
			got := countTrace(t, d, id)
			if h >= 2 && got != n {
				t.Fatalf("hour %d trace %s: %d spans, want %d", h, id, got, n)
			}
			if h < 2 && got != 0 {
				t.Fatalf("hour %d trace %s: %d spans after its partition expired", h, id, got)
			}
		}
	}
	// The drop survives a restart.
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = openTest(t, dir, opts)
	if got := len(d.Partitions()); got != 2 {
		t.Errorf("after reopen: %d partitions, want 2", got)
	}
}

// TestRetentionWaitsForSnapshots: a block dropped while a snapshot holds it
// stays readable until the snapshot is released, then is deleted.
func TestRetentionWaitsForSnapshots(t *testing.T) {
	clock := &manualClock{now: time.Unix(0, int64(spangen.Epoch))}
	opts := testOptions()
	opts.Clock = clock
	opts.Retention = retention.Policy{TTL: time.Hour}
	opts.RetentionInterval = time.Hour
	d := openTest(t, t.TempDir(), opts)
	defer d.Close()
	traces := writeHours(t, d, []int{0}, 50)
	snap, err := d.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	clock.Add(3 * time.Hour)
	res, err := d.ApplyRetention(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Dropped) != 1 || res.BlocksHeld == 0 || res.BlocksDeleted != 0 {
		t.Fatalf("retention %+v: want the partition dropped and its blocks held", res)
	}
	// The store no longer serves the trace, the snapshot still does.
	var id encoding.TraceID
	var want int
	for id, want = range traces[0] {
		break
	}
	if n := countTrace(t, d, id); n != 0 {
		t.Fatalf("store still serves %d spans of a dropped trace", n)
	}
	got := 0
	for _, r := range snap.Readers {
		err := r.TraceSpans(context.Background(), id, func(*encoding.Span) error { got++; return nil })
		if err != nil {
			t.Fatalf("snapshot read of a dropped block: %v", err)
		}
	}
	if got != want {
		t.Fatalf("snapshot read %d spans, want %d", got, want)
	}
	snap.Release()
	snap.Release() // a second release does nothing
	res, err = d.ApplyRetention(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.BlocksHeld != 0 || res.BlocksDeleted == 0 {
		t.Fatalf("after release: %+v, want the blocks deleted", res)
	}
}

// TestRetentionDiskBudget: with writes going on hour after hour and a
// small disk budget, the directory stays under the budget plus the slack
// documented on retention.Policy.DiskBudget (a value-log file, a WAL
// segment and Badger's tables) after every pass, and the newest hours are
// the ones kept.
func TestRetentionDiskBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("writes tens of megabytes")
	}
	dir := t.TempDir()
	clock := &manualClock{now: time.Unix(0, int64(spangen.Epoch))}
	const budget = 6 << 20
	opts := Options{
		Sync: SyncNone, Clock: clock, PartitionWidth: time.Hour,
		BadgerValueLogFileBytes: 4 << 20, WALSegmentSize: 1 << 20, BadgerMemTableBytes: 4 << 20,
		Retention: retention.Policy{DiskBudget: budget}, RetentionInterval: time.Hour,
	}
	const slack = 4<<20 + 1<<20 + 4<<20
	d := openTest(t, dir, opts)
	defer d.Close()
	var maxUsage int64
	for h := range 10 {
		writeHours(t, d, []int{h}, 6000)
		clock.Add(time.Hour)
		if _, err := d.ApplyRetention(context.Background()); err != nil {
			t.Fatal(err)
		}
		var kept uint64
		parts := d.Partitions()
		for _, p := range parts {
			kept += p.Bytes
		}
		usage := diskUsage(t, dir)
		maxUsage = max(maxUsage, usage)
		t.Logf("hour %d: %d partitions, %.1f MiB encoded, %.1f MiB on disk", h, len(parts), float64(kept)/(1<<20), float64(usage)/(1<<20))
		if kept > budget {
			t.Fatalf("hour %d: %d encoded bytes kept, over the budget %d", h, kept, budget)
		}
		if usage > budget+slack {
			t.Fatalf("hour %d: %d bytes on disk, over the budget %d plus slack %d", h, usage, budget, slack)
		}
		if want := encoding.PartitionOf(spangen.Epoch+uint64(h)*uint64(time.Hour), time.Hour); parts[len(parts)-1].ID != want {
			t.Fatalf("hour %d: newest partition kept is %d, want %d", h, parts[len(parts)-1].ID, want)
		}
	}
	t.Logf("largest directory: %.1f MiB for a budget of %.1f MiB", float64(maxUsage)/(1<<20), float64(budget)/(1<<20))
}

// TestRetentionKeepsErrorAndSlowTraces: after the TTL, exactly the traces
// with an error span or a slow span remain, whole (also those straddling
// two partitions, whichever part matched); after the keep TTL they go too.
func TestRetentionKeepsErrorAndSlowTraces(t *testing.T) {
	clock := &manualClock{now: time.Unix(0, int64(spangen.Epoch))}
	opts := testOptions()
	opts.Clock = clock
	opts.PartitionWidth = time.Hour
	opts.RetentionInterval = time.Hour
	opts.Retention = retention.Policy{TTL: 2 * time.Hour,
		Keep: retention.KeepRule{Errors: true, SlowerThan: 5 * time.Second, TTL: 10 * time.Hour}}
	d := openTest(t, t.TempDir(), opts)
	defer d.Close()
	ctx := context.Background()
	r := rand.New(rand.NewPCG(4, 4))
	type traceInfo struct {
		spans []*encoding.Span
		keep  bool
		hour  int // the hour of its last span
	}
	var traces []*traceInfo
	newSpan := func(tid encoding.TraceID, parent encoding.SpanID, svc string, start, dur uint64) *encoding.Span {
		s := &encoding.Span{TraceID: tid, ParentSpanID: parent, Name: "op", StartUnixNano: start, EndUnixNano: start + dur,
			Resource: &encoding.Resource{Attrs: []encoding.KeyValue{encoding.StrKV("service.name", svc)}}, Scope: &encoding.Scope{}}
		for s.SpanID.IsZero() {
			binary.BigEndian.PutUint64(s.SpanID[:], r.Uint64())
		}
		return s
	}
	for h := range 4 {
		for i := range 200 {
			var tid encoding.TraceID
			binary.BigEndian.PutUint64(tid[:8], uint64(h+1))
			binary.BigEndian.PutUint64(tid[8:], uint64(i+1))
			start := spangen.Epoch + uint64(h)*uint64(time.Hour) + uint64(10+i)*uint64(time.Second)
			tr := &traceInfo{hour: h}
			root := newSpan(tid, encoding.SpanID{}, "front", start, uint64(time.Second))
			child := newSpan(tid, root.SpanID, "back", start+1000, uint64(100*time.Millisecond))
			switch i % 20 {
			case 0:
				child.StatusCode = encoding.StatusError
				tr.keep = true
			case 1:
				child.EndUnixNano = child.StartUnixNano + uint64(6*time.Second)
				tr.keep = true
			}
			tr.spans = []*encoding.Span{root, child}
			if i == 199 && h < 3 {
				// Straddles into the next hour; in hour 0 the error is
				// in the later part, in hour 1 in the earlier part.
				late := newSpan(tid, root.SpanID, "late", spangen.Epoch+uint64(h+1)*uint64(time.Hour)+uint64(time.Second), 1000)
				if h == 0 {
					late.StatusCode = encoding.StatusError
					tr.keep = true
				}
				if h == 1 {
					child.StatusCode = encoding.StatusError
					tr.keep = true
				}
				tr.spans = append(tr.spans, late)
				tr.hour = h + 1
			}
			traces = append(traces, tr)
		}
	}
	for h := range 4 {
		var batch []*encoding.Span
		for _, tr := range traces {
			for _, s := range tr.spans {
				if encoding.PartitionOf(s.StartUnixNano, time.Hour) == encoding.PartitionOf(spangen.Epoch+uint64(h)*uint64(time.Hour), time.Hour) {
					batch = append(batch, s)
				}
			}
		}
		mustWrite(t, d, ctx, encoding.ToTraces(batch))
		if err := d.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	check := func(label string, alive func(tr *traceInfo) bool) {
		t.Helper()
		for _, tr := range traces {
			got := collect(t, d, ctx, tr.spans[0].TraceID)
			if !alive(tr) {
				if len(got) != 0 {
					t.Fatalf("%s: trace %s (hour %d, keep %v): %d spans, want none", label, tr.spans[0].TraceID, tr.hour, tr.keep, len(got))
				}
				continue
			}
			if !sameSpans(got, tr.spans) {
				t.Fatalf("%s: trace %s (hour %d, keep %v): %d spans, want its %d whole", label, tr.spans[0].TraceID, tr.hour, tr.keep, len(got), len(tr.spans))
			}
		}
	}
	// At 3:30, hours 0 and 1 (whose spans end by 2:00:01) are past the TTL.
	clock.Add(3*time.Hour + 30*time.Minute)
	res, err := d.ApplyRetention(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var wantKept uint64
	for _, tr := range traces {
		if tr.keep && tr.spans[0].StartUnixNano < spangen.Epoch+2*uint64(time.Hour) {
			wantKept++
		}
	}
	t.Logf("retention: %d partitions dropped, %d traces (%d spans) kept", len(res.Dropped), res.TracesKept, res.SpansKept)
	// The trace straddling hours 0 and 1 counts in both kept partitions.
	if len(res.Dropped) != 2 || res.TracesKept != wantKept+1 {
		t.Fatalf("retention %+v: want 2 partitions dropped and %d traces kept", res, wantKept+1)
	}
	check("after the TTL", func(tr *traceInfo) bool {
		return tr.keep || tr.spans[0].StartUnixNano >= spangen.Epoch+2*uint64(time.Hour)
	})

	// The kept partitions expire 10 h after their newest span.
	clock.Add(9 * time.Hour)
	if _, err := d.ApplyRetention(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range d.Partitions() {
		if p.ID.IsKept() && p.ID.Window() < encoding.PartitionOf(spangen.Epoch+2*uint64(time.Hour), time.Hour) {
			t.Errorf("kept partition %s outlived its TTL", p.ID)
		}
	}
}
