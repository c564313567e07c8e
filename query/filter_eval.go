package query

// This file evaluates a filter on one span. Compile checks the tree once
// (Validate), reads every constant as the type it is compared at, compiles
// every pattern once, and turns each leaf that names an event or link
// outside a some over that collection into a some over it; Match then walks
// the compiled tree without allocating (except for the hex text of IDs and
// the JSON text of array and map values, when a leaf reads them).
//
// The semantics are in filter.md ("Evaluation"). In short: a positive leaf
// holds when some values of its operands satisfy it, a negated one (ne,
// not_in) when a value can be compared and none satisfies eq or in (an
// attribute reference has no value when the key is missing, one per
// occurrence otherwise; an unqualified one reads the span's and the
// resource's attributes); a typed
// constant matches values of its own type only; an untyped one matches any
// stored type by text for eq, ne, in and not_in, and by number or text for
// the ordered comparisons; phrase and fulltext search the words of string
// values (filter_text.go); not is plain negation.

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/index"
)

// Filter is a compiled filter. It is immutable and safe for concurrent use.
type Filter struct {
	expr Expr
	root *fnode
}

// Compile validates e (see Validate) and compiles it for Match.
func Compile(e Expr) (*Filter, error) {
	if err := Validate(e); err != nil {
		return nil, err
	}
	return &Filter{expr: e, root: compilePred(e, nil)}, nil
}

// Expr returns the tree the filter was compiled from.
func (f *Filter) Expr() Expr { return f.expr }

func (f *Filter) String() string { return f.expr.String() }

// Match reports whether span s satisfies the filter. s must not be
// modified during the call; a nil s matches nothing.
func (f *Filter) Match(s *encoding.Span) bool {
	if s == nil {
		return false
	}
	c := ectx{s: s}
	return f.root.match(&c)
}

type fnodeKind uint8

const (
	nAnd fnodeKind = iota + 1
	nOr
	nNot
	nSome
	nCmp
	nRegex
	nExists
	nIn
	// nComparable holds when some value of a is comparable with some value
	// of b (a value of a, for nIn lists: some element of list): the half of
	// a negated leaf (ne, not_in) that asks for a value to compare.
	nComparable
	nText // phrase, fulltext: a is the attribute, list the words
)

// fnode is a compiled predicate.
type fnode struct {
	kind  fnodeKind
	kids  []*fnode // nAnd, nOr, nNot, nSome
	level Level    // nSome: LevelEvent or LevelLink
	op    Op       // nCmp
	a, b  foperand // nCmp: a op b; nRegex, nExists, nIn, nNotIn: a is the subject
	re    *regexp.Regexp
	list  []fval // nIn, nNotIn: the elements, read at the subject's type
	src   *Call  // the call this node was compiled from
}

type operandKind uint8

const (
	oAttr operandKind = iota + 1
	oField
	oConst
)

// foperand is a compiled operand: an attribute, a field or a constant.
type foperand struct {
	kind  operandKind
	level Level
	key   string
	field fieldID
	c     Const // oConst, read at the type of the field opposite
	cv    fval  // oConst: c as a value
}

// ectx is the state of one evaluation: the span and the event and link
// bound by the enclosing some calls.
type ectx struct {
	s  *encoding.Span
	ev *encoding.Event
	ln *encoding.Link
}

