// Package db is tracedb's embedded store: Open a directory, Write OTLP
// spans, read them back. It assembles the pieces that live in other
// packages: the write-ahead log (db/internal/wal), the in-memory head, the
// columnar blocks (encoding) and their postings (index), all kept in one
// Badger database.
//
// Every call is scoped to a tenant (WithTenant); tenants are fully apart.
package db

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/tracedb/tracedb/db/internal/wal"
	"github.com/tracedb/tracedb/encoding"
)

// Badger settings tracedb fixes; see open.
const (
	badgerValueThreshold = 4 << 10
	badgerMemtables      = 3
)

// Subdirectories of a store's directory.
const (
	badgerDir = "badger"
	walDir    = "wal"
)

// DB is an open store. Its methods are safe for concurrent use.
type DB struct {
	explicit formatOptions // which format-fixing options the caller set

	dir     string
	opts    Options
	log     *slog.Logger
	metrics *metrics
	bdb     *badger.DB
	wal     *wal.WAL
	codec   *encoding.Codec
	rgCache *rowGroupCache // nil when Options.RowGroupCacheBytes is negative

	// cutMu orders WAL appends with head cuts: Write holds it shared while
	// it appends to the WAL and the head, the flush holds it exclusively
	// while it cuts the WAL and swaps the heads, so a record is in an old
	// segment exactly when its spans are in an old head.
	cutMu sync.RWMutex

	// inflight counts running Write calls, so that Close lets them finish
	// (and be acknowledged) before it closes the WAL. Add is called under mu
	// while closed is false.
	inflight sync.WaitGroup

	mu struct {
		sync.Mutex
		tenants  map[string]*tenantDB
		closed   bool
		blockSeq uint16
		lastMs   int64
	}

	// flushMu is held while a flush runs; flushDone is broadcast after each.
	flushMu   sync.Mutex
	flushCond *sync.Cond
	flushing  bool // guarded by flushCond.L

	// maintMu runs compaction and retention one at a time, so that
	// retention never drops a block a compaction is merging.
	maintMu sync.Mutex

	// dropMu guards dropped: blocks retention removed from the tenants'
	// lists whose keys are not deleted yet (a snapshot may still read
	// them).
	dropMu  sync.Mutex
	dropped []droppedBlock

	flushReq chan struct{} // wakes the background loop
	stop     chan struct{} // closed by Close
	loopDone chan struct{} // closed when the background loop returns
}

// formatOptions says which format-fixing options were given to Open; the
// others take the stored values on a reopen.
type formatOptions struct{ width, valueLen bool }

// tenantDB is one tenant's data: its live head, the heads being flushed
// and its disk blocks.
type tenantDB struct {
	name string
	deps *depTracker
	mu   struct {
		sync.RWMutex
		head   *head
		frozen []*head
		blocks []*diskBlock
	}
}

