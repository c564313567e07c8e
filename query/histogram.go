package query

import (
	"context"
	"fmt"
	"time"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/index"
)

// This file answers latency analytics (LatencyHistogram) and holds the
// counting plan it shares with Rate (rate.go). Both count the spans that
// meet a span-level query, grouped by a key (a duration bucket, a time
// step), and both prefer postings cardinalities to decoding spans:
//
//   - A reader is counted from cardinalities alone when the postings
//     settle every condition on its spans: its whole start-time range lies
//     inside the query's (and, for Rate, inside one step), the operation
//     term is unambiguous, every attribute condition is indexed, and the
//     query has no structured filter (a filter's terms are necessary
//     conditions only, so Match must run on each candidate). The count of
//     a group is then |AND(base, group term)|, where base is the plan's
//     candidates without the duration condition (plan.go) and the group
//     term a duration bucket (index.IntersectCardinalities); for Rate, the
//     union of the buckets the duration range keeps, and that AND the
//     status term "2" for the errors. The buckets are the reader's own
//     (its duration term values): one PostingsRange walk when the reader
//     offers it (postingsRanger), else Values and one postings lookup per
//     bucket, which is most of the cost when blocks are small.
//   - A duration range settles the buckets that lie wholly inside it; the
//     buckets it cuts (at most two: its edges) are decoded, only their
//     candidates, to check each duration.
//   - Any other reader has its candidates decoded and verified, as a
//     search does (plan.go).
//
// Exact duplicates (a span stored twice with the same content) count once
// per stored copy: a cardinality counts ordinals, and two copies are two
// ordinals, in one reader or in two; telling them apart would mean
// decoding and hashing every candidate, which is what the histogram is
// built to avoid. The decoding path counts copies too, so that a count
// does not depend on which path a reader took. Searches, which return
// spans, show a duplicate once; counts here are of stored spans.

// SpanConditions are the conditions a span must meet to be counted by the
// analytics queries, with TraceQuery's meaning for each field (service,
// operation, attributes with the error attribute, start-time range,
// duration range, structured filter). The zero value of a field leaves it
// unset.
type SpanConditions struct {
	Service    string
	Operation  string
	Attributes map[string]string
	// StartTime bounds span start times, both ends inclusive, in Unix
	// nanoseconds; End 0 means no upper bound (for LatencyHistogram; Rate
	// needs both ends).
	StartTime                db.TimeRange
	DurationMin, DurationMax time.Duration
	Filter                   *Filter
}

func (sc *SpanConditions) traceQuery() TraceQuery {
	return TraceQuery{
		Service: sc.Service, Operation: sc.Operation, Attributes: sc.Attributes,
		StartTime: sc.StartTime, DurationMin: sc.DurationMin, DurationMax: sc.DurationMax,
		Filter: sc.Filter,
	}
}

// HistogramQuery asks LatencyHistogram for the durations of the spans that
// meet its conditions.
type HistogramQuery struct {
	SpanConditions
}

// Histogram counts matching spans per duration bucket (index.DurationBucket;
// bucket b holds durations in index.BucketBounds(b)).
type Histogram struct {
	// Counts[b] is the number of matching spans in bucket b; its length is
	// index.NumBuckets. Exact duplicates count once per stored copy.
	Counts []uint64
	// Total is the sum of Counts.
	Total uint64
	// MinBucket and MaxBucket are the lowest and highest non-empty buckets;
	// both 0 when Total is 0.
	MinBucket, MaxBucket uint16
	// Decoded is the number of spans read to verify conditions the
	// postings could not settle (0 when every reader was counted from
	// cardinalities). It describes the work done, not the answer.
	Decoded uint64
}

// Quantile estimates the q-quantile (0 <= q <= 1) of the matching spans'
// durations: the representative duration of the bucket holding the
// nearest-rank quantile, within 1/64 of the exact sample quantile (see
// index.QuantileFromCounts). It reports false when no span matched.
func (h *Histogram) Quantile(q float64) (time.Duration, bool) {
	v, ok := index.QuantileFromCounts(h.Counts, q)
	return time.Duration(min(v, 1<<63-1)), ok
}

