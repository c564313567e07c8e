package query

// This file defines the structured filter: the expression tree of Jaeger's
// jaeger.expression.v1.Call (Jaeger RFC 0005), its vocabulary (operators,
// levels, built-in fields, constant types), constructors, a stable textual
// form (String) and structural equality. Validation is in
// filter_validate.go, the textual syntax in filter_parse.go, evaluation on a
// span in filter_eval.go, and what postings a filter implies in
// filter_terms.go. filter.md describes the language.

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/index"
)

// ErrInvalidFilter is wrapped by every error that refuses a filter: a syntax
// error, an unknown operator, level or field, a wrong number or kind of
// arguments, a constant that cannot be read, a bad regular expression. The
// server maps it to InvalidArgument.
var ErrInvalidFilter = errors.New("invalid filter")

// FilterError says why a filter is refused and, when the filter came from
// text, where. It unwraps to ErrInvalidFilter.
type FilterError struct {
	// Pos is where in the filter text the problem is; zero when the filter
	// was not parsed from text.
	Pos Pos
	// Node is the offending node of the tree, nil when there is none (a
	// syntax error).
	Node Expr
	Msg  string
}

func (e *FilterError) Error() string {
	if e.Pos.Line > 0 {
		return fmt.Sprintf("filter %d:%d: %s", e.Pos.Line, e.Pos.Col, e.Msg)
	}
	return "filter: " + e.Msg
}

// Unwrap makes errors.Is(err, ErrInvalidFilter) hold.
func (e *FilterError) Unwrap() error { return ErrInvalidFilter }

// Pos is a position in a filter's text: Line and Col count from 1, Col in
// bytes; Offset is the byte offset from 0.
type Pos struct {
	Offset, Line, Col int
}

// Limits that keep a filter from untrusted input cheap to parse, check and
// evaluate.
const (
	// MaxFilterLen is the longest filter text ParseFilter accepts, in bytes.
	MaxFilterLen = 64 << 10
	// MaxFilterDepth is how deeply calls may nest, counting the root call as
	// 1 (jaeger-idl v0.14.0's MaxNestingDepth).
	MaxFilterDepth = 20
	// MaxRegexLen is the longest regular expression pattern, in bytes.
	MaxRegexLen = 1024
)

// Op is an operator of a Call, spelled as on the wire (Call.op).
type Op string

// The operators of the vocabulary.
const (
	OpAnd    Op = "and"    // n-ary (≥ 2): every argument holds
	OpOr     Op = "or"     // n-ary (≥ 2): some argument holds
	OpNot    Op = "not"    // unary: the argument does not hold
	OpEq     Op = "eq"     // binary comparison: equal
	OpNe     Op = "ne"     // binary comparison: a value to compare, and no value equal
	OpGt     Op = "gt"     // binary comparison: greater
	OpLt     Op = "lt"     // binary comparison: less
	OpGte    Op = "gte"    // binary comparison: greater or equal
	OpLte    Op = "lte"    // binary comparison: less or equal
	OpRegex  Op = "regex"  // subject, pattern: RE2 pattern found in the subject's text
	OpExists Op = "exists" // unary: the attribute or field has a value
	OpIn     Op = "in"     // subject, list: equal to an element
	OpNotIn  Op = "not_in" // subject, list: a value to compare, and no value in the list
	OpSome   Op = "some"   // collection, predicate: some event (or link) satisfies it
	// OpPhrase and OpFulltext are the text-search operators: an attribute,
	// a non-empty list of words. phrase: the words occur adjacent and in
	// order among the words of the attribute's text; fulltext: each occurs,
	// in any order (filter.md, "Text search").
	OpPhrase   Op = "phrase"
	OpFulltext Op = "fulltext"
)

// filterOps lists every operator, in the order of the wire vocabulary
// (the operators annotation of Call.op in jaeger-idl v0.14.0).
var filterOps = [...]Op{OpAnd, OpOr, OpNot, OpEq, OpNe, OpGt, OpLt, OpGte, OpLte, OpRegex, OpExists, OpIn, OpNotIn, OpSome, OpPhrase, OpFulltext}

