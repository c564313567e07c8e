package query

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/internal/spangen"
)

// FuzzParseFilter feeds arbitrary text to the parser. It must never panic;
// an error must be a positioned *FilterError; a parsed tree's String must
// parse back to an equal tree that prints the same; Validate, Compile and
// ParseFilter must agree; and a compiled filter must evaluate (Match,
// Terms, Bounds) without panicking, as the naive evaluator does, on a few
// spans. Seeds: testdata/fuzz/FuzzParseFilter and the cases of
// testdata/filter/parse.txt.
func FuzzParseFilter(f *testing.F) {
	cases, _ := readFilterCases(f)
	for _, c := range cases {
		f.Add(c.in)
	}
	spans := append([]*encoding.Span{filterTestSpan(), filterTestChild()}, spangen.Random(rand.New(rand.NewPCG(1, 2)), 8)...)
	f.Fuzz(func(t *testing.T, s string) {
		_, e, err := parseFilterSyntax(s)
		if err != nil {
			var fe *FilterError
			if !errors.As(err, &fe) || fe.Pos.Line < 1 || fe.Pos.Col < 1 || fe.Pos.Offset > len(s) || !errors.Is(err, ErrInvalidFilter) {
				t.Fatalf("%q: bad error %#v", s, err)
			}
			return
		}
		text := e.String()
		_, again, err := parseFilterSyntax(text)
		if err != nil {
			t.Fatalf("%q prints as %q, which does not parse: %v", s, text, err)
		}
		if !EqualExpr(e, again) {
			t.Fatalf("%q prints as %q, which parses as %q", s, text, again.String())
		}
		if again.String() != text {
			t.Fatalf("%q prints as %q, then as %q", s, text, again.String())
		}
		verr := Validate(e)
		filter, cerr := Compile(e)
		_, perr := ParseFilter(s)
		if (verr == nil) != (cerr == nil) || (verr == nil) != (perr == nil) {
			t.Fatalf("%q: Validate %v, Compile %v, ParseFilter %v", s, verr, cerr, perr)
		}
		if filter == nil {
			return
		}
		for _, sp := range spans {
			if got, want := filter.Match(sp), naiveMatch(e, sp); got != want {
				t.Fatalf("%q: Match %v, naive %v", s, got, want)
			}
			checkTerms(t, filter, sp, 16)
			checkBounds(t, filter, sp)
		}
	})
}
