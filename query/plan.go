package query

import (
	"fmt"
	"sort"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/index"
)

// The plan of a search, per reader:
//
//  1. Skip the reader when its span start times cannot meet the query's
//     range (or when the results kept so far are all newer than its newest
//     span: see find_traces.go).
//  2. Candidates: the intersection of the postings of the conditions the
//     index answers exactly — the operation (or else the service), each
//     attribute whose key and value are short enough to be indexed (the
//     union of its span, resource, scope and event terms), the status for
//     the error attribute — and for a structured filter the union of each
//     of its term sets (filter_search.go), and last the union of the
//     duration buckets that meet the duration range, unless the other
//     conditions left at most durationPostingsMin candidates. Postings are fetched in a fixed
//     order, most selective kind first, and the reader is dropped as soon
//     as one of them is empty. With no such condition the candidates are every span
//     of the reader (a scan, still bounded by the limit and the context).
//  3. Verification, on the candidate spans only: the start time, the
//     duration (the edge buckets hold durations on both sides of a bound;
//     the check is a subtraction, so it is made on every candidate), the
//     attributes too long to be indexed, and the service and span name when
//     a NUL byte makes the operation term ambiguous, and last the
//     structured filter's Match.
//
// When the postings settled every condition but the start time and the
// duration, a trace search reads only those two fields and the trace ID of
// its candidates (BlockReader.SpanTimes: in a disk block, three of the row
// group's columns); otherwise it decodes each candidate whole.

// attrLevels are the attribute levels a search looks in, as TraceQuery
// documents: links are not searched.
var attrLevels = [...]index.AttrLevel{index.LevelSpan, index.LevelResource, index.LevelScope, index.LevelEvent}

// mayOverlap reports whether a reader with info can hold spans that start
// in the query's range.
func (c *spanConds) mayOverlap(info db.BlockInfo) bool {
	return !c.empty && info.Spans > 0 && info.MinStart <= c.startMax && info.MaxStart >= c.startMin
}

// candidates returns the ordinals of r's spans that meet every indexed
// condition, or index.EmptyPostings() when none can.
func (c *spanConds) candidates(r BlockReader, info db.BlockInfo) (index.Postings, error) {
	var ps []index.Postings
	// and adds p to the intersection and reports whether it may still be
	// non-empty.
	and := func(p index.Postings) bool {
		ps = append(ps, p)
		return !index.IsEmpty(p)
	}
	switch {
	case c.hasOperation:
		p, err := termPostings(r, index.NameOperation, index.OperationValue(c.service, c.operation))
		if err != nil {
			return nil, err
		}
		if !and(p) {
			return index.EmptyPostings(), nil
		}
	case c.service != "":
		p, err := termPostings(r, index.NameService, c.service)
		if err != nil {
			return nil, err
		}
		if !and(p) {
			return index.EmptyPostings(), nil
		}
	}
	for i := range c.attrs {
		a := &c.attrs[i]
		if !a.indexed {
			continue
		}
		var levels [len(attrLevels)]index.Postings
		for j, l := range attrLevels {
			p, err := termPostings(r, index.AttrTermName(l, a.key), a.value)
			if err != nil {
				return nil, err
			}
			levels[j] = p
		}
		if !and(index.Merge(levels[:]...)) {
			return index.EmptyPostings(), nil
		}
	}
	if c.hasStatus {
		p, err := termPostings(r, index.NameStatus, index.StatusValue(c.status))
		if err != nil {
			return nil, err
		}
		if !and(p) {
			return index.EmptyPostings(), nil
		}
	}
	if len(c.filterSets) > 0 {
		fps, ok, err := c.filterPostings(r)
		if err != nil {
			return nil, err
		}
		ps = append(ps, fps...)
		if !ok {
			return index.EmptyPostings(), nil
		}
	}
	if c.hasDuration {
		// The duration range is a union of many bucket postings, costly
		// to read; it is verified on every candidate anyway. When the
		// other conditions leave few candidates, it is left to that
		// check.
		if len(ps) > 0 {
			bm, err := index.ToBitmap(index.Intersect(ps...))
			if err != nil {
				return nil, err
			}
			if bm.GetCardinality() <= durationPostingsMin {
				return index.NewBitmapPostings(bm), nil
			}
			ps = []index.Postings{index.NewBitmapPostings(bm)}
		}
		p, err := c.durationPostings(r)
		if err != nil {
			return nil, err
		}
		if p != nil && !and(p) {
			return index.EmptyPostings(), nil
		}
	}
	if len(ps) == 0 {
		return index.NewRangePostings(0, uint32(min(info.Spans, 1<<32-1))), nil
	}
	return index.Intersect(ps...), nil
}

