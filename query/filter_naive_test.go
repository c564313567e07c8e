package query

// A second evaluator of filters, deliberately naive and written apart from
// filter_eval.go: it walks the tree as given (no compilation, constants
// read at each comparison, patterns compiled at each use), enumerates
// events and links explicitly, and compares numbers, durations and times
// with math/big. The randomised test checks Match against it.

import (
	"encoding/hex"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/index"
)

// nv is a value for the naive evaluator.
type nv struct {
	typ  string // "none" (empty attribute), "text", "num", "bool", "dur", "time", "any"
	text string // text, any; for stored values, the ValueString form
	ok   bool   // text: whether a text form exists
	str  bool   // a stored string value (the only kind text search reads)
	nan  bool
	num  *big.Float // num (nil when nan)
	b    bool
	big  *big.Int // dur, time
}

type naiveEnv struct {
	s  *encoding.Span
	ev *encoding.Event
	ln *encoding.Link
}

func naiveMatch(e Expr, s *encoding.Span) bool {
	return naivePred(e, naiveEnv{s: s})
}

func naivePred(e Expr, env naiveEnv) bool {
	c := e.(*Call)
	switch c.Op {
	case OpAnd:
		for _, a := range c.Args {
			if !naivePred(a, env) {
				return false
			}
		}
		return true
	case OpOr:
		for _, a := range c.Args {
			if naivePred(a, env) {
				return true
			}
		}
		return false
	case OpNot:
		return !naivePred(c.Args[0], env)
	case OpSome:
		if c.Args[0].(*NestedRef).Level == LevelEvent {
			for i := range env.s.Events {
				env2 := env
				env2.ev = &env.s.Events[i]
				if naivePred(c.Args[1], env2) {
					return true
				}
			}
			return false
		}
		for i := range env.s.Links {
			env2 := env
			env2.ln = &env.s.Links[i]
			if naivePred(c.Args[1], env2) {
				return true
			}
		}
		return false
	}
	// A negated leaf holds when a comparable pair of values exists and no
	// pair satisfies the positive leaf, over every event and link bound.
	switch c.Op {
	case OpNe, OpNotIn:
		pos := &Call{Op: OpEq, Args: c.Args}
		if c.Op == OpNotIn {
			pos = &Call{Op: OpIn, Args: c.Args}
		}
		return naiveBind(c, env, naiveComparable) && !naiveBind(pos, env, naiveLeaf)
	}
	return naiveBind(c, env, naiveLeaf)
}

// naiveBind binds every event and link leaf c needs and nothing binds yet,
// and reports whether leaf holds for one binding.
func naiveBind(c *Call, env naiveEnv, leaf func(*Call, naiveEnv) bool) bool {
	needEvent, needLink := false, false
	for _, a := range c.Args {
		var l Level
		switch r := a.(type) {
		case *AttrRef:
			l = r.Level
		case *FieldRef:
			l = r.Level
		}
		needEvent = needEvent || (l == LevelEvent && env.ev == nil)
		needLink = needLink || (l == LevelLink && env.ln == nil)
	}
	if needEvent {
		for i := range env.s.Events {
			env2 := env
			env2.ev = &env.s.Events[i]
			if naiveBind(c, env2, leaf) {
				return true
			}
		}
		return false
	}
	if needLink {
		for i := range env.s.Links {
			env2 := env
			env2.ln = &env.s.Links[i]
			if naiveBind(c, env2, leaf) {
				return true
			}
		}
		return false
	}
	return leaf(c, env)
}

// naiveComparable reports whether some value of the subject can be
// compared (by eq or ne) with some value of the other operand, or some
// element of the list.
func naiveComparable(c *Call, env naiveEnv) bool {
	var others []nv
	if l, ok := c.Args[1].(*List); ok {
		for i := range l.Elems {
			others = append(others, naiveConst(&l.Elems[i], c.Args[0]))
		}
	}
	for _, x := range naiveValues(c.Args[0], c.Args[1], env) {
		ys := others
		if ys == nil {
			ys = naiveValues(c.Args[1], c.Args[0], env)
		}
		for _, y := range ys {
			if naiveCmp(OpEq, x, y) || naiveCmp(OpNe, x, y) {
				return true
			}
		}
	}
	return false
}

