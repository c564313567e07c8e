package db

import (
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/index"
)

// blockBuilder writes a block from spans given in block order (trace ID,
// start, span ID), as compaction produces them: row groups as they fill,
// then the postings, term histograms and trace-ID filter. Its keys are not
// visible until the caller commits the returned block's meta. The flush has
// its own writer (writeBlock), which reuses the heads' term IDs.
type blockBuilder struct {
	db      *DB
	tenant  string
	meta    *encoding.BlockMeta
	wb      *badger.WriteBatch
	enc     *encoding.RowGroupEncoder
	group   []*encoding.Span
	size    int // approximate bytes of group, as head rows
	scratch []byte

	terms    *index.TermExtractor
	postings *index.MemPostings
	traceIDs []encoding.TraceID
	n        uint32
}

func (db *DB) newBlockBuilder(tenant string, p encoding.PartitionID) *blockBuilder {
	return &blockBuilder{
		db:       db,
		tenant:   tenant,
		meta:     &encoding.BlockMeta{ID: db.newBlockID(), Partition: p},
		wb:       db.bdb.NewWriteBatch(),
		enc:      db.codec.NewRowGroupEncoder(),
		terms:    index.NewTermExtractor(db.opts.MaxIndexedValueLen),
		postings: index.NewMemPostings(),
	}
}

// add appends s, which must not sort before the span added last.
func (b *blockBuilder) add(s *encoding.Span) error {
	m := b.meta
	if b.n == 0 {
		m.MinStart = s.StartUnixNano
	}
	m.MinStart = min(m.MinStart, s.StartUnixNano)
	m.MaxStart = max(m.MaxStart, s.StartUnixNano)
	m.MaxEnd = max(m.MaxEnd, s.EndUnixNano)
	if n := len(b.traceIDs); n == 0 || b.traceIDs[n-1] != s.TraceID {
		b.traceIDs = append(b.traceIDs, s.TraceID)
	}
	var err error
	b.terms.SpanTerms(s, func(t index.Term) {
		if err == nil {
			err = b.postings.Add(b.n, t)
		}
	})
	if err != nil {
		return err
	}
	b.n++
	b.scratch = encoding.AppendRow(b.scratch[:0], s, 0, 0)
	b.size += len(b.scratch)
	b.group = append(b.group, s)
	if len(b.group) >= b.db.opts.RowGroupSpans || b.size >= maxRowGroupBytes {
		return b.flushGroup()
	}
	return nil
}

// flushGroup encodes the spans gathered into the next row group.
func (b *blockBuilder) flushGroup() error {
	if len(b.group) == 0 {
		return nil
	}
	if err := putRowGroup(b.wb, b.enc, b.tenant, b.meta, b.group); err != nil {
		return err
	}
	clear(b.group)
	b.group, b.size = b.group[:0], 0
	return nil
}

// finish writes the rest of the block and returns it, not yet visible. It
// must not be called on an empty builder.
func (b *blockBuilder) finish(edges []encoding.DependencyEdge) (*diskBlock, error) {
	if err := b.flushGroup(); err != nil {
		return nil, err
	}
	b.meta.Spans = uint64(b.n)
	b.meta.Edges = edges
	x := newBlockIndex(int(b.n))
	if err := b.postings.ForEach(x.add); err != nil {
		return nil, fmt.Errorf("write postings: %w", err)
	}
	return b.db.finishBlock(b.wb, b.tenant, b.meta, x, b.traceIDs)
}

// cancel gives up the block; keys already written are orphans, deleted
// with deleteBlockKeys or at the next open.
func (b *blockBuilder) cancel() { b.wb.Cancel() }

// putRowGroup encodes spans as the next row group of the block of meta into
// wb and records it in meta.
func putRowGroup(wb *badger.WriteBatch, enc *encoding.RowGroupEncoder, tenant string, meta *encoding.BlockMeta, spans []*encoding.Span) error {
	v, err := enc.Encode(nil, spans)
	if err != nil {
		return fmt.Errorf("encode row group: %w", err)
	}
	return addRowGroup(wb, tenant, meta, spans[0].TraceID, spans[len(spans)-1].TraceID, len(spans), v)
}

