package db

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"

	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/index"
)

// diskBlock is an immutable block stored in Badger: its meta and trace-ID
// filter in memory, its row groups and postings read on demand.
type diskBlock struct {
	bdb    *badger.DB
	codec  *encoding.Codec
	cache  *rowGroupCache // may be nil
	tenant string
	meta   *encoding.BlockMeta
	bloom  *index.Bloom

	// refs counts the snapshots that hold the block; dropped is set when
	// retention removed it from the store's list. Its keys are deleted
	// once both hold (see DB.reclaim).
	refs    atomic.Int64
	dropped atomic.Bool

	histsOnce sync.Once
	hists     *index.TermHistograms // nil when the block has none (written before they existed)
	histsErr  error

	postingsOnce sync.Once
	postings     *index.PostingsReader
	postingsErr  error
}

func openDiskBlock(bdb *badger.DB, codec *encoding.Codec, cache *rowGroupCache, tenant string, meta *encoding.BlockMeta) (*diskBlock, error) {
	bloom, err := index.DecodeBloom(meta.TraceBloom)
	if err != nil {
		return nil, fmt.Errorf("block %s: trace bloom: %w", meta.ID, err)
	}
	return &diskBlock{bdb: bdb, codec: codec, cache: cache, tenant: tenant, meta: meta, bloom: bloom}, nil
}

func (b *diskBlock) pin()   { b.refs.Add(1) }
func (b *diskBlock) unpin() { b.refs.Add(-1) }

// unused reports whether the block was dropped and no snapshot holds it.
func (b *diskBlock) unused() bool { return b.dropped.Load() && b.refs.Load() == 0 }

func (b *diskBlock) key(kind byte, n uint32) []byte {
	return encoding.BlockKey(b.tenant, b.meta.Partition, kind, b.meta.ID, n)
}

// get reads one value of the block, copied out of Badger.
func (b *diskBlock) get(key []byte) ([]byte, error) { return b.read(key, false) }

// getOptional is get for a value that may be absent: nil, nil then.
func (b *diskBlock) getOptional(key []byte) ([]byte, error) { return b.read(key, true) }

func (b *diskBlock) read(key []byte, optional bool) ([]byte, error) {
	var v []byte
	err := b.bdb.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if optional && errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	})
	if err != nil {
		p, _ := encoding.ParseBlockKey(key)
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return v, nil
}

// Edges returns the service-graph calls counted with the block's spans.
func (b *diskBlock) Edges() []encoding.DependencyEdge { return b.meta.Edges }

func (b *diskBlock) Info() BlockInfo {
	m := b.meta
	return BlockInfo{ID: m.ID, Partition: m.Partition, MinStart: m.MinStart, MaxStart: m.MaxStart,
		MaxEnd: m.MaxEnd, Spans: m.Spans, Traces: m.Traces, Bytes: m.Bytes}
}

func (b *diskBlock) postingsReader() (*index.PostingsReader, error) {
	b.postingsOnce.Do(func() {
		dict, err := b.get(b.key(encoding.KindPostingsDict, 0))
		if err != nil {
			b.postingsErr = err
			return
		}
		b.postings, b.postingsErr = index.NewPostingsReader(dict, func(section int) ([]byte, error) {
			if section < 0 || uint32(section) >= b.meta.PostingsSections {
				return nil, encoding.Corruptf("postings", -1, "section %d of %d", section, b.meta.PostingsSections)
			}
			return b.get(b.key(encoding.KindPostings, uint32(section)))
		}, &index.PostingsReaderOptions{Decoder: b.codec.Decoder()})
		if b.postingsErr != nil {
			b.postingsErr = fmt.Errorf("block %s postings: %w", b.meta.ID, b.postingsErr)
		}
	})
	return b.postings, b.postingsErr
}

func (b *diskBlock) Postings(t index.Term) (index.Postings, error) {
	r, err := b.postingsReader()
	if err != nil {
		return nil, err
	}
	return r.Postings(t)
}

func (b *diskBlock) Values(name string) ([]string, error) {
	r, err := b.postingsReader()
	if err != nil {
		return nil, err
	}
	return r.Values(name)
}