// naiveWordRE is a word of the text-search analyzer: letters, decimal
// digits and combining marks.
var naiveWordRE = regexp.MustCompile(`[\p{L}\p{Nd}\p{M}]+`)

// naiveFold maps each rune to the smallest rune of its simple case-folding
// orbit.
func naiveFold(w string) string {
	rs := []rune(w)
	for i, r := range rs {
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if f < m {
				m = f
			}
		}
		rs[i] = m
	}
	return string(rs)
}

// naiveTextSearch evaluates phrase and fulltext on the string values of
// the attribute.
func naiveTextSearch(c *Call, env naiveEnv) bool {
	l := c.Args[1].(*List)
	var want []string
	for i := range l.Elems {
		want = append(want, naiveFold(l.Elems[i].Text))
	}
	for _, v := range naiveValues(c.Args[0], nil, env) {
		if !v.str {
			continue
		}
		var have []string
		for _, w := range naiveWordRE.FindAllString(strings.ToValidUTF8(v.text, " "), -1) {
			have = append(have, naiveFold(w))
		}
		if c.Op == OpFulltext && naiveAll(have, want) || c.Op == OpPhrase && naiveRun(have, want) {
			return true
		}
	}
	return false
}

func naiveAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func naiveRun(have, want []string) bool {
	for i := 0; i+len(want) <= len(have); i++ {
		if slices.Equal(have[i:i+len(want)], want) {
			return true
		}
	}
	return false
}

func naiveLeaf(c *Call, env naiveEnv) bool {
	switch c.Op {
	case OpPhrase, OpFulltext:
		return naiveTextSearch(c, env)
	case OpExists:
		return len(naiveValues(c.Args[0], nil, env)) > 0
	case OpRegex:
		re := regexp.MustCompile(c.Args[1].(*Const).Text)
		for _, v := range naiveValues(c.Args[0], nil, env) {
			if t, ok := naiveText(v); ok && re.FindStringIndex(t) != nil {
				return true
			}
		}
		return false
	case OpIn:
		l := c.Args[1].(*List)
		for _, v := range naiveValues(c.Args[0], nil, env) {
			for i := range l.Elems {
				if naiveCmp(OpEq, v, naiveConst(&l.Elems[i], c.Args[0])) {
					return true
				}
			}
		}
		return false
	}
	for _, x := range naiveValues(c.Args[0], c.Args[1], env) {
		for _, y := range naiveValues(c.Args[1], c.Args[0], env) {
			if naiveCmp(c.Op, x, y) {
				return true
			}
		}
	}
	return false
}

func naiveStored(v *encoding.Value) nv {
	switch v.Type {
	case encoding.ValueEmpty:
		return nv{typ: "none"}
	case encoding.ValueBool:
		return nv{typ: "bool", b: v.Num == 1}
	case encoding.ValueInt:
		return nv{typ: "num", num: new(big.Float).SetInt64(int64(v.Num)), text: fmt.Sprint(int64(v.Num)), ok: true}
	case encoding.ValueDouble:
		f := math.Float64frombits(v.Num)
		s, _ := index.ValueString(v)
		if math.IsNaN(f) {
			return nv{typ: "num", nan: true, text: s, ok: true}
		}
		return nv{typ: "num", num: new(big.Float).SetFloat64(f), text: s, ok: true}
	case encoding.ValueStr:
		return nv{typ: "text", text: v.Str, ok: true, str: true}
	case encoding.ValueBytes, encoding.ValueArray, encoding.ValueMap:
		s, ok := index.ValueString(v)
		return nv{typ: "text", text: s, ok: ok}
	}
	return nv{typ: "none"}
}

// naiveValues returns the values of operand a (other is the operand it is
// compared with, for reading an untyped constant at a field's type).
func naiveValues(a, other Expr, env naiveEnv) []nv {
	switch r := a.(type) {
	case *Const:
		return []nv{naiveConst(r, other)}
	case *AttrRef:
		var lists [][]encoding.KeyValue
		switch r.Level {
		case LevelAny:
			lists = append(lists, env.s.Attrs)
			if env.s.Resource != nil {
				lists = append(lists, env.s.Resource.Attrs)
			}
		case LevelSpan:
			lists = append(lists, env.s.Attrs)
		case LevelResource:
			if env.s.Resource != nil {
				lists = append(lists, env.s.Resource.Attrs)
			}
		case LevelScope:
			if env.s.Scope != nil {
				lists = append(lists, env.s.Scope.Attrs)
			}
		case LevelEvent:
			lists = append(lists, env.ev.Attrs)
		case LevelLink:
			lists = append(lists, env.ln.Attrs)
		}
		var out []nv
		for _, l := range lists {
			for i := range l {
				if l[i].Key == r.Key {
					out = append(out, naiveStored(&l[i].Value))
				}
			}
		}
		return out
	case *FieldRef:
		return naiveField(r, env)
	}
	panic(fmt.Sprintf("naive: operand %T", a))
}