// compilePred compiles a validated predicate; bound holds the collection
// levels the enclosing some calls bind.
func compilePred(e Expr, bound []Level) *fnode {
	c := e.(*Call)
	n := &fnode{src: c}
	switch c.Op {
	case OpAnd, OpOr, OpNot:
		switch c.Op {
		case OpAnd:
			n.kind = nAnd
		case OpOr:
			n.kind = nOr
		default:
			n.kind = nNot
		}
		for _, a := range c.Args {
			n.kids = append(n.kids, compilePred(a, bound))
		}
		return n
	case OpSome:
		n.kind = nSome
		n.level = c.Args[0].(*NestedRef).Level
		n.kids = []*fnode{compilePred(c.Args[1], append(bound[:len(bound):len(bound)], n.level))}
		return n
	case OpExists:
		n.kind = nExists
		n.a = compileOperand(c.Args[0], nil)
	case OpRegex:
		n.kind = nRegex
		n.a = compileOperand(c.Args[0], nil)
		n.re, _ = compileRegex(c.Args[1].(*Const).Text)
	case OpPhrase, OpFulltext:
		n.kind = nText
		n.op = c.Op
		n.a = compileOperand(c.Args[0], nil)
		l := c.Args[1].(*List)
		for i := range l.Elems {
			n.list = append(n.list, fval{kind: fvText, s: l.Elems[i].Text})
		}
	case OpIn, OpNotIn:
		n.kind = nIn
		n.a = compileOperand(c.Args[0], nil)
		l := c.Args[1].(*List)
		fi, isField := fieldOf(c.Args[0])
		for i := range l.Elems {
			k := l.Elems[i]
			if isField {
				k, _ = resolveConst(fi, &k)
			}
			n.list = append(n.list, constVal(&k))
		}
		if c.Op == OpNotIn {
			return negatedLeaf(n, c, bound)
		}
	default:
		n.kind = nCmp
		n.op = c.Op
		n.a = compileOperand(c.Args[0], c.Args[1])
		n.b = compileOperand(c.Args[1], c.Args[0])
		if c.Op == OpNe {
			n.op = OpEq
			return negatedLeaf(n, c, bound)
		}
	}
	return overCollections(n, c, bound)
}

// negatedLeaf compiles ne and not_in from pos, the compiled eq or in of
// the same operands: a negated leaf holds when its reference has a value
// to compare and none of its values satisfies the positive leaf
// (jaeger-idl v0.14.0), across every event or link it names outside a
// some over them.
func negatedLeaf(pos *fnode, c *Call, bound []Level) *fnode {
	cmp := *pos
	cmp.kind = nComparable
	return &fnode{kind: nAnd, src: c, kids: []*fnode{
		overCollections(&cmp, c, bound),
		{kind: nNot, src: c, kids: []*fnode{overCollections(pos, c, bound)}},
	}}
}

// overCollections wraps a leaf that names an event (a link) outside a some
// over events (links) so that it holds when some event (link) satisfies
// it.
func overCollections(n *fnode, c *Call, bound []Level) *fnode {
	for _, l := range [...]Level{LevelLink, LevelEvent} {
		if leafUses(c, l) && !containsLevel(bound, l) {
			n = &fnode{kind: nSome, level: l, kids: []*fnode{n}, src: c}
		}
	}
	return n
}

func containsLevel(ls []Level, l Level) bool {
	for _, x := range ls {
		if x == l {
			return true
		}
	}
	return false
}

// leafUses reports whether a leaf call references level l.
func leafUses(c *Call, l Level) bool {
	for _, a := range c.Args {
		switch r := a.(type) {
		case *AttrRef:
			if r.Level == l {
				return true
			}
		case *FieldRef:
			if r.Level == l {
				return true
			}
		}
	}
	return false
}

func fieldOf(e Expr) (FieldInfo, bool) {
	r, ok := e.(*FieldRef)
	if !ok {
		return FieldInfo{}, false
	}
	return LookupField(r.Level, r.Name)
}

// compileOperand compiles e; a constant is read at the type of the field
// opposite, when other is one.
func compileOperand(e, other Expr) foperand {
	switch x := e.(type) {
	case *AttrRef:
		return foperand{kind: oAttr, level: x.Level, key: x.Key}
	case *FieldRef:
		fi, _ := LookupField(x.Level, x.Name)
		return foperand{kind: oField, level: x.Level, field: fi.id}
	case *Const:
		k := *x
		if fi, ok := fieldOf(other); ok {
			k, _ = resolveConst(fi, x)
		}
		return foperand{kind: oConst, c: k, cv: constVal(&k)}
	}
	return foperand{}
}

