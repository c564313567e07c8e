package query

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/index"
	"github.com/tracedb/tracedb/internal/spangen"
)

// TestFilterRandom generates random spans (spangen.Random) and random
// filters built from the values those spans hold, and checks for every
// valid filter and every span that Match agrees with the naive evaluator,
// that every matching span carries a term of every set of Terms, that it
// lies within Bounds, and that the filter's String reads back as the same
// tree.
func TestFilterRandom(t *testing.T) {
	seeds, exprsPerSeed, spansPerSeed := 40, 60, 200
	if testing.Short() {
		seeds = 8
	}
	var valid, invalid, evals, matches int
	for seed := range uint64(seeds) {
		r := rand.New(rand.NewPCG(seed, 0xf1173))
		spans := spangen.Random(r, spansPerSeed)
		g := newFilterGen(r, spans)
		for range exprsPerSeed {
			e := g.pred(1, nil)
			text := e.String()
			_, back, err := parseFilterSyntax(text)
			if err != nil {
				t.Fatalf("seed %d: %s does not parse: %v", seed, text, err)
			}
			if !EqualExpr(back, e) {
				t.Fatalf("seed %d: %s reads back as %s", seed, text, back)
			}
			f, err := Compile(e)
			if err != nil {
				invalid++
				continue
			}
			valid++
			if _, err := ParseFilter(text); err != nil {
				t.Fatalf("seed %d: %s compiles but does not parse: %v", seed, text, err)
			}
			maxLen := []int{0, 16}[r.IntN(2)]
			for _, s := range spans {
				got := f.Match(s)
				if want := naiveMatch(e, s); got != want {
					t.Fatalf("seed %d: %s on span %+v: Match %v, naive %v", seed, text, s, got, want)
				}
				evals++
				if got {
					matches++
					checkTerms(t, f, s, maxLen)
					checkBounds(t, f, s)
				}
			}
		}
	}
	t.Logf("%d valid and %d invalid filters, %d evaluations, %d matches", valid, invalid, evals, matches)
	if valid < invalid || matches < evals/20 || matches > evals*19/20 {
		t.Errorf("the generator is off balance: %d valid, %d invalid, %d of %d evaluations match", valid, invalid, matches, evals)
	}
}

// filterGen makes random filters from the values of a set of spans.
type filterGen struct {
	r      *rand.Rand
	keys   map[Level][]string
	values []encoding.Value
	texts  map[fieldID][]string
	durs   []int64
	times  []int64
	strs   []string // stored string values that hold at least one word
}

func newFilterGen(r *rand.Rand, spans []*encoding.Span) *filterGen {
	g := &filterGen{r: r, keys: map[Level][]string{}, texts: map[fieldID][]string{}}
	addAttrs := func(l Level, kvs []encoding.KeyValue) {
		for _, kv := range kvs {
			if kv.Key != "" {
				g.keys[l] = append(g.keys[l], kv.Key)
			}
			g.values = append(g.values, kv.Value)
		}
	}
	for _, s := range spans {
		addAttrs(LevelSpan, s.Attrs)
		if s.Resource != nil {
			addAttrs(LevelResource, s.Resource.Attrs)
			g.texts[fResourceService] = append(g.texts[fResourceService], s.ServiceName())
			g.texts[fResourceSchemaURL] = append(g.texts[fResourceSchemaURL], s.Resource.SchemaURL)
		}
		if s.Scope != nil {
			addAttrs(LevelScope, s.Scope.Attrs)
			g.texts[fScopeName] = append(g.texts[fScopeName], s.Scope.Name)
			g.texts[fScopeVersion] = append(g.texts[fScopeVersion], s.Scope.Version)
		}
		g.texts[fSpanName] = append(g.texts[fSpanName], s.Name)
		g.texts[fSpanTraceState] = append(g.texts[fSpanTraceState], s.TraceState)
		g.texts[fSpanStatusMessage] = append(g.texts[fSpanStatusMessage], s.StatusMessage)
		g.texts[fSpanTraceID] = append(g.texts[fSpanTraceID], s.TraceID.String())
		g.texts[fSpanSpanID] = append(g.texts[fSpanSpanID], s.SpanID.String())
		g.texts[fSpanParentSpanID] = append(g.texts[fSpanParentSpanID], s.ParentSpanID.String())
		g.durs = append(g.durs, int64(min(s.Duration(), math.MaxInt64)))
		g.times = append(g.times, int64(min(s.StartUnixNano, math.MaxInt64)), int64(min(s.EndUnixNano, math.MaxInt64)))
		for _, ev := range s.Events {
			addAttrs(LevelEvent, ev.Attrs)
			g.texts[fEventName] = append(g.texts[fEventName], ev.Name)
			g.times = append(g.times, int64(min(ev.TimeUnixNano, math.MaxInt64)))
			g.durs = append(g.durs, int64(ev.TimeUnixNano-s.StartUnixNano))
		}
		for _, l := range s.Links {
			addAttrs(LevelLink, l.Attrs)
			g.texts[fLinkTraceState] = append(g.texts[fLinkTraceState], l.TraceState)
			g.texts[fLinkTraceID] = append(g.texts[fLinkTraceID], l.TraceID.String())
			g.texts[fLinkSpanID] = append(g.texts[fLinkSpanID], l.SpanID.String())
		}
	}
	for _, v := range g.values {
		if _, _, ok := nextWord(v.Str, 0); v.Type == encoding.ValueStr && ok {
			g.strs = append(g.strs, v.Str)
		}
	}
	return g
}