func (b *diskBlock) PostingsRange(name, from, to string, fn func(value string, p index.Postings) error) error {
	r, err := b.postingsReader()
	if err != nil {
		return err
	}
	return r.PostingsRange(name, from, to, fn)
}

func (b *diskBlock) MayContainTrace(id encoding.TraceID) bool { return b.bloom.MayContain(id) }

// rowGroup returns row group i, from the cache when it is there. With keep
// set (trace reads, which decompress every column anyway) a group read
// from the store is inflated and offered to the cache.
func (b *diskBlock) rowGroup(i int, keep bool) (*encoding.RowGroup, error) {
	return b.rowGroupIn(nil, i, keep)
}

// rowGroupIn is rowGroup reading through txn, a read transaction that a
// walk over many groups opens once (a transaction per read was a fifth of
// a dense search's time); nil opens one for this read. The group is
// decoded straight from Badger's value, which DecodeRowGroup copies what
// it keeps of, so the value is not copied out first.
func (b *diskBlock) rowGroupIn(txn *badger.Txn, i int, keep bool) (*encoding.RowGroup, error) {
	if g := b.cache.get(b.meta.ID, i, keep); g != nil {
		return g, nil
	}
	key := b.key(encoding.KindRowGroup, uint32(i))
	var g *encoding.RowGroup
	decode := func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			p, _ := encoding.ParseBlockKey(key)
			return fmt.Errorf("read %s: %w", p, err)
		}
		return item.Value(func(v []byte) error {
			g, err = b.codec.DecodeRowGroup(v)
			if err != nil {
				return fmt.Errorf("block %s row group %d: %w", b.meta.ID, i, err)
			}
			return nil
		})
	}
	var err error
	if txn != nil {
		err = decode(txn)
	} else {
		err = b.bdb.View(decode)
	}
	if err != nil {
		return nil, err
	}
	if want := b.meta.RowGroups[i].Spans; uint32(g.Len()) != want {
		// Readers index rows by the meta's counts: a mismatch would send
		// them out of the group's range.
		return nil, encoding.Corruptf("row group", -1, "block %s row group %d: %d rows, the block meta says %d", b.meta.ID, i, g.Len(), want)
	}
	if keep && b.cache != nil {
		ig, err := g.Inflated()
		if err != nil {
			return nil, fmt.Errorf("block %s row group %d: %w", b.meta.ID, i, err)
		}
		b.cache.put(b.meta.ID, i, ig)
		return ig.Clone(), nil
	}
	return g, nil
}

// TermKinds returns the kinds of term t's spans from the block's term
// histograms (version 2 and later).
func (b *diskBlock) TermKinds(t index.Term) (uint8, bool, error) {
	if !index.HistogramTerm(t.Name) {
		return 0, false, nil
	}
	h, err := b.termHists()
	if h == nil || err != nil {
		return 0, false, err
	}
	if !h.KindsKept() {
		return 0, false, nil
	}
	mask, _ := h.Kinds(t) // 0 when no span of the block carries t
	return mask, true, nil
}

// termHists returns the block's term histograms, read once; nil when the
// block has none (written before they existed).
func (b *diskBlock) termHists() (*index.TermHistograms, error) {
	b.histsOnce.Do(func() {
		v, err := b.getOptional(b.key(encoding.KindTermHists, 0))
		if err != nil || v == nil {
			b.histsErr = err
			return
		}
		if b.hists, err = index.DecodeTermHistograms(v); err != nil {
			b.histsErr = fmt.Errorf("block %s: %w", b.meta.ID, err)
		}
	})
	return b.hists, b.histsErr
}

// DurationHistogram returns the block's precomputed duration histogram of
// term t, read once per block.
func (b *diskBlock) DurationHistogram(t index.Term) ([]index.BucketCount, bool, error) {
	if !index.HistogramTerm(t.Name) {
		return nil, false, nil
	}
	h, err := b.termHists()
	if h == nil || err != nil {
		return nil, false, err
	}
	hist, _ := h.Get(t)
	return hist, true, nil
}

