// Package wal is tracedb's write-ahead log: the store appends each accepted
// batch as one opaque record and acknowledges it only once the record is
// durable; on open it replays the records that no flushed block covers yet.
//
// The log is a directory of numbered segment files (the format is in wal.md
// beside this file). A WAL appends only to the newest segment, which it
// creates itself at Open: it never appends after a tail it did not write, so
// a torn tail left by a crash stays the last bytes of its segment, where
// Replay finds it and cuts it off.
//
// Life cycle, as the store uses it:
//
//	report, err := wal.Replay(dir, from, apply, logger) // before Open
//	w, err := wal.Open(opts)                           // appends go to a new segment
//	p, err := w.Append(rec); err = w.Wait(ctx, p)      // per write
//	next, err := w.Cut()                               // before flushing the head
//	err = w.Truncate(next)                             // after the flush is durable
//	err = w.Close()
package wal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// SyncMode says when Wait reports a record durable.
type SyncMode int

const (
	// SyncGroup: a background syncer fsyncs the current segment while there
	// is unsynced data, at most once per GroupWindow; Wait returns after the
	// fsync that covers its record. Concurrent writers share that fsync.
	// The zero SyncMode, and the default.
	SyncGroup SyncMode = iota
	// SyncEveryWrite: Wait fsyncs before it returns. Waiters that arrive
	// while an fsync runs wait for it and then one of them (the leader)
	// fsyncs once for all of them.
	SyncEveryWrite
	// SyncNone: Wait returns at once; the record is in the OS page cache,
	// which survives the process being killed but not the machine losing
	// power. Segments are still fsynced when they are rotated, cut and
	// closed.
	SyncNone
)

func (m SyncMode) String() string {
	switch m {
	case SyncGroup:
		return "group"
	case SyncEveryWrite:
		return "every-write"
	case SyncNone:
		return "none"
	}
	return fmt.Sprintf("SyncMode(%d)", int(m))
}

// Defaults of Options.
const (
	DefaultSegmentSize   = 128 << 20
	DefaultGroupWindow   = 2 * time.Millisecond
	DefaultMaxRecordSize = 64 << 20
	// MinSegmentSize is the smallest SegmentSize Validate accepts.
	MinSegmentSize = 64
)

// ErrClosed is returned by every method of a WAL once Close has begun,
// including Wait for a record that Close's final fsync made durable: a
// caller that sees it must treat the write as not acknowledged.
var ErrClosed = errors.New("wal: closed")

// Options configure a WAL. The zero value of each field but Dir means its
// default.
type Options struct {
	// Dir is the directory of the segment files. Open creates it.
	Dir string
	// SegmentSize is the size at which a segment is rotated: a record that
	// would take the current segment past it goes to a new one. A record
	// larger than SegmentSize still goes in, alone in its segment.
	// Default 128 MiB.
	SegmentSize int64
	// Sync is when Wait reports a record durable. Default SyncGroup.
	Sync SyncMode
	// GroupWindow is the least time between two fsyncs in SyncGroup mode:
	// the fsync of a record waits at most this long for company. Default 2ms.
	GroupWindow time.Duration
	// MaxRecordSize is the largest record Append accepts. At most
	// MaxRecordLen. Default 64 MiB.
	MaxRecordSize int
	// MinSegment is the least number Open gives its new segment: the store
	// passes the segment it will next replay from, so that numbering never
	// goes back below it even if the directory was emptied. Default 1.
	MinSegment uint64
	// Logger receives the WAL's rare events (segment rotation, failures).
	// Default: a logger that discards.
	Logger *slog.Logger
	// OnSync, when set, is called after every fsync of segment data with how
	// long it took and its error. It is the hook for metrics and for tests
	// that count fsyncs. It runs on the syncing goroutine and must be quick.
	OnSync func(took time.Duration, err error)
}

// DefaultOptions returns the options with every default filled in.
func DefaultOptions(dir string) Options {
	o := Options{Dir: dir}
	o.fillDefaults()
	return o
}

