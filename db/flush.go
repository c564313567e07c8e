package db

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/index"
)

const (
	// bloomFPR is the false-positive rate of a block's trace-ID filter. A
	// false positive costs a trace read a whole row group's read and
	// decompression, and a lookup without a time hint probes every
	// block: at 1% a lookup over 40 blocks read a group for nothing one
	// time in three. At 0.1% that is one time in 27, for 14.4 bits a trace
	// (0.6 B more a trace than at 1%, held in memory with the block meta).
	bloomFPR = 0.001
	// maxFlushWorkers bounds the row groups a flush encodes at once, and so
	// the decoded spans it holds (up to maxRowGroupBytes of rows each).
	maxFlushWorkers = 4
	// maxRowGroupBytes bounds a row group's span data, as head rows,
	// before encoding.
	maxRowGroupBytes = 16 << 20
)

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
	depStates := map[string][]byte{}
	for _, t := range tenants {
		depStates[t.name] = t.deps.rotate().Encode(nil)
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
		blocks, err := db.writeBlocks(t.name, heads)
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
		for tenant, st := range depStates {
			if err := txn.Set(encoding.DependencyStateKey(tenant), st); err != nil {
				return err
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

// writeBlocks writes the spans of frozen heads as one block per partition
// and returns the blocks, not yet visible (their metas are not written).
func (db *DB) writeBlocks(tenant string, heads []*head) ([]*diskBlock, error) {
	fl := newFlushTerms(heads)
	rows := make([]headRows, len(heads))
	byPart := map[encoding.PartitionID][]flushSpan{}
	for hi, h := range heads {
		rows[hi] = h.capture()
		for ord, row := range rows[hi].rows {
			id, start, spanID, err := encoding.RowKey(row)
			if err != nil {
				return nil, err
			}
			p := encoding.PartitionOf(start, db.opts.PartitionWidth)
			byPart[p] = append(byPart[p], flushSpan{id, start, spanID, uint16(hi), uint32(ord)})
		}
	}
	var blocks []*diskBlock
	for _, p := range slices.Sorted(maps.Keys(byPart)) {
		b, err := db.writeBlock(tenant, p, byPart[p], rows, fl)
		if err != nil {
			return nil, err
		}
		blocks = append(blocks, b)
	}
	assignEdges(heads, blocks, db.opts.PartitionWidth)
	return blocks, nil
}

// flushSpan is a span being flushed: its sort key, and where its row sits
// in the heads.
type flushSpan struct {
	traceID encoding.TraceID
	start   uint64
	spanID  encoding.SpanID
	head    uint16 // index into the flushed heads
	ord     uint32 // ordinal in that head
}

// compareFlushSpans is the order of spans in a block: trace ID, start,
// span ID.
func compareFlushSpans(a, b flushSpan) int {
	if c := a.traceID.Compare(b.traceID); c != 0 {
		return c
	}
	return cmp.Or(cmp.Compare(a.start, b.start), bytes.Compare(a.spanID[:], b.spanID[:]))
}

// flushTerms maps the term IDs of the heads being flushed to one shared
// numbering, and gathers a block's postings from the spans' term IDs.
type flushTerms struct {
	idx      []*headIndex
	toGlobal [][]uint32 // per head: head term ID → global term ID
	terms    []index.Term
	lists    [][]uint32 // per global term ID: the block's ordinals
	touched  []uint32
}

func newFlushTerms(heads []*head) *flushTerms {
	fl := &flushTerms{}
	ids := map[index.Term]uint32{}
	for _, h := range heads {
		x := h.frozenIndex()
		fl.idx = append(fl.idx, x)
		m := make([]uint32, len(x.byID))
		for local, t := range x.byID {
			g, ok := ids[t]
			if !ok {
				g = uint32(len(fl.terms))
				ids[t] = g
				fl.terms = append(fl.terms, t)
			}
			m[local] = g
		}
		fl.toGlobal = append(fl.toGlobal, m)
	}
	fl.lists = make([][]uint32, len(fl.terms))
	return fl
}

// write adds the postings of spans, in their block order, to x.
func (fl *flushTerms) write(spans []flushSpan, x *blockIndex) error {
	for i, s := range spans {
		m := fl.toGlobal[s.head]
		for _, local := range fl.idx[s.head].termIDs(s.ord) {
			g := m[local]
			if fl.lists[g] == nil {
				fl.touched = append(fl.touched, g)
			}
			fl.lists[g] = append(fl.lists[g], uint32(i))
		}
	}
	slices.SortFunc(fl.touched, func(a, b uint32) int { return fl.terms[a].Compare(fl.terms[b]) })
	for _, g := range fl.touched {
		if err := x.add(fl.terms[g], fl.lists[g]); err != nil {
			return err
		}
		fl.lists[g] = nil // x keeps the list; the next block starts afresh
	}
	fl.touched = fl.touched[:0]
	return nil
}

func (db *DB) writeBlock(tenant string, p encoding.PartitionID, fspans []flushSpan, rows []headRows, fl *flushTerms) (*diskBlock, error) {
	slices.SortFunc(fspans, compareFlushSpans)
	meta := &encoding.BlockMeta{
		ID:        db.newBlockID(),
		Partition: p,
		MinStart:  fspans[0].start,
		Spans:     uint64(len(fspans)),
	}
	wb := db.bdb.NewWriteBatch()
	defer wb.Cancel()

	var traceIDs []encoding.TraceID
	for i, s := range fspans {
		meta.MinStart = min(meta.MinStart, s.start)
		meta.MaxStart = max(meta.MaxStart, s.start)
		if i == 0 || s.traceID != fspans[i-1].traceID {
			traceIDs = append(traceIDs, s.traceID)
		}
	}
	// Row groups are encoded on up to maxFlushWorkers workers (no more
	// than GOMAXPROCS) while this goroutine builds the postings: on a
	// store that ingests faster than one core flushes, writers wait for
	// the flush, so the flush is what the other cores can help with. A
	// worker decodes one group's rows at a time, so the flush holds at most
	// that many groups of decoded spans, besides the block's encoded groups.
	groups := cutRowGroups(fspans, rows, db.opts.RowGroupSpans)
	encoded := make([][]byte, len(groups))
	maxEnds := make([]uint64, len(groups))
	var (
		next   atomic.Int64
		failed atomic.Bool
		wg     sync.WaitGroup
	)
	workers := min(runtime.GOMAXPROCS(0), maxFlushWorkers, len(groups))
	errs := make([]error, workers)
	for w := range workers {
		wg.Go(func() {
			enc := db.codec.NewRowGroupEncoder()
			var spans []*encoding.Span
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= len(groups) {
					return
				}
				spans = spans[:0]
				for _, f := range fspans[groups[i].lo:groups[i].hi] {
					s, err := rows[f.head].span(f.ord)
					if err != nil {
						errs[w] = err
						failed.Store(true)
						return
					}
					maxEnds[i] = max(maxEnds[i], s.EndUnixNano)
					spans = append(spans, s)
				}
				v, err := enc.Encode(nil, spans)
				if err != nil {
					errs[w] = fmt.Errorf("encode row group: %w", err)
					failed.Store(true)
					return
				}
				encoded[i] = v
			}
		})
	}
	// Postings over the block's ordinals, from the heads' term IDs.
	x := newBlockIndex(len(fspans))
	perr := fl.write(fspans, x)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if perr != nil {
		return nil, fmt.Errorf("write postings: %w", perr)
	}
	for i, g := range groups {
		meta.MaxEnd = max(meta.MaxEnd, maxEnds[i])
		first, last := fspans[g.lo].traceID, fspans[g.hi-1].traceID
		if err := addRowGroup(wb, tenant, meta, first, last, g.hi-g.lo, encoded[i]); err != nil {
			return nil, err
		}
	}
	return db.finishBlock(wb, tenant, meta, x, traceIDs)
}

// rowRange is a row group's span range [lo, hi) in a block's spans.
type rowRange struct{ lo, hi int }

// cutRowGroups cuts spans into row groups of at most perGroup spans or
// about maxRowGroupBytes of rows, whichever comes first, so that huge
// spans cannot make a row group too large to read at once.
func cutRowGroups(spans []flushSpan, rows []headRows, perGroup int) []rowRange {
	var groups []rowRange
	for lo := 0; lo < len(spans); {
		hi, size := lo, 0
		for hi < len(spans) && hi-lo < perGroup && (hi == lo || size < maxRowGroupBytes) {
			size += len(rows[spans[hi].head].rows[spans[hi].ord])
			hi++
		}
		groups = append(groups, rowRange{lo, hi})
		lo = hi
	}
	return groups
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