func (n *fnode) match(c *ectx) bool {
	switch n.kind {
	case nAnd:
		for _, k := range n.kids {
			if !k.match(c) {
				return false
			}
		}
		return true
	case nOr:
		for _, k := range n.kids {
			if k.match(c) {
				return true
			}
		}
		return false
	case nNot:
		return !n.kids[0].match(c)
	case nSome:
		return n.matchSome(c)
	case nCmp:
		var ia valIter
		ia.init(&n.a, c)
		var x, y fval
		for ia.next(c, &x) {
			var ib valIter
			ib.init(&n.b, c)
			for ib.next(c, &y) {
				if compareVals(n.op, &x, &y) {
					return true
				}
			}
		}
		return false
	case nRegex:
		var it valIter
		it.init(&n.a, c)
		var x fval
		for it.next(c, &x) {
			if s, ok := x.textForm(); ok && n.re.MatchString(s) {
				return true
			}
		}
		return false
	case nExists:
		var it valIter
		it.init(&n.a, c)
		var x fval
		return it.next(c, &x)
	case nIn:
		var it valIter
		it.init(&n.a, c)
		var x fval
		for it.next(c, &x) {
			for i := range n.list {
				if compareVals(OpEq, &x, &n.list[i]) {
					return true
				}
			}
		}
		return false
	case nComparable:
		var ia valIter
		ia.init(&n.a, c)
		var x, y fval
		for ia.next(c, &x) {
			if n.list != nil {
				for i := range n.list {
					if comparableVals(&x, &n.list[i]) {
						return true
					}
				}
				continue
			}
			var ib valIter
			ib.init(&n.b, c)
			for ib.next(c, &y) {
				if comparableVals(&x, &y) {
					return true
				}
			}
		}
		return false
	case nText:
		var it valIter
		it.init(&n.a, c)
		var x fval
		for it.next(c, &x) {
			// Only string values hold words: the operator fixes the type
			// to string.
			if x.kind != fvText || x.v != nil {
				continue
			}
			if n.op == OpPhrase && textHasPhrase(x.s, n.list) || n.op == OpFulltext && textHasAll(x.s, n.list) {
				return true
			}
		}
		return false
	}
	return false
}

// comparableVals reports whether x and y can be compared for equality:
// eq or ne holds for them.
func comparableVals(x, y *fval) bool {
	return compareVals(OpEq, x, y) || compareVals(OpNe, x, y)
}

func (n *fnode) matchSome(c *ectx) bool {
	s := c.s
	found := false
	if n.level == LevelEvent {
		saved := c.ev
		for i := 0; i < len(s.Events) && !found; i++ {
			c.ev = &s.Events[i]
			found = n.kids[0].match(c)
		}
		c.ev = saved
		return found
	}
	saved := c.ln
	for i := 0; i < len(s.Links) && !found; i++ {
		c.ln = &s.Links[i]
		found = n.kids[0].match(c)
	}
	c.ln = saved
	return found
}

// fvKind is the kind of a value under comparison. Values of different
// kinds never compare (except with fvAny, an untyped constant).
type fvKind uint8

const (
	fvNone fvKind = iota // a stored empty value: it exists, and equals nothing
	fvText
	fvNum
	fvBool
	fvDur
	fvTime
	fvAny
)

// fval is one value under comparison.
type fval struct {
	kind  fvKind
	isInt bool    // fvNum: i rather than f
	i     int64   // fvNum
	f     float64 // fvNum
	b     bool    // fvBool
	neg   bool    // fvDur, fvTime: the sign; the magnitude is u
	u     uint64  // fvDur, fvTime
	s     string  // fvText (when v is nil), fvAny
	// v is a stored value whose text is index.ValueString's: bytes,
	// arrays, maps, ints, doubles and bools.
	v *encoding.Value
}

func nanosVal(kind fvKind, n int64) fval {
	if n < 0 {
		return fval{kind: kind, neg: true, u: uint64(-(n + 1)) + 1}
	}
	return fval{kind: kind, u: uint64(n)}
}