func (o *Options) fillDefaults() {
	if o.SegmentSize == 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	if o.GroupWindow == 0 {
		o.GroupWindow = DefaultGroupWindow
	}
	if o.MaxRecordSize == 0 {
		o.MaxRecordSize = DefaultMaxRecordSize
	}
	if o.MinSegment == 0 {
		o.MinSegment = 1
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports the first invalid option. Zero values stand for their
// defaults and are valid.
func (o *Options) Validate() error {
	switch {
	case o.Dir == "":
		return errors.New("wal options: Dir is empty")
	case o.SegmentSize != 0 && o.SegmentSize < MinSegmentSize:
		return fmt.Errorf("wal options: SegmentSize %d is below %d", o.SegmentSize, MinSegmentSize)
	case o.Sync < SyncGroup || o.Sync > SyncNone:
		return fmt.Errorf("wal options: unknown %v", o.Sync)
	case o.GroupWindow < 0:
		return fmt.Errorf("wal options: GroupWindow %v is negative", o.GroupWindow)
	case o.MaxRecordSize < 0 || o.MaxRecordSize > MaxRecordLen:
		return fmt.Errorf("wal options: MaxRecordSize %d is outside 0..%d", o.MaxRecordSize, MaxRecordLen)
	}
	return nil
}

// Pos is the position just after a record: its segment and the offset in
// that segment where the next record starts. Positions are ordered by
// segment, then offset; the zero Pos is before every record.
type Pos struct {
	Segment uint64
	Offset  int64
}

// Less reports whether p is before q.
func (p Pos) Less(q Pos) bool {
	if p.Segment != q.Segment {
		return p.Segment < q.Segment
	}
	return p.Offset < q.Offset
}

func (p Pos) String() string { return fmt.Sprintf("%d:%d", p.Segment, p.Offset) }

// Stats are counters of a WAL since Open.
type Stats struct {
	Appends      uint64 // records appended
	AppendBytes  uint64 // bytes written for them, frame headers included
	Syncs        uint64 // fsyncs of segment data
	Segments     uint64 // segments created
	Segment      uint64 // the current segment's number
	SyncedOffset int64  // durable offset in the current segment
}

// WAL appends records to the newest segment of a directory and makes them
// durable. Append, Wait, Cut, Truncate, Stats and Close are safe for
// concurrent use. Records are appended in the order Append calls take the
// internal lock; a record's Pos orders it among all others.
type WAL struct {
	opts Options
	log  *slog.Logger

	kick chan struct{} // SyncGroup: there is unsynced data; buffered 1
	quit chan struct{} // closed by Close to stop the syncer
	done chan struct{} // closed by the syncer when it returns

	appends, appendBytes, syncs, segments atomic.Uint64

	mu struct {
		sync.Mutex
		seg     *os.File
		segNum  uint64
		size    int64 // bytes in seg, header included
		written Pos   // just after the last appended record
		synced  Pos   // everything before it is durable
		syncing bool  // an fsync of seg is running outside the lock
		closed  bool
		err     error         // the failure that stopped the WAL, sticky
		changed chan struct{} // closed and replaced when synced, err or closed change
	}
}

// Open opens the WAL in opts.Dir for appending, creating the directory if
// needed. Appends go to a new segment numbered after the highest existing
// one (and at least opts.MinSegment). Call Replay before Open to read what
// the directory holds. Open removes segment files left half-created by a
// crash.
func Open(opts Options) (*WAL, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.fillDefaults()
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("open wal: %w", err)
	}
	if err := removeTemps(opts.Dir); err != nil {
		return nil, fmt.Errorf("open wal: %w", err)
	}
	segs, err := ListSegments(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("open wal: %w", err)
	}
	next := opts.MinSegment
	if len(segs) > 0 && segs[len(segs)-1] >= next {
		next = segs[len(segs)-1] + 1
	}
	f, err := createSegment(opts.Dir, next)
	if err != nil {
		return nil, fmt.Errorf("open wal: %w", err)
	}
	w := &WAL{
		opts: opts,
		log:  opts.Logger,
		kick: make(chan struct{}, 1),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	w.segments.Add(1)
	w.mu.seg = f
	w.mu.segNum = next
	w.mu.size = SegmentHeaderSize
	w.mu.written = Pos{next, SegmentHeaderSize}
	w.mu.synced = w.mu.written
	w.mu.changed = make(chan struct{})
	if opts.Sync == SyncGroup {
		go w.syncLoop()
	} else {
		close(w.done)
	}
	w.log.Debug("wal opened", "dir", opts.Dir, "segment", next, "sync", opts.Sync.String())
	return w, nil
}

// Append writes rec as one record at the end of the log and returns the
// position just after it. The record is in the OS page cache when Append
// returns; Wait says when it is durable. Append does not keep rec.
//
// Append fails with an error wrapping ErrRecordTooLarge for a record over
// MaxRecordSize, with ErrClosed after Close, and with the WAL's failure
// after a write, fsync or rotation error: the WAL then refuses every later
// Append, since the bytes of a failed write are in an unknown state.
func (w *WAL) Append(rec []byte) (Pos, error) {
	if len(rec) > w.opts.MaxRecordSize {
		return Pos{}, fmt.Errorf("%w: %d bytes, limit %d", ErrRecordTooLarge, len(rec), w.opts.MaxRecordSize)
	}
	var hdr [RecordHeaderSize]byte
	putRecordHeader(hdr[:], rec) // the checksum, outside the lock
	frame := int64(RecordHeaderSize + len(rec))

	w.mu.Lock()
	if err := w.usableLocked(); err != nil {
		w.mu.Unlock()
		return Pos{}, err
	}
	if w.mu.size+frame > w.opts.SegmentSize && w.mu.size > SegmentHeaderSize {
		if err := w.rotateLocked(); err != nil {
			w.mu.Unlock()
			return Pos{}, err
		}
	}
	if err := writeFrame(w.mu.seg, hdr[:], rec); err != nil {
		err = w.failLocked(fmt.Errorf("wal append to segment %d: %w", w.mu.segNum, err))
		w.mu.Unlock()
		return Pos{}, err
	}
	w.mu.size += frame
	p := Pos{w.mu.segNum, w.mu.size}
	w.mu.written = p
	w.mu.Unlock()

	w.appends.Add(1)
	w.appendBytes.Add(uint64(frame))
	if w.opts.Sync == SyncGroup {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
	return p, nil
}

// Wait blocks until the record that ends at p is durable per the sync mode
// (in SyncNone mode it returns at once), ctx is done (ctx.Err()), or the
// WAL failed (its failure) or was closed (ErrClosed). p must be a position
// Append returned.
func (w *WAL) Wait(ctx context.Context, p Pos) error {
	for {
		w.mu.Lock()
		if err := w.usableLocked(); err != nil {
			w.mu.Unlock()
			return err
		}
		if !w.mu.synced.Less(p) || w.opts.Sync == SyncNone {
			w.mu.Unlock()
			return nil
		}
		if w.mu.written.Less(p) {
			w.mu.Unlock()
			return fmt.Errorf("wal wait: position %v was never appended (last %v)", p, w.mu.written)
		}
		if w.opts.Sync == SyncEveryWrite && !w.mu.syncing {
			w.mu.Unlock()
			w.syncOnce() // lead: one fsync for everyone waiting
			continue
		}
		changed := w.mu.changed
		w.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Cut fsyncs and closes the current segment and starts a new one, and
// returns the new segment's number n: every record appended before Cut is in
// a segment below n, every record appended after it in n or above. When
// the current segment holds no record yet, Cut keeps it and returns its
// number, which satisfies the same contract.
func (w *WAL) Cut() (uint64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usableLocked(); err != nil {
		return 0, err
	}
	if w.mu.size > SegmentHeaderSize {
		if err := w.rotateLocked(); err != nil {
			return 0, err
		}
	}
	return w.mu.segNum, nil
}

// Truncate deletes the segments numbered below before, which the store has
// flushed into blocks, and fsyncs the directory. before may be at most the
// current segment's number (the current segment is never deleted).
func (w *WAL) Truncate(before uint64) error {
	w.mu.Lock()
	err := w.usableLocked()
	cur := w.mu.segNum
	w.mu.Unlock()
	if err != nil {
		return err
	}
	if before > cur {
		return fmt.Errorf("wal truncate before %d: past the current segment %d", before, cur)
	}
	segs, err := ListSegments(w.opts.Dir)
	if err != nil {
		return fmt.Errorf("wal truncate: %w", err)
	}
	removed := 0
	for _, n := range segs {
		if n >= before {
			break
		}
		if err := os.Remove(filepath.Join(w.opts.Dir, segmentName(n))); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("wal truncate: %w", err)
		}
		removed++
	}
	if removed == 0 {
		return nil
	}
	if err := syncDir(w.opts.Dir); err != nil {
		return fmt.Errorf("wal truncate: %w", err)
	}
	w.log.Debug("wal truncated", "before", before, "segments", removed)
	return nil
}

// Close fsyncs the current segment, stops the syncer, closes the file and
// wakes every Wait, which returns ErrClosed. It does not wait for a pending
// group-commit window. Close after Close returns ErrClosed. After a failure
// (see Append) Close only closes the file: the failure was already returned
// by Append and Wait.
func (w *WAL) Close() error {
	w.mu.Lock()
	if w.mu.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	w.mu.closed = true
	w.broadcastLocked()
	w.mu.Unlock()

	close(w.quit)
	<-w.done

	w.mu.Lock()
	defer w.mu.Unlock()
	var errs []error
	if w.mu.err == nil {
		// A leader may still be fsyncing the same file; both fsyncs are
		// harmless, and os.File defers the close until its fsync ends.
		if err := w.timedSync(w.mu.seg); err != nil {
			errs = append(errs, fmt.Errorf("close wal: fsync segment %d: %w", w.mu.segNum, err))
		}
	}
	if err := w.mu.seg.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close wal: %w", err))
	}
	return errors.Join(errs...)
}

// Stats returns the WAL's counters.
func (w *WAL) Stats() Stats {
	w.mu.Lock()
	seg, synced := w.mu.segNum, w.mu.synced
	w.mu.Unlock()
	s := Stats{
		Appends:     w.appends.Load(),
		AppendBytes: w.appendBytes.Load(),
		Syncs:       w.syncs.Load(),
		Segments:    w.segments.Load(),
		Segment:     seg,
	}
	if synced.Segment == seg {
		s.SyncedOffset = synced.Offset
	}
	return s
}

// usableLocked returns why the WAL cannot be used, or nil.
func (w *WAL) usableLocked() error {
	if w.mu.closed {
		return ErrClosed
	}
	return w.mu.err
}

// failLocked records err as the WAL's sticky failure, wakes the waiters and
// returns the failure.
func (w *WAL) failLocked(err error) error {
	if w.mu.err == nil {
		w.mu.err = err
		w.log.Error("wal failed; refusing further writes", "err", err)
		w.broadcastLocked()
	}
	return w.mu.err
}

// broadcastLocked wakes everyone waiting on w.mu.changed.
func (w *WAL) broadcastLocked() {
	close(w.mu.changed)
	w.mu.changed = make(chan struct{})
}

// rotateLocked fsyncs and closes the current segment and makes a new one
// current. Every record before the new segment is then durable. It runs
// under the lock: appends wait for it, which is rare (once a segment) and
// cheap in the modes that keep the segment synced as they go.
func (w *WAL) rotateLocked() error {
	old, oldNum := w.mu.seg, w.mu.segNum
	if err := w.timedSync(old); err != nil {
		return w.failLocked(fmt.Errorf("wal rotate: fsync segment %d: %w", oldNum, err))
	}
	f, err := createSegment(w.opts.Dir, oldNum+1)
	if err != nil {
		return w.failLocked(fmt.Errorf("wal rotate: %w", err))
	}
	// A leader fsyncing old outside the lock keeps the descriptor alive;
	// it then sees os.ErrClosed, which syncOnce ignores.
	if err := old.Close(); err != nil {
		w.log.Warn("wal rotate: close old segment", "segment", oldNum, "err", err)
	}
	w.segments.Add(1)
	w.mu.seg = f
	w.mu.segNum = oldNum + 1
	w.mu.size = SegmentHeaderSize
	w.mu.written = Pos{w.mu.segNum, SegmentHeaderSize}
	w.mu.synced = w.mu.written
	w.broadcastLocked()
	w.log.Debug("wal segment rotated", "segment", w.mu.segNum)
	return nil
}

// syncOnce fsyncs the current segment if it holds unsynced records and no
// other fsync is running, then publishes the new durable position. It is the
// SyncEveryWrite leader's work and the SyncGroup syncer's.
func (w *WAL) syncOnce() {
	w.mu.Lock()
	if w.usableLocked() != nil || w.mu.syncing || !w.mu.synced.Less(w.mu.written) {
		w.mu.Unlock()
		return
	}
	w.mu.syncing = true
	target, f := w.mu.written, w.mu.seg
	w.mu.Unlock()

	err := w.timedSync(f)

	w.mu.Lock()
	defer w.mu.Unlock()
	w.mu.syncing = false
	switch {
	case errors.Is(err, os.ErrClosed):
		// Rotated (the rotation fsynced it) or closed while we synced.
	case err != nil:
		w.failLocked(fmt.Errorf("wal fsync segment %d: %w", target.Segment, err))
		return
	case w.mu.synced.Less(target):
		w.mu.synced = target
	}
	w.broadcastLocked()
}

// timedSync fsyncs f and reports it to the stats and the OnSync hook.
func (w *WAL) timedSync(f *os.File) error {
	start := time.Now()
	err := fdatasync(f)
	if errors.Is(err, os.ErrClosed) {
		return err // no fsync happened
	}
	w.syncs.Add(1)
	if w.opts.OnSync != nil {
		w.opts.OnSync(time.Since(start), err)
	}
	return err
}

// syncLoop is SyncGroup's syncer. Kicked by Append, it fsyncs, but no
// sooner than GroupWindow after its previous fsync began, so that writers
// arriving meanwhile share one fsync. Close stops it through w.quit.
func (w *WAL) syncLoop() {
	defer close(w.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var last time.Time
	for {
		select {
		case <-w.quit:
			return
		case <-w.kick:
		}
		if wait := w.opts.GroupWindow - time.Since(last); wait > 0 {
			timer.Reset(wait)
			select {
			case <-w.quit:
				timer.Stop()
				return
			case <-timer.C:
			}
		}
		last = time.Now()
		w.syncOnce()
	}
}

// createSegment creates segment n in dir crash-safely: the header goes to a
// temporary file, which is fsynced and renamed into place, and the directory
// is fsynced. It returns the file open for appending after the header.
func createSegment(dir string, n uint64) (*os.File, error) {
	name := filepath.Join(dir, segmentName(n))
	tmp := name + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create segment %d: %w", n, err)
	}
	fail := func(err error) (*os.File, error) {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("create segment %d: %w", n, err)
	}
	if _, err := f.Write(encodeSegmentHeader(n)); err != nil {
		return fail(err)
	}
	if err := fdatasync(f); err != nil {
		return fail(err)
	}
	if _, err := os.Stat(name); err == nil {
		return fail(fmt.Errorf("%s already exists", name))
	}
	if err := os.Rename(tmp, name); err != nil {
		return fail(err)
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		return nil, fmt.Errorf("create segment %d: %w", n, err)
	}
	return f, nil
}

// removeTemps deletes segment files that a crash left half-created.
func removeTemps(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		base, ok := strings.CutSuffix(e.Name(), tmpSuffix)
		if !ok {
			continue
		}
		if _, ok := parseSegmentName(base); !ok {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// syncDir fsyncs a directory, making the creation, renaming and removal of
// its entries durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}
