package db

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/index"
)

// bloomFPR is the false-positive rate of a block's trace-ID filter.
const bloomFPR = 0.01

// flushDue returns why the heads should be flushed now, or "".
func (db *DB) flushDue() string {
	db.mu.Lock()
	tenants := slices.Collect(maps.Values(db.mu.tenants))
	db.mu.Unlock()
	now := db.opts.Clock.Now()
	for _, t := range tenants {
		t.mu.RLock()
		h := t.mu.head
		t.mu.RUnlock()
		if h == nil {
			continue
		}
		n, b := h.stats()
		switch {
		case n >= db.opts.MaxHeadSpans:
			return "spans"
		case b >= db.opts.MaxHeadBytes:
			return "bytes"
		case n > 0 && now.Sub(h.created) >= db.opts.MaxHeadAge:
			return "age"
		}
	}
	return ""
}

// flush cuts every tenant's head and writes it as blocks, one per
// partition the head's spans fall in; then it makes the blocks visible and
// drops the WAL segments they cover. A failed flush leaves the heads frozen
// and readable and the WAL in place; the next flush retries them.
func (db *DB) flush(reason string) error {
	db.flushMu.Lock()
	defer db.flushMu.Unlock()
	db.setFlushing(true)
	defer db.setFlushing(false)
	start := time.Now()

	// Cut: from here on, new writes go to new heads and a new WAL segment.
	db.cutMu.Lock()
	segment, err := db.wal.Cut()
	if err != nil {
		db.cutMu.Unlock()
		db.metrics.flushes.WithLabelValues("error").Inc()
		return fmt.Errorf("flush: cut wal: %w", err)
	}
	db.mu.Lock()
	tenants := slices.Collect(maps.Values(db.mu.tenants))
	db.mu.Unlock()
	for _, t := range tenants {
		t.mu.Lock()
		if t.mu.head != nil {
			if n, _ := t.mu.head.stats(); n > 0 {
				t.mu.frozen = append(t.mu.frozen, t.mu.head)
				t.mu.head = nil
			}
		}
		t.mu.Unlock()
	}
	db.cutMu.Unlock()

	// Write every frozen head's blocks, then publish them all with the new
	// checkpoint in one transaction.
	type pending struct {
		t      *tenantDB
		heads  []*head
		blocks []*diskBlock
	}
	var work []pending
	var written uint64
	for _, t := range tenants {
		t.mu.RLock()
		heads := slices.Clone(t.mu.frozen)
		t.mu.RUnlock()
		if len(heads) == 0 {
			continue
		}
		var spans []*encoding.Span
		for _, h := range heads {
			spans = append(spans, h.allSpans()...)
		}
		blocks, err := db.writeBlocks(t.name, spans)
		if err != nil {
			db.metrics.flushes.WithLabelValues("error").Inc()
			return fmt.Errorf("flush tenant %s: %w", t.name, err)
		}
		for _, b := range blocks {
			written += b.meta.Bytes
		}
		work = append(work, pending{t, heads, blocks})
	}
	err = db.bdb.Update(func(txn *badger.Txn) error {
		for _, w := range work {
			for _, b := range w.blocks {
				key := encoding.BlockKey(w.t.name, b.meta.Partition, encoding.KindBlockMeta, b.meta.ID, 0)
				if err := txn.Set(key, b.meta.Encode(nil)); err != nil {
					return err
				}
			}
		}
		return txn.Set(encoding.KeyWALCheckpoint, binary.BigEndian.AppendUint64(nil, segment))
	})
	if err == nil {
		err = db.bdb.Sync()
	}
	if err != nil {
		db.metrics.flushes.WithLabelValues("error").Inc()
		return fmt.Errorf("flush: publish blocks: %w", err)
	}

	// Swap: the blocks become visible as the heads they came from go away.
	var flushedSpans, nblocks int
	for _, w := range work {
		w.t.mu.Lock()
		w.t.mu.blocks = append(w.t.mu.blocks, w.blocks...)
		sortBlocks(w.t.mu.blocks)
		w.t.mu.frozen = slices.DeleteFunc(w.t.mu.frozen, func(h *head) bool { return slices.Contains(w.heads, h) })
		w.t.mu.Unlock()
		for _, h := range w.heads {
			n, _ := h.stats()
			flushedSpans += n
		}
		nblocks += len(w.blocks)
	}
	db.metrics.headSpans.Sub(float64(flushedSpans))
	db.metrics.blocks.Add(float64(nblocks))
	db.metrics.flushedBytes.Add(float64(written))
	if err := db.wal.Truncate(segment); err != nil {
		// The blocks are safe; the old segments are dropped at the next
		// flush or open (replay starts at the checkpoint).
		db.log.Warn("flush: drop wal segments", "err", err)
	}
	db.metrics.flushes.WithLabelValues("ok").Inc()
	db.metrics.flushDuration.Observe(time.Since(start).Seconds())
	if flushedSpans > 0 {
		db.log.Info("flushed heads", "reason", reason, "spans", flushedSpans, "blocks", nblocks,
			"bytes", written, "duration", time.Since(start))
	}
	return nil
}

func (db *DB) setFlushing(v bool) {
	db.flushCond.L.Lock()
	db.flushing = v
	db.flushCond.L.Unlock()
	if !v {
		db.flushCond.Broadcast()
	}
}