func constVal(c *Const) fval {
	switch c.Kind {
	case KindAny:
		return fval{kind: fvAny, s: c.Text}
	case KindString:
		return fval{kind: fvText, s: c.Text}
	case KindInt:
		return fval{kind: fvNum, isInt: true, i: c.Int}
	case KindDouble:
		return fval{kind: fvNum, f: c.Double}
	case KindBool:
		return fval{kind: fvBool, b: c.Bool}
	case KindDuration:
		return nanosVal(fvDur, c.Int)
	case KindTimestamp:
		return nanosVal(fvTime, c.Int)
	}
	return fval{}
}

// storedVal reads an attribute value.
func storedVal(v *encoding.Value, x *fval) {
	switch v.Type {
	case encoding.ValueStr:
		*x = fval{kind: fvText, s: v.Str}
	case encoding.ValueBool:
		*x = fval{kind: fvBool, b: v.Num != 0, v: v}
	case encoding.ValueInt:
		*x = fval{kind: fvNum, isInt: true, i: int64(v.Num), v: v}
	case encoding.ValueDouble:
		*x = fval{kind: fvNum, f: math.Float64frombits(v.Num), v: v}
	case encoding.ValueBytes, encoding.ValueArray, encoding.ValueMap:
		*x = fval{kind: fvText, v: v}
	default:
		*x = fval{kind: fvNone}
	}
}

// textForm returns the text of x that a regex or an untyped constant
// matches: a stored value's index.ValueString, a field's text, a
// constant's printed value. ok is false when x has none (an empty value, an
// array holding a NaN).
func (x *fval) textForm() (string, bool) {
	if x.v != nil {
		if x.v.Type == encoding.ValueStr {
			return x.v.Str, true
		}
		return index.ValueString(x.v)
	}
	switch x.kind {
	case fvText, fvAny:
		return x.s, true
	case fvNum:
		if x.isInt {
			return strconv.FormatInt(x.i, 10), true
		}
		return index.ValueString(&encoding.Value{Type: encoding.ValueDouble, Num: math.Float64bits(x.f)})
	case fvBool:
		return strconv.FormatBool(x.b), true
	case fvDur, fvTime:
		n, ok := x.int64()
		if !ok {
			return "", false
		}
		if x.kind == fvDur {
			return time.Duration(n).String(), true
		}
		return formatTimestamp(n), true
	}
	return "", false
}

// int64 returns a duration or time as an int64, when it fits.
func (x *fval) int64() (int64, bool) {
	if x.neg {
		if x.u > 1<<63 {
			return 0, false
		}
		return -int64(x.u-1) - 1, true
	}
	if x.u > math.MaxInt64 {
		return 0, false
	}
	return int64(x.u), true
}

// valIter yields the values of an operand: none or one for a field or a
// constant, one per occurrence of the key for an attribute.
type valIter struct {
	op    *foperand
	list  []encoding.KeyValue
	i     int
	stage uint8 // LevelAny: 0 reading the span's attributes, 1 the resource's
	done  bool
}

func (it *valIter) init(op *foperand, c *ectx) {
	it.op = op
	if op.kind == oAttr {
		it.list = attrList(op.level, c)
	}
}

func attrList(l Level, c *ectx) []encoding.KeyValue {
	switch l {
	case LevelAny, LevelSpan:
		return c.s.Attrs
	case LevelResource:
		if c.s.Resource != nil {
			return c.s.Resource.Attrs
		}
	case LevelScope:
		if c.s.Scope != nil {
			return c.s.Scope.Attrs
		}
	case LevelEvent:
		if c.ev != nil {
			return c.ev.Attrs
		}
	case LevelLink:
		if c.ln != nil {
			return c.ln.Attrs
		}
	}
	return nil
}

// next reads the next value into x; c must be the ectx init had.
func (it *valIter) next(c *ectx, x *fval) bool {
	switch it.op.kind {
	case oConst:
		if it.done {
			return false
		}
		it.done = true
		*x = it.op.cv
		return true
	case oField:
		if it.done {
			return false
		}
		it.done = true
		return fieldVal(it.op.field, c, x)
	case oAttr:
		for {
			for it.i < len(it.list) {
				kv := &it.list[it.i]
				it.i++
				if kv.Key == it.op.key {
					storedVal(&kv.Value, x)
					return true
				}
			}
			if it.op.level != LevelAny || it.stage != 0 {
				return false
			}
			it.stage = 1
			it.list, it.i = attrList(LevelResource, c), 0
		}
	}
	return false
}

