package compaction

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tracedb/tracedb/encoding"
)

func TestPlan(t *testing.T) {
	const width = time.Hour
	p0 := encoding.PartitionOf(uint64(10*time.Hour), width)
	p1 := p0 + 1
	afterP1 := p1.Start(width).Add(width + DefaultSettle) // p0 and p1 settled
	inP1 := p1.Start(width).Add(30 * time.Minute)         // p1 live, p0 settled
	blk := func(p encoding.PartitionID, id uint64, spans uint64) Block {
		return Block{ID: encoding.BlockID(id), Partition: p, Spans: spans, Bytes: spans * 50}
	}
	opts := Options{PartitionWidth: width, MaxBlockSpans: 1000, MaxLiveBlocks: 3}
	for _, c := range []struct {
		name   string
		blocks []Block
		now    time.Time
		want   string
	}{
		{"nothing", nil, afterP1, "[]"},
		{"one block stays", []Block{blk(p0, 1, 100)}, afterP1, "[]"},
		{"small blocks merge", []Block{blk(p0, 2, 100), blk(p0, 1, 100), blk(p0, 3, 100)}, afterP1, "[p0:[1 2 3]]"},
		{"runs split at the size", []Block{blk(p0, 1, 400), blk(p0, 2, 400), blk(p0, 3, 400), blk(p0, 4, 100)}, afterP1, "[p0:[1 2] p0:[3 4]]"},
		{"large blocks stay and split runs", []Block{blk(p0, 1, 100), blk(p0, 2, 600), blk(p0, 3, 100), blk(p0, 4, 100)}, afterP1, "[p0:[3 4]]"},
		{"live partition waits", []Block{blk(p1, 1, 10), blk(p1, 2, 10), blk(p0, 3, 10), blk(p0, 4, 10)}, inP1, "[p0:[3 4]]"},
		{"live partition with too many blocks", []Block{blk(p1, 1, 10), blk(p1, 2, 10), blk(p1, 3, 10), blk(p1, 4, 10)}, inP1, "[p1:[1 2 3 4]]"},
		{"partitions apart", []Block{blk(p1, 1, 10), blk(p0, 2, 10), blk(p1, 3, 10), blk(p0, 4, 10)}, afterP1, "[p0:[2 4] p1:[1 3]]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := slices.Clone(c.blocks)
			var parts []string
			for _, g := range Plan(in, opts, c.now) {
				name := "p0"
				if g.Partition == p1 {
					name = "p1"
				}
				var sum uint64
				var ids []uint64
				for _, id := range g.Blocks {
					ids = append(ids, uint64(id))
					for _, b := range c.blocks {
						if b.ID == id {
							sum += b.Spans
						}
					}
				}
				if sum != g.Spans {
					t.Errorf("group %v: Spans %d, want %d", g.Blocks, g.Spans, sum)
				}
				parts = append(parts, fmt.Sprintf("%s:%v", name, ids))
			}
			if got := fmt.Sprint(parts); got != c.want && !(len(parts) == 0 && c.want == "[]") {
				t.Errorf("plan %s, want %s", got, c.want)
			}
			if !slices.Equal(in, c.blocks) && c.blocks != nil {
				// Plan may reorder its own copy only.
				t.Errorf("Plan modified its input")
			}
		})
	}
}
