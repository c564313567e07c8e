package query

// This file tells the search planner what a filter implies about the
// index: sets of terms one of which every matching span carries, and
// bounds on start time and duration. Both are necessary conditions only;
// the engine still calls Match on every candidate, so neither can make a
// result wrong, only the candidates fewer.

import (
	"math"
	"strconv"

	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/index"
)

// TermSet is a set of alternative index terms: a span that satisfies the
// condition the set came from carries at least one of them, so the union
// of their postings holds every match.
type TermSet []index.Term

// maxOperationTerms bounds how many operation terms a filter with lists of
// services and span names expands to.
const maxOperationTerms = 64

// Terms returns term sets implied by the filter's top-level conjunction:
// every span that Matches carries at least one term of every set, provided
// the index was built with the same maxValueLen (see
// index.NewTermExtractor; <= 0 means no limit). The engine may intersect
// the sets' unions to find candidates, and must still call Match on each.
//
// Conditions that give terms, wherever and-ed at the top (also inside
// some, whose element's terms are the span's, and in every branch of an
// or, whose sets are then united):
//
//	resource.service = s, in [...]       service
//	resource.service and span.name       operation (both = or in)
//	span.kind, span.status = w, in       kind, status
//	scope.name = s                       scope
//	event.name = s                       event
//	<level>.attr["k"] = c, in [...]      a:, r:, s:, e:, l: with every
//	                                     text form a value equal to c can
//	                                     have (500 also gives 500 as a
//	                                     double: "500"; 0.0 gives "0", "-0")
//	attr["k"] = c (no level)             the a: and r: forms
//
// A condition whose value is not indexed (longer than maxValueLen, an
// unrenderable value) gives no set. Nothing else (ne, ordered comparisons,
// regex, exists, not, not_in) gives a set.
func (f *Filter) Terms(maxValueLen int) []TermSet {
	t := termCollector{maxLen: maxValueLen}
	t.conj(f.root)
	if len(t.services) > 0 && len(t.names) > 0 && len(t.services)*len(t.names) <= maxOperationTerms {
		var set TermSet
		for _, s := range t.services {
			for _, n := range t.names {
				set = append(set, index.Term{Name: index.NameOperation, Value: index.OperationValue(s, n)})
			}
		}
		t.sets = append(t.sets, set)
	}
	return t.sets
}

type termCollector struct {
	maxLen   int
	sets     []TermSet
	services []string // from the first resource.service condition
	names    []string // from the first span.name condition
}

// conj collects the sets of a node that must hold.
func (t *termCollector) conj(n *fnode) {
	switch n.kind {
	case nAnd:
		for _, k := range n.kids {
			t.conj(k)
		}
	case nSome:
		t.conj(n.kids[0])
	case nOr:
		var union TermSet
		for _, k := range n.kids {
			sub := termCollector{maxLen: t.maxLen}
			sub.conj(k)
			best := -1
			for i, s := range sub.sets {
				if best < 0 || len(s) < len(sub.sets[best]) {
					best = i
				}
			}
			if best < 0 {
				return // a branch implies nothing
			}
			union = appendNew(union, sub.sets[best]...)
		}
		t.sets = append(t.sets, union)
	case nCmp:
		if n.op != OpEq {
			return
		}
		switch {
		case n.b.kind == oConst && n.a.kind != oConst:
			t.leaf(&n.a, []fval{n.b.cv})
		case n.a.kind == oConst && n.b.kind != oConst:
			t.leaf(&n.b, []fval{n.a.cv})
		}
	case nIn:
		t.leaf(&n.a, n.list)
	}
}

// leaf collects the set of "ref equals one of vals".
func (t *termCollector) leaf(ref *foperand, vals []fval) {
	var set TermSet
	switch ref.kind {
	case oField:
		var texts []string
		for i := range vals {
			if vals[i].kind != fvText {
				return
			}
			texts = append(texts, vals[i].s)
		}
		switch ref.field {
		case fResourceService:
			if t.services == nil {
				t.services = texts
			}
			for _, s := range texts {
				set = appendNew(set, index.Term{Name: index.NameService, Value: s})
			}
		case fSpanName:
			if t.names == nil {
				t.names = texts
			}
			return
		case fSpanKind, fSpanStatus:
			words, name := spanKindWords[:], index.NameKind
			if ref.field == fSpanStatus {
				words, name = spanStatusWords[:], index.NameStatus
			}
			for _, s := range texts {
				num, ok := wordNumber(words, s)
				if !ok {
					return
				}
				set = appendNew(set, index.Term{Name: name, Value: strconv.Itoa(int(num))})
			}
		case fScopeName, fEventName:
			name := index.NameScope
			if ref.field == fEventName {
				name = index.NameEvent
			}
			for _, s := range texts {
				if !index.Indexed("", s, t.maxLen) || (ref.field == fScopeName && s == "") {
					return
				}
				set = appendNew(set, index.Term{Name: name, Value: s})
			}
		default:
			return
		}
	case oAttr:
		levels := []Level{ref.level}
		if ref.level == LevelAny {
			levels = []Level{LevelSpan, LevelResource}
		}
		for i := range vals {
			forms := valueForms(&vals[i])
			if len(forms) == 0 {
				return
			}
			for _, l := range levels {
				il, _ := l.indexLevel()
				name := index.AttrTermName(il, ref.key)
				for _, form := range forms {
					if !index.Indexed(ref.key, form, t.maxLen) {
						return
					}
					set = appendNew(set, index.Term{Name: name, Value: form})
				}
			}
		}
	default:
		return
	}
	if len(set) > 0 {
		t.sets = append(t.sets, set)
	}
}

