package db

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/retention"
)

// Retention: the policy (package retention) chooses whole partitions; the
// store drops them in three steps.
//
//  1. Drop: the partition's blocks leave the tenant's list, so no new
//     snapshot sees them, and their metas are deleted in one transaction
//     (then Badger is synced): after a crash the blocks stay gone, and
//     open deletes the keys left (as it does for an unfinished flush).
//  2. Delete: once no snapshot holds a dropped block, its row groups and
//     postings are deleted by prefix (Badger's DropPrefix, which rewrites
//     the LSM tables without them).
//  3. Reclaim: Badger's value-log GC rewrites the value-log files whose
//     values are mostly deleted, and removes them: the bytes on disk fall.
//
// Steps 2 and 3 are retried at every later pass for blocks still held.

// droppedBlock is a block that retention dropped, awaiting deletion.
type droppedBlock struct {
	tenant string
	b      *diskBlock
}

// RetentionResult says what one retention pass did.
type RetentionResult struct {
	Dropped        []retention.Drop // partitions dropped by this pass
	BlocksDeleted  int              // blocks whose keys were deleted (this pass's or earlier ones')
	BlocksHeld     int              // dropped blocks still held by a snapshot
	ValueLogFreed  int              // value-log files rewritten and removed
	BytesDropped   uint64           // encoded bytes of the dropped partitions
	ReclaimElapsed time.Duration
}

// Partitions returns every tenant's partitions as retention sees them.
func (db *DB) Partitions() []retention.Partition {
	db.mu.Lock()
	tenants := make([]*tenantDB, 0, len(db.mu.tenants))
	for _, t := range db.mu.tenants {
		tenants = append(tenants, t)
	}
	db.mu.Unlock()
	type key struct {
		tenant string
		p      encoding.PartitionID
	}
	parts := map[key]*retention.Partition{}
	for _, t := range tenants {
		t.mu.RLock()
		for _, b := range t.mu.blocks {
			m := b.meta
			k := key{t.name, m.Partition}
			p := parts[k]
			if p == nil {
				p = &retention.Partition{Tenant: t.name, ID: m.Partition, MinStart: m.MinStart}
				parts[k] = p
			}
			p.MinStart = min(p.MinStart, m.MinStart)
			p.MaxEnd = max(p.MaxEnd, m.MaxEnd, m.MaxStart)
			p.Spans += m.Spans
			p.Bytes += m.Bytes
		}
		t.mu.RUnlock()
	}
	out := make([]retention.Partition, 0, len(parts))
	for _, p := range parts {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b retention.Partition) int {
		if a.Tenant != b.Tenant {
			if a.Tenant < b.Tenant {
				return -1
			}
			return 1
		}
		return int(int64(a.ID) - int64(b.ID))
	})
	return out
}

// ApplyRetention applies Options.Retention now: it drops the partitions
// the policy chooses and deletes and reclaims what no snapshot holds. The
// background loop calls it every Options.RetentionInterval.
func (db *DB) ApplyRetention(ctx context.Context) (RetentionResult, error) {
	db.maintMu.Lock()
	defer db.maintMu.Unlock()
	drops := retention.Plan(db.Partitions(), db.opts.Retention, db.opts.Clock.Now())
	return db.dropPartitions(ctx, drops)
}

// DropPartitions drops the given partitions (as retention.Plan returns
// them) and then deletes and reclaims every dropped block no snapshot
// holds. Spans of a dropped partition written later (late arrivals) form
// new blocks, which a later pass may drop.
func (db *DB) DropPartitions(ctx context.Context, drops []retention.Drop) (RetentionResult, error) {
	db.maintMu.Lock()
	defer db.maintMu.Unlock()
	return db.dropPartitions(ctx, drops)
}

func (db *DB) dropPartitions(ctx context.Context, drops []retention.Drop) (RetentionResult, error) {
	if err := db.enter(); err != nil {
		return RetentionResult{}, err
	}
	defer db.inflight.Done()
	res := RetentionResult{}
	if len(drops) > 0 {
		if err := db.drop(drops, &res); err != nil {
			return res, err
		}
	}
	err := db.reclaim(ctx, &res)
	return res, err
}