// isTextSearch reports whether o is phrase or fulltext.
func (o Op) isTextSearch() bool { return o == OpPhrase || o == OpFulltext }

// Ops returns every operator of the vocabulary.
func Ops() []Op { return append([]Op(nil), filterOps[:]...) }

// Valid reports whether o is an operator of the vocabulary.
func (o Op) Valid() bool {
	for _, x := range filterOps {
		if x == o {
			return true
		}
	}
	return false
}

// isComparison reports whether o is one of eq, ne, gt, lt, gte, lte.
func (o Op) isComparison() bool {
	switch o {
	case OpEq, OpNe, OpGt, OpLt, OpGte, OpLte:
		return true
	}
	return false
}

// isOrdered reports whether o is one of gt, lt, gte, lte.
func (o Op) isOrdered() bool {
	switch o {
	case OpGt, OpLt, OpGte, OpLte:
		return true
	}
	return false
}

// swapped returns the comparison that holds for (b, a) when o holds for (a, b).
func (o Op) swapped() Op {
	switch o {
	case OpGt:
		return OpLt
	case OpLt:
		return OpGt
	case OpGte:
		return OpLte
	case OpLte:
		return OpGte
	}
	return o
}

// Level says where a referenced value lives, spelled as on the wire.
type Level string

// The levels. LevelAny is only for attributes: it searches the span's and
// the resource's attributes (RFC 0005 §5.1).
const (
	LevelAny      Level = ""
	LevelSpan     Level = "span"
	LevelResource Level = "resource"
	LevelScope    Level = "scope"
	LevelEvent    Level = "event"
	LevelLink     Level = "link"
)

// filterLevels lists the explicit levels.
var filterLevels = [...]Level{LevelSpan, LevelResource, LevelScope, LevelEvent, LevelLink}

// Valid reports whether l is one of the five explicit levels (LevelAny is
// not: it is valid only on an attribute reference).
func (l Level) Valid() bool {
	for _, x := range filterLevels {
		if x == l {
			return true
		}
	}
	return false
}

// collection reports whether l is a level a span holds many of, which is
// what some quantifies over.
func (l Level) collection() bool { return l == LevelEvent || l == LevelLink }

// indexLevel returns the index's level of attribute terms for l.
func (l Level) indexLevel() (index.AttrLevel, bool) {
	switch l {
	case LevelSpan:
		return index.LevelSpan, true
	case LevelResource:
		return index.LevelResource, true
	case LevelScope:
		return index.LevelScope, true
	case LevelEvent:
		return index.LevelEvent, true
	case LevelLink:
		return index.LevelLink, true
	}
	return 0, false
}

// FieldType is the kind of value a built-in field holds, and so how a
// constant compared with it is read.
type FieldType uint8

// The field types.
const (
	FieldText      FieldType = iota + 1 // text, compared bytewise
	FieldDuration                       // nanoseconds, written as a Go duration ("2s")
	FieldTimestamp                      // Unix nanoseconds, written in RFC 3339
	FieldKind                           // one of SpanKinds, not ordered
	FieldStatus                         // one of SpanStatuses, not ordered
)

var fieldTypeNames = [...]string{"", "text", "duration", "timestamp", "span kind", "span status"}

func (t FieldType) String() string {
	if int(t) < len(fieldTypeNames) && t != 0 {
		return fieldTypeNames[t]
	}
	return "invalid"
}

// fieldID names a built-in field for the evaluator.
type fieldID uint8

const (
	fSpanTraceID fieldID = iota + 1
	fSpanSpanID
	fSpanParentSpanID
	fSpanTraceState
	fSpanName
	fSpanKind
	fSpanStartTime
	fSpanEndTime
	fSpanDuration
	fSpanStatus
	fSpanStatusMessage
	fResourceService
	fResourceSchemaURL
	fScopeName
	fScopeVersion
	fScopeSchemaURL
	fEventName
	fEventTime
	fEventTimeSinceStart
	fLinkTraceID
	fLinkSpanID
	fLinkTraceState
)