// Open opens or creates the store in dir.
func Open(dir string, opts Options) (*DB, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	explicit := formatOptions{width: opts.PartitionWidth != 0, valueLen: opts.MaxIndexedValueLen != 0}
	opts.fillDefaults()
	if opts.ReadOnly {
		if _, err := os.Stat(filepath.Join(dir, badgerDir)); err != nil {
			return nil, fmt.Errorf("open %s: %w: %w", dir, ErrNotAStore, err)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	db := &DB{
		explicit: explicit,
		dir:      dir,
		opts:     opts,
		log:      opts.Logger,
		metrics:  newMetrics(opts.Registerer),
		flushReq: make(chan struct{}, 1),
		stop:     make(chan struct{}),
		loopDone: make(chan struct{}),
	}
	db.flushCond = sync.NewCond(&sync.Mutex{})
	db.mu.tenants = map[string]*tenantDB{}
	var err error
	if db.codec, err = encoding.NewCodec(); err != nil {
		return nil, err
	}
	if db.rgCache, err = newRowGroupCache(opts.RowGroupCacheBytes, opts.Registerer); err != nil {
		db.codec.Close()
		return nil, err
	}
	if err := db.open(); err != nil {
		return nil, errors.Join(err, db.closeResources())
	}
	if opts.Registerer != nil {
		if err := db.registerSizeMetrics(opts.Registerer); err != nil {
			return nil, errors.Join(err, db.Close())
		}
	}
	if opts.ReadOnly {
		close(db.loopDone)
	} else {
		go db.loop()
	}
	return db, nil
}

func (db *DB) open() error {
	bopts := badger.DefaultOptions(filepath.Join(db.dir, badgerDir)).
		WithLogger(badgerLogger{db.log}).
		WithSyncWrites(false).         // durability comes from our WAL; flush calls Sync before dropping it
		WithCompression(options.None). // values are zstd-compressed already
		WithBlockCacheSize(db.opts.BadgerBlockCacheBytes).
		WithMemTableSize(db.opts.BadgerMemTableBytes).
		WithValueLogFileSize(db.opts.BadgerValueLogFileBytes).
		WithNumVersionsToKeep(1).
		WithReadOnly(db.opts.ReadOnly).
		// Row groups and postings sections are tens of KiB and more: in the
		// value log they are written once, where in the LSM tree every
		// compaction would copy them again and every memtable would hold
		// them. Small values (metas, dictionaries of small blocks) stay in
		// the tree.
		WithValueThreshold(badgerValueThreshold).
		WithNumMemtables(badgerMemtables).
		WithMetricsEnabled(false)
	if !db.opts.ReadOnly {
		if err := removeEmptyLogs(bopts.Dir, db.log); err != nil {
			return err
		}
	}
	// Badger returns a half-open DB with some errors; it has cleaned up
	// after itself, and closing it again would crash: keep it only when
	// the open succeeded.
	bdb, err := badger.Open(bopts)
	if err != nil {
		if db.opts.ReadOnly && (strings.Contains(err.Error(), "truncate required") || strings.Contains(err.Error(), "Create a new file")) {
			return fmt.Errorf("open badger in %s read-only: the store was not closed cleanly; open it once for writing (for example with tracedb serve) to recover it: %w", bopts.Dir, err)
		}
		return fmt.Errorf("open badger in %s: %w", bopts.Dir, err)
	}
	db.bdb = bdb
	if err := db.checkFormat(); err != nil {
		return err
	}
	checkpoint, err := db.loadBlocks()
	if err != nil {
		return err
	}
	// A read-only store counts no new calls: its tracker stays empty, and
	// open does not decode the newest blocks for it.
	if !db.opts.ReadOnly {
		if err := db.restoreDeps(); err != nil {
			return err
		}
	}
	walPath := filepath.Join(db.dir, walDir)
	if err := db.replayWAL(walPath, checkpoint); err != nil {
		return err
	}
	if db.opts.ReadOnly {
		return nil
	}
	db.wal, err = wal.Open(wal.Options{
		Dir:         walPath,
		SegmentSize: db.opts.WALSegmentSize,
		Sync:        db.opts.Sync,
		GroupWindow: db.opts.GroupWindow,
		Logger:      db.log,
		MinSegment:  checkpoint, // numbering never falls below where replay starts
		OnSync: func(took time.Duration, err error) {
			if err == nil {
				db.metrics.walFsync.Observe(took.Seconds())
			}
		},
	})
	if err != nil {
		return fmt.Errorf("open wal: %w", err)
	}
	if err := db.wal.Truncate(checkpoint); err != nil {
		return fmt.Errorf("drop flushed wal segments: %w", err)
	}
	return nil
}

// checkFormat stores the format record in a new store, or checks it.
func (db *DB) checkFormat() error {
	want := encoding.FormatRecord{Version: encoding.FormatVersion, PartitionWidth: db.opts.PartitionWidth,
		MaxIndexedValueLen: uint32(db.opts.MaxIndexedValueLen)}
	update := db.bdb.Update
	if db.opts.ReadOnly {
		update = db.bdb.View
	}
	return update(func(txn *badger.Txn) error {
		item, err := txn.Get(encoding.KeyFormat)
		if errors.Is(err, badger.ErrKeyNotFound) {
			if db.opts.ReadOnly {
				return fmt.Errorf("%s: %w: no format record", db.dir, ErrNotAStore)
			}
			return txn.Set(encoding.KeyFormat, want.Encode())
		}
		if err != nil {
			return fmt.Errorf("read format record: %w", err)
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return fmt.Errorf("read format record: %w", err)
		}
		got, err := encoding.DecodeFormatRecord(v)
		if err != nil {
			return fmt.Errorf("store %s: %w", db.dir, err)
		}
		// Options left at 0 take the store's values.
		if !db.explicit.width {
			db.opts.PartitionWidth, want.PartitionWidth = got.PartitionWidth, got.PartitionWidth
		}
		if !db.explicit.valueLen {
			db.opts.MaxIndexedValueLen, want.MaxIndexedValueLen = int(got.MaxIndexedValueLen), got.MaxIndexedValueLen
		}
		if got.PartitionWidth != want.PartitionWidth {
			return fmt.Errorf("%w: store %s was created with PartitionWidth %s, options say %s",
				ErrFormatMismatch, db.dir, got.PartitionWidth, want.PartitionWidth)
		}
		if got.MaxIndexedValueLen != want.MaxIndexedValueLen {
			return fmt.Errorf("%w: store %s was created with MaxIndexedValueLen %d, options say %d",
				ErrFormatMismatch, db.dir, got.MaxIndexedValueLen, want.MaxIndexedValueLen)
		}
		return nil
	})
}

// loadBlocks reads every block's meta, deletes the keys of blocks that have
// none (left by a flush that crashed before its metas were committed), and
// returns the WAL checkpoint.
func (db *DB) loadBlocks() (checkpoint uint64, err error) {
	type blockRef struct {
		tenant string
		part   encoding.PartitionID
		id     encoding.BlockID
	}
	metas := map[blockRef]*encoding.BlockMeta{}
	seen := map[blockRef]bool{}
	err = db.bdb.View(func(txn *badger.Txn) error {
		if item, err := txn.Get(encoding.KeyWALCheckpoint); err == nil {
			err = item.Value(func(v []byte) error {
				d := encoding.NewDecbuf(v, "wal checkpoint")
				checkpoint = d.BE64()
				return d.Err()
			})
			if err != nil {
				return err
			}
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: encoding.TenantPrefix("")[:1]})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			kp, err := encoding.ParseBlockKey(item.Key())
			if err != nil {
				return err
			}
			ref := blockRef{kp.Tenant, kp.Partition, kp.Block}
			seen[ref] = true
			if kp.Kind != encoding.KindBlockMeta {
				continue
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			m, err := encoding.DecodeBlockMeta(v)
			if err != nil {
				return fmt.Errorf("%s: %w", kp, err)
			}
			metas[ref] = m
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("load blocks: %w", err)
	}
	for ref := range seen {
		if metas[ref] != nil || db.opts.ReadOnly {
			continue
		}
		db.log.Warn("deleting keys of an unfinished block", "tenant", ref.tenant, "partition", ref.part, "block", ref.id)
		for _, kind := range []byte{encoding.KindRowGroup, encoding.KindPostingsDict, encoding.KindPostings, encoding.KindTermHists} {
			if err := db.bdb.DropPrefix(encoding.BlockPrefix(ref.tenant, ref.part, kind, ref.id)); err != nil {
				return 0, fmt.Errorf("delete unfinished block %s: %w", ref.id, err)
			}
		}
	}
	for ref, m := range metas {
		if ms := int64(m.ID >> 16); ms > db.mu.lastMs || ms == db.mu.lastMs && uint16(m.ID) > db.mu.blockSeq {
			db.mu.lastMs, db.mu.blockSeq = ms, uint16(m.ID)
		}
		b, err := openDiskBlock(db.bdb, db.codec, db.rgCache, ref.tenant, m)
		if err != nil {
			return 0, err
		}
		t := db.tenant(ref.tenant)
		t.mu.blocks = append(t.mu.blocks, b)
	}
	for _, t := range db.mu.tenants {
		sortBlocks(t.mu.blocks)
	}
	db.metrics.blocks.Set(float64(len(metas)))
	return checkpoint, nil
}

// replayWAL puts the records not yet flushed back into the heads.
func (db *DB) replayWAL(dir string, from uint64) error {
	replay := wal.Replay
	if db.opts.ReadOnly {
		replay = wal.ReplayReadOnly
	}
	rep, err := replay(dir, from, func(_ wal.Pos, rec []byte) error {
		tenant, td, err := decodeWALRecord(rec)
		if err != nil {
			// The WAL's CRC held, so these bytes are what was written:
			// a record this build cannot read is a bug, not a torn write.
			return fmt.Errorf("replay wal: %w", err)
		}
		spans, _ := encoding.FromTraces(nil, nil, td)
		db.tenant(tenant).liveHead(db).append(spans)
		return nil
	}, db.log)
	if err != nil {
		return err
	}
	for _, c := range rep.Cuts {
		db.metrics.walReplayCuts.Inc()
		db.log.Warn("wal replay cut a torn or corrupt record", "cut", fmt.Sprint(c))
	}
	return nil
}

// tenant returns the state of tenant t, creating it.
func (db *DB) tenant(t string) *tenantDB {
	db.mu.Lock()
	defer db.mu.Unlock()
	td := db.mu.tenants[t]
	if td == nil {
		td = &tenantDB{name: t, deps: newDepTracker()}
		db.mu.tenants[t] = td
	}
	return td
}

// liveHead returns the tenant's live head, creating it.
func (t *tenantDB) liveHead(db *DB) *head {
	t.mu.RLock()
	h := t.mu.head
	t.mu.RUnlock()
	if h != nil {
		return h
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.head == nil {
		t.mu.head = newHead(db.opts.Clock.Now(), db.opts.MaxIndexedValueLen, t.deps)
	}
	return t.mu.head
}

// Close flushes the heads into blocks, stops the background work and
// closes the files. It waits for running calls; calls after it return
// ErrClosed.
func (db *DB) Close() error {
	db.mu.Lock()
	if db.mu.closed {
		db.mu.Unlock()
		return ErrClosed
	}
	db.mu.closed = true
	db.mu.Unlock()
	close(db.stop) // background compaction and retention stop early
	db.inflight.Wait()
	<-db.loopDone
	if db.opts.ReadOnly {
		return db.closeResources()
	}
	// Writers hold cutMu shared; taking it exclusively waits for them.
	err := db.flush("close")
	return errors.Join(err, db.closeResources())
}

func (db *DB) closeResources() error {
	var errs []error
	if db.wal != nil {
		errs = append(errs, db.wal.Close())
	}
	if db.bdb != nil {
		errs = append(errs, db.bdb.Close())
	}
	db.rgCache.close()
	if db.codec != nil {
		db.codec.Close()
	}
	return errors.Join(errs...)
}

// enter registers a running call; it fails once Close has begun. The
// caller must call db.inflight.Done when enter succeeded.
func (db *DB) enter() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.mu.closed {
		return ErrClosed
	}
	if db.opts.ReadOnly {
		return ErrReadOnly
	}
	db.inflight.Add(1)
	return nil
}

func (db *DB) isClosed() bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.mu.closed
}

// loop is the background goroutine: it flushes heads that pass their size
// or age. Close stops it before the final flush.
func (db *DB) loop() {
	defer close(db.loopDone)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastRetention := time.Now() // the first pass comes one interval after open
	lastCompaction := time.Now()
	// ctx ends when Close begins, so that a long compaction stops early.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-db.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		select {
		case <-db.stop:
			return
		case <-db.flushReq:
		case <-tick.C:
		}
		if reason := db.flushDue(); reason != "" {
			if err := db.flush(reason); err != nil {
				db.log.Error("flush failed; the WAL keeps the data, will retry", "err", err)
			}
		}
		if db.opts.CompactionInterval > 0 && time.Since(lastCompaction) >= db.opts.CompactionInterval {
			lastCompaction = time.Now()
			if _, err := db.Compact(ctx); err != nil && ctx.Err() == nil && !errors.Is(err, ErrClosed) {
				db.log.Error("compaction failed; will retry", "err", err)
			}
		}
		if db.opts.Retention.Enabled() && time.Since(lastRetention) >= db.opts.RetentionInterval {
			lastRetention = time.Now()
			if _, err := db.ApplyRetention(ctx); err != nil && ctx.Err() == nil && !errors.Is(err, ErrClosed) {
				db.log.Error("retention failed; will retry", "err", err)
			}
		}
	}
}

// MaxIndexedValueLen returns the longest attribute value (in its string
// form) that has a posting in this store; readers must verify longer values
// on spans. It is fixed for the life of the store.
func (db *DB) MaxIndexedValueLen() int { return db.opts.MaxIndexedValueLen }

// Flush writes every head into blocks now and drops the WAL it covered.
func (db *DB) Flush() error {
	if db.isClosed() {
		return ErrClosed
	}
	if db.opts.ReadOnly {
		return ErrReadOnly
	}
	return db.flush("requested")
}

// badgerLogger sends Badger's logs to the store's logger, a level down:
// Badger is chatty about routine work.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.l.Error("badger: " + fmt.Sprintf(f, a...)) }
func (b badgerLogger) Warningf(f string, a ...any) { b.l.Warn("badger: " + fmt.Sprintf(f, a...)) }
func (b badgerLogger) Infof(f string, a ...any)    { b.l.Debug("badger: " + fmt.Sprintf(f, a...)) }
func (b badgerLogger) Debugf(f string, a ...any)   { b.l.Debug("badger: " + fmt.Sprintf(f, a...)) }
