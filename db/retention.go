package db

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/index"
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
	TracesKept     uint64           // traces the keep rule rewrote into kept partitions
	SpansKept      uint64           // their spans
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
		if err := db.drop(ctx, drops, &res); err != nil {
			return res, err
		}
	}
	err := db.reclaim(ctx, &res)
	return res, err
}

// drop takes the partitions' blocks out of the tenants' lists and deletes
// their metas; for a drop with Keep, it first writes the traces the keep
// rule matches into a block of the kept partition, published in the same
// transaction.
func (db *DB) drop(ctx context.Context, drops []retention.Drop, res *RetentionResult) error {
	type planned struct {
		t      *tenantDB
		d      retention.Drop
		blocks []*diskBlock
		kept   *diskBlock // nil when nothing is kept
	}
	// The kept traces are gathered before flushes are held off: it reads
	// whole partitions. The blocks are pinned meanwhile.
	var plans []planned
	defer func() {
		for _, p := range plans {
			for _, b := range p.blocks {
				b.unpin()
			}
		}
	}()
	for _, d := range drops {
		t := db.tenantIfExists(d.Tenant)
		if t == nil {
			continue
		}
		blocks := t.partitionBlocks(d.ID)
		if len(blocks) == 0 {
			continue
		}
		for _, b := range blocks {
			b.pin()
		}
		p := planned{t: t, d: d, blocks: blocks}
		plans = append(plans, p)
		if d.Keep {
			kept, err := db.keepTraces(ctx, t, d.ID, blocks)
			if err != nil {
				return fmt.Errorf("retention: keep traces of tenant %s partition %s: %w", t.name, d.ID, err)
			}
			plans[len(plans)-1].kept = kept
		}
	}

	// Flushes publish blocks and delete nothing; holding flushMu keeps a
	// flush from adding a block to a partition being dropped meanwhile.
	db.flushMu.Lock()
	defer db.flushMu.Unlock()
	var final []planned
	for _, p := range plans {
		if !slices.Equal(p.t.partitionBlocks(p.d.ID), p.blocks) {
			// A flush added to the partition while its traces were
			// read: the next pass drops it, with the new block.
			if p.kept != nil {
				db.deleteBlockKeys(p.t.name, p.kept.meta)
			}
			continue
		}
		final = append(final, p)
	}
	if len(final) == 0 {
		return nil
	}
	err := db.bdb.Update(func(txn *badger.Txn) error {
		for _, p := range final {
			for _, b := range p.blocks {
				if err := txn.Delete(b.key(encoding.KindBlockMeta, 0)); err != nil {
					return err
				}
			}
			if p.kept != nil {
				if err := txn.Set(p.kept.key(encoding.KindBlockMeta, 0), p.kept.meta.Encode(nil)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err == nil {
		err = db.bdb.Sync()
	}
	if err != nil {
		for _, p := range final {
			if p.kept != nil {
				db.deleteBlockKeys(p.t.name, p.kept.meta)
			}
		}
		return fmt.Errorf("retention: delete block metas: %w", err)
	}
	var gone, kept int
	for _, p := range final {
		p.t.mu.Lock()
		p.t.mu.blocks = slices.DeleteFunc(p.t.mu.blocks, func(b *diskBlock) bool { return slices.Contains(p.blocks, b) })
		if p.kept != nil {
			p.t.mu.blocks = append(p.t.mu.blocks, p.kept)
			sortBlocks(p.t.mu.blocks)
			res.SpansKept += p.kept.meta.Spans
			res.TracesKept += p.kept.meta.Traces
			kept++
		}
		p.t.mu.Unlock()
		db.dropMu.Lock()
		for _, b := range p.blocks {
			b.dropped.Store(true)
			db.dropped = append(db.dropped, droppedBlock{p.t.name, b})
			res.BytesDropped += b.meta.Bytes
		}
		db.dropMu.Unlock()
		gone += len(p.blocks)
		res.Dropped = append(res.Dropped, p.d)
		db.metrics.retentionDrops.WithLabelValues(string(p.d.Reason)).Inc()
	}
	db.metrics.blocks.Sub(float64(gone - kept))
	db.log.Info("retention dropped partitions", "partitions", len(res.Dropped), "blocks", gone, "bytes", res.BytesDropped,
		"traces_kept", res.TracesKept)
	return nil
}

// tenantIfExists returns tenant t's state, or nil.
func (db *DB) tenantIfExists(t string) *tenantDB {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.mu.tenants[t]
}

// partitionBlocks returns t's blocks of partition p, in list order.
func (t *tenantDB) partitionBlocks(p encoding.PartitionID) []*diskBlock {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []*diskBlock
	for _, b := range t.mu.blocks {
		if b.meta.Partition == p {
			out = append(out, b)
		}
	}
	return out
}

// keepTraces writes the traces of partition p (whose blocks are given) that
// the keep rule matches into a new block of p's kept partition, not yet
// visible, and returns it; nil when no trace matches. A trace matches when a
// span of it in p or in the partition after p (a trace straddling the
// boundary) matches, or when a kept partition already holds part of it.
func (db *DB) keepTraces(ctx context.Context, t *tenantDB, p encoding.PartitionID, blocks []*diskBlock) (*diskBlock, error) {
	rule := db.opts.Retention.Keep
	matches := func(s *encoding.Span) bool {
		return rule.Errors && s.StatusCode == encoding.StatusError ||
			rule.SlowerThan > 0 && s.Duration() >= uint64(rule.SlowerThan) ||
			rule.Match != nil && rule.Match(s)
	}
	keep := map[encoding.TraceID]bool{}
	scan := append(slices.Clone(blocks), t.partitionBlocks(p+1)...)
	for _, b := range scan {
		ords, err := db.keepCandidates(b, rule)
		if err != nil {
			return nil, err
		}
		err = b.Spans(ctx, ords, func(_ uint32, s *encoding.Span) error {
			if matches(s) {
				keep[s.TraceID] = true
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	// Traces part of which an earlier expiry kept.
	var keptBlocks []*diskBlock
	t.mu.RLock()
	for _, b := range t.mu.blocks {
		if b.meta.Partition.IsKept() {
			keptBlocks = append(keptBlocks, b)
		}
	}
	t.mu.RUnlock()
	if len(keptBlocks) > 0 {
		for _, b := range blocks {
			for gi := range b.meta.RowGroups {
				g, err := b.rowGroup(gi, false)
				if err != nil {
					return nil, err
				}
				for i := 0; i < g.Len(); {
					id := g.TraceID(i)
					_, hi := g.TraceRange(id)
					i = hi
					if keep[id] {
						continue
					}
					for _, kb := range keptBlocks {
						if kb.MayContainTrace(id) && len(kb.meta.RowGroupsFor(id)) > 0 {
							found := false
							err := kb.TraceSpans(ctx, id, func(*encoding.Span) error { found = true; return nil })
							if err != nil {
								return nil, err
							}
							if found {
								keep[id] = true
								break
							}
						}
					}
				}
			}
		}
	}
	if len(keep) == 0 {
		return nil, nil
	}
	// The kept traces' spans in p, in block order, exact duplicates once.
	var spans []*encoding.Span
	for _, b := range blocks {
		for id := range keep {
			if !b.MayContainTrace(id) {
				continue
			}
			err := b.TraceSpans(ctx, id, func(s *encoding.Span) error {
				spans = append(spans, s)
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	if len(spans) == 0 {
		return nil, nil // the matching spans were all in the next partition
	}
	slices.SortStableFunc(spans, compareSpanOrder)
	bb := db.newBlockBuilder(t.name, p.Kept())
	var dups exactDups
	for _, s := range spans {
		if dups.seen(s) {
			continue
		}
		if err := bb.add(s); err != nil {
			bb.cancel()
			db.deleteBlockKeys(t.name, bb.meta)
			return nil, err
		}
	}
	kb, err := bb.finish(nil)
	if err != nil {
		bb.cancel()
		db.deleteBlockKeys(t.name, bb.meta)
		return nil, err
	}
	return kb, nil
}

// keepCandidates returns the ordinals of b's spans that may match the keep
// rule: from the status and duration postings, or every span when the rule
// has a Match function.
func (db *DB) keepCandidates(b *diskBlock, rule retention.KeepRule) (index.Postings, error) {
	all := index.NewRangePostings(0, uint32(b.meta.Spans))
	if rule.Match != nil {
		return all, nil
	}
	var ps []index.Postings
	if rule.Errors {
		p, err := b.Postings(index.Term{Name: index.NameStatus, Value: index.StatusValue(encoding.StatusError)})
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	if rule.SlowerThan > 0 {
		values, err := b.Values(index.NameDuration)
		if err != nil {
			return nil, err
		}
		for _, v := range values {
			bucket, ok := index.ParseDurationValue(v)
			if !ok {
				return nil, encoding.Corruptf("postings", -1, "block %s: duration term %q", b.meta.ID, v)
			}
			if _, hi := index.BucketBounds(bucket); hi <= uint64(rule.SlowerThan) {
				continue
			}
			p, err := b.Postings(index.Term{Name: index.NameDuration, Value: v})
			if err != nil {
				return nil, err
			}
			ps = append(ps, p)
		}
	}
	return index.Merge(ps...), nil
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