func naiveTextVal(s string) []nv { return []nv{{typ: "text", text: s, ok: true}} }

func naiveOptional(s string) []nv {
	if s == "" {
		return nil
	}
	return naiveTextVal(s)
}

func naiveNanos(typ string, n uint64) []nv {
	return []nv{{typ: typ, big: new(big.Int).SetUint64(n)}}
}

func naiveField(r *FieldRef, env naiveEnv) []nv {
	s := env.s
	kinds := []string{"unspecified", "internal", "server", "client", "producer", "consumer"}
	statuses := []string{"unset", "ok", "error"}
	word := func(n int32, words []string) string {
		if n >= 0 && int(n) < len(words) {
			return words[n]
		}
		return fmt.Sprint(n)
	}
	switch string(r.Level) + "." + r.Name {
	case "span.traceID":
		return naiveTextVal(hex.EncodeToString(s.TraceID[:]))
	case "span.spanID":
		return naiveTextVal(hex.EncodeToString(s.SpanID[:]))
	case "span.parentSpanID":
		if s.ParentSpanID == (encoding.SpanID{}) {
			return nil
		}
		return naiveTextVal(hex.EncodeToString(s.ParentSpanID[:]))
	case "span.traceState":
		return naiveOptional(s.TraceState)
	case "span.name":
		return naiveTextVal(s.Name)
	case "span.kind":
		return naiveTextVal(word(s.Kind, kinds))
	case "span.status":
		return naiveTextVal(word(s.StatusCode, statuses))
	case "span.statusMessage":
		return naiveOptional(s.StatusMessage)
	case "span.startTime":
		return naiveNanos("time", s.StartUnixNano)
	case "span.endTime":
		return naiveNanos("time", s.EndUnixNano)
	case "span.duration":
		d := new(big.Int).Sub(new(big.Int).SetUint64(s.EndUnixNano), new(big.Int).SetUint64(s.StartUnixNano))
		if d.Sign() < 0 {
			d.SetInt64(0)
		}
		return []nv{{typ: "dur", big: d}}
	case "resource.service":
		if s.Resource == nil {
			return nil
		}
		for _, kv := range s.Resource.Attrs {
			if kv.Key == "service.name" && kv.Value.Type == encoding.ValueStr {
				return naiveOptional(kv.Value.Str)
			}
		}
		return nil
	case "resource.schemaURL":
		if s.Resource == nil {
			return nil
		}
		return naiveOptional(s.Resource.SchemaURL)
	case "scope.name", "scope.version", "scope.schemaURL":
		if s.Scope == nil {
			return nil
		}
		return naiveOptional(map[string]string{"name": s.Scope.Name, "version": s.Scope.Version, "schemaURL": s.Scope.SchemaURL}[r.Name])
	case "event.name":
		return naiveTextVal(env.ev.Name)
	case "event.time":
		return naiveNanos("time", env.ev.TimeUnixNano)
	case "event.timeSinceStart":
		d := new(big.Int).Sub(new(big.Int).SetUint64(env.ev.TimeUnixNano), new(big.Int).SetUint64(s.StartUnixNano))
		return []nv{{typ: "dur", big: d}}
	case "link.traceID":
		return naiveTextVal(hex.EncodeToString(env.ln.TraceID[:]))
	case "link.spanID":
		return naiveTextVal(hex.EncodeToString(env.ln.SpanID[:]))
	case "link.traceState":
		return naiveTextVal(env.ln.TraceState)
	}
	panic("naive: field " + r.String())
}