// fieldVal reads a built-in field; false when it is absent.
func fieldVal(id fieldID, c *ectx, x *fval) bool {
	s := c.s
	text := func(t string) bool {
		*x = fval{kind: fvText, s: t}
		return true
	}
	optional := func(t string) bool {
		*x = fval{kind: fvText, s: t}
		return t != ""
	}
	switch id {
	case fSpanTraceID:
		return text(s.TraceID.String())
	case fSpanSpanID:
		return text(s.SpanID.String())
	case fSpanParentSpanID:
		return !s.ParentSpanID.IsZero() && text(s.ParentSpanID.String())
	case fSpanTraceState:
		return optional(s.TraceState)
	case fSpanName:
		return text(s.Name)
	case fSpanKind:
		return text(kindWord(s.Kind))
	case fSpanStartTime:
		*x = fval{kind: fvTime, u: s.StartUnixNano}
		return true
	case fSpanEndTime:
		*x = fval{kind: fvTime, u: s.EndUnixNano}
		return true
	case fSpanDuration:
		*x = fval{kind: fvDur, u: s.Duration()}
		return true
	case fSpanStatus:
		return text(statusWord(s.StatusCode))
	case fSpanStatusMessage:
		return optional(s.StatusMessage)
	case fResourceService:
		return optional(s.ServiceName())
	case fResourceSchemaURL:
		return s.Resource != nil && optional(s.Resource.SchemaURL)
	case fScopeName:
		return s.Scope != nil && optional(s.Scope.Name)
	case fScopeVersion:
		return s.Scope != nil && optional(s.Scope.Version)
	case fScopeSchemaURL:
		return s.Scope != nil && optional(s.Scope.SchemaURL)
	case fEventName:
		return c.ev != nil && text(c.ev.Name)
	case fEventTime:
		if c.ev == nil {
			return false
		}
		*x = fval{kind: fvTime, u: c.ev.TimeUnixNano}
		return true
	case fEventTimeSinceStart:
		if c.ev == nil {
			return false
		}
		if t := c.ev.TimeUnixNano; t >= s.StartUnixNano {
			*x = fval{kind: fvDur, u: t - s.StartUnixNano}
		} else {
			*x = fval{kind: fvDur, neg: true, u: s.StartUnixNano - t}
		}
		return true
	case fLinkTraceID:
		return c.ln != nil && text(c.ln.TraceID.String())
	case fLinkSpanID:
		return c.ln != nil && text(c.ln.SpanID.String())
	case fLinkTraceState:
		// An event or link field is carried when the span has the event or
		// link (jaeger-idl v0.14.0, exists), so an empty trace state is
		// the empty text.
		return c.ln != nil && text(c.ln.TraceState)
	}
	return false
}

// compareVals reports whether x op y holds.
func compareVals(op Op, x, y *fval) bool {
	if x.kind == fvNone || y.kind == fvNone {
		return false
	}
	if x.kind == fvAny || y.kind == fvAny {
		switch {
		case x.kind == fvAny && y.kind == fvAny:
			return applyCmp(op, strings.Compare(x.s, y.s))
		case x.kind == fvAny:
			return compareAny(op.swapped(), y, x.s)
		default:
			return compareAny(op, x, y.s)
		}
	}
	if x.kind != y.kind {
		return false
	}
	switch x.kind {
	case fvText:
		xs, ok1 := x.textForm()
		ys, ok2 := y.textForm()
		return ok1 && ok2 && applyCmp(op, strings.Compare(xs, ys))
	case fvNum:
		c, ok := numCmp(x, y)
		return applyNum(op, c, ok)
	case fvBool:
		switch op {
		case OpEq:
			return x.b == y.b
		case OpNe:
			return x.b != y.b
		}
		return false
	case fvDur, fvTime:
		return applyCmp(op, nanosCmp(x, y))
	}
	return false
}

