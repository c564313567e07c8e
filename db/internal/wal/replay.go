package wal

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/tracedb/tracedb/encoding"
)

// ReplayReport says what Replay read and what it cut.
type ReplayReport struct {
	Segments int    // segment files read
	First    uint64 // number of the first segment read; 0 when none
	Last     uint64 // number of the last segment read; 0 when none
	Records  int    // intact records passed to fn
	Bytes    int64  // payload bytes passed to fn
	Cuts     []ReplayCut
	// Gaps lists missing segment numbers between the first and the last
	// segment read: records lost outside the WAL's control (a deleted file).
	Gaps []Gap
}

// ReplayCut describes a torn or corrupt tail that Replay cut off a segment.
type ReplayCut struct {
	Segment uint64
	Offset  int64  // the segment's new length: the end of its last intact record
	Reason  string // what was wrong at Offset
	Dropped int64  // bytes removed
}

// Gap is a run of missing segment numbers, From to To inclusive.
type Gap struct{ From, To uint64 }

// replayBufSize is the read buffer of Replay. Payloads at least this large
// are read straight into the record buffer.
const replayBufSize = 256 << 10

// Replay reads the segments of dir numbered from and above, in order, and
// calls fn for each intact record with the position just after it. The rec
// slice is only valid during the call. Replay runs before Open on the same
// directory, never concurrently with a WAL on it.
//
// A torn or corrupt record (short header, short payload, bad length,
// checksum mismatch) or segment header ends the intact prefix of its
// segment: Replay truncates the segment file to that prefix and fsyncs it,
// so that a later replay cannot apply anything past it, logs a warning,
// records a ReplayCut, and goes on with the next segment, whose records are
// unaffected. Corruption is never returned as an error.
//
// Replay returns an I/O error as an error, fn's error as soon as fn returns
// one (wrapped, so errors.Is sees it), and an error wrapping
// ErrUnknownVersion for a segment written by a newer format. A missing or
// empty dir, or an empty segment file, holds nothing to replay. A nil logger
// discards.
func Replay(dir string, from uint64, fn func(p Pos, rec []byte) error, logger *slog.Logger) (ReplayReport, error) {
	return replay(dir, from, fn, logger, false)
}

// ReplayReadOnly is Replay for a reader that must not change the files: a
// torn or corrupt tail is skipped and reported, not cut.
func ReplayReadOnly(dir string, from uint64, fn func(p Pos, rec []byte) error, logger *slog.Logger) (ReplayReport, error) {
	return replay(dir, from, fn, logger, true)
}

func replay(dir string, from uint64, fn func(p Pos, rec []byte) error, logger *slog.Logger, readOnly bool) (ReplayReport, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var rep ReplayReport
	segs, err := ListSegments(dir)
	if err != nil {
		return rep, fmt.Errorf("wal replay: %w", err)
	}
	var buf *bufio.Reader
	for _, n := range segs {
		if n < from {
			continue
		}
		if rep.Segments > 0 && n != rep.Last+1 {
			g := Gap{From: rep.Last + 1, To: n - 1}
			rep.Gaps = append(rep.Gaps, g)
			logger.Warn("wal replay: segments missing", "dir", dir, "from", g.From, "to", g.To)
		}
		if rep.Segments == 0 {
			rep.First = n
		}
		rep.Segments++
		rep.Last = n
		if buf == nil {
			buf = bufio.NewReaderSize(nil, replayBufSize)
		}
		if err := replaySegment(dir, n, buf, fn, &rep, logger, readOnly); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// replaySegment replays segment n into fn, cutting a bad tail.
func replaySegment(dir string, n uint64, buf *bufio.Reader, fn func(Pos, []byte) error, rep *ReplayReport, logger *slog.Logger, readOnly bool) error {
	path := filepath.Join(dir, segmentName(n))
	flag := os.O_RDWR
	if readOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return fmt.Errorf("wal replay: %w", err)
	}
	defer f.Close()
	buf.Reset(f)
	r := NewSegmentReader(buf)
	r.want, r.checkWant = n, true
	for r.Next() {
		rec := r.Record()
		if err := fn(Pos{n, r.Offset()}, rec); err != nil {
			return fmt.Errorf("wal replay: segment %d offset %d: %w", n, r.Offset(), err)
		}
		rep.Records++
		rep.Bytes += int64(len(rec))
	}
	err = r.Err()
	if err == nil {
		return nil
	}
	if !errors.Is(err, encoding.ErrCorrupt) {
		return fmt.Errorf("wal replay: segment %d: %w", n, err)
	}
	return cutSegment(f, n, r.Good(), err, rep, logger, readOnly)
}

// cutSegment truncates segment n (open as f) to good bytes and records it.
func cutSegment(f *os.File, n uint64, good int64, why error, rep *ReplayReport, logger *slog.Logger, readOnly bool) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("wal replay: %w", err)
	}
	dropped := fi.Size() - good
	if !readOnly {
		if err := f.Truncate(good); err != nil {
			return fmt.Errorf("wal replay: cut segment %d: %w", n, err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("wal replay: cut segment %d: %w", n, err)
		}
	}
	reason := why.Error()
	var ce *encoding.CorruptionError
	if errors.As(why, &ce) {
		reason = ce.What + ": " + ce.Reason
	}
	rep.Cuts = append(rep.Cuts, ReplayCut{Segment: n, Offset: good, Reason: reason, Dropped: dropped})
	logger.Warn("wal replay: cut torn or corrupt segment tail",
		"segment", n, "offset", good, "dropped_bytes", dropped, "reason", reason)
	return nil
}
