package query

import (
	"math"

	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/index"
)

// This file joins the structured filter to a search. A span matches a
// query with a filter when it meets the query's Jaeger parameters and the
// filter, both on that one span. The filter helps the plan in three ways,
// none of which can change a result (Match is applied to every candidate):
//
//   - Bounds narrow the start-time range, which prunes readers, and the
//     duration range, which selects duration buckets; contradictory bounds
//     make the search empty without reading anything.
//   - Terms give sets of alternative terms: the union of each set's
//     postings is intersected with the query's other postings.
//   - Match is the exact check, made last, on candidates that passed the
//     cheaper checks.

// addFilter records filter f in c: its bounds narrow c's ranges and its
// term sets (for an index of values up to maxValueLen bytes) join the
// candidates' intersection. It is called after c's own ranges are
// validated, so that bounds that empty a range make the search empty
// rather than invalid.
func (c *spanConds) addFilter(f *Filter, maxValueLen int) {
	c.filter = f
	b := f.Bounds()
	if b.Empty {
		c.empty = true
		return
	}
	c.startMin, c.startMax = max(c.startMin, b.StartMin), min(c.startMax, b.StartMax)
	if c.startMin > c.startMax {
		c.empty = true
		return
	}
	if b.DurationMin > 0 || b.DurationMax < math.MaxUint64 {
		if !c.hasDuration {
			c.hasDuration, c.durMin, c.durMax = true, 0, math.MaxUint64
		}
		c.durMin, c.durMax = max(c.durMin, b.DurationMin), min(c.durMax, b.DurationMax)
		if c.durMin > c.durMax {
			c.empty = true
			return
		}
	}
	c.filterSets = f.Terms(maxValueLen)
}

// filterPostings returns, for each of the filter's term sets, the union of
// r's postings of its terms; ok is false as soon as one union is empty
// (no span of r can match).
func (c *spanConds) filterPostings(r BlockReader) (ps []index.Postings, ok bool, err error) {
	for _, set := range c.filterSets {
		var alts []index.Postings
		for _, t := range set {
			p, err := termPostings(r, t.Name, t.Value)
			if err != nil {
				return nil, false, err
			}
			if !index.IsEmpty(p) {
				alts = append(alts, p)
			}
		}
		if len(alts) == 0 {
			return nil, false, nil
		}
		ps = append(ps, index.Merge(alts...))
	}
	return ps, true, nil
}

// matchFilter reports whether s satisfies the query's filter, if any.
func (c *spanConds) matchFilter(s *encoding.Span) bool {
	return c.filter == nil || c.filter.Match(s)
}