// valueForms returns every index.ValueString that a stored attribute value
// equal to v (under the rules of compareVals) can have; nil when there is
// none worth looking up.
func valueForms(v *fval) []string {
	switch v.kind {
	case fvAny, fvText:
		return []string{v.s}
	case fvBool:
		return []string{strconv.FormatBool(v.b)}
	case fvNum:
		var forms []string
		f := v.f
		if v.isInt {
			forms = append(forms, strconv.FormatInt(v.i, 10))
			f = float64(v.i)
			if f >= 0x1p63 || int64(f) != v.i {
				return forms // no double equals v.i
			}
		} else if math.IsNaN(f) {
			return nil // NaN equals nothing
		}
		d, _ := index.ValueString(&encoding.Value{Type: encoding.ValueDouble, Num: math.Float64bits(f)})
		forms = appendNewString(forms, d)
		if f == 0 {
			forms = appendNewString(appendNewString(forms, "0"), "-0")
		}
		if !v.isInt && f == math.Trunc(f) && f >= -0x1p63 && f < 0x1p63 {
			forms = appendNewString(forms, strconv.FormatInt(int64(f), 10))
		}
		return forms
	}
	return nil
}

func appendNew(set TermSet, terms ...index.Term) TermSet {
	for _, t := range terms {
		dup := false
		for _, u := range set {
			if u == t {
				dup = true
				break
			}
		}
		if !dup {
			set = append(set, t)
		}
	}
	return set
}

func appendNewString(ss []string, s string) []string {
	for _, x := range ss {
		if x == s {
			return ss
		}
	}
	return append(ss, s)
}

// FilterBounds are ranges, inclusive, that every span matching a filter
// lies in, from the top-level conjunction's comparisons of span.startTime
// and span.duration with constants.
type FilterBounds struct {
	StartMin, StartMax       uint64 // span start time, Unix nanoseconds
	DurationMin, DurationMax uint64 // span duration, nanoseconds
	// Empty is true when the bounds contradict each other: no span matches.
	Empty bool
}

// Bounds returns the start-time and duration ranges the filter implies
// (the whole range of each when it implies nothing). The engine may skip
// partitions, blocks and duration buckets outside them, and must still
// call Match.
func (f *Filter) Bounds() FilterBounds {
	b := FilterBounds{StartMax: math.MaxUint64, DurationMax: math.MaxUint64}
	f.root.bounds(&b)
	if b.StartMin > b.StartMax || b.DurationMin > b.DurationMax {
		b.Empty = true
	}
	return b
}

func (n *fnode) bounds(b *FilterBounds) {
	switch n.kind {
	case nAnd:
		for _, k := range n.kids {
			k.bounds(b)
		}
		return
	case nCmp:
	default:
		return
	}
	op, ref, c := n.op, &n.a, &n.b.cv
	if n.a.kind == oConst {
		op, ref, c = op.swapped(), &n.b, &n.a.cv
	}
	if ref.kind != oField || n.a.kind == n.b.kind {
		return
	}
	var lo, hi *uint64
	switch {
	case ref.field == fSpanStartTime && c.kind == fvTime:
		lo, hi = &b.StartMin, &b.StartMax
	case ref.field == fSpanDuration && c.kind == fvDur:
		lo, hi = &b.DurationMin, &b.DurationMax
	default:
		return
	}
	neg := c.neg && c.u != 0
	raise := func(v uint64) { *lo = max(*lo, v) }
	lower := func(v uint64) { *hi = min(*hi, v) }
	switch op {
	case OpGt:
		switch {
		case neg:
		case c.u == math.MaxUint64:
			*lo, *hi = 1, 0
		default:
			raise(c.u + 1)
		}
	case OpGte:
		if !neg {
			raise(c.u)
		}
	case OpLt:
		if neg || c.u == 0 {
			*lo, *hi = 1, 0
		} else {
			lower(c.u - 1)
		}
	case OpLte:
		if neg {
			*lo, *hi = 1, 0
		} else {
			lower(c.u)
		}
	case OpEq:
		if neg {
			*lo, *hi = 1, 0
		} else {
			raise(c.u)
			lower(c.u)
		}
	}
}
