// Package compaction decides which blocks the store merges. The planner is
// a pure function from block metadata and the time to groups of blocks, so
// that it is tested with small tables; the store (package db) carries the
// groups out: it merges each group's spans in trace order into one block,
// drops exact duplicates, and swaps the new block in for the old ones in one
// transaction.
//
// Why merge: a flush writes one block per partition its head touched, so a
// busy hour gets a block every few seconds of ingest. Few large blocks mean
// fewer postings to intersect per query, a trace's spans stored together
// (one row group read instead of one per block), better compression, and
// exact duplicates (client retries) stored once.
package compaction

import (
	"cmp"
	"maps"
	"slices"
	"time"

	"github.com/tracedb/tracedb/encoding"
)

// Block describes one block of a tenant, as the planner sees it.
type Block struct {
	ID        encoding.BlockID
	Partition encoding.PartitionID
	Spans     uint64
	Bytes     uint64
}

// Options tune the planner. The zero value of a field means its default.
type Options struct {
	// MaxBlockSpans is the most spans a merged block may hold; blocks of
	// half as many or more are not merged again. Default 262,144, the size
	// of a full flush (db.DefaultMaxHeadSpans): small blocks (flushes by
	// age, the stragglers of a flush that touched several partitions) are
	// merged up to it. Larger blocks are denser, but a trace search reads
	// the start times of every candidate in the newest block it touches
	// (blocks are ordered by trace ID, not time), so its cost grows with
	// the block size: at 300,000 spans per block a service+operation
	// search takes about twice as long as at 150,000 (bench/RESULTS.md).
	MaxBlockSpans uint64
	// MinBlocks is the fewest blocks a group merges. Default 2.
	MinBlocks int
	// PartitionWidth is the store's partition width, to tell when a
	// partition stops receiving spans. Required.
	PartitionWidth time.Duration
	// Settle is how long after its window ends a partition is left alone
	// before it is merged, so that late spans land first. A partition that
	// is still being written is merged only once it has more than
	// MaxLiveBlocks blocks. Default 5 minutes.
	Settle time.Duration
	// MaxLiveBlocks bounds the blocks of a partition still being written
	// before its small blocks are merged anyway. Default 16.
	MaxLiveBlocks int
}

// Defaults of Options.
const (
	DefaultMaxBlockSpans = 1 << 18
	DefaultMinBlocks     = 2
	DefaultSettle        = 5 * time.Minute
	DefaultMaxLiveBlocks = 16
)

func (o *Options) fillDefaults() {
	if o.MaxBlockSpans == 0 {
		o.MaxBlockSpans = DefaultMaxBlockSpans
	}
	if o.MinBlocks == 0 {
		o.MinBlocks = DefaultMinBlocks
	}
	if o.Settle == 0 {
		o.Settle = DefaultSettle
	}
	if o.MaxLiveBlocks == 0 {
		o.MaxLiveBlocks = DefaultMaxLiveBlocks
	}
}

// Group is a set of blocks of one partition to merge into one, oldest
// first.
type Group struct {
	Partition encoding.PartitionID
	Blocks    []encoding.BlockID
	Spans     uint64 // before duplicates are dropped
}

// Plan returns the groups of blocks (all of one tenant) to merge at time
// now: in each partition that has settled (or has too many blocks), the
// runs of consecutive small blocks (by ID, that is by age) whose spans add
// up to at most MaxBlockSpans, when a run has at least MinBlocks blocks.
// blocks is not modified. Groups come by partition, then age.
func Plan(blocks []Block, opts Options, now time.Time) []Group {
	opts.fillDefaults()
	byPart := map[encoding.PartitionID][]Block{}
	for _, b := range blocks {
		byPart[b.Partition] = append(byPart[b.Partition], b)
	}
	var groups []Group
	for _, p := range slices.Sorted(maps.Keys(byPart)) {
		bs := byPart[p]
		slices.SortFunc(bs, func(a, b Block) int { return cmp.Compare(a.ID, b.ID) })
		windowEnd := p.Start(opts.PartitionWidth).Add(opts.PartitionWidth)
		settled := !now.Before(windowEnd.Add(opts.Settle))
		if !settled && len(bs) <= opts.MaxLiveBlocks {
			continue
		}
		var run []Block
		var spans uint64
		flush := func() {
			if len(run) >= opts.MinBlocks {
				g := Group{Partition: p, Spans: spans}
				for _, b := range run {
					g.Blocks = append(g.Blocks, b.ID)
				}
				groups = append(groups, g)
			}
			run, spans = nil, 0
		}
		for _, b := range bs {
			if b.Spans >= opts.MaxBlockSpans/2 {
				flush() // a large block ends a run and stays as it is
				continue
			}
			if spans+b.Spans > opts.MaxBlockSpans {
				flush()
			}
			run = append(run, b)
			spans += b.Spans
		}
		flush()
	}
	return groups
}