// LatencyHistogram counts, per duration bucket, the spans that meet q's
// conditions. Errors are as FindTraceIDs's: ErrInvalidQuery for a
// malformed query, the store's otherwise.
func (e *Engine) LatencyHistogram(ctx context.Context, q HistogramQuery) (Histogram, error) {
	tq := q.traceQuery()
	c, err := e.compile(&tq)
	if err != nil {
		return Histogram{}, err
	}
	h := Histogram{Counts: make([]uint64, index.NumBuckets)}
	readers, release, err := e.store.Readers(ctx)
	if err != nil {
		return Histogram{}, fmt.Errorf("latency histogram: %w", err)
	}
	defer release()
	for _, r := range readers {
		if err := ctx.Err(); err != nil {
			return Histogram{}, err
		}
		info := r.Info()
		if !c.mayOverlap(info) {
			continue
		}
		if err := c.histogramOf(ctx, r, info, &h); err != nil {
			return Histogram{}, fmt.Errorf("latency histogram: %s: %w", readerName(info), err)
		}
	}
	first := true
	for b, n := range h.Counts {
		if n == 0 {
			continue
		}
		h.Total += n
		if first {
			h.MinBucket, first = uint16(b), false
		}
		h.MaxBucket = uint16(b)
	}
	return h, nil
}