// addRowGroup writes v, the encoding of spans spans from trace first to
// trace last, as the next row group of the block of meta into wb and
// records it in meta.
func addRowGroup(wb *badger.WriteBatch, tenant string, meta *encoding.BlockMeta, first, last encoding.TraceID, spans int, v []byte) error {
	n := uint32(len(meta.RowGroups))
	if err := wb.Set(encoding.BlockKey(tenant, meta.Partition, encoding.KindRowGroup, meta.ID, n), v); err != nil {
		return err
	}
	meta.RowGroups = append(meta.RowGroups, encoding.RowGroupRef{
		FirstTrace: first, LastTrace: last, Spans: uint32(spans), Bytes: uint32(len(v)),
	})
	meta.Bytes += uint64(len(v))
	return nil
}

// blockIndex gathers what a block writes after its row groups: its
// postings, given term by term in term order, and the term histograms that
// the service, operation, duration and kind terms make.
type blockIndex struct {
	pw        *index.PostingsWriter
	bucketOf  []uint16 // duration bucket of each span
	kindOf    []uint8  // kind bit of each span
	histTerms []index.Term
	histLists [][]uint32
}

func newBlockIndex(spans int) *blockIndex {
	return &blockIndex{pw: index.NewPostingsWriter(nil), bucketOf: make([]uint16, spans), kindOf: make([]uint8, spans)}
}

// add adds term t with the block ordinals ords, which must stay unchanged
// until finishBlock.
func (x *blockIndex) add(t index.Term, ords []uint32) error {
	switch {
	case t.Name == index.NameDuration:
		b, ok := index.ParseDurationValue(t.Value)
		if !ok {
			return fmt.Errorf("duration term %s does not name a bucket", t)
		}
		for _, o := range ords {
			x.bucketOf[o] = b
		}
	case t.Name == index.NameKind:
		k := index.KindBit(t.Value)
		for _, o := range ords {
			x.kindOf[o] = k
		}
	case index.HistogramTerm(t.Name):
		x.histTerms = append(x.histTerms, t)
		x.histLists = append(x.histLists, ords)
	}
	return x.pw.Add(t, ords)
}

// finishBlock writes the block's postings, term histograms and trace-ID
// filter into wb, completes meta, flushes wb and returns the block, not
// yet visible (its meta is not written).
func (db *DB) finishBlock(wb *badger.WriteBatch, tenant string, meta *encoding.BlockMeta, x *blockIndex, traceIDs []encoding.TraceID) (*diskBlock, error) {
	dict, sections, err := x.pw.Finish()
	if err != nil {
		return nil, fmt.Errorf("write postings: %w", err)
	}
	set := func(kind byte, n uint32, v []byte) error {
		meta.Bytes += uint64(len(v))
		return wb.Set(encoding.BlockKey(tenant, meta.Partition, kind, meta.ID, n), v)
	}
	if err := set(encoding.KindPostingsDict, 0, dict); err != nil {
		return nil, err
	}
	for i, sec := range sections {
		if err := set(encoding.KindPostings, uint32(i), sec); err != nil {
			return nil, err
		}
	}
	meta.PostingsSections = uint32(len(sections))
	hists := index.BuildTermHistograms(x.histTerms, x.histLists, x.bucketOf, x.kindOf)
	if err := set(encoding.KindTermHists, 0, hists.Encode(nil)); err != nil {
		return nil, err
	}
	meta.Traces = uint64(len(traceIDs))
	bloom := index.NewBloom(len(traceIDs), bloomFPR)
	for _, id := range traceIDs {
		bloom.Add(id)
	}
	meta.TraceBloom = bloom.Encode()
	if err := wb.Flush(); err != nil {
		return nil, fmt.Errorf("write block %s: %w", meta.ID, err)
	}
	return openDiskBlock(db.bdb, db.codec, db.rgCache, tenant, meta)
}