// FieldInfo describes a built-in field.
type FieldInfo struct {
	Level Level
	Name  string
	Type  FieldType
	// Optional fields are absent (exists is false, every comparison is
	// false) when empty: a zero parent span ID, an empty span trace state,
	// status message, schema URL, scope name or version, a resource without
	// a service name. Event and link fields are never optional: jaeger-idl
	// v0.14.0 says one is carried when the span has the event or link.
	Optional bool
	id       fieldID
}

// filterFields is the vocabulary of built-in fields: jaeger-idl v0.14.0's
// query/expression/v1 fields.go, named and typed as there (camelCase).
var filterFields = [...]FieldInfo{
	{LevelSpan, "traceID", FieldText, false, fSpanTraceID},
	{LevelSpan, "spanID", FieldText, false, fSpanSpanID},
	{LevelSpan, "parentSpanID", FieldText, true, fSpanParentSpanID},
	{LevelSpan, "traceState", FieldText, true, fSpanTraceState},
	{LevelSpan, "name", FieldText, false, fSpanName},
	{LevelSpan, "kind", FieldKind, false, fSpanKind},
	{LevelSpan, "startTime", FieldTimestamp, false, fSpanStartTime},
	{LevelSpan, "endTime", FieldTimestamp, false, fSpanEndTime},
	{LevelSpan, "duration", FieldDuration, false, fSpanDuration},
	{LevelSpan, "status", FieldStatus, false, fSpanStatus},
	{LevelSpan, "statusMessage", FieldText, true, fSpanStatusMessage},
	{LevelResource, "service", FieldText, true, fResourceService},
	{LevelResource, "schemaURL", FieldText, true, fResourceSchemaURL},
	{LevelScope, "name", FieldText, true, fScopeName},
	{LevelScope, "version", FieldText, true, fScopeVersion},
	{LevelScope, "schemaURL", FieldText, true, fScopeSchemaURL},
	{LevelEvent, "name", FieldText, false, fEventName},
	{LevelEvent, "time", FieldTimestamp, false, fEventTime},
	{LevelEvent, "timeSinceStart", FieldDuration, false, fEventTimeSinceStart},
	{LevelLink, "traceID", FieldText, false, fLinkTraceID},
	{LevelLink, "spanID", FieldText, false, fLinkSpanID},
	{LevelLink, "traceState", FieldText, false, fLinkTraceState},
}

// Fields returns every built-in field.
func Fields() []FieldInfo { return append([]FieldInfo(nil), filterFields[:]...) }

// LookupField returns the built-in field name of level.
func LookupField(level Level, name string) (FieldInfo, bool) {
	for _, f := range filterFields {
		if f.Level == level && f.Name == name {
			return f, true
		}
	}
	return FieldInfo{}, false
}

// spanKindWords and spanStatusWords are the words span.kind and span.status
// hold, indexed by the OTLP number.
var (
	spanKindWords   = [...]string{"unspecified", "internal", "server", "client", "producer", "consumer"}
	spanStatusWords = [...]string{"unset", "ok", "error"}
)

// SpanKinds returns the words span.kind holds, in OTLP's order.
func SpanKinds() []string { return append([]string(nil), spanKindWords[:]...) }

// SpanStatuses returns the words span.status holds, in OTLP's order.
func SpanStatuses() []string { return append([]string(nil), spanStatusWords[:]...) }

// kindWord returns the word of a span kind; a number outside OTLP's enum
// reads as its decimal form, which no constant can equal (constants must be
// words).
func kindWord(k int32) string {
	if k >= 0 && int(k) < len(spanKindWords) {
		return spanKindWords[k]
	}
	return strconv.FormatInt(int64(k), 10)
}

func statusWord(c int32) string {
	if c >= 0 && int(c) < len(spanStatusWords) {
		return spanStatusWords[c]
	}
	return strconv.FormatInt(int64(c), 10)
}

// wordNumber returns the OTLP number of word in words.
func wordNumber(words []string, word string) (int32, bool) {
	for i, w := range words {
		if w == word {
			return int32(i), true
		}
	}
	return 0, false
}