// histogramOf adds r's matching spans to h.
func (c *spanConds) histogramOf(ctx context.Context, r BlockReader, info db.BlockInfo, h *Histogram) error {
	count := func(d uint64) { h.Counts[index.DurationBucket(d)]++ }
	if !c.settledByPostings() {
		n, err := c.decodeMatching(ctx, r, info, func(s *encoding.Span) { count(s.Duration()) })
		h.Decoded += n
		return err
	}
	if !c.covers(info.MinStart, info.MaxStart) {
		ords, err := c.candidates(r, info)
		if err != nil {
			return err
		}
		n, err := c.timesEach(ctx, r, ords, count)
		h.Decoded += n
		return err
	}
	if t, ok := c.histogramTerm(); ok {
		hist, known, err := r.DurationHistogram(t)
		if err != nil {
			return err
		}
		if known {
			for _, bc := range hist {
				h.Counts[bc.Bucket] += uint64(bc.Count)
			}
			return nil
		}
	}
	base, err := c.baseCandidates(r, info)
	if err != nil || index.IsEmpty(base) {
		return err
	}
	var (
		buckets     []uint16
		each, edges []index.Postings
	)
	err = c.bucketPostings(r, func(b uint16, inner bool, p index.Postings) error {
		if inner {
			buckets = append(buckets, b)
			each = append(each, p)
		} else {
			edges = append(edges, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	cards, err := index.IntersectCardinalities(base, each)
	if err != nil {
		return err
	}
	for i, b := range buckets {
		h.Counts[b] += cards[i]
	}
	if len(edges) == 0 {
		return nil
	}
	// base was used up by the cardinalities: fetch it again.
	if base, err = c.baseCandidates(r, info); err != nil {
		return err
	}
	n, err := c.timesEach(ctx, r, index.Intersect(base, index.Merge(edges...)), count)
	h.Decoded += n
	return err
}

// histogramTerm returns the one term that is the whole query, when it is a
// service or an operation: then a reader whose spans the time range covers
// whole answers from its precomputed histogram of that term.
func (c *spanConds) histogramTerm() (index.Term, bool) {
	if c.hasDuration || c.hasStatus || len(c.attrs) > 0 || c.filter != nil || len(c.filterSets) > 0 || c.verifyNames {
		return index.Term{}, false
	}
	switch {
	case c.hasOperation:
		return index.Term{Name: index.NameOperation, Value: index.OperationValue(c.service, c.operation)}, true
	case c.service != "":
		return index.Term{Name: index.NameService, Value: c.service}, true
	}
	return index.Term{}, false
}

// settledByPostings reports whether the postings settle every condition
// but the start time and the duration, which the callers handle: the
// operation term is unambiguous, every attribute is indexed, and there is
// no filter (whose terms are necessary conditions only).
func (c *spanConds) settledByPostings() bool {
	if c.verifyNames || c.filter != nil {
		return false
	}
	for i := range c.attrs {
		if !c.attrs[i].indexed {
			return false
		}
	}
	return true
}

// covers reports whether every start in [lo, hi] is in the query's range.
func (c *spanConds) covers(lo, hi uint64) bool {
	return c.startMin <= lo && hi <= c.startMax
}

// postingsRanger is a BlockReader that can also walk a term name's
// values with their postings in one pass (index.PostingsReader and
// index.MemPostings have the method): one dictionary search instead of
// one per duration bucket, which is most of a histogram's cost.
type postingsRanger interface {
	// PostingsRange calls fn, in value order, with every value v of name
	// such that from <= v < to (to "" means no upper bound) and its
	// postings, and stops at fn's first error, which it returns.
	PostingsRange(name, from, to string, fn func(value string, p index.Postings) error) error
}

// bucketPostings calls fn, in bucket order, with the postings of each of
// r's duration buckets that meet the query's duration range, and whether
// the bucket lies wholly inside the range (inner: every span in it meets
// the range) or is cut by it (an edge: at most the two buckets of the
// range's bounds). Without a duration condition every bucket is inner.
func (c *spanConds) bucketPostings(r BlockReader, fn func(b uint16, inner bool, p index.Postings) error) error {
	// Values are zero-padded bucket numbers: bytewise order is bucket order.
	from, to := "", ""
	if c.hasDuration {
		from = index.DurationValue(index.DurationBucket(c.durMin))
		if hi := index.DurationBucket(c.durMax); hi < index.NumBuckets-1 {
			to = index.DurationValue(hi + 1)
		}
	}
	visit := func(v string, p index.Postings) error {
		b, ok := index.ParseDurationValue(v)
		if !ok {
			return fmt.Errorf("duration term value %q: %w", v, encoding.ErrCorrupt)
		}
		lo, hi := index.BucketBounds(b)
		last := hi - 1
		if b == index.NumBuckets-1 {
			last = hi // the last bucket holds math.MaxUint64 too
		}
		return fn(b, !c.hasDuration || c.durMin <= lo && last <= c.durMax, p)
	}
	if pr, ok := r.(postingsRanger); ok {
		return pr.PostingsRange(index.NameDuration, from, to, visit)
	}
	values, err := r.Values(index.NameDuration)
	if err != nil {
		return fmt.Errorf("values of %s: %w", index.NameDuration, err)
	}
	for _, v := range values {
		if v < from || to != "" && v >= to {
			continue
		}
		p, err := termPostings(r, index.NameDuration, v)
		if err != nil {
			return err
		}
		if err := visit(v, p); err != nil {
			return err
		}
	}
	return nil
}

// baseCandidates returns the plan's candidates of r without the duration
// condition, which the callers settle bucket by bucket.
func (c *spanConds) baseCandidates(r BlockReader, info db.BlockInfo) (index.Postings, error) {
	n := *c
	n.hasDuration = false
	return n.candidates(r, info)
}

// decodeEdges decodes r's candidates in the edge buckets, whose postings
// are edges, and calls fn with those that match. It returns the number of
// spans decoded.
func (c *spanConds) decodeEdges(ctx context.Context, r BlockReader, info db.BlockInfo, edges []index.Postings, fn func(*encoding.Span)) (uint64, error) {
	if len(edges) == 0 {
		return 0, nil
	}
	base, err := c.baseCandidates(r, info)
	if err != nil {
		return 0, err
	}
	return c.verifyEach(ctx, r, index.Intersect(base, index.Merge(edges...)), fn)
}

// timesEach reads the start and end of the spans of ords, which the
// postings settled but for their start time and duration, and calls fn with
// the duration of those that match. It returns the number of spans read.
func (c *spanConds) timesEach(ctx context.Context, r BlockReader, ords index.Postings, fn func(duration uint64)) (uint64, error) {
	var n uint64
	err := r.SpanTimes(ctx, ords, func(_ uint32, _ encoding.TraceID, start, end uint64) error {
		n++
		d := uint64(0)
		if end > start {
			d = end - start
		}
		if start >= c.startMin && start <= c.startMax && (!c.hasDuration || d >= c.durMin && d <= c.durMax) {
			fn(d)
		}
		return nil
	})
	return n, err
}

// decodeMatching decodes r's candidates (plan.go) and calls fn with those
// that match. It returns the number of spans decoded.
func (c *spanConds) decodeMatching(ctx context.Context, r BlockReader, info db.BlockInfo, fn func(*encoding.Span)) (uint64, error) {
	ords, err := c.candidates(r, info)
	if err != nil {
		return 0, err
	}
	return c.verifyEach(ctx, r, ords, fn)
}

// verifyEach decodes the spans of ords, verifies them as a search does
// (start time, then verifyRest) and calls fn with those that match. It
// returns the number of spans decoded.
func (c *spanConds) verifyEach(ctx context.Context, r BlockReader, ords index.Postings, fn func(*encoding.Span)) (uint64, error) {
	var n uint64
	err := r.Spans(ctx, ords, func(_ uint32, s *encoding.Span) error {
		n++
		if start := s.StartUnixNano; start >= c.startMin && start <= c.startMax && c.verifyRest(s) {
			fn(s)
		}
		return nil
	})
	return n, err
}
