package wal

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// replayed is one record as Replay delivered it.
type replayed struct {
	pos Pos
	rec []byte
}

// replayAll replays dir from segment from and returns the records and report.
func replayAll(t *testing.T, dir string, from uint64) ([]replayed, ReplayReport) {
	t.Helper()
	var got []replayed
	rep, err := Replay(dir, from, func(p Pos, rec []byte) error {
		got = append(got, replayed{p, bytes.Clone(rec)})
		return nil
	}, nil)
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	return got, rep
}

func openWAL(t *testing.T, opts Options) *WAL {
	t.Helper()
	w, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return w
}

// randRecord returns a record of n pseudo-random bytes.
func randRecord(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// writeRecords appends recs to w, waits for each, and returns their Pos.
func writeRecords(t *testing.T, w *WAL, recs [][]byte) []Pos {
	t.Helper()
	ps := make([]Pos, len(recs))
	for i, r := range recs {
		p, err := w.Append(r)
		if err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		if err := w.Wait(context.Background(), p); err != nil {
			t.Fatalf("Wait %d: %v", i, err)
		}
		ps[i] = p
	}
	return ps
}

func checkReplayed(t *testing.T, got []replayed, recs [][]byte, ps []Pos) {
	t.Helper()
	if len(got) != len(recs) {
		t.Fatalf("replayed %d records, want %d", len(got), len(recs))
	}
	for i := range recs {
		if !bytes.Equal(got[i].rec, recs[i]) {
			t.Fatalf("record %d: got %d bytes, want %d (content differs)", i, len(got[i].rec), len(recs[i]))
		}
		if got[i].pos != ps[i] {
			t.Fatalf("record %d: pos %v, want %v", i, got[i].pos, ps[i])
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, mode := range []SyncMode{SyncGroup, SyncEveryWrite, SyncNone} {
		t.Run(mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			const segSize = 4096
			w := openWAL(t, Options{Dir: dir, SegmentSize: segSize, Sync: mode, GroupWindow: 100 * time.Microsecond})
			rng := rand.New(rand.NewPCG(1, uint64(mode)))
			var recs [][]byte
			for i := range 300 {
				n := rng.IntN(1500)
				if i%50 == 7 {
					n = 2 * segSize // larger than a segment: goes in alone
				}
				if i%40 == 3 {
					n = 0
				}
				recs = append(recs, randRecord(rng, n))
			}
			ps := writeRecords(t, w, recs)
			if err := w.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			got, rep := replayAll(t, dir, 0)
			checkReplayed(t, got, recs, ps)
			if len(rep.Cuts) != 0 || len(rep.Gaps) != 0 {
				t.Fatalf("unexpected cuts %v gaps %v", rep.Cuts, rep.Gaps)
			}
			if rep.Segments < 10 {
				t.Fatalf("only %d segments: rotation not exercised", rep.Segments)
			}
			// Every segment holds at most SegmentSize bytes, unless it holds a
			// single oversized record.
			segs, err := ListSegments(dir)
			if err != nil {
				t.Fatal(err)
			}
			perSeg := map[uint64]int{}
			for _, p := range ps {
				perSeg[p.Segment]++
			}
			for _, n := range segs {
				fi, err := os.Stat(filepath.Join(dir, segmentName(n)))
				if err != nil {
					t.Fatal(err)
				}
				if fi.Size() > segSize && perSeg[n] != 1 {
					t.Errorf("segment %d: %d bytes with %d records", n, fi.Size(), perSeg[n])
				}
			}
		})
	}
}

// buildDir writes segments of records to a new directory: a WAL with a
// small SegmentSize, so that nSegs segments are made, the last one small.
func buildDir(t *testing.T, rng *rand.Rand, nRecs int) (string, [][]byte, []Pos) {
	t.Helper()
	dir := t.TempDir()
	w := openWAL(t, Options{Dir: dir, SegmentSize: 1024, Sync: SyncNone})
	var recs [][]byte
	for range nRecs {
		recs = append(recs, randRecord(rng, 1+rng.IntN(300)))
	}
	ps := writeRecords(t, w, recs)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, recs, ps
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func TestReplayTornTail(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	src, recs, ps := buildDir(t, rng, 40)
	segs, _ := ListSegments(src)
	last := segs[len(segs)-1]
	// The records of the last segment, and where each one ends.
	var before int
	ends := map[int64]int{SegmentHeaderSize: 0} // offset -> records of last segment ending at or before it
	for i, p := range ps {
		if p.Segment < last {
			before = i + 1
			continue
		}
		ends[p.Offset] = i + 1 - before
	}
	full, err := os.ReadFile(filepath.Join(src, segmentName(last)))
	if err != nil {
		t.Fatal(err)
	}
	if len(full) > 2000 {
		t.Fatalf("last segment is %d bytes; want a small one", len(full))
	}
	for size := 0; size <= len(full); size++ {
		dir := copyDir(t, src)
		path := filepath.Join(dir, segmentName(last))
		if err := os.Truncate(path, int64(size)); err != nil {
			t.Fatal(err)
		}
		// The intact prefix: the last record boundary at or before size.
		good, nLast := int64(0), 0
		for off, n := range ends {
			if off <= int64(size) && off >= good {
				good, nLast = off, n
			}
		}
		wantCut := size != 0 && int64(size) != good
		// Read-only first: the same records and the same cut reported,
		// and the file untouched.
		var roGot []replayed
		roRep, err := ReplayReadOnly(dir, 0, func(p Pos, rec []byte) error {
			roGot = append(roGot, replayed{p, bytes.Clone(rec)})
			return nil
		}, nil)
		if err != nil {
			t.Fatalf("size %d: ReplayReadOnly: %v", size, err)
		}
		checkReplayed(t, roGot, recs[:before+nLast], ps[:before+nLast])
		if (len(roRep.Cuts) == 1) != wantCut {
			t.Fatalf("size %d: read-only replay reported cuts %+v, want a cut: %v", size, roRep.Cuts, wantCut)
		}
		if fi, err := os.Stat(path); err != nil || fi.Size() != int64(size) {
			t.Fatalf("size %d: read-only replay changed the file: %v, %v", size, fi.Size(), err)
		}
		got, rep := replayAll(t, dir, 0)
		checkReplayed(t, got, recs[:before+nLast], ps[:before+nLast])
		if wantCut {
			if len(rep.Cuts) != 1 || rep.Cuts[0].Segment != last || rep.Cuts[0].Offset != good || rep.Cuts[0].Dropped != int64(size)-good {
				t.Fatalf("size %d: cuts %+v, want one at %d:%d dropping %d", size, rep.Cuts, last, good, int64(size)-good)
			}
		} else if len(rep.Cuts) != 0 {
			t.Fatalf("size %d: unexpected cuts %+v", size, rep.Cuts)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if want := int64(size); wantCut {
			if fi.Size() != good {
				t.Fatalf("size %d: file is %d bytes after the cut, want %d", size, fi.Size(), good)
			}
		} else if fi.Size() != want {
			t.Fatalf("size %d: file changed to %d bytes without a cut", size, fi.Size())
		}
		got2, rep2 := replayAll(t, dir, 0)
		if len(rep2.Cuts) != 0 {
			t.Fatalf("size %d: second replay cut again: %+v", size, rep2.Cuts)
		}
		checkReplayed(t, got2, recs[:before+nLast], ps[:before+nLast])
	}
}

func TestReplayCorruptMiddle(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	src, recs, ps := buildDir(t, rng, 60)
	segs, _ := ListSegments(src)
	if len(segs) < 4 {
		t.Fatalf("only %d segments", len(segs))
	}
	victim := segs[1]
	// Records of the victim segment: indexes lo..hi-1.
	lo, hi := -1, -1
	for i, p := range ps {
		if p.Segment == victim {
			if lo < 0 {
				lo = i
			}
			hi = i + 1
		}
	}
	if hi-lo < 3 {
		t.Fatalf("victim segment has %d records", hi-lo)
	}
	mid := lo + (hi-lo)/2 // the record that is damaged
	start := ps[mid-1].Offset
	if ps[mid-1].Segment != victim {
		start = SegmentHeaderSize
	}
	cases := []struct {
		name     string
		at       int64 // offset of the flipped byte
		keep     int   // records of the victim segment that survive
		cutAt    int64
		inReason string
	}{
		{"payload", start + RecordHeaderSize + 1, mid - lo, start, "checksum"},
		{"crc", start + 5, mid - lo, start, "checksum"},
		{"length-low", start + 3, mid - lo, start, ""}, // checksum mismatch or short payload
		{"length-high", start, mid - lo, start, "bad length"},
		{"segment-header", 2, 0, 0, "wal segment header"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t, src)
			path := filepath.Join(dir, segmentName(victim))
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b[tc.at] ^= 0x80
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			got, rep := replayAll(t, dir, 0)
			var wantRecs [][]byte
			var wantPs []Pos
			for i := range recs {
				if ps[i].Segment == victim && i >= lo+tc.keep {
					continue
				}
				wantRecs = append(wantRecs, recs[i])
				wantPs = append(wantPs, ps[i])
			}
			checkReplayed(t, got, wantRecs, wantPs)
			if len(rep.Cuts) != 1 {
				t.Fatalf("cuts %+v, want one", rep.Cuts)
			}
			c := rep.Cuts[0]
			if c.Segment != victim || c.Offset != tc.cutAt || c.Dropped != int64(len(b))-tc.cutAt {
				t.Fatalf("cut %+v, want segment %d offset %d dropping %d", c, victim, tc.cutAt, int64(len(b))-tc.cutAt)
			}
			if !bytes.Contains([]byte(c.Reason), []byte(tc.inReason)) {
				t.Fatalf("cut reason %q lacks %q", c.Reason, tc.inReason)
			}
			if _, rep2 := replayAll(t, dir, 0); len(rep2.Cuts) != 0 {
				t.Fatalf("second replay cut again: %+v", rep2.Cuts)
			}
		})
	}
}

func TestReplayEmpty(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"missing": filepath.Join(dir, "nope"),
		"empty":   dir,
	}
	zero := t.TempDir()
	if err := os.WriteFile(filepath.Join(zero, segmentName(7)), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cases["zero-length segment"] = zero
	for name, d := range cases {
		t.Run(name, func(t *testing.T) {
			got, rep := replayAll(t, d, 0)
			if len(got) != 0 || rep.Records != 0 || len(rep.Cuts) != 0 {
				t.Fatalf("got %d records, report %+v", len(got), rep)
			}
		})
	}
}

func TestReplayFnError(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	dir, _, _ := buildDir(t, rng, 20)
	stop := errors.New("stop here")
	calls := 0
	_, err := Replay(dir, 0, func(Pos, []byte) error {
		calls++
		if calls == 5 {
			return stop
		}
		return nil
	}, nil)
	if !errors.Is(err, stop) {
		t.Fatalf("Replay error %v, want one wrapping %v", err, stop)
	}
	if calls != 5 {
		t.Fatalf("fn called %d times after its error", calls)
	}
}

func TestReplayFromAndGaps(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	dir, recs, ps := buildDir(t, rng, 60)
	segs, _ := ListSegments(dir)
	from := segs[2]
	got, rep := replayAll(t, dir, from)
	var i0 int
	for ps[i0].Segment < from {
		i0++
	}
	checkReplayed(t, got, recs[i0:], ps[i0:])
	if rep.First != from || rep.Last != segs[len(segs)-1] {
		t.Fatalf("report first %d last %d", rep.First, rep.Last)
	}
	// Delete a middle segment: reported as a gap, the rest still replayed.
	gone := segs[3]
	if err := os.Remove(filepath.Join(dir, segmentName(gone))); err != nil {
		t.Fatal(err)
	}
	_, rep = replayAll(t, dir, 0)
	if len(rep.Gaps) != 1 || rep.Gaps[0] != (Gap{gone, gone}) {
		t.Fatalf("gaps %+v, want [%d %d]", rep.Gaps, gone, gone)
	}
}

func TestReplayUnknownVersion(t *testing.T) {
	dir := t.TempDir()
	h := encodeSegmentHeader(1)
	h[4] = 9 // a version from the future, with a valid checksum
	copy(h[SegmentHeaderSize-4:], crcBE(h[:SegmentHeaderSize-4]))
	if err := os.WriteFile(filepath.Join(dir, segmentName(1)), h, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Replay(dir, 0, func(Pos, []byte) error { return nil }, nil)
	if !errors.Is(err, ErrUnknownVersion) {
		t.Fatalf("Replay error %v, want ErrUnknownVersion", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, segmentName(1))); len(b) != SegmentHeaderSize {
		t.Fatalf("segment of an unknown version was cut to %d bytes", len(b))
	}
}

func TestCutAndTruncate(t *testing.T) {
	dir := t.TempDir()
	w := openWAL(t, Options{Dir: dir, Sync: SyncEveryWrite})
	first := w.Stats().Segment
	ctx := context.Background()
	// Cut of an empty segment keeps it.
	if n, err := w.Cut(); err != nil || n != first {
		t.Fatalf("Cut of empty segment = %d, %v; want %d", n, err, first)
	}
	var before, after []Pos
	for range 3 {
		p, _ := w.Append([]byte("before"))
		before = append(before, p)
	}
	n, err := w.Cut()
	if err != nil {
		t.Fatal(err)
	}
	if n != first+1 {
		t.Fatalf("Cut = %d, want %d", n, first+1)
	}
	for _, p := range before {
		if p.Segment >= n {
			t.Fatalf("record before Cut at %v, not below %d", p, n)
		}
		if err := w.Wait(ctx, p); err != nil { // durable already: Cut fsynced
			t.Fatal(err)
		}
	}
	for range 3 {
		p, _ := w.Append([]byte("after"))
		after = append(after, p)
		if p.Segment < n {
			t.Fatalf("record after Cut at %v, below %d", p, n)
		}
	}
	if err := w.Truncate(n + 1); err == nil {
		t.Fatal("Truncate past the current segment succeeded")
	}
	if err := w.Truncate(n); err != nil {
		t.Fatal(err)
	}
	segs, _ := ListSegments(dir)
	if len(segs) != 1 || segs[0] != n {
		t.Fatalf("segments after Truncate(%d): %v", n, segs)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, _ := replayAll(t, dir, 0)
	if len(got) != 3 || string(got[0].rec) != "after" || got[2].pos != after[2] {
		t.Fatalf("replayed %+v", got)
	}
}

func TestOpenAppendsToNewSegment(t *testing.T) {
	dir := t.TempDir()
	w := openWAL(t, Options{Dir: dir, Sync: SyncNone})
	p1, _ := w.Append([]byte("one"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// A torn tail after the last record: Open must not append after it.
	path := filepath.Join(dir, segmentName(p1.Segment))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0, 0, 0})
	f.Close()
	// A half-created segment left by a crash.
	tmp := filepath.Join(dir, segmentName(p1.Segment+1)+tmpSuffix)
	os.WriteFile(tmp, []byte("junk"), 0o644)

	got, rep := replayAll(t, dir, 0)
	if len(got) != 1 || len(rep.Cuts) != 1 {
		t.Fatalf("replay: %d records, cuts %+v", len(got), rep.Cuts)
	}
	w = openWAL(t, Options{Dir: dir, Sync: SyncNone})
	p2, _ := w.Append([]byte("two"))
	if p2.Segment != p1.Segment+1 || p2.Offset != SegmentHeaderSize+RecordHeaderSize+3 {
		t.Fatalf("second Open appended at %v, want a new segment %d", p2, p1.Segment+1)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open left the temporary file: %v", err)
	}
	w.Close()
	got, rep = replayAll(t, dir, 0)
	if len(got) != 2 || string(got[1].rec) != "two" || got[1].pos != p2 || len(rep.Cuts) != 0 {
		t.Fatalf("replayed %+v, cuts %+v", got, rep.Cuts)
	}

	// MinSegment keeps numbering from going back in an emptied directory.
	empty := t.TempDir()
	w = openWAL(t, Options{Dir: empty, MinSegment: 42})
	if s := w.Stats().Segment; s != 42 {
		t.Fatalf("segment %d, want 42", s)
	}
	w.Close()
}

func TestClosed(t *testing.T) {
	for _, mode := range []SyncMode{SyncGroup, SyncEveryWrite, SyncNone} {
		t.Run(mode.String(), func(t *testing.T) {
			w := openWAL(t, Options{Dir: t.TempDir(), Sync: mode})
			p, err := w.Append([]byte("x"))
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if err := w.Wait(context.Background(), p); !errors.Is(err, ErrClosed) {
				t.Fatalf("Wait after Close: %v", err)
			}
			if _, err := w.Append([]byte("y")); !errors.Is(err, ErrClosed) {
				t.Fatalf("Append after Close: %v", err)
			}
			if _, err := w.Cut(); !errors.Is(err, ErrClosed) {
				t.Fatalf("Cut after Close: %v", err)
			}
			if err := w.Close(); !errors.Is(err, ErrClosed) {
				t.Fatalf("second Close: %v", err)
			}
		})
	}
}

func TestCloseWithPendingWaiters(t *testing.T) {
	w := openWAL(t, Options{Dir: t.TempDir(), Sync: SyncGroup, GroupWindow: time.Hour})
	ctx := context.Background()
	p, _ := w.Append([]byte("first")) // the first fsync is immediate
	if err := w.Wait(ctx, p); err != nil {
		t.Fatal(err)
	}
	const waiters = 8
	errs := make(chan error, waiters)
	for range waiters {
		p, err := w.Append([]byte("pending"))
		if err != nil {
			t.Fatal(err)
		}
		go func() { errs <- w.Wait(ctx, p) }()
	}
	time.Sleep(20 * time.Millisecond) // let them block
	start := time.Now()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close took %v with waiters pending", d)
	}
	for range waiters {
		select {
		case err := <-errs:
			if !errors.Is(err, ErrClosed) {
				t.Fatalf("pending Wait returned %v, want ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a Wait is still blocked after Close")
		}
	}
}

func TestWaitContext(t *testing.T) {
	w := openWAL(t, Options{Dir: t.TempDir(), Sync: SyncGroup, GroupWindow: time.Hour})
	defer w.Close()
	p, _ := w.Append([]byte("a"))
	w.Wait(context.Background(), p)
	p, _ = w.Append([]byte("b"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := w.Wait(ctx, p); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait = %v, want deadline exceeded", err)
	}
	if err := w.Wait(context.Background(), Pos{p.Segment, p.Offset + 1}); err == nil {
		t.Fatal("Wait for a position never appended succeeded")
	}
}

func TestGroupCommitCoalesces(t *testing.T) {
	const window = 20 * time.Millisecond
	var fsyncs atomic.Int64
	w := openWAL(t, Options{
		Dir: t.TempDir(), Sync: SyncGroup, GroupWindow: window,
		OnSync: func(time.Duration, error) { fsyncs.Add(1) },
	})
	const writers, each = 8, 25
	start := time.Now()
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range each {
				p, err := w.Append(make([]byte, 1000))
				if err != nil {
					t.Error(err)
					return
				}
				if err := w.Wait(context.Background(), p); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	n := fsyncs.Load()
	// At most one fsync per window (plus the first, which is immediate).
	if limit := int64(elapsed/window) + 2; n > limit {
		t.Fatalf("%d fsyncs in %v: more than one per %v window", n, elapsed, window)
	}
	if n >= writers*each/2 {
		t.Fatalf("%d fsyncs for %d records: not coalescing", n, writers*each)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d records, %d fsyncs, %v", writers*each, n, elapsed)
}

func TestSyncEveryWriteConcurrent(t *testing.T) {
	var fsyncs atomic.Int64
	w := openWAL(t, Options{
		Dir: t.TempDir(), Sync: SyncEveryWrite, SegmentSize: 64 << 10,
		OnSync: func(time.Duration, error) { fsyncs.Add(1) },
	})
	const writers, each = 8, 30
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				p, err := w.Append(bytes.Repeat([]byte{byte(g)}, 500+i))
				if err != nil {
					t.Error(err)
					return
				}
				if err := w.Wait(context.Background(), p); err != nil {
					t.Error(err)
					return
				}
				w.mu.Lock()
				synced := w.mu.synced
				w.mu.Unlock()
				if synced.Less(p) {
					t.Errorf("Wait returned before %v was synced (%v)", p, synced)
				}
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if n := fsyncs.Load(); n > writers*each+int64(w.Stats().Segments)+1 {
		t.Fatalf("%d fsyncs for %d records", n, writers*each)
	}
	t.Logf("%d records, %d fsyncs", writers*each, fsyncs.Load())
}

func TestRecordTooLarge(t *testing.T) {
	w := openWAL(t, Options{Dir: t.TempDir(), MaxRecordSize: 100})
	defer w.Close()
	if _, err := w.Append(make([]byte, 101)); !errors.Is(err, ErrRecordTooLarge) {
		t.Fatalf("Append of 101 bytes: %v", err)
	}
	if _, err := w.Append(make([]byte, 100)); err != nil {
		t.Fatalf("Append of 100 bytes: %v", err)
	}
}

func TestFailedWALRefusesWrites(t *testing.T) {
	var syncErrs atomic.Int64
	w := openWAL(t, Options{Dir: t.TempDir(), Sync: SyncEveryWrite,
		OnSync: func(_ time.Duration, err error) {
			if err != nil {
				syncErrs.Add(1)
			}
		}})
	// Pull the file out from under the WAL: the next write fails.
	w.mu.Lock()
	w.mu.seg.Close()
	w.mu.Unlock()
	if _, err := w.Append([]byte("x")); err == nil {
		t.Fatal("Append to a closed file succeeded")
	}
	if _, err := w.Append([]byte("y")); err == nil {
		t.Fatal("Append after a failure succeeded")
	}
	if err := w.Wait(context.Background(), Pos{1, SegmentHeaderSize}); err == nil {
		t.Fatal("Wait after a failure succeeded")
	}
	w.Close()
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		o    Options
		ok   bool
	}{
		{"defaults", Options{Dir: "d"}, true},
		{"no dir", Options{}, false},
		{"tiny segment", Options{Dir: "d", SegmentSize: 10}, false},
		{"bad mode", Options{Dir: "d", Sync: SyncMode(9)}, false},
		{"negative window", Options{Dir: "d", GroupWindow: -1}, false},
		{"huge record", Options{Dir: "d", MaxRecordSize: MaxRecordLen + 1}, false},
		{"all set", DefaultOptions("d"), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.o.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestPosLess(t *testing.T) {
	cases := []struct {
		a, b Pos
		less bool
	}{
		{Pos{1, 5}, Pos{1, 6}, true},
		{Pos{1, 6}, Pos{1, 5}, false},
		{Pos{1, 500}, Pos{2, 20}, true},
		{Pos{2, 20}, Pos{2, 20}, false},
		{Pos{}, Pos{1, 20}, true},
	}
	for _, tc := range cases {
		if got := tc.a.Less(tc.b); got != tc.less {
			t.Errorf("%v.Less(%v) = %v", tc.a, tc.b, got)
		}
	}
}