// Expr is a node of a filter: a *Call, a reference (*AttrRef, *FieldRef,
// *NestedRef) or a constant (*Const, *List). Only the types of this package
// implement it. A tree is immutable once built: share nodes freely, never
// modify one that a Filter was compiled from.
type Expr interface {
	// String returns the node in the textual syntax (filter.md). It is
	// stable, and ParseFilter of the String of a parsed filter returns an
	// equal tree.
	String() string
	writeTo(b *strings.Builder)
}

// Call applies Op to Args. Arity and argument kinds follow the operator
// (see Validate).
type Call struct {
	Op   Op
	Args []Expr
}

// AttrRef names an attribute by key at a level; LevelAny searches the
// span's and the resource's attributes.
type AttrRef struct {
	Level Level
	Key   string
}

// FieldRef names a built-in field of a level (see Fields).
type FieldRef struct {
	Level Level
	Name  string
}

// NestedRef names the span's events (LevelEvent) or links (LevelLink): the
// first argument of some, and nothing else.
type NestedRef struct {
	Level Level
}

// ConstKind is the type of a constant.
type ConstKind uint8

// The constant types. KindAny is a constant without a type (a wire Scalar
// whose type is empty): it is read as the type of the built-in field it is
// compared with, or matched against an attribute at whatever type the
// attribute was stored (filter.md). Duration and timestamp constants have no
// wire type: on the wire they are untyped constants compared with a
// duration or timestamp field.
const (
	KindAny ConstKind = iota
	KindString
	KindInt
	KindDouble
	KindBool
	KindDuration
	KindTimestamp
	numConstKinds
)

var constKindNames = [...]string{"untyped", "string", "int", "double", "bool", "duration", "timestamp"}

func (k ConstKind) String() string {
	if k < numConstKinds {
		return constKindNames[k]
	}
	return "invalid"
}

// Const is a constant. Exactly the fields its Kind names are meaningful:
//
//	KindAny, KindString  Text
//	KindInt              Int
//	KindDouble           Double (NaN, ±Inf and -0 allowed)
//	KindBool             Bool
//	KindDuration         Int (nanoseconds)
//	KindTimestamp        Int (Unix nanoseconds)
type Const struct {
	Kind   ConstKind
	Text   string
	Int    int64
	Double float64
	Bool   bool
}

// List is the list constant of in, not_in, phrase and fulltext: elements
// all of Kind, which is KindAny (untyped text, read as the type of the
// field it is compared with, matched at the stored type beside an
// attribute), KindString, KindInt, KindDouble or KindBool. The text-search
// operators take strings, declared (KindString) or not (KindAny).
type List struct {
	Kind  ConstKind
	Elems []Const
}

// Constructors. They build nodes without checking them: Validate does.

// And returns a call of and.
func And(args ...Expr) *Call { return &Call{Op: OpAnd, Args: args} }

// Or returns a call of or.
func Or(args ...Expr) *Call { return &Call{Op: OpOr, Args: args} }

// Not returns a call of not.
func Not(e Expr) *Call { return &Call{Op: OpNot, Args: []Expr{e}} }

// Eq returns a call of eq.
func Eq(a, b Expr) *Call { return &Call{Op: OpEq, Args: []Expr{a, b}} }

// Ne returns a call of ne.
func Ne(a, b Expr) *Call { return &Call{Op: OpNe, Args: []Expr{a, b}} }

// Gt returns a call of gt.
func Gt(a, b Expr) *Call { return &Call{Op: OpGt, Args: []Expr{a, b}} }

// Lt returns a call of lt.
func Lt(a, b Expr) *Call { return &Call{Op: OpLt, Args: []Expr{a, b}} }

// Gte returns a call of gte.
func Gte(a, b Expr) *Call { return &Call{Op: OpGte, Args: []Expr{a, b}} }

// Lte returns a call of lte.
func Lte(a, b Expr) *Call { return &Call{Op: OpLte, Args: []Expr{a, b}} }

