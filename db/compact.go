package db

import (
	"bytes"
	"cmp"
	"container/heap"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/tracedb/tracedb/compaction"
	"github.com/tracedb/tracedb/encoding"
)

// Compaction (see package compaction for the why and the planner). The
// executor merges one group at a time:
//
//  1. Read the group's blocks row group by row group, merging their spans
//     in block order (trace ID, start, span ID); of spans equal in that
//     order, an exact duplicate (Span.Equal) of one already taken is
//     dropped, spans that differ are all kept.
//  2. Write the merged spans as a new block (blockBuilder), not yet
//     visible; its dependency edges are the sum of the group's.
//  3. Swap, in one transaction: the new block's meta is written and the
//     old blocks' metas deleted (then Badger is synced). A crash before
//     leaves the old blocks and orphan keys of the new one; after, the new
//     block and orphan keys of the old ones; open deletes orphans. In
//     memory, the tenant's list changes under its lock, so a snapshot has
//     either the old blocks or the new one, never both.
//  4. The old blocks are dropped as retention drops them: deleted once no
//     snapshot holds them, then the value-log GC gives their space back.

// CompactResult says what a compaction pass did.
type CompactResult struct {
	Groups            int    // groups merged
	BlocksIn          int    // blocks merged away
	SpansIn, SpansOut uint64 // spans read and written (the difference: exact duplicates dropped)
	BytesIn, BytesOut uint64 // encoded bytes of the blocks read and written
	Elapsed           time.Duration
}

// Compact merges the blocks the compaction planner chooses, for every
// tenant, one group at a time. The background loop calls it every
// Options.CompactionInterval; it stops early, leaving the store
// consistent, when ctx ends or the store closes.
func (db *DB) Compact(ctx context.Context) (res CompactResult, err error) {
	if err := db.enter(); err != nil {
		return res, err
	}
	defer db.inflight.Done()
	ctx, cancel := db.untilClose(ctx)
	defer cancel()
	start := time.Now()
	defer func() { res.Elapsed = time.Since(start) }()
	db.maintMu.Lock()
	defer db.maintMu.Unlock()
	opts := db.opts.Compaction
	opts.PartitionWidth = db.opts.PartitionWidth
	db.mu.Lock()
	tenants := make([]*tenantDB, 0, len(db.mu.tenants))
	for _, t := range db.mu.tenants {
		tenants = append(tenants, t)
	}
	db.mu.Unlock()
	slices.SortFunc(tenants, func(a, b *tenantDB) int { return cmp.Compare(a.name, b.name) })
	for _, t := range tenants {
		t.mu.RLock()
		blocks := make([]compaction.Block, len(t.mu.blocks))
		byID := map[encoding.BlockID]*diskBlock{}
		for i, b := range t.mu.blocks {
			blocks[i] = compaction.Block{ID: b.meta.ID, Partition: b.meta.Partition, Spans: b.meta.Spans, Bytes: b.meta.Bytes}
			byID[b.meta.ID] = b
		}
		t.mu.RUnlock()
		for _, g := range compaction.Plan(blocks, opts, db.opts.Clock.Now()) {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			src := make([]*diskBlock, len(g.Blocks))
			for i, id := range g.Blocks {
				src[i] = byID[id]
			}
			if err := db.compactGroup(ctx, t, src, &res); err != nil {
				db.metrics.compactions.WithLabelValues("error").Inc()
				return res, fmt.Errorf("compact tenant %s partition %s: %w", t.name, g.Partition, err)
			}
			db.metrics.compactions.WithLabelValues("ok").Inc()
		}
	}
	if res.Groups > 0 {
		var rr RetentionResult
		if err := db.reclaim(ctx, &rr); err != nil {
			return res, err
		}
		db.metrics.compactionDuration.Observe(time.Since(start).Seconds())
		db.log.Info("compacted blocks", "groups", res.Groups, "blocks", res.BlocksIn, "spans_in", res.SpansIn,
			"spans_out", res.SpansOut, "bytes_in", res.BytesIn, "bytes_out", res.BytesOut, "duration", time.Since(start))
	}
	return res, nil
}

