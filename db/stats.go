package db

import (
	"context"
	"slices"

	"github.com/tracedb/tracedb/encoding"
)

// This file describes what the store holds for one tenant: the counts
// tracedb stats prints and the time range of the spans, which tracedb rate
// uses when it is given no range. The server's analytics API answers from
// the same functions, so the CLI shows the same numbers with --server as on
// the data directory.

// TenantStats is what the store holds for one tenant.
type TenantStats struct {
	Tenant string
	// Partitions are the tenant's partitions with blocks on disk, by
	// ascending ID.
	Partitions []PartitionStats
	// Blocks is the number of disk blocks in the tenant's snapshot.
	Blocks int
	// Spans and Bytes are the spans and encoded bytes of the partitions'
	// blocks; HeadSpans the spans not yet flushed (the head and the heads
	// being flushed).
	Spans, HeadSpans, Bytes uint64
	// MinStart is the earliest span start, MaxEnd the latest span end (or
	// start, when later), over blocks and heads, Unix ns; both 0 when the
	// tenant holds no span.
	MinStart, MaxEnd uint64
}

// PartitionStats is one partition's blocks on disk.
type PartitionStats struct {
	ID     encoding.PartitionID
	Blocks int
	Spans  uint64
	Bytes  uint64
	// MinStart is the earliest span start, MaxEnd the latest span end (or
	// start, when later), Unix ns.
	MinStart, MaxEnd uint64
}

// Stats returns what the store holds for the context's tenant: its
// partitions (from the blocks' metadata) and its snapshot (for the block
// counts and the heads' spans). The two are read one after the other, so a
// flush between them may show its spans in neither or both; the numbers
// are a description, not a transaction.
func (db *DB) Stats(ctx context.Context) (TenantStats, error) {
	tenant, err := tenantOf(ctx)
	if err != nil {
		return TenantStats{}, err
	}
	ts := TenantStats{Tenant: tenant}
	snap, err := db.Snapshot(ctx)
	if err != nil {
		return ts, err
	}
	defer snap.Release()
	first := true
	widen := func(lo, hi uint64) {
		if first || lo < ts.MinStart {
			ts.MinStart = lo
		}
		ts.MaxEnd, first = max(ts.MaxEnd, hi), false
	}
	blocksOf := map[encoding.PartitionID]int{}
	for _, r := range snap.Readers {
		info := r.Info()
		if info.Head {
			ts.HeadSpans += info.Spans
			if info.Spans > 0 {
				widen(info.MinStart, max(info.MaxEnd, info.MaxStart))
			}
			continue
		}
		ts.Blocks++
		blocksOf[info.Partition]++
	}
	for _, p := range db.Partitions() {
		if p.Tenant != tenant {
			continue
		}
		ts.Partitions = append(ts.Partitions, PartitionStats{
			ID: p.ID, Blocks: blocksOf[p.ID], Spans: p.Spans, Bytes: p.Bytes, MinStart: p.MinStart, MaxEnd: p.MaxEnd,
		})
		ts.Spans += p.Spans
		ts.Bytes += p.Bytes
		widen(p.MinStart, p.MaxEnd)
	}
	slices.SortFunc(ts.Partitions, func(a, b PartitionStats) int { return int(int64(a.ID) - int64(b.ID)) })
	return ts, nil
}

// StartRange returns the earliest and the latest span start of the
// context's tenant, over its heads and blocks; ok is false when it holds
// no span.
func (db *DB) StartRange(ctx context.Context) (r TimeRange, ok bool, err error) {
	snap, err := db.Snapshot(ctx)
	if err != nil {
		return TimeRange{}, false, err
	}
	defer snap.Release()
	for _, rd := range snap.Readers {
		info := rd.Info()
		if info.Spans == 0 {
			continue
		}
		if !ok || info.MinStart < r.Start {
			r.Start = info.MinStart
		}
		r.End, ok = max(r.End, info.MaxStart), true
	}
	return r, ok, nil
}