// Regex returns a call of regex with a string pattern.
func Regex(subject Expr, pattern string) *Call {
	return &Call{Op: OpRegex, Args: []Expr{subject, StrConst(pattern)}}
}

// Exists returns a call of exists.
func Exists(ref Expr) *Call { return &Call{Op: OpExists, Args: []Expr{ref}} }

// In returns a call of in.
func In(subject Expr, list *List) *Call { return &Call{Op: OpIn, Args: []Expr{subject, list}} }

// NotIn returns a call of not_in.
func NotIn(subject Expr, list *List) *Call { return &Call{Op: OpNotIn, Args: []Expr{subject, list}} }

// Some returns a call of some over the span's events (LevelEvent) or links
// (LevelLink).
func Some(level Level, pred Expr) *Call {
	return &Call{Op: OpSome, Args: []Expr{&NestedRef{Level: level}, pred}}
}

// Phrase returns a call of phrase: the words, adjacent and in order, in
// the text of attribute attr.
func Phrase(attr *AttrRef, words ...string) *Call {
	return &Call{Op: OpPhrase, Args: []Expr{attr, StrList(words...)}}
}

// Fulltext returns a call of fulltext: every one of the words, in any
// order, in the text of attribute attr.
func Fulltext(attr *AttrRef, words ...string) *Call {
	return &Call{Op: OpFulltext, Args: []Expr{attr, StrList(words...)}}
}

// Attr returns a reference to attribute key at level.
func Attr(level Level, key string) *AttrRef { return &AttrRef{Level: level, Key: key} }

// Field returns a reference to the built-in field name of level.
func Field(level Level, name string) *FieldRef { return &FieldRef{Level: level, Name: name} }

// AnyConst returns an untyped constant.
func AnyConst(text string) *Const { return &Const{Kind: KindAny, Text: text} }

// StrConst returns a string constant.
func StrConst(s string) *Const { return &Const{Kind: KindString, Text: s} }

// IntConst returns an int constant.
func IntConst(n int64) *Const { return &Const{Kind: KindInt, Int: n} }

// DoubleConst returns a double constant.
func DoubleConst(f float64) *Const { return &Const{Kind: KindDouble, Double: f} }

// BoolConst returns a bool constant.
func BoolConst(b bool) *Const { return &Const{Kind: KindBool, Bool: b} }

// DurationConst returns a duration constant.
func DurationConst(d time.Duration) *Const { return &Const{Kind: KindDuration, Int: int64(d)} }

// TimestampConst returns a timestamp constant; t must lie within the years
// 1678 to 2262 (Unix nanoseconds in an int64).
func TimestampConst(t time.Time) *Const { return &Const{Kind: KindTimestamp, Int: t.UnixNano()} }

// StrList returns a list of strings.
func StrList(elems ...string) *List {
	return newList(KindString, elems, func(s string) Const { return Const{Kind: KindString, Text: s} })
}

// IntList returns a list of ints.
func IntList(elems ...int64) *List {
	return newList(KindInt, elems, func(n int64) Const { return Const{Kind: KindInt, Int: n} })
}

// DoubleList returns a list of doubles.
func DoubleList(elems ...float64) *List {
	return newList(KindDouble, elems, func(f float64) Const { return Const{Kind: KindDouble, Double: f} })
}

// BoolList returns a list of bools.
func BoolList(elems ...bool) *List {
	return newList(KindBool, elems, func(b bool) Const { return Const{Kind: KindBool, Bool: b} })
}

// AnyList returns an untyped list: its elements are read as the type of
// the field it is compared with.
func AnyList(elems ...string) *List {
	return newList(KindAny, elems, func(s string) Const { return Const{Kind: KindAny, Text: s} })
}

func newList[T any](kind ConstKind, elems []T, c func(T) Const) *List {
	l := &List{Kind: kind, Elems: make([]Const, len(elems))}
	for i, e := range elems {
		l.Elems[i] = c(e)
	}
	return l
}

// Wire conversion: the server turns a jaeger.expression.v1 message into
// these nodes one to one. Call.op becomes Op(op), a level string Level(level);
// Validate refuses what the vocabulary does not define.