// naiveConst reads a constant, at the type of the field it is compared
// with when it is untyped.
func naiveConst(c *Const, other Expr) nv {
	k := *c
	if f, ok := other.(*FieldRef); ok && k.Kind == KindAny {
		switch string(f.Level) + "." + f.Name {
		case "span.duration", "event.timeSinceStart":
			d, err := time.ParseDuration(k.Text)
			if err != nil {
				panic(err)
			}
			k = Const{Kind: KindDuration, Int: int64(d)}
		case "span.startTime", "span.endTime", "event.time":
			t, err := time.Parse(time.RFC3339Nano, k.Text)
			if err != nil {
				panic(err)
			}
			k = Const{Kind: KindTimestamp, Int: t.UnixNano()}
		default:
			k = Const{Kind: KindString, Text: k.Text}
		}
	}
	switch k.Kind {
	case KindAny:
		return nv{typ: "any", text: k.Text, ok: true}
	case KindString:
		return nv{typ: "text", text: k.Text, ok: true}
	case KindInt:
		return nv{typ: "num", num: new(big.Float).SetInt64(k.Int), text: strconv.FormatInt(k.Int, 10), ok: true}
	case KindDouble:
		s, _ := index.ValueString(&encoding.Value{Type: encoding.ValueDouble, Num: math.Float64bits(k.Double)})
		if math.IsNaN(k.Double) {
			return nv{typ: "num", nan: true, text: s, ok: true}
		}
		return nv{typ: "num", num: new(big.Float).SetFloat64(k.Double), text: s, ok: true}
	case KindBool:
		return nv{typ: "bool", b: k.Bool}
	case KindDuration:
		return nv{typ: "dur", big: big.NewInt(k.Int), text: time.Duration(k.Int).String(), ok: true}
	case KindTimestamp:
		return nv{typ: "time", big: big.NewInt(k.Int), text: time.Unix(0, k.Int).UTC().Format(time.RFC3339Nano), ok: true}
	}
	panic("naive: constant kind")
}

func naiveText(v nv) (string, bool) {
	switch v.typ {
	case "bool":
		if v.b {
			return "true", true
		}
		return "false", true
	case "none":
		return "", false
	case "dur", "time":
		if !v.big.IsInt64() {
			return "", false
		}
		return v.text, v.text != ""
	}
	return v.text, v.ok
}

// naiveCmp reports whether x op y.
func naiveCmp(op Op, x, y nv) bool {
	if x.typ == "none" || y.typ == "none" {
		return false
	}
	if x.typ == "any" && y.typ != "any" {
		return naiveCmp(op.swapped(), y, x)
	}
	if y.typ == "any" {
		t := y.text
		if op == OpEq || op == OpNe {
			s, ok := naiveText(x)
			if !ok {
				return false
			}
			return (s == t) == (op == OpEq)
		}
		switch x.typ {
		case "text", "any":
			s, ok := naiveText(x)
			return ok && naiveOrder(op, naiveStrCmp(s, t))
		case "num":
			var yn nv
			if i, err := strconv.ParseInt(t, 10, 64); err == nil {
				yn = nv{typ: "num", num: new(big.Float).SetInt64(i)}
			} else if f, err := strconv.ParseFloat(t, 64); err == nil {
				if math.IsNaN(f) {
					yn = nv{typ: "num", nan: true}
				} else {
					yn = nv{typ: "num", num: new(big.Float).SetFloat64(f)}
				}
			} else {
				return false
			}
			return naiveCmp(op, x, yn)
		}
		return false
	}
	if x.typ != y.typ {
		return false
	}
	switch x.typ {
	case "text":
		return x.ok && y.ok && naiveOrder(op, naiveStrCmp(x.text, y.text))
	case "num":
		if x.nan || y.nan {
			return op == OpNe
		}
		return naiveOrder(op, x.num.Cmp(y.num))
	case "bool":
		if op == OpEq {
			return x.b == y.b
		}
		if op == OpNe {
			return x.b != y.b
		}
		return false
	case "dur", "time":
		return naiveOrder(op, x.big.Cmp(y.big))
	}
	panic("naive: type " + x.typ)
}

func naiveStrCmp(a, b string) int {
	// Bytewise, by hand.
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return len(a) - len(b)
}

func naiveOrder(op Op, c int) bool {
	switch op {
	case OpEq:
		return c == 0
	case OpNe:
		return c != 0
	case OpGt:
		return c > 0
	case OpGte:
		return c >= 0
	case OpLt:
		return c < 0
	case OpLte:
		return c <= 0
	}
	panic("naive: op " + string(op))
}