// durationPostingsMin is the candidate count at or under which a search
// checks the duration range on the candidates' times instead of reading
// the duration buckets' postings.
const durationPostingsMin = 4096

// termPostings returns r's postings of term name=value.
func termPostings(r BlockReader, name, value string) (index.Postings, error) {
	t := index.Term{Name: name, Value: value}
	p, err := r.Postings(t)
	if err != nil {
		return nil, fmt.Errorf("postings of %s: %w", t, err)
	}
	return p, nil
}

// durationPostings returns the union of r's duration buckets that meet
// the duration range, or nil when they are all of r's buckets (the
// condition then selects nothing and is left to verification).
func (c *spanConds) durationPostings(r BlockReader) (index.Postings, error) {
	values, err := r.Values(index.NameDuration)
	if err != nil {
		return nil, fmt.Errorf("values of %s: %w", index.NameDuration, err)
	}
	// Values are zero-padded bucket numbers, so bytewise order is bucket
	// order and the buckets that meet the range are contiguous.
	lo := index.DurationValue(index.DurationBucket(c.durMin))
	hi := index.DurationValue(index.DurationBucket(c.durMax))
	i := sort.SearchStrings(values, lo)
	j := sort.SearchStrings(values, hi)
	if j < len(values) && values[j] == hi {
		j++
	}
	if i >= j {
		return index.EmptyPostings(), nil
	}
	if j-i == len(values) {
		return nil, nil
	}
	ps := make([]index.Postings, 0, j-i)
	for _, v := range values[i:j] {
		p, err := termPostings(r, index.NameDuration, v)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	return index.Merge(ps...), nil
}

// verifyRest reports whether s meets the conditions the postings do not
// guarantee: duration, attributes too long to be indexed, the service
// and name when the operation term is ambiguous, and the filter. The start
// time is checked by the caller.
func (c *spanConds) verifyRest(s *encoding.Span) bool {
	if c.verifyNames && (s.Name != c.operation || s.ServiceName() != c.service) {
		return false
	}
	if c.hasDuration {
		if d := s.Duration(); d < c.durMin || d > c.durMax {
			return false
		}
	}
	for i := range c.attrs {
		if a := &c.attrs[i]; !a.indexed && !spanHasAttr(s, a.key, a.value) {
			return false
		}
	}
	return c.matchFilter(s)
}

// spanHasAttr reports whether s, its scope, its resource or one of its
// events has attribute key with a value whose string form is value.
func spanHasAttr(s *encoding.Span, key, value string) bool {
	if kvsHave(s.Attrs, key, value) {
		return true
	}
	if s.Scope != nil && kvsHave(s.Scope.Attrs, key, value) {
		return true
	}
	if s.Resource != nil && kvsHave(s.Resource.Attrs, key, value) {
		return true
	}
	for i := range s.Events {
		if kvsHave(s.Events[i].Attrs, key, value) {
			return true
		}
	}
	return false
}

func kvsHave(kvs []encoding.KeyValue, key, value string) bool {
	for i := range kvs {
		kv := &kvs[i]
		if kv.Key != key {
			continue
		}
		if kv.Value.Type == encoding.ValueStr {
			if kv.Value.Str == value {
				return true
			}
			continue
		}
		if s, ok := index.ValueString(&kv.Value); ok && s == value {
			return true
		}
	}
	return false
}