// drop takes the partitions' blocks out of the tenants' lists and deletes
// their metas.
func (db *DB) drop(drops []retention.Drop, res *RetentionResult) error {
	// Flushes publish blocks and delete nothing; holding flushMu keeps
	// a flush's transaction from interleaving with the metas' deletion.
	db.flushMu.Lock()
	defer db.flushMu.Unlock()
	var gone []droppedBlock
	for _, d := range drops {
		db.mu.Lock()
		t := db.mu.tenants[d.Tenant]
		db.mu.Unlock()
		if t == nil {
			continue
		}
		t.mu.Lock()
		kept := t.mu.blocks[:0]
		found := false
		for _, b := range t.mu.blocks {
			if b.meta.Partition == d.ID {
				gone = append(gone, droppedBlock{t.name, b})
				res.BytesDropped += b.meta.Bytes
				found = true
				continue
			}
			kept = append(kept, b)
		}
		clear(t.mu.blocks[len(kept):])
		t.mu.blocks = kept
		t.mu.Unlock()
		if found {
			res.Dropped = append(res.Dropped, d)
			db.metrics.retentionDrops.WithLabelValues(string(d.Reason)).Inc()
		}
	}
	if len(gone) == 0 {
		return nil
	}
	err := db.bdb.Update(func(txn *badger.Txn) error {
		for _, g := range gone {
			if err := txn.Delete(g.b.key(encoding.KindBlockMeta, 0)); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = db.bdb.Sync()
	}
	db.dropMu.Lock()
	for _, g := range gone {
		g.b.dropped.Store(true)
		db.dropped = append(db.dropped, g)
	}
	db.dropMu.Unlock()
	db.metrics.blocks.Sub(float64(len(gone)))
	if err != nil {
		// The blocks are out of the lists; their metas may come back at
		// the next open, which then serves them again until the next
		// pass drops them.
		return fmt.Errorf("retention: delete block metas: %w", err)
	}
	db.log.Info("retention dropped partitions", "partitions", len(res.Dropped), "blocks", len(gone), "bytes", res.BytesDropped)
	return nil
}

// reclaim deletes the keys of the dropped blocks no snapshot holds, then
// runs Badger's value-log GC until it finds nothing to rewrite.
func (db *DB) reclaim(ctx context.Context, res *RetentionResult) error {
	start := time.Now()
	defer func() { res.ReclaimElapsed = time.Since(start) }()
	db.dropMu.Lock()
	var ready []droppedBlock
	held := db.dropped[:0]
	for _, g := range db.dropped {
		if g.b.unused() {
			ready = append(ready, g)
		} else {
			held = append(held, g)
		}
	}
	clear(db.dropped[len(held):])
	db.dropped = held
	res.BlocksHeld = len(held)
	db.dropMu.Unlock()
	if len(ready) == 0 {
		return nil
	}
	var prefixes [][]byte
	for _, g := range ready {
		for _, kind := range []byte{encoding.KindRowGroup, encoding.KindPostingsDict, encoding.KindPostings, encoding.KindTermHists} {
			prefixes = append(prefixes, encoding.BlockPrefix(g.tenant, g.b.meta.Partition, kind, g.b.meta.ID))
		}
	}
	// DropPrefix refuses writes while it runs: keep flushes out.
	db.flushMu.Lock()
	err := db.bdb.DropPrefix(prefixes...)
	db.flushMu.Unlock()
	if err != nil {
		db.dropMu.Lock()
		db.dropped = append(db.dropped, ready...)
		db.dropMu.Unlock()
		return fmt.Errorf("retention: delete dropped blocks: %w", err)
	}
	res.BlocksDeleted = len(ready)
	// The value-log GC rewrites one file per call, the one with the most
	// deleted bytes, if at least half of it is deleted.
	for range 1000 {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		err := db.bdb.RunValueLogGC(0.5)
		if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
			break
		}
		if err != nil {
			return fmt.Errorf("retention: value-log gc: %w", err)
		}
		res.ValueLogFreed++
	}
	db.metrics.retentionReclaim.Observe(time.Since(start).Seconds())
	return nil
}
