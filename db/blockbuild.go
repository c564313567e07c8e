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
	v, err := b.enc.Encode(nil, b.group)
	if err != nil {
		return fmt.Errorf("encode row group: %w", err)
	}
	m := b.meta
	n := uint32(len(m.RowGroups))
	if err := b.wb.Set(encoding.BlockKey(b.tenant, m.Partition, encoding.KindRowGroup, m.ID, n), v); err != nil {
		return err
	}
	m.RowGroups = append(m.RowGroups, encoding.RowGroupRef{
		FirstTrace: b.group[0].TraceID, LastTrace: b.group[len(b.group)-1].TraceID,
		Spans: uint32(len(b.group)), Bytes: uint32(len(v)),
	})
	m.Bytes += uint64(len(v))
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
	m := b.meta
	m.Spans = uint64(b.n)
	m.Traces = uint64(len(b.traceIDs))
	m.Edges = edges

	pw := index.NewPostingsWriter(nil)
	bucketOf := make([]uint16, b.n)
	kindOf := make([]uint8, b.n)
	var histTerms []index.Term
	var histLists [][]uint32
	err := b.postings.ForEach(func(t index.Term, ords []uint32) error {
		switch {
		case t.Name == index.NameDuration:
			bucket, ok := index.ParseDurationValue(t.Value)
			if !ok {
				return fmt.Errorf("duration term %s does not name a bucket", t)
			}
			for _, o := range ords {
				bucketOf[o] = bucket
			}
		case t.Name == index.NameKind:
			k := index.KindBit(t.Value)
			for _, o := range ords {
				kindOf[o] = k
			}
		case index.HistogramTerm(t.Name):
			histTerms = append(histTerms, t)
			histLists = append(histLists, ords)
		}
		return pw.Add(t, ords)
	})
	if err != nil {
		return nil, fmt.Errorf("write postings: %w", err)
	}
	dict, sections, err := pw.Finish()
	if err != nil {
		return nil, fmt.Errorf("write postings: %w", err)
	}
	set := func(kind byte, n uint32, v []byte) error {
		m.Bytes += uint64(len(v))
		return b.wb.Set(encoding.BlockKey(b.tenant, m.Partition, kind, m.ID, n), v)
	}
	if err := set(encoding.KindPostingsDict, 0, dict); err != nil {
		return nil, err
	}
	for i, sec := range sections {
		if err := set(encoding.KindPostings, uint32(i), sec); err != nil {
			return nil, err
		}
	}
	m.PostingsSections = uint32(len(sections))
	if err := set(encoding.KindTermHists, 0, index.BuildTermHistograms(histTerms, histLists, bucketOf, kindOf).Encode(nil)); err != nil {
		return nil, err
	}
	bloom := index.NewBloom(len(b.traceIDs), bloomFPR)
	for _, id := range b.traceIDs {
		bloom.Add(id)
	}
	m.TraceBloom = bloom.Encode()
	if err := b.wb.Flush(); err != nil {
		return nil, fmt.Errorf("write block %s: %w", m.ID, err)
	}
	return openDiskBlock(b.db.bdb, b.db.codec, b.tenant, m)
}

// cancel gives up the block; keys already written are orphans, deleted
// with deleteBlockKeys or at the next open.
func (b *blockBuilder) cancel() { b.wb.Cancel() }
