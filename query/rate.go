package query

import (
	"context"
	"fmt"
	"time"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/index"
)

// MaxRateSteps is the most steps a Rate query may ask for: it bounds the
// memory of the answer (Prometheus refuses more than 11,000 points per
// series for the same reason).
const MaxRateSteps = 11000

// RateQuery asks Rate for the request and error rates of the spans that
// meet its conditions, per step of time: the RED numbers (rate, errors,
// and with LatencyHistogram, duration).
type RateQuery struct {
	// SpanConditions select the spans; StartTime must have both ends set,
	// and is cut into steps from its start.
	SpanConditions
	// Step is the width of a step; the last step may be shorter, ending at
	// StartTime.End. At most MaxRateSteps steps are allowed.
	Step time.Duration
}

// RatePoint is one step of a Rate answer.
type RatePoint struct {
	// Start and End bound the step's span start times, inclusive, in Unix
	// nanoseconds.
	Start, End uint64
	// Requests is the number of matching spans that start in the step,
	// Errors the number of those with status code Error. Exact duplicates
	// count once per stored copy, as in Histogram.
	Requests, Errors uint64
}

// Seconds returns the step's width in seconds.
func (p RatePoint) Seconds() float64 {
	return (float64(p.End-p.Start) + 1) / float64(time.Second)
}

// RequestRate returns the matching spans per second over the step.
func (p RatePoint) RequestRate() float64 { return float64(p.Requests) / p.Seconds() }

// ErrorRate returns the matching spans with status Error per second.
func (p RatePoint) ErrorRate() float64 { return float64(p.Errors) / p.Seconds() }

// ErrorRatio returns Errors/Requests, or 0 when the step has no request.
func (p RatePoint) ErrorRatio() float64 {
	if p.Requests == 0 {
		return 0
	}
	return float64(p.Errors) / float64(p.Requests)
}

// Rate counts, per step of q.Step from q.StartTime.Start to
// q.StartTime.End, the spans that meet q's conditions and those of them
// with status Error. Every step has a point, empty or not. Errors are as
// FindTraceIDs's.
//
// A reader whose spans all start in one step of the range (and whose
// conditions the postings settle, see histogram.go) is counted from
// cardinalities: |base AND inner duration buckets| requests, and the same
// AND the status term "2" errors. Other readers whose conditions the
// postings settle have only their candidates' start and end times read,
// the status taken from the status postings; the rest have their
// candidates decoded and verified.
func (e *Engine) Rate(ctx context.Context, q RateQuery) ([]RatePoint, error) {
	tq := q.traceQuery()
	switch {
	case q.StartTime.End == 0:
		return nil, fmt.Errorf("%w: rate needs the end of the start-time range", ErrInvalidQuery)
	case q.Step <= 0:
		return nil, fmt.Errorf("%w: step %s is not positive", ErrInvalidQuery, q.Step)
	case q.StartTime.Start <= q.StartTime.End && (q.StartTime.End-q.StartTime.Start)/uint64(q.Step) >= MaxRateSteps:
		return nil, fmt.Errorf("%w: step %s makes more than %d steps", ErrInvalidQuery, q.Step, MaxRateSteps)
	}
	c, err := e.compile(&tq)
	if err != nil {
		return nil, err
	}
	first, step := q.StartTime.Start, uint64(q.Step)
	points := make([]RatePoint, (q.StartTime.End-first)/step+1)
	for i := range points {
		points[i].Start = first + uint64(i)*step
		points[i].End = min(points[i].Start+step-1, q.StartTime.End)
	}
	stepOf := func(start uint64) int { return int((start - first) / step) }
	readers, release, err := e.store.Readers(ctx)
	if err != nil {
		return nil, fmt.Errorf("rate: %w", err)
	}
	defer release()
	for _, r := range readers {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		info := r.Info()
		if !c.mayOverlap(info) {
			continue
		}
		count := func(s *encoding.Span) {
			p := &points[stepOf(s.StartUnixNano)]
			p.Requests++
			if s.StatusCode == encoding.StatusError {
				p.Errors++
			}
		}
		var err error
		switch {
		case c.settledByPostings() && c.covers(info.MinStart, info.MaxStart) && stepOf(info.MinStart) == stepOf(info.MaxStart):
			err = c.rateOf(ctx, r, info, &points[stepOf(info.MinStart)], count)
		case c.settledByPostings():
			err = c.rateFromTimes(ctx, r, info, func(start uint64, isErr bool) {
				p := &points[stepOf(start)]
				p.Requests++
				if isErr {
					p.Errors++
				}
			})
		default:
			_, err = c.decodeMatching(ctx, r, info, count)
		}
		if err != nil {
			return nil, fmt.Errorf("rate: %s: %w", readerName(info), err)
		}
	}
	return points, nil
}

// rateFromTimes calls count with the start of every matching span of r
// and whether its status is Error, when the postings settle every
// condition but the start time and the duration: only the candidates'
// time columns are read (BlockReader.SpanTimes), not whole spans, and the
// status comes from the status postings, walked alongside.
func (c *spanConds) rateFromTimes(ctx context.Context, r BlockReader, info db.BlockInfo, count func(start uint64, isErr bool)) error {
	ords, err := c.candidates(r, info)
	if err != nil || index.IsEmpty(ords) {
		return err
	}
	errs, err := termPostings(r, index.NameStatus, index.StatusValue(encoding.StatusError))
	if err != nil {
		return err
	}
	err = r.SpanTimes(ctx, ords, func(ord uint32, _ encoding.TraceID, start, end uint64) error {
		if start < c.startMin || start > c.startMax || !c.durationMatches(start, end) {
			return nil
		}
		// ords ascend, so errs only moves forward.
		count(start, errs.Seek(ord) && errs.At() == ord)
		return nil
	})
	if err != nil {
		return err
	}
	return errs.Err()
}

// rateOf adds to p the matching spans of r, all of whose spans start in
// p's step, from cardinalities but for the edge duration buckets, whose
// candidates it decodes and passes to count.
func (c *spanConds) rateOf(ctx context.Context, r BlockReader, info db.BlockInfo, p *RatePoint, count func(*encoding.Span)) error {
	base, err := c.baseCandidates(r, info)
	if err != nil || index.IsEmpty(base) {
		return err
	}
	var inner, edges []index.Postings
	if c.hasDuration {
		err := c.bucketPostings(r, func(_ uint16, in bool, p index.Postings) error {
			if in {
				inner = append(inner, p)
			} else {
				edges = append(edges, p)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	// spans returns fresh postings of the spans whose duration is settled
	// inside the range: the inner buckets, or every span.
	spans := func() index.Postings {
		return index.NewRangePostings(0, uint32(min(info.Spans, 1<<32-1)))
	}
	if c.hasDuration {
		if len(inner) == 0 {
			spans = index.EmptyPostings
		} else {
			// The union is used twice: made a bitmap once, shared
			// read-only.
			bm, err := index.ToBitmap(index.Merge(inner...))
			if err != nil {
				return err
			}
			spans = func() index.Postings { return index.NewBitmapPostings(bm) }
		}
	}
	status, err := termPostings(r, index.NameStatus, index.StatusValue(encoding.StatusError))
	if err != nil {
		return err
	}
	cards, err := index.IntersectCardinalities(base, []index.Postings{spans(), index.Intersect(spans(), status)})
	if err != nil {
		return err
	}
	p.Requests += cards[0]
	p.Errors += cards[1]
	_, err = c.decodeEdges(ctx, r, info, edges, count)
	return err
}