// randomFilterWords are words for text search that spans may not hold,
// and some that are not words at all (refused).
var randomFilterWords = []string{"get", "GET", "Ünïcode", "e\u0301", "x", "42", "a-b", "", "two words"}

// textSearch returns a phrase or fulltext over an attribute, with words
// usually taken in a run from a stored string.
func (g *filterGen) textSearch() Expr {
	r := g.r
	ref, ok := g.ref().(*AttrRef)
	if !ok {
		ref = Attr(LevelAny, pick(r, g.keys[LevelSpan], "a"))
	}
	var words []string
	text := pick(r, g.strs, "a b")
	for w, off, ok := nextWord(text, 0); ok; w, off, ok = nextWord(text, off) {
		words = append(words, w)
	}
	i := r.IntN(len(words))
	words = words[i:min(len(words), i+1+r.IntN(3))]
	for j := range words {
		switch r.IntN(8) {
		case 0:
			words[j] = strings.ToUpper(words[j])
		case 1:
			words[j] = pick(r, randomFilterWords, "x")
		}
	}
	if len(words) > 1 && r.IntN(4) == 0 {
		words[0], words[1] = words[1], words[0]
	}
	l := StrList(words...)
	if r.IntN(4) == 0 {
		l = AnyList(words...)
	}
	op := OpPhrase
	if r.IntN(2) == 0 {
		op = OpFulltext
	}
	return &Call{Op: op, Args: []Expr{ref, l}}
}

func pick[T any](r *rand.Rand, xs []T, dflt T) T {
	if len(xs) == 0 {
		return dflt
	}
	return xs[r.IntN(len(xs))]
}

func (g *filterGen) pred(depth int, bound []Level) Expr {
	r := g.r
	if depth >= 5 || r.IntN(3) == 0 {
		return g.leaf()
	}
	switch r.IntN(5) {
	case 0, 1:
		op := OpAnd
		if r.IntN(2) == 0 {
			op = OpOr
		}
		c := &Call{Op: op}
		for range 2 + r.IntN(2) {
			c.Args = append(c.Args, g.pred(depth+1, bound))
		}
		return c
	case 2:
		return Not(g.pred(depth+1, bound))
	case 3:
		l := []Level{LevelEvent, LevelLink}[r.IntN(2)]
		if containsLevel(bound, l) && r.IntN(4) != 0 {
			return g.leaf()
		}
		return Some(l, g.pred(depth+1, append(bound[:len(bound):len(bound)], l)))
	}
	return g.leaf()
}

var randomFilterPatterns = []string{"a", "^G", "[0-9]+", ".*", "x|y", "é", "^$", "(?i)get", `\.`, "00"}

func (g *filterGen) leaf() Expr {
	r := g.r
	ref := g.ref()
	switch r.IntN(13) {
	case 12:
		return g.textSearch()
	case 0:
		return Exists(ref)
	case 1:
		return &Call{Op: OpRegex, Args: []Expr{ref, g.patternConst()}}
	case 2, 3:
		op := OpIn
		if r.IntN(2) == 0 {
			op = OpNotIn
		}
		return &Call{Op: op, Args: []Expr{ref, g.list(ref)}}
	case 4:
		return &Call{Op: g.cmpOp(), Args: []Expr{ref, g.ref()}}
	case 5:
		return &Call{Op: g.cmpOp(), Args: []Expr{g.constFor(ref), g.constFor(g.ref())}}
	}
	c := g.constFor(ref)
	if r.IntN(4) == 0 {
		return &Call{Op: g.cmpOp(), Args: []Expr{c, ref}}
	}
	return &Call{Op: g.cmpOp(), Args: []Expr{ref, c}}
}

func (g *filterGen) patternConst() *Const {
	p := pick(g.r, randomFilterPatterns, "a")
	if g.r.IntN(4) == 0 {
		return AnyConst(p)
	}
	return StrConst(p)
}

func (g *filterGen) cmpOp() Op {
	ops := []Op{OpEq, OpEq, OpNe, OpGt, OpLt, OpGte, OpLte}
	return ops[g.r.IntN(len(ops))]
}