// untilClose returns a context that also ends when Close begins, so that
// long maintenance stops early instead of holding Close up.
func (db *DB) untilClose(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-db.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// compactGroup merges src, blocks of one partition of t, into one block
// and swaps it in.
func (db *DB) compactGroup(ctx context.Context, t *tenantDB, src []*diskBlock, res *CompactResult) (err error) {
	// The sources stay readable while they are merged even if dropped
	// meanwhile (they are pinned like a snapshot's).
	for _, b := range src {
		b.pin()
	}
	defer func() {
		for _, b := range src {
			b.unpin()
		}
	}()
	bb := db.newBlockBuilder(t.name, src[0].meta.Partition)
	defer func() {
		if err != nil {
			bb.cancel()
			db.deleteBlockKeys(t.name, bb.meta)
		}
	}()
	var in, out uint64
	err = mergeBlocks(ctx, src, func(s *encoding.Span) error {
		out++
		return bb.add(s)
	}, &in)
	if err != nil {
		return err
	}
	if out == 0 {
		return fmt.Errorf("merged %d blocks into no span", len(src))
	}
	nb, err := bb.finish(mergeEdges(src))
	if err != nil {
		return err
	}
	err = db.bdb.Update(func(txn *badger.Txn) error {
		if err := txn.Set(nb.key(encoding.KindBlockMeta, 0), nb.meta.Encode(nil)); err != nil {
			return err
		}
		for _, b := range src {
			if err := txn.Delete(b.key(encoding.KindBlockMeta, 0)); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = db.bdb.Sync()
	}
	if err != nil {
		return fmt.Errorf("swap in block %s: %w", nb.meta.ID, err)
	}
	t.mu.Lock()
	kept := t.mu.blocks[:0]
	for _, b := range t.mu.blocks {
		if !slices.Contains(src, b) {
			kept = append(kept, b)
		}
	}
	clear(t.mu.blocks[len(kept):])
	t.mu.blocks = append(kept, nb)
	sortBlocks(t.mu.blocks)
	t.mu.Unlock()
	db.dropMu.Lock()
	for _, b := range src {
		b.dropped.Store(true)
		db.dropped = append(db.dropped, droppedBlock{t.name, b})
	}
	db.dropMu.Unlock()
	db.metrics.blocks.Sub(float64(len(src) - 1))
	res.Groups++
	res.BlocksIn += len(src)
	res.SpansIn += in
	res.SpansOut += out
	for _, b := range src {
		res.BytesIn += b.meta.Bytes
	}
	res.BytesOut += nb.meta.Bytes
	return nil
}

// deleteBlockKeys deletes what a block builder wrote (best effort: what is
// left is deleted at the next open, as any block without a meta).
func (db *DB) deleteBlockKeys(tenant string, m *encoding.BlockMeta) {
	var prefixes [][]byte
	for _, kind := range []byte{encoding.KindRowGroup, encoding.KindPostingsDict, encoding.KindPostings, encoding.KindTermHists} {
		prefixes = append(prefixes, encoding.BlockPrefix(tenant, m.Partition, kind, m.ID))
	}
	db.flushMu.Lock()
	defer db.flushMu.Unlock()
	if err := db.bdb.DropPrefix(prefixes...); err != nil {
		db.log.Warn("compaction: delete the keys of an abandoned block", "block", m.ID, "err", err)
	}
}

// mergeEdges sums the dependency edges of blocks.
func mergeEdges(blocks []*diskBlock) []encoding.DependencyEdge {
	sums := map[edgeKey]uint64{}
	for _, b := range blocks {
		for _, e := range b.meta.Edges {
			sums[edgeKey{e.Parent, e.Child, e.Minute}] += e.Calls
		}
	}
	return edgesOf(sums)
}

// blockCursor reads a block's spans in block order, a row group at a time.
type blockCursor struct {
	b    *diskBlock
	rg   int // next row group to load
	g    *encoding.RowGroup
	i    int // next row of g
	span *encoding.Span
}

// next loads the cursor's next span; false at the end.
func (c *blockCursor) next() (bool, error) {
	for c.g == nil || c.i >= c.g.Len() {
		if c.rg >= len(c.b.meta.RowGroups) {
			c.span = nil
			return false, nil
		}
		g, err := c.b.rowGroup(c.rg, false)
		if err != nil {
			return false, err
		}
		c.g, c.i = g, 0
		c.rg++
	}
	s, err := c.g.Span(c.i)
	if err != nil {
		return false, err
	}
	c.i++
	c.span = s
	return true, nil
}

type cursorHeap []*blockCursor

func (h cursorHeap) Len() int           { return len(h) }
func (h cursorHeap) Less(i, j int) bool { return compareSpanOrder(h[i].span, h[j].span) < 0 }
func (h cursorHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)        { *h = append(*h, x.(*blockCursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}

// compareSpanOrder orders spans as blocks store them.
func compareSpanOrder(a, b *encoding.Span) int {
	if c := a.TraceID.Compare(b.TraceID); c != 0 {
		return c
	}
	return cmp.Or(cmp.Compare(a.StartUnixNano, b.StartUnixNano), bytes.Compare(a.SpanID[:], b.SpanID[:]))
}

// exactDups recognises exact duplicates (Span.Equal: a retried write) in a
// stream of one trace's or many traces' spans ordered so that spans equal in
// compareSpanOrder are adjacent (block order, or a trace's spans by start and
// span ID). It keeps only the spans taken that sort equal to the last one.
type exactDups struct{ same []*encoding.Span }

// seen reports whether s duplicates a span taken before, and takes s if not.
func (d *exactDups) seen(s *encoding.Span) bool {
	if len(d.same) > 0 && compareSpanOrder(d.same[0], s) != 0 {
		d.same = d.same[:0]
	}
	if slices.ContainsFunc(d.same, s.Equal) {
		return true
	}
	d.same = append(d.same, s)
	return false
}

// mergeBlocks calls fn with the spans of blocks in block order, exact
// duplicates once, and counts the spans read in *in.
func mergeBlocks(ctx context.Context, blocks []*diskBlock, fn func(*encoding.Span) error, in *uint64) error {
	h := make(cursorHeap, 0, len(blocks))
	for _, b := range blocks {
		c := &blockCursor{b: b}
		ok, err := c.next()
		if err != nil {
			return err
		}
		if ok {
			h = append(h, c)
		}
	}
	heap.Init(&h)
	var dups exactDups
	for n := 0; h.Len() > 0; n++ {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		c := h[0]
		s := c.span
		*in++
		if !dups.seen(s) {
			if err := fn(s); err != nil {
				return err
			}
		}
		ok, err := c.next()
		if err != nil {
			return err
		}
		if ok {
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h)
		}
	}
	return nil
}