// compareAny reports whether x op t holds for the untyped constant t: by
// text (index.ValueString's form) for eq and ne; for the ordered
// comparisons numerically when x is a number and t reads as one
// (strconv's syntax), bytewise when x is text; never otherwise.
func compareAny(op Op, x *fval, t string) bool {
	if op == OpEq || op == OpNe {
		if x.kind == fvNum && x.isInt {
			var buf [24]byte
			eq := string(strconv.AppendInt(buf[:0], x.i, 10)) == t
			return eq == (op == OpEq)
		}
		s, ok := x.textForm()
		return ok && (s == t) == (op == OpEq)
	}
	switch x.kind {
	case fvNum:
		y, ok := parseNumber(t)
		if !ok {
			return false
		}
		c, ok := numCmp(x, &y)
		return applyNum(op, c, ok)
	case fvText:
		s, ok := x.textForm()
		return ok && applyCmp(op, strings.Compare(s, t))
	}
	return false
}

// parseNumber reads t as an int (strconv.ParseInt base 10) or else a
// double (strconv.ParseFloat, which accepts NaN and Inf); out-of-range text
// is not a number.
func parseNumber(t string) (fval, bool) {
	if n, err := strconv.ParseInt(t, 10, 64); err == nil {
		return fval{kind: fvNum, isInt: true, i: n}, true
	}
	if f, err := strconv.ParseFloat(t, 64); err == nil {
		return fval{kind: fvNum, f: f}, true
	}
	return fval{}, false
}

func applyCmp(op Op, c int) bool {
	switch op {
	case OpEq:
		return c == 0
	case OpNe:
		return c != 0
	case OpGt:
		return c > 0
	case OpLt:
		return c < 0
	case OpGte:
		return c >= 0
	case OpLte:
		return c <= 0
	}
	return false
}

// applyNum applies op to a numeric comparison; ok is false when a NaN took
// part, and then only ne holds (IEEE 754).
func applyNum(op Op, c int, ok bool) bool {
	if !ok {
		return op == OpNe
	}
	return applyCmp(op, c)
}

// numCmp compares two numbers exactly, ints and doubles alike; ok is false
// when either is NaN.
func numCmp(x, y *fval) (int, bool) {
	switch {
	case x.isInt && y.isInt:
		return cmpInt(x.i, y.i), true
	case x.isInt:
		return cmpIntFloat(x.i, y.f)
	case y.isInt:
		c, ok := cmpIntFloat(y.i, x.f)
		return -c, ok
	}
	switch {
	case math.IsNaN(x.f) || math.IsNaN(y.f):
		return 0, false
	case x.f < y.f:
		return -1, true
	case x.f > y.f:
		return 1, true
	}
	return 0, true
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// cmpIntFloat compares an int64 with a float64 exactly (no rounding of the
// int to a double); ok is false when f is NaN.
func cmpIntFloat(i int64, f float64) (int, bool) {
	const two63 = 9223372036854775808.0
	switch {
	case math.IsNaN(f):
		return 0, false
	case f >= two63:
		return -1, true
	case f < -two63:
		return 1, true
	}
	t := int64(f) // in range: the integral part, exactly
	if c := cmpInt(i, t); c != 0 {
		return c, true
	}
	switch frac := f - float64(t); {
	case frac > 0:
		return -1, true
	case frac < 0:
		return 1, true
	}
	return 0, true
}

// nanosCmp compares two signed nanosecond counts.
func nanosCmp(x, y *fval) int {
	xu, yu := x.u, y.u
	xn, yn := x.neg && xu != 0, y.neg && yu != 0
	switch {
	case xn && !yn:
		return -1
	case !xn && yn:
		return 1
	case xn:
		xu, yu = yu, xu // both negative: the larger magnitude is smaller
	}
	switch {
	case xu < yu:
		return -1
	case xu > yu:
		return 1
	}
	return 0
}
