package query

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/index"
)

// Services and operations come from the postings' term values alone: no
// span is decoded. Time ranges are therefore applied per reader: a reader
// counts when the start times of its spans overlap the range, and then all
// its services (or operations) count, even those whose spans there all
// start outside the range. With partitions an hour wide, a range is thus
// widened to whole blocks, never narrowed.

// GetServices returns the sorted names of the services with spans in the
// readers that overlap r (the zero TimeRange: all; End 0: no upper bound).
// Spans whose resource has no service.name are not listed under "".
func (e *Engine) GetServices(ctx context.Context, r db.TimeRange) ([]string, error) {
	if err := checkRange(r); err != nil {
		return nil, err
	}
	seen := map[string]struct{}{}
	err := e.eachReader(ctx, r, func(rd BlockReader) error {
		values, err := rd.Values(index.NameService)
		if err != nil {
			return fmt.Errorf("values of %s: %w", index.NameService, err)
		}
		for _, v := range values {
			if v != "" {
				seen[v] = struct{}{}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("get services: %w", err)
	}
	out := make([]string, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	slices.Sort(out)
	return out, nil
}

// OperationQuery selects operations: those of Service, optionally only of
// one span kind, in a time range.
type OperationQuery struct {
	// Service is required.
	Service string
	// ByKind restricts the result to operations with spans of kind Kind
	// (encoding.KindServer and the like, OTLP's numbering).
	ByKind bool
	Kind   int32
	// StartTime selects readers as in GetServices.
	StartTime db.TimeRange
}

// Operation is a span name of a service with one span kind it was seen
// with: a name seen with two kinds is two Operations.
type Operation struct {
	Name string
	Kind int32
}

// GetOperations returns the operations of q.Service, sorted by name, then
// kind. The kinds come from intersecting each operation's postings with
// the kind postings, never from spans.
func (e *Engine) GetOperations(ctx context.Context, q OperationQuery) ([]Operation, error) {
	if q.Service == "" {
		return nil, fmt.Errorf("%w: get operations: no service given", ErrInvalidQuery)
	}
	if err := checkRange(q.StartTime); err != nil {
		return nil, err
	}
	seen := map[Operation]struct{}{}
	err := e.eachReader(ctx, q.StartTime, func(rd BlockReader) error {
		return readerOperations(rd, q, seen)
	})
	if err != nil {
		return nil, fmt.Errorf("get operations of %q: %w", q.Service, err)
	}
	out := make([]Operation, 0, len(seen))
	for op := range seen {
		out = append(out, op)
	}
	slices.SortFunc(out, func(a, b Operation) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), cmp.Compare(a.Kind, b.Kind))
	})
	return out, nil
}

// readerOperations adds the operations of one reader to seen.
func readerOperations(rd BlockReader, q OperationQuery, seen map[Operation]struct{}) error {
	values, err := rd.Values(index.NameOperation)
	if err != nil {
		return fmt.Errorf("values of %s: %w", index.NameOperation, err)
	}
	// The service's operations are contiguous: the separator sorts before
	// every other byte.
	prefix := index.OperationValue(q.Service, "")
	var ops []string
	for i := sort.SearchStrings(values, prefix); i < len(values) && strings.HasPrefix(values[i], prefix); i++ {
		ops = append(ops, values[i])
	}
	if len(ops) == 0 {
		return nil
	}
	var kinds []int32
	if q.ByKind {
		kinds = []int32{q.Kind}
	} else {
		kv, err := rd.Values(index.NameKind)
		if err != nil {
			return fmt.Errorf("values of %s: %w", index.NameKind, err)
		}
		for _, v := range kv {
			k, err := strconv.ParseInt(v, 10, 32)
			if err != nil {
				return fmt.Errorf("kind term value %q: %w", v, err)
			}
			kinds = append(kinds, int32(k))
		}
	}
	// Each kind's postings are read once, as a bitmap, when first needed,
	// and intersected with every operation's.
	kindSets := make([]func() index.Postings, len(kinds))
	kindSet := func(i int) (index.Postings, error) {
		if kindSets[i] == nil {
			p, err := termPostings(rd, index.NameKind, index.KindValue(kinds[i]))
			if err != nil {
				return nil, err
			}
			bm, err := index.ToBitmap(p)
			if err != nil {
				return nil, fmt.Errorf("kind %d: %w", kinds[i], err)
			}
			kindSets[i] = func() index.Postings { return index.NewBitmapPostings(bm) }
		}
		return kindSets[i](), nil
	}
	var (
		each   []index.Postings
		wanted []int32
	)
	for _, op := range ops {
		name := op[len(prefix):]
		// The block's kind masks answer for unambiguous operation terms
		// whose spans all have one of OTLP's kinds.
		if strings.Count(op, opSep) == 1 {
			mask, known, err := rd.TermKinds(index.Term{Name: index.NameOperation, Value: op})
			if err != nil {
				return fmt.Errorf("kinds of operation %q: %w", op, err)
			}
			if known && mask&(1<<index.KindOther) == 0 {
				for k := range int32(index.KindOther) {
					if mask&(1<<k) != 0 && (!q.ByKind || q.Kind == k) {
						seen[Operation{Name: name, Kind: k}] = struct{}{}
					}
				}
				continue
			}
		}
		// Only the kinds not yet seen with this name are asked about.
		each, wanted = each[:0], wanted[:0]
		for i, k := range kinds {
			if _, ok := seen[Operation{Name: name, Kind: k}]; !ok {
				p, err := kindSet(i)
				if err != nil {
					return err
				}
				each = append(each, p)
				wanted = append(wanted, k)
			}
		}
		if len(wanted) == 0 {
			continue
		}
		base, err := termPostings(rd, index.NameOperation, op)
		if err != nil {
			return err
		}
		if strings.Count(op, opSep) > 1 {
			// Ambiguous: "a NUL b NUL c" is span "b NUL c" of service a and
			// span c of service "a NUL b". Keep q.Service's spans.
			svc, err := termPostings(rd, index.NameService, q.Service)
			if err != nil {
				return err
			}
			base = index.Intersect(base, svc)
		}
		counts, err := index.IntersectCardinalities(base, each)
		if err != nil {
			return fmt.Errorf("operation %q by kind: %w", op, err)
		}
		for i, n := range counts {
			if n > 0 {
				seen[Operation{Name: name, Kind: wanted[i]}] = struct{}{}
			}
		}
	}
	return nil
}

// eachReader calls fn for every reader whose spans' start times overlap r,
// checking ctx between readers.
func (e *Engine) eachReader(ctx context.Context, r db.TimeRange, fn func(BlockReader) error) error {
	readers, release, err := e.store.Readers(ctx)
	if err != nil {
		return err
	}
	defer release()
	c := spanConds{startMin: r.Start, startMax: r.End}
	if c.startMax == 0 {
		c.startMax = ^uint64(0)
	}
	for _, rd := range readers {
		if err := ctx.Err(); err != nil {
			return err
		}
		info := rd.Info()
		if !c.mayOverlap(info) {
			continue
		}
		if err := fn(rd); err != nil {
			return fmt.Errorf("%s: %w", readerName(info), err)
		}
	}
	return nil
}

// checkRange refuses a time range whose start is after its end.
func checkRange(r db.TimeRange) error {
	if r.End != 0 && r.Start > r.End {
		return fmt.Errorf("%w: time range [%d, %d] is empty: its start is after its end", ErrInvalidQuery, r.Start, r.End)
	}
	return nil
}
