package query

import (
	"errors"
	"flag"
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

var updateFilterCases = flag.Bool("update-filter", false, "rewrite testdata/filter/parse.txt from the current parser")

// filterCase is one case of testdata/filter/parse.txt.
type filterCase struct {
	in       string
	out, err string
	line     int
}

// readFilterCases reads testdata/filter/parse.txt: "in:" lines (continued
// by lines that start with none of the keywords) followed by "out:" or
// "err:"; '#' lines and blank lines are comments.
func readFilterCases(t testing.TB) ([]filterCase, []string) {
	data, err := os.ReadFile("testdata/filter/parse.txt")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	var cases []filterCase
	var cur *filterCase
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, "in: "):
			cases = append(cases, filterCase{in: l[4:], line: i + 1})
			cur = &cases[len(cases)-1]
		case strings.HasPrefix(l, "out: ") && cur != nil:
			cur.out, cur = l[5:], nil
		case strings.HasPrefix(l, "err: ") && cur != nil:
			cur.err, cur = l[5:], nil
		case cur != nil:
			cur.in += "\n" + l
		}
	}
	return cases, lines
}

func TestParseFilter(t *testing.T) {
	cases, lines := readFilterCases(t)
	if len(cases) < 50 {
		t.Fatalf("only %d cases", len(cases))
	}
	var updated []string
	for _, c := range cases {
		e, err := ParseFilter(c.in)
		got := ""
		if err != nil {
			got = "err: " + err.Error()
			if !errors.Is(err, ErrInvalidFilter) {
				t.Errorf("line %d: error %v does not wrap ErrInvalidFilter", c.line, err)
			}
		} else {
			got = "out: " + e.String()
		}
		want := "out: " + c.out
		if c.err != "" {
			want = "err: " + c.err
		}
		if *updateFilterCases {
			updated = append(updated, got)
			continue
		}
		if got != want {
			t.Errorf("line %d: %q\n got %s\nwant %s", c.line, c.in, got, want)
		}
		if err != nil {
			continue
		}
		// The printed form reads back as the same tree and prints the same.
		again, err := ParseFilter(e.String())
		if err != nil {
			t.Errorf("line %d: reparse %q: %v", c.line, e.String(), err)
		} else if !EqualExpr(e, again) || again.String() != e.String() {
			t.Errorf("line %d: reparse %q gave %q", c.line, e.String(), again.String())
		}
	}
	if *updateFilterCases {
		var out []string
		n := 0
		for _, l := range lines {
			if strings.HasPrefix(l, "out: ") || strings.HasPrefix(l, "err: ") {
				l = updated[n]
				n++
			}
			out = append(out, l)
		}
		if err := os.WriteFile("testdata/filter/parse.txt", []byte(strings.Join(out, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFilterErrorPositions checks that every error of ParseFilter has a
// position inside the text, and FilterError's form without one.
func TestFilterErrorPositions(t *testing.T) {
	cases, _ := readFilterCases(t)
	for _, c := range cases {
		_, err := ParseFilter(c.in)
		var fe *FilterError
		if err == nil {
			continue
		}
		if !errors.As(err, &fe) {
			t.Fatalf("%q: %T is not a *FilterError", c.in, err)
		}
		if fe.Pos.Line < 1 || fe.Pos.Col < 1 || fe.Pos.Offset > len(c.in) {
			t.Errorf("%q: position %+v", c.in, fe.Pos)
		}
	}
	err := Validate(Eq(Field(LevelSpan, "nope"), StrConst("x")))
	if got, want := err.Error(), `filter: unknown field span.nope (the span fields are traceID, spanID, parentSpanID, traceState, name, kind, startTime, endTime, duration, status, statusMessage); for an attribute write span.attr["nope"]`; got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	if _, err := ParseFilter(strings.Repeat(" ", MaxFilterLen+1)); err == nil {
		t.Error("a filter longer than MaxFilterLen was accepted")
	}
	deep := strings.Repeat("(", maxParseDepth) + `span.name = "a"` + strings.Repeat(")", maxParseDepth)
	if _, err := ParseFilter(deep); err == nil || !strings.Contains(err.Error(), "nests more than") {
		t.Errorf("deep parentheses: %v", err)
	}
}

// TestValidateTrees covers trees the parser cannot produce: missing nodes,
// unknown operators, levels and kinds, misplaced lists and collections.
func TestValidateTrees(t *testing.T) {
	name := Field(LevelSpan, "name")
	deep := Expr(Eq(name, StrConst("a")))
	for range MaxFilterDepth {
		deep = Not(deep)
	}
	tests := []struct {
		name string
		e    Expr
		want string // substring of the error; "" for valid
	}{
		{"valid", And(Eq(name, StrConst("a")), Some(LevelLink, Exists(Attr(LevelLink, "k")))), ""},
		{"depth 20", deep.(*Call).Args[0], ""},
		{"depth 21", deep, "nest more than 20 deep"},
		{"nil", nil, "the filter is empty"},
		{"nil call", (*Call)(nil), "the filter is empty"},
		{"nil argument", And(Eq(name, StrConst("a")), nil), "an argument of and is missing"},
		{"nil operand", Eq(name, nil), "argument 2 of eq is missing"},
		{"nil pointer operand", Eq((*AttrRef)(nil), StrConst("a")), "argument 1 of eq is missing"},
		{"a constant", StrConst("a"), "a filter is a predicate"},
		{"unknown op", &Call{Op: "matches", Args: []Expr{name, StrConst("a")}}, `unknown operator "matches"`},
		{"empty op", &Call{Op: "", Args: []Expr{name, StrConst("a")}}, `unknown operator ""`},
		{"or of one", Or(Eq(name, StrConst("a"))), "or takes at least 2 arguments, got 1"},
		{"not of two", &Call{Op: OpNot, Args: []Expr{Eq(name, StrConst("a")), Eq(name, StrConst("b"))}}, "not takes 1 argument(s), got 2"},
		{"some over resource", Some(LevelResource, Eq(name, StrConst("a"))), `level "resource" has no collection`},
		{"some over nothing", Some(LevelAny, Eq(name, StrConst("a"))), `level "" has no collection`},
		{"some of three", &Call{Op: OpSome, Args: []Expr{&NestedRef{Level: LevelEvent}, Eq(name, StrConst("a")), Eq(name, StrConst("a"))}}, "some takes 2 argument(s), got 3"},
		{"nested some", Some(LevelLink, Or(Eq(name, StrConst("a")), Not(Some(LevelLink, Eq(name, StrConst("a")))))), "some over links inside some over links"},
		{"collection compared", Eq(&NestedRef{Level: LevelEvent}, IntConst(1)), "the collection events can only be the first argument of some"},
		{"collection in exists", Exists(&NestedRef{Level: LevelLink}), "exists takes an attribute or a field"},
		{"field without level", Eq(Field(LevelAny, "name"), StrConst("a")), `unknown level "" of field "name"`},
		{"attribute of bad level", Exists(Attr("instrumentation", "k")), `unknown level "instrumentation"`},
		{"bad const kind", Eq(name, &Const{Kind: 42}), "invalid constant kind 42"},
		{"list of bad kind", In(Attr(LevelSpan, "k"), &List{Kind: KindDuration, Elems: []Const{{Kind: KindDuration}}}), "a list holds strings, ints, doubles, bools or untyped values, not duration"},
		{"list of mixed kinds", In(Attr(LevelSpan, "k"), &List{Kind: KindInt, Elems: []Const{{Kind: KindInt}, {Kind: KindString}}}), "element 1 of a list of int is string"},
		{"nil list", In(Attr(LevelSpan, "k"), (*List)(nil)), "argument 2 of in is missing"},
		{"int list for a text field", In(name, IntList(1)), "cannot compare span.name (text) with the int constant 1 (a number)"},
		{"bool list for span.kind", In(Field(LevelSpan, "kind"), BoolList(true)), "cannot compare span.kind (text) with the bool constant true"},
		{"words", NotIn(Field(LevelSpan, "status"), StrList("ok", "fine")), `span.status is one of unset, ok, error, not "fine"`},
		{"regex too long", Regex(name, strings.Repeat("a", MaxRegexLen+1)), "longer than 1024"},
		{"regex any pattern", &Call{Op: OpRegex, Args: []Expr{name, AnyConst("a+")}}, ""},
		{"regex on a timestamp", Regex(Field(LevelEvent, "time"), "1"), "holds a timestamp"},
		{"timestamp vs attribute", Gt(TimestampConst(time.Unix(1, 0)), Attr(LevelAny, "t")), "an attribute holds no timestamp"},
		{"duration vs timestamp", Gt(Field(LevelSpan, "duration"), Field(LevelSpan, "startTime")), "cannot compare span.duration (a duration) with span.startTime (a timestamp)"},
		{"timestamp fields", Lt(Field(LevelSpan, "startTime"), Field(LevelEvent, "time")), ""},
		{"constants", Lt(IntConst(1), DoubleConst(2)), ""},
		{"bool vs int", Eq(BoolConst(true), IntConst(1)), "cannot compare the bool constant true (a bool) with the int constant 1 (a number)"},
		{"untyped vs anything", Eq(AnyConst("1"), BoolConst(true)), ""},
		{"attribute vs attribute", Ne(Attr(LevelSpan, "a"), Attr(LevelResource, "a")), ""},
		{"some of a constant", &Call{Op: OpSome, Args: []Expr{&NestedRef{Level: LevelEvent}, BoolConst(true)}}, "some takes predicates, and the bool constant true is not one"},
		{"phrase", Phrase(Attr(LevelEvent, "m"), "connection", "refused"), ""},
		{"fulltext untyped", &Call{Op: OpFulltext, Args: []Expr{Attr(LevelAny, "m"), AnyList("a")}}, ""},
		{"phrase of a field", &Call{Op: OpPhrase, Args: []Expr{name, StrList("a")}}, "phrase searches the text of an attribute, not span.name"},
		{"fulltext of nil list", &Call{Op: OpFulltext, Args: []Expr{Attr(LevelAny, "m"), (*List)(nil)}}, "argument 2 of fulltext is missing"},
		{"fulltext of no words", Fulltext(Attr(LevelAny, "m")), "at least one word"},
		{"fulltext of a bool list", &Call{Op: OpFulltext, Args: []Expr{Attr(LevelAny, "m"), BoolList(true)}}, "a list of strings, not of bool"},
		{"fulltext mixed list", &Call{Op: OpFulltext, Args: []Expr{Attr(LevelAny, "m"), &List{Kind: KindString, Elems: []Const{{Kind: KindAny, Text: "a"}}}}}, "element 0 of a list of string is untyped"},
		{"fulltext of a bad attribute", Fulltext(Attr("spans", "m"), "a"), `unknown level "spans"`},
		{"phrase with a space", Phrase(Attr(LevelAny, "m"), "a b"), "only letters, digits and combining marks"},
		{"word of 255", Phrase(Attr(LevelAny, "m"), strings.Repeat("\u00e9", MaxWordLen)), ""},
		{"word of 256", Phrase(Attr(LevelAny, "m"), strings.Repeat("a", MaxWordLen+1)), "at most 255 UTF-16 code units, not 256"},
		{"untyped list vs attribute", In(Attr(LevelSpan, "k"), AnyList("1", "x")), ""},
		{"regex anchor", Regex(name, "a$"), "anchors are refused"},
		{"regex lazy", Regex(name, "a*?"), "lazy quantifiers are refused"},
		{"regex flags", Regex(name, "(?U)a*"), "inline flags"},
		{"regex escaped paren", Regex(name, `\(?i\)`), ""},
		{"regex quoted flags", Regex(name, `\Q(?i)^\E(?:x)`), ""},
		{"regex flags after quote", Regex(name, `\Q(\E(?i)x`), "inline flags"},
		{"regex flags in a class", Regex(name, `[[:alpha:](?i)]`), ""},
		{"big timestamp", Eq(Field(LevelSpan, "startTime"), AnyConst("2300-01-01T00:00:00Z")), "outside the years 1678 to 2262"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.e)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("got %v, want an error with %q", err, tt.want)
			case err != nil && !errors.Is(err, ErrInvalidFilter):
				t.Fatalf("%v does not wrap ErrInvalidFilter", err)
			}
			if _, cerr := Compile(tt.e); (cerr == nil) != (err == nil) {
				t.Fatalf("Compile and Validate disagree: %v, %v", cerr, err)
			}
			_ = exprString(tt.e) // prints without panicking
		})
	}
}

// TestFilterString checks the printed form of trees built with the
// constructors, and that each reads back as the same tree.
func TestFilterString(t *testing.T) {
	ts := time.Date(2026, 8, 16, 18, 56, 20, 123456789, time.UTC)
	tests := []struct {
		e    Expr
		want string
	}{
		{Eq(Attr(LevelSpan, `we"ird\key`), StrConst("\x00\xff")), `span.attr["we\"ird\\key"] = "\x00\xff"`},
		{Eq(Attr(LevelAny, "k"), DoubleConst(math.Copysign(0, -1))), `attr["k"] = -0.0`},
		{Eq(Attr(LevelAny, "k"), DoubleConst(math.NaN())), `attr["k"] = double("NaN")`},
		{Eq(Attr(LevelAny, "k"), DoubleConst(math.MaxFloat64)), `attr["k"] = 1.7976931348623157e+308`},
		{Eq(Attr(LevelAny, "k"), DoubleConst(5e-324)), `attr["k"] = 5e-324`},
		{Eq(Attr(LevelAny, "k"), IntConst(math.MinInt64)), `attr["k"] = -9223372036854775808`},
		{Eq(Field(LevelSpan, "duration"), DurationConst(math.MinInt64)), `span.duration = -2562047h47m16.854775808s`},
		{Eq(Field(LevelSpan, "duration"), DurationConst(math.MaxInt64)), `span.duration = 2562047h47m16.854775807s`},
		{Eq(Field(LevelSpan, "duration"), DurationConst(0)), `span.duration = 0s`},
		{Eq(Field(LevelSpan, "startTime"), TimestampConst(ts)), `span.startTime = time("2026-08-16T18:56:20.123456789Z")`},
		{Eq(Field(LevelSpan, "startTime"), &Const{Kind: KindTimestamp, Int: math.MinInt64}), `span.startTime = time("1677-09-21T00:12:43.145224192Z")`},
		{Eq(Field(LevelSpan, "startTime"), &Const{Kind: KindTimestamp, Int: math.MaxInt64}), `span.startTime = time("2262-04-11T23:47:16.854775807Z")`},
		{In(Attr(LevelAny, "k"), IntList()), `attr["k"] in int[]`},
		{In(Attr(LevelAny, "k"), DoubleList()), `attr["k"] in double[]`},
		{In(Attr(LevelAny, "k"), DoubleList(1, math.Inf(-1))), `attr["k"] in [1.0, double("-Inf")]`},
		{In(Attr(LevelAny, "k"), BoolList()), `attr["k"] in bool[]`},
		{In(Attr(LevelAny, "k"), StrList()), `attr["k"] in []`},
		{In(Field(LevelSpan, "duration"), AnyList()), `span.duration in any[]`},
		{Some(LevelEvent, Or(And(Exists(Attr(LevelEvent, "a")), Exists(Attr(LevelEvent, "b"))), Not(Exists(Attr(LevelEvent, "c"))))),
			`some(events, exists(event.attr["a"]) and exists(event.attr["b"]) or not exists(event.attr["c"]))`},
		{Not(And(Exists(Attr(LevelAny, "a")), Exists(Attr(LevelAny, "b")))), `not (exists(attr["a"]) and exists(attr["b"]))`},
		{Or(Or(Exists(Attr(LevelAny, "a")), Exists(Attr(LevelAny, "b"))), Exists(Attr(LevelAny, "c"))), `(exists(attr["a"]) or exists(attr["b"])) or exists(attr["c"])`},
		{Eq(Eq(IntConst(1), IntConst(1)), BoolConst(true)), `eq(1 = 1, true)`},
		{Eq(Field(LevelSpan, "name"), AnyConst("x")), `span.name = any("x")`},
		{&Call{Op: OpAnd}, `and()`},
		{&Call{Op: OpExists, Args: []Expr{Attr(LevelAny, "a"), Attr(LevelAny, "b")}}, `exists(attr["a"], attr["b"])`},
	}
	for _, tt := range tests {
		if got := tt.e.String(); got != tt.want {
			t.Errorf("got  %s\nwant %s", got, tt.want)
			continue
		}
		_, back, err := parseFilterSyntax(tt.want)
		if err != nil {
			t.Errorf("%s: %v", tt.want, err)
		} else if !EqualExpr(back, tt.e) {
			t.Errorf("%s read back as %s", tt.want, back)
		}
	}
	// Printing never panics, whatever the tree.
	for _, e := range []Expr{nil, (*Call)(nil), &Call{Op: OpNot}, &Call{Op: OpNot, Args: []Expr{nil}}, Eq(nil, (*Const)(nil)),
		&Const{Kind: 99}, &List{Kind: 99, Elems: []Const{{Kind: 98}}}, &NestedRef{}, &FieldRef{}} {
		_ = exprString(e)
	}
}

func TestEqualExpr(t *testing.T) {
	a := Eq(Attr(LevelAny, "k"), DoubleConst(math.NaN()))
	b := Eq(Attr(LevelAny, "k"), DoubleConst(math.Float64frombits(0x7ff8dead0000beef)))
	if !EqualExpr(a, b) {
		t.Error("NaNs differ")
	}
	if EqualExpr(Eq(Attr(LevelAny, "k"), DoubleConst(0)), Eq(Attr(LevelAny, "k"), DoubleConst(math.Copysign(0, -1)))) {
		t.Error("-0 equals +0")
	}
	if EqualExpr(Eq(Attr(LevelAny, "k"), IntConst(1)), Eq(Attr(LevelAny, "k"), DoubleConst(1))) {
		t.Error("int 1 equals double 1")
	}
	if EqualExpr(In(Attr(LevelAny, "k"), StrList("a")), In(Attr(LevelAny, "k"), AnyList("a"))) {
		t.Error("lists of different kinds are equal")
	}
	if EqualExpr(nil, Exists(Attr(LevelAny, "k"))) || !EqualExpr(nil, (*Call)(nil)) {
		t.Error("nil handling")
	}
}

func TestConstFromWire(t *testing.T) {
	tests := []struct {
		value, typ string
		want       *Const
		err        string
	}{
		{"500", "", AnyConst("500"), ""},
		{"500", "string", StrConst("500"), ""},
		{"500", "int", IntConst(500), ""},
		{"1.5", "double", DoubleConst(1.5), ""},
		{"NaN", "double", DoubleConst(math.NaN()), ""},
		{"true", "bool", BoolConst(true), ""},
		{"1.5", "int", nil, `scalar "1.5" of type int: invalid syntax`},
		{"99999999999999999999", "int", nil, "value out of range"},
		{"yes", "bool", nil, "invalid syntax"},
		{"1", "duration", nil, `unknown value type "duration"`},
	}
	for _, tt := range tests {
		got, err := ConstFromWire(tt.value, tt.typ)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, ErrInvalidFilter) {
				t.Errorf("%q %q: got %v, want %q", tt.value, tt.typ, err, tt.err)
			}
			continue
		}
		if err != nil || !EqualExpr(got, tt.want) {
			t.Errorf("%q %q: got %v, %v", tt.value, tt.typ, got, err)
		}
	}
	l, err := ListFromWire([]string{"1", "2"}, "double")
	if err != nil || !EqualExpr(l, DoubleList(1, 2)) {
		t.Errorf("double list: %v %v", l, err)
	}
	if _, err := ListFromWire([]string{"1", "x"}, "int"); err == nil || !strings.Contains(err.Error(), `list element 1 "x" of type int`) {
		t.Errorf("bad list: %v", err)
	}
	l, err = ListFromWire([]string{"2s"}, "")
	if err != nil || !EqualExpr(l, AnyList("2s")) {
		t.Errorf("untyped list: %v %v", l, err)
	}
}