// ConstFromWire returns the constant of a wire Scalar: typ is "" (untyped),
// "string", "int", "double" or "bool"; a typed value must read as its type.
func ConstFromWire(value, typ string) (*Const, error) {
	k, err := wireKind(typ)
	if err != nil {
		return nil, err
	}
	c, err := readConst(k, value)
	if err != nil {
		return nil, &FilterError{Msg: fmt.Sprintf("scalar %q of type %s: %v", value, typ, err)}
	}
	return &c, nil
}

// ListFromWire returns the list of a wire List (see ConstFromWire for typ).
func ListFromWire(values []string, typ string) (*List, error) {
	k, err := wireKind(typ)
	if err != nil {
		return nil, err
	}
	l := &List{Kind: k, Elems: make([]Const, len(values))}
	for i, v := range values {
		c, err := readConst(k, v)
		if err != nil {
			return nil, &FilterError{Msg: fmt.Sprintf("list element %d %q of type %s: %v", i, v, typ, err)}
		}
		l.Elems[i] = c
	}
	return l, nil
}

func wireKind(typ string) (ConstKind, error) {
	switch typ {
	case "":
		return KindAny, nil
	case "string":
		return KindString, nil
	case "int":
		return KindInt, nil
	case "double":
		return KindDouble, nil
	case "bool":
		return KindBool, nil
	}
	return 0, &FilterError{Msg: fmt.Sprintf("unknown value type %q (want string, int, double, bool or empty)", typ)}
}

// readConst reads text as a constant of kind k (any, string, int, double or
// bool), with strconv's rules as jaeger-idl reads them.
func readConst(k ConstKind, text string) (Const, error) {
	c := Const{Kind: k}
	var err error
	switch k {
	case KindAny, KindString:
		c.Text = text
	case KindInt:
		c.Int, err = strconv.ParseInt(text, 10, 64)
	case KindDouble:
		c.Double, err = strconv.ParseFloat(text, 64)
	case KindBool:
		c.Bool, err = strconv.ParseBool(text)
	default:
		err = fmt.Errorf("no wire form for %s", k)
	}
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) {
			err = ne.Err
		}
		return Const{}, err
	}
	return c, nil
}

// String forms.

func (c *Call) String() string      { return exprString(c) }
func (r *AttrRef) String() string   { return exprString(r) }
func (r *FieldRef) String() string  { return exprString(r) }
func (r *NestedRef) String() string { return exprString(r) }
func (c *Const) String() string     { return exprString(c) }
func (l *List) String() string      { return exprString(l) }

func exprString(e Expr) string {
	var b strings.Builder
	writeExpr(&b, e)
	return b.String()
}

// writeExpr writes e, or "<nil>" for a missing node (a nil interface or a
// nil pointer), so that printing never panics.
func writeExpr(b *strings.Builder, e Expr) {
	if isNil(e) {
		b.WriteString("<nil>")
		return
	}
	e.writeTo(b)
}

// isNil reports whether e is missing: a nil interface or a nil pointer of a
// node type.
func isNil(e Expr) bool {
	switch x := e.(type) {
	case nil:
		return true
	case *Call:
		return x == nil
	case *AttrRef:
		return x == nil
	case *FieldRef:
		return x == nil
	case *NestedRef:
		return x == nil
	case *Const:
		return x == nil
	case *List:
		return x == nil
	}
	return false
}

// Precedences of the printed forms, loosest first.
const (
	precOr = iota + 1
	precAnd
	precNot
	precCmp
	precAtom
)

// prec returns how loosely e's printed form binds.
func prec(e Expr) int {
	c, ok := e.(*Call)
	if !ok || c == nil {
		return precAtom
	}
	switch {
	case c.infixLogic():
		if c.Op == OpOr {
			return precOr
		}
		return precAnd
	case c.Op == OpNot && len(c.Args) == 1 && !isNil(c.Args[0]):
		return precNot
	case c.infixBinary():
		return precCmp
	}
	return precAtom
}