func (g *filterGen) ref() Expr {
	r := g.r
	if r.IntN(2) == 0 {
		f := filterFields[r.IntN(len(filterFields))]
		return Field(f.Level, f.Name)
	}
	levels := []Level{LevelAny, LevelSpan, LevelResource, LevelScope, LevelEvent, LevelLink}
	l := levels[r.IntN(len(levels))]
	keyLevel := l
	if l == LevelAny {
		keyLevel = []Level{LevelSpan, LevelResource}[r.IntN(2)]
	}
	key := pick(r, g.keys[keyLevel], "a")
	if r.IntN(10) == 0 {
		key = "missing"
	}
	return Attr(l, key)
}

// constFor returns a constant to compare with ref, usually of a type that
// makes the comparison valid and often equal to a value some span holds.
func (g *filterGen) constFor(ref Expr) *Const {
	r := g.r
	if f, ok := ref.(*FieldRef); ok {
		fi, _ := LookupField(f.Level, f.Name)
		switch fi.Type {
		case FieldText:
			s := pick(r, g.texts[fi.id], "x")
			if r.IntN(4) == 0 {
				return AnyConst(s)
			}
			return StrConst(s)
		case FieldKind, FieldStatus:
			words := spanKindWords[:]
			if fi.Type == FieldStatus {
				words = spanStatusWords[:]
			}
			w := words[r.IntN(len(words))]
			if r.IntN(4) == 0 {
				return AnyConst(w)
			}
			return StrConst(w)
		case FieldDuration:
			d := pick(r, g.durs, 0) + int64(r.IntN(3)-1)
			if r.IntN(4) == 0 {
				return AnyConst(time.Duration(d).String())
			}
			return DurationConst(time.Duration(d))
		case FieldTimestamp:
			ts := pick(r, g.times, 0) + int64(r.IntN(3)-1)
			if r.IntN(4) == 0 {
				return AnyConst(formatTimestamp(ts))
			}
			return &Const{Kind: KindTimestamp, Int: ts}
		}
	}
	switch r.IntN(12) {
	case 0:
		return DoubleConst(math.NaN())
	case 1:
		return DoubleConst(math.Copysign(0, -1))
	case 2:
		return IntConst([]int64{0, 1, -1, math.MaxInt64, math.MinInt64, 200, 404}[r.IntN(7)])
	case 3:
		return BoolConst(r.IntN(2) == 0)
	}
	v := pick(r, g.values, encoding.Value{Type: encoding.ValueStr, Str: "a"})
	text, ok := index.ValueString(&v)
	if !ok || r.IntN(5) == 0 {
		return AnyConst(text)
	}
	switch v.Type {
	case encoding.ValueInt:
		switch r.IntN(4) {
		case 0:
			return DoubleConst(float64(int64(v.Num)))
		case 1:
			return AnyConst(text)
		case 2:
			return DoubleConst(float64(int64(v.Num)) + []float64{-0.5, 0.5}[r.IntN(2)])
		}
		return IntConst(int64(v.Num))
	case encoding.ValueDouble:
		f := math.Float64frombits(v.Num)
		if r.IntN(3) == 0 && f >= -0x1p63 && f < 0x1p63 {
			return IntConst(int64(f))
		}
		if r.IntN(4) == 0 {
			return AnyConst(strconv.FormatFloat(f, 'g', -1, 64))
		}
		return DoubleConst(f)
	case encoding.ValueBool:
		return BoolConst(v.Num != 0)
	}
	return StrConst(text)
}

// list returns a list to compare ref with.
func (g *filterGen) list(ref Expr) *List {
	r := g.r
	n := 1 + r.IntN(3)
	if f, ok := ref.(*FieldRef); ok {
		fi, _ := LookupField(f.Level, f.Name)
		l := &List{Kind: KindAny}
		if fi.Type != FieldDuration && fi.Type != FieldTimestamp && r.IntN(2) == 0 {
			l.Kind = KindString
		}
		for range n {
			c := g.constFor(ref)
			l.Elems = append(l.Elems, Const{Kind: l.Kind, Text: c.textForm()})
		}
		return l
	}
	first := g.constFor(ref)
	kind := first.Kind
	if kind == KindAny && r.IntN(2) == 0 {
		kind = KindString
	}
	l := &List{Kind: kind}
	for i := 0; len(l.Elems) < n && i < 20; i++ {
		c := first
		if i > 0 {
			c = g.constFor(ref)
		}
		switch {
		case c.Kind == kind:
			l.Elems = append(l.Elems, *c)
		case kind == KindString && c.Kind == KindAny:
			l.Elems = append(l.Elems, Const{Kind: KindString, Text: c.Text})
		case kind == KindAny:
			l.Elems = append(l.Elems, Const{Kind: KindAny, Text: c.textForm()})
		}
	}
	return l
}