func TestVocabulary(t *testing.T) {
	// Every operator, level and field of jaeger-idl's vocabulary.
	wantOps := "and or not eq ne gt lt gte lte regex exists in not_in some phrase fulltext"
	var ops []string
	for _, o := range Ops() {
		ops = append(ops, string(o))
		if !o.Valid() {
			t.Errorf("%s not valid", o)
		}
	}
	if got := strings.Join(ops, " "); got != wantOps {
		t.Errorf("ops %s", got)
	}
	wantFields := "span.traceID span.spanID span.parentSpanID span.traceState span.name span.kind span.startTime span.endTime span.duration span.status span.statusMessage " +
		"resource.service resource.schemaURL scope.name scope.version scope.schemaURL event.name event.time event.timeSinceStart link.traceID link.spanID link.traceState"
	var fields []string
	for _, f := range Fields() {
		fields = append(fields, string(f.Level)+"."+f.Name)
		if g, ok := LookupField(f.Level, f.Name); !ok || g != f {
			t.Errorf("LookupField(%s, %s)", f.Level, f.Name)
		}
	}
	if got := strings.Join(fields, " "); got != wantFields {
		t.Errorf("fields %s", got)
	}
	for _, l := range []Level{LevelSpan, LevelResource, LevelScope, LevelEvent, LevelLink} {
		if !l.Valid() {
			t.Errorf("level %q", l)
		}
	}
	if LevelAny.Valid() || Level("instrumentation").Valid() || Op("contains").Valid() {
		t.Error("invalid names accepted")
	}
	if got := strings.Join(SpanKinds(), ","); got != "unspecified,internal,server,client,producer,consumer" {
		t.Error(got)
	}
	if got := strings.Join(SpanStatuses(), ","); got != "unset,ok,error" {
		t.Error(got)
	}
}
