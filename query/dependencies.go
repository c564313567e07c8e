package query

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sort"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
)

// DependencyLink is one edge of the service graph: CallCount spans of
// service Child had a parent span of service Parent, a different service.
type DependencyLink struct {
	Parent, Child string
	CallCount     uint64
}

// GetDependencies returns the service graph of the calls whose child span
// starts in r, sorted by parent, then child. Calls are counted by minute,
// so r is widened to whole minutes: from the start of r.Start's minute to
// the end of r.End's (r.End 0 means no upper bound).
//
// The counts were made as spans arrived (see encoding.DependencyEdge and
// db's dependency tracking), so the answer reads no span: it sums the edges
// of the readers, each a sorted run found by binary search. Every call is
// counted once, however the trace's spans straddle the head and blocks; a
// span stored twice by a retried write is counted once.
func (e *Engine) GetDependencies(ctx context.Context, r db.TimeRange) ([]DependencyLink, error) {
	readers, release, err := e.store.Readers(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	lo, hi := encoding.MinuteOf(r.Start), ^uint32(0)
	if r.End != 0 {
		if r.End < r.Start {
			return nil, fmt.Errorf("%w: get dependencies: end %d before start %d", ErrInvalidQuery, r.End, r.Start)
		}
		hi = encoding.MinuteOf(r.End)
	}
	type pair struct{ parent, child string }
	sums := map[pair]uint64{}
	for i, rd := range readers {
		if i%64 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		es := rd.Edges()
		from := sort.Search(len(es), func(i int) bool { return es[i].Minute >= lo })
		for _, x := range es[from:] {
			if x.Minute > hi {
				break
			}
			sums[pair{x.Parent, x.Child}] += x.Calls
		}
	}
	links := make([]DependencyLink, 0, len(sums))
	for p, n := range sums {
		links = append(links, DependencyLink{Parent: p.parent, Child: p.child, CallCount: n})
	}
	slices.SortFunc(links, func(a, b DependencyLink) int {
		return cmp.Or(cmp.Compare(a.Parent, b.Parent), cmp.Compare(a.Child, b.Child))
	})
	return links, nil
}