// writeBlocks writes spans as one block per partition and returns them,
// not yet visible (their metas are not written).
func (db *DB) writeBlocks(tenant string, spans []*encoding.Span) ([]*diskBlock, error) {
	byPart := map[encoding.PartitionID][]*encoding.Span{}
	for _, s := range spans {
		p := encoding.PartitionOf(s.StartUnixNano, db.opts.PartitionWidth)
		byPart[p] = append(byPart[p], s)
	}
	var blocks []*diskBlock
	for _, p := range slices.Sorted(maps.Keys(byPart)) {
		b, err := db.writeBlock(tenant, p, byPart[p])
		if err != nil {
			return nil, err
		}
		blocks = append(blocks, b)
	}
	return blocks, nil
}

// compareSpans is the order of spans in a block: trace ID, start, span ID.
func compareSpans(a, b *encoding.Span) int {
	if c := a.TraceID.Compare(b.TraceID); c != 0 {
		return c
	}
	if c := cmp.Compare(a.StartUnixNano, b.StartUnixNano); c != 0 {
		return c
	}
	return bytes.Compare(a.SpanID[:], b.SpanID[:])
}

func (db *DB) writeBlock(tenant string, p encoding.PartitionID, spans []*encoding.Span) (*diskBlock, error) {
	slices.SortStableFunc(spans, compareSpans)
	meta := &encoding.BlockMeta{
		ID:        db.newBlockID(),
		Partition: p,
		MinStart:  spans[0].StartUnixNano,
		Spans:     uint64(len(spans)),
	}
	wb := db.bdb.NewWriteBatch()
	defer wb.Cancel()

	// Row groups, and the trace IDs for the filter.
	enc := db.codec.NewRowGroupEncoder()
	var traceIDs []encoding.TraceID
	for i, s := range spans {
		meta.MinStart = min(meta.MinStart, s.StartUnixNano)
		meta.MaxStart = max(meta.MaxStart, s.StartUnixNano)
		meta.MaxEnd = max(meta.MaxEnd, s.EndUnixNano)
		if i == 0 || s.TraceID != spans[i-1].TraceID {
			traceIDs = append(traceIDs, s.TraceID)
		}
	}
	meta.Traces = uint64(len(traceIDs))
	for lo := 0; lo < len(spans); lo += db.opts.RowGroupSpans {
		group := spans[lo:min(lo+db.opts.RowGroupSpans, len(spans))]
		v, err := enc.Encode(nil, group)
		if err != nil {
			return nil, fmt.Errorf("encode row group: %w", err)
		}
		n := uint32(len(meta.RowGroups))
		if err := wb.Set(encoding.BlockKey(tenant, p, encoding.KindRowGroup, meta.ID, n), v); err != nil {
			return nil, err
		}
		meta.RowGroups = append(meta.RowGroups, encoding.RowGroupRef{
			FirstTrace: group[0].TraceID, LastTrace: group[len(group)-1].TraceID,
			Spans: uint32(len(group)), Bytes: uint32(len(v)),
		})
		meta.Bytes += uint64(len(v))
	}

	// Postings over the block's ordinals.
	mp := index.NewMemPostings()
	terms := index.NewTermExtractor(db.opts.MaxIndexedValueLen)
	for i, s := range spans {
		ord := uint32(i)
		terms.SpanTerms(s, func(t index.Term) { mp.Add(ord, t) })
	}
	pw := index.NewPostingsWriter(nil)
	if err := mp.ForEach(func(t index.Term, ords []uint32) error { return pw.Add(t, ords) }); err != nil {
		return nil, fmt.Errorf("write postings: %w", err)
	}
	dict, sections, err := pw.Finish()
	if err != nil {
		return nil, fmt.Errorf("write postings: %w", err)
	}
	if err := wb.Set(encoding.BlockKey(tenant, p, encoding.KindPostingsDict, meta.ID, 0), dict); err != nil {
		return nil, err
	}
	meta.Bytes += uint64(len(dict))
	for i, sec := range sections {
		if err := wb.Set(encoding.BlockKey(tenant, p, encoding.KindPostings, meta.ID, uint32(i)), sec); err != nil {
			return nil, err
		}
		meta.Bytes += uint64(len(sec))
	}
	meta.PostingsSections = uint32(len(sections))

	bloom := index.NewBloom(len(traceIDs), bloomFPR)
	for _, id := range traceIDs {
		bloom.Add(id)
	}
	meta.TraceBloom = bloom.Encode()
	if err := wb.Flush(); err != nil {
		return nil, fmt.Errorf("write block %s: %w", meta.ID, err)
	}
	return openDiskBlock(db.bdb, db.codec, tenant, meta)
}

// newBlockID returns a store-unique, time-ordered block ID.
func (db *DB) newBlockID() encoding.BlockID {
	db.mu.Lock()
	defer db.mu.Unlock()
	ms := db.opts.Clock.Now().UnixMilli()
	if ms <= db.mu.lastMs {
		// Same millisecond, or the clock went back: keep IDs increasing.
		if db.mu.blockSeq == 1<<16-1 {
			db.mu.lastMs++
			db.mu.blockSeq = 0
		} else {
			db.mu.blockSeq++
		}
	} else {
		db.mu.lastMs, db.mu.blockSeq = ms, 0
	}
	return encoding.NewBlockID(time.UnixMilli(db.mu.lastMs), db.mu.blockSeq)
}

func sortBlocks(bs []*diskBlock) {
	slices.SortFunc(bs, func(a, b *diskBlock) int {
		return cmp.Or(cmp.Compare(a.meta.MinStart, b.meta.MinStart), cmp.Compare(a.meta.ID, b.meta.ID))
	})
}