// infixLogic reports whether c prints as "a and b" / "a or b".
func (c *Call) infixLogic() bool {
	if (c.Op != OpAnd && c.Op != OpOr) || len(c.Args) < 2 {
		return false
	}
	for _, a := range c.Args {
		if isNil(a) {
			return false
		}
	}
	return true
}

// infixBinary reports whether c prints as "a op b": a comparison, regex, in
// or not_in of two operands that are not calls.
func (c *Call) infixBinary() bool {
	if len(c.Args) != 2 || !isOperand(c.Args[0]) || !isOperand(c.Args[1]) {
		return false
	}
	return c.Op.isComparison() || c.Op == OpRegex || c.Op == OpIn || c.Op == OpNotIn
}

// isOperand reports whether e is a non-nil reference or constant.
func isOperand(e Expr) bool {
	if isNil(e) {
		return false
	}
	_, call := e.(*Call)
	return !call
}

// infixToken returns the infix spelling of a binary operator.
func infixToken(op Op) string {
	switch op {
	case OpEq:
		return "="
	case OpNe:
		return "!="
	case OpGt:
		return ">"
	case OpLt:
		return "<"
	case OpGte:
		return ">="
	case OpLte:
		return "<="
	case OpRegex:
		return "=~"
	case OpIn:
		return "in"
	case OpNotIn:
		return "not in"
	}
	return string(op)
}

func (c *Call) writeTo(b *strings.Builder) {
	switch {
	case c.infixLogic():
		own := prec(c)
		for i, a := range c.Args {
			if i > 0 {
				b.WriteByte(' ')
				b.WriteString(string(c.Op))
				b.WriteByte(' ')
			}
			writeParen(b, a, prec(a) <= own)
		}
	case c.Op == OpNot && len(c.Args) == 1 && !isNil(c.Args[0]):
		b.WriteString("not ")
		writeParen(b, c.Args[0], prec(c.Args[0]) < precNot)
	case c.infixBinary():
		writeExpr(b, c.Args[0])
		b.WriteByte(' ')
		b.WriteString(infixToken(c.Op))
		b.WriteByte(' ')
		writeExpr(b, c.Args[1])
	default:
		b.WriteString(string(c.Op))
		b.WriteByte('(')
		for i, a := range c.Args {
			if i > 0 {
				b.WriteString(", ")
			}
			writeExpr(b, a)
		}
		b.WriteByte(')')
	}
}

func writeParen(b *strings.Builder, e Expr, paren bool) {
	if paren {
		b.WriteByte('(')
	}
	writeExpr(b, e)
	if paren {
		b.WriteByte(')')
	}
}

func (r *AttrRef) writeTo(b *strings.Builder) {
	if r.Level != LevelAny {
		b.WriteString(string(r.Level))
		b.WriteByte('.')
	}
	b.WriteString("attr[")
	b.WriteString(strconv.Quote(r.Key))
	b.WriteByte(']')
}

func (r *FieldRef) writeTo(b *strings.Builder) {
	b.WriteString(string(r.Level))
	b.WriteByte('.')
	b.WriteString(r.Name)
}

func (r *NestedRef) writeTo(b *strings.Builder) {
	b.WriteString(string(r.Level))
	b.WriteByte('s')
}

func (c *Const) writeTo(b *strings.Builder) {
	switch c.Kind {
	case KindAny:
		b.WriteString("any(")
		b.WriteString(strconv.Quote(c.Text))
		b.WriteByte(')')
	case KindString:
		b.WriteString(strconv.Quote(c.Text))
	case KindInt:
		b.WriteString(strconv.FormatInt(c.Int, 10))
	case KindDouble:
		writeDouble(b, c.Double)
	case KindBool:
		b.WriteString(strconv.FormatBool(c.Bool))
	case KindDuration:
		b.WriteString(time.Duration(c.Int).String())
	case KindTimestamp:
		b.WriteString("time(")
		b.WriteString(strconv.Quote(formatTimestamp(c.Int)))
		b.WriteByte(')')
	default:
		fmt.Fprintf(b, "invalid(%d)", c.Kind)
	}
}