// eachRow calls fn with the row group and row of each ordinal of ords, in
// order, loading each row group once (with load, when given, called on it
// first); it checks ctx every few thousand ordinals.
func (b *diskBlock) eachRow(ctx context.Context, ords index.Postings, load func(g *encoding.RowGroup, gi int) error,
	fn func(ord uint32, g *encoding.RowGroup, row int) error) error {
	var (
		g     *encoding.RowGroup // row group gi, loaded on first use
		gi    int
		first uint32      // ordinal of the first row of row group gi
		txn   *badger.Txn // one read transaction for every group the walk reads
	)
	defer func() {
		if txn != nil {
			txn.Discard()
		}
	}()
	for n := 0; ords.Next(); n++ {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		ord := ords.At()
		for gi < len(b.meta.RowGroups) && ord >= first+b.meta.RowGroups[gi].Spans {
			first += b.meta.RowGroups[gi].Spans
			gi++
			g = nil
		}
		if gi >= len(b.meta.RowGroups) {
			return encoding.Corruptf("postings", -1, "block %s: ordinal %d past the last span", b.meta.ID, ord)
		}
		if g == nil {
			var err error
			if txn == nil {
				txn = b.bdb.NewTransaction(false)
			}
			if g, err = b.rowGroupIn(txn, gi, false); err != nil {
				return err
			}
			if load != nil {
				if err := load(g, gi); err != nil {
					return err
				}
			}
		}
		if err := fn(ord, g, int(ord-first)); err != nil {
			return err
		}
	}
	return ords.Err()
}

// SpanTimes calls fn with the trace ID, start and end of each ordinal's
// span, decoding only the time columns of the row groups it reads.
func (b *diskBlock) SpanTimes(ctx context.Context, ords index.Postings, fn func(ord uint32, id encoding.TraceID, start, end uint64) error) error {
	var starts, ends []uint64
	run := 0 // the trace run of the previous row, for TraceIDFrom
	load := func(g *encoding.RowGroup, gi int) (err error) {
		run = 0
		if starts, ends, err = g.Times(); err != nil {
			return fmt.Errorf("block %s row group %d: %w", b.meta.ID, gi, err)
		}
		return nil
	}
	return b.eachRow(ctx, ords, load, func(ord uint32, g *encoding.RowGroup, i int) error {
		return fn(ord, g.TraceIDFrom(i, &run), starts[i], ends[i])
	})
}

// spanOwners calls fn with the trace ID, span ID and resource of every
// span of the block, in order, until fn returns false; the spans are not
// built.
func (b *diskBlock) spanOwners(fn func(encoding.TraceID, encoding.SpanID, *encoding.Resource) bool) error {
	txn := b.bdb.NewTransaction(false)
	defer txn.Discard()
	for gi := range b.meta.RowGroups {
		g, err := b.rowGroupIn(txn, gi, false)
		if err != nil {
			return err
		}
		run := 0
		for i := range g.Len() {
			id, r, err := g.SpanOwner(i)
			if err != nil {
				return fmt.Errorf("block %s row group %d: %w", b.meta.ID, gi, err)
			}
			if !fn(g.TraceIDFrom(i, &run), id, r) {
				return nil
			}
		}
	}
	return nil
}

// Spans calls fn with the span of each ordinal of ords, in order.
func (b *diskBlock) Spans(ctx context.Context, ords index.Postings, fn func(ord uint32, s *encoding.Span) error) error {
	return b.eachRow(ctx, ords, nil, func(ord uint32, g *encoding.RowGroup, i int) error {
		s, err := g.Span(i)
		if err != nil {
			return err
		}
		return fn(ord, s)
	})
}

func (b *diskBlock) TraceSpans(ctx context.Context, id encoding.TraceID, fn func(s *encoding.Span) error) error {
	for _, gi := range b.meta.RowGroupsFor(id) {
		if err := ctx.Err(); err != nil {
			return err
		}
		g, err := b.rowGroup(gi, true)
		if err != nil {
			return err
		}
		// Only the trace's rows are decoded (Rows), not the whole group.
		lo, hi := g.TraceRange(id)
		spans, err := g.Rows(lo, hi)
		if err != nil {
			return fmt.Errorf("block %s row group %d: %w", b.meta.ID, gi, err)
		}
		for _, s := range spans {
			if err := fn(s); err != nil {
				return err
			}
		}
	}
	return nil
}