// writeDouble writes f so that it reads back as a double with the same
// value (and sign of zero): a decimal with a point or an exponent, or
// double("NaN"), double("+Inf"), double("-Inf").
func writeDouble(b *strings.Builder, f float64) {
	switch {
	case math.IsNaN(f):
		b.WriteString(`double("NaN")`)
		return
	case math.IsInf(f, 1):
		b.WriteString(`double("+Inf")`)
		return
	case math.IsInf(f, -1):
		b.WriteString(`double("-Inf")`)
		return
	}
	s := strconv.FormatFloat(f, 'g', -1, 64)
	b.WriteString(s)
	if !strings.ContainsAny(s, ".e") {
		b.WriteString(".0")
	}
}

func formatTimestamp(ns int64) string {
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}

func (l *List) writeTo(b *strings.Builder) {
	// The element type is inferred from the elements when it can be.
	switch l.Kind {
	case KindString:
	case KindInt, KindDouble, KindBool:
		if len(l.Elems) == 0 {
			b.WriteString(l.Kind.String())
		}
	case KindAny:
		b.WriteString("any")
	default:
		b.WriteString(l.Kind.String())
	}
	b.WriteByte('[')
	for i := range l.Elems {
		if i > 0 {
			b.WriteString(", ")
		}
		e := &l.Elems[i]
		if l.Kind == KindAny && e.Kind == KindAny {
			b.WriteString(strconv.Quote(e.Text))
			continue
		}
		e.writeTo(b)
	}
	b.WriteByte(']')
}

// EqualExpr reports whether a and b are the same tree. Doubles are equal
// when both are NaN or when their bits are equal (so -0 differs from +0).
func EqualExpr(a, b Expr) bool {
	if isNil(a) || isNil(b) {
		return isNil(a) && isNil(b)
	}
	switch x := a.(type) {
	case *Call:
		y, ok := b.(*Call)
		if !ok || x.Op != y.Op || len(x.Args) != len(y.Args) {
			return false
		}
		for i := range x.Args {
			if !EqualExpr(x.Args[i], y.Args[i]) {
				return false
			}
		}
		return true
	case *AttrRef:
		y, ok := b.(*AttrRef)
		return ok && *x == *y
	case *FieldRef:
		y, ok := b.(*FieldRef)
		return ok && *x == *y
	case *NestedRef:
		y, ok := b.(*NestedRef)
		return ok && *x == *y
	case *Const:
		y, ok := b.(*Const)
		return ok && constEqual(x, y)
	case *List:
		y, ok := b.(*List)
		if !ok || x.Kind != y.Kind || len(x.Elems) != len(y.Elems) {
			return false
		}
		for i := range x.Elems {
			if !constEqual(&x.Elems[i], &y.Elems[i]) {
				return false
			}
		}
		return true
	}
	return false
}

func constEqual(x, y *Const) bool {
	if x.Kind != y.Kind {
		return false
	}
	switch x.Kind {
	case KindAny, KindString:
		return x.Text == y.Text
	case KindInt, KindDuration, KindTimestamp:
		return x.Int == y.Int
	case KindDouble:
		if math.IsNaN(x.Double) || math.IsNaN(y.Double) {
			return math.IsNaN(x.Double) && math.IsNaN(y.Double)
		}
		return math.Float64bits(x.Double) == math.Float64bits(y.Double)
	case KindBool:
		return x.Bool == y.Bool
	}
	return *x == *y
}

// textForm returns the text an untyped constant is matched against for
// this constant: its printed value, with doubles in the form of
// index.ValueString.
func (c *Const) textForm() string {
	switch c.Kind {
	case KindAny, KindString:
		return c.Text
	case KindInt:
		return strconv.FormatInt(c.Int, 10)
	case KindDouble:
		s, _ := index.ValueString(&encoding.Value{Type: encoding.ValueDouble, Num: math.Float64bits(c.Double)})
		return s
	case KindBool:
		return strconv.FormatBool(c.Bool)
	case KindDuration:
		return time.Duration(c.Int).String()
	case KindTimestamp:
		return formatTimestamp(c.Int)
	}
	return ""
}
