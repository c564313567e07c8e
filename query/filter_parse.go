package query

// This file is the textual syntax of filters (grammar in filter.md): a
// lexer and a recursive-descent parser. Its input is untrusted: the text is
// bounded by MaxFilterLen, the recursion by maxParseDepth, and every error
// says where it is.

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// maxParseDepth bounds the parser's recursion (nested parentheses, not,
// arguments); Validate then bounds the calls to MaxFilterDepth.
const maxParseDepth = 100

// ParseFilter parses a filter written in the textual syntax of filter.md
// and validates it (see Validate). Bare field names resolve as the grammar
// says, so the tree holds only qualified references. Errors are
// *FilterError values with the position of the problem in s.
func ParseFilter(s string) (Expr, error) {
	p, e, err := parseFilterSyntax(s)
	if err != nil {
		return nil, err
	}
	if err := Validate(e); err != nil {
		var fe *FilterError
		if errors.As(err, &fe) {
			off := 0
			if fe.Node != nil {
				if o, ok := p.pos[fe.Node]; ok {
					off = o
				}
			}
			fe.Pos = p.position(off)
		}
		return nil, err
	}
	return e, nil
}

// parseFilterSyntax parses s without validating the tree: the tree may
// have unknown fields or levels, wrong arities or incompatible operands
// (but every operator and function name is known).
func parseFilterSyntax(s string) (*filterParser, Expr, error) {
	p := &filterParser{src: s, pos: make(map[Expr]int)}
	if len(s) > MaxFilterLen {
		return nil, nil, &FilterError{Pos: Pos{Line: 1, Col: 1}, Msg: fmt.Sprintf("filter of %d bytes is longer than %d", len(s), MaxFilterLen)}
	}
	if err := p.lex(); err != nil {
		return nil, nil, err
	}
	e, err := p.parseOr()
	if err != nil {
		return nil, nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, nil, p.errorf(t.off, "expected and, or or the end of the filter, found %s", t.describe())
	}
	return p, e, nil
}

type tokKind uint8

const (
	tokEOF tokKind = iota
	tokIdent
	tokString   // "..." or `...`; val is the unquoted text
	tokInt      // -?[0-9]+
	tokDouble   // with a fraction or an exponent
	tokDuration // a number followed by units: 2s, 1h30m, 1.5ms
	tokLParen
	tokRParen
	tokLBrack
	tokRBrack
	tokComma
	tokDot
	tokEq    // = or ==
	tokNe    // !=
	tokLt    // <
	tokLe    // <=
	tokGt    // >
	tokGe    // >=
	tokMatch // =~
)

type token struct {
	kind tokKind
	off  int
	text string // the source text of the token
	val  string // tokString: the unquoted string
}

func (t token) describe() string {
	switch t.kind {
	case tokEOF:
		return "the end of the filter"
	case tokString:
		return "the string " + t.text
	case tokIdent:
		return strconv.Quote(t.text)
	}
	return "'" + t.text + "'"
}

type filterParser struct {
	src    string
	toks   []token
	i      int
	depth  int
	scopes []Level      // levels bound by the enclosing some calls, innermost last
	pos    map[Expr]int // where each node starts
}

// position turns a byte offset into a line and column.
func (p *filterParser) position(off int) Pos {
	if off > len(p.src) {
		off = len(p.src)
	}
	line := 1 + strings.Count(p.src[:off], "\n")
	col := off - strings.LastIndexByte(p.src[:off], '\n')
	return Pos{Offset: off, Line: line, Col: col}
}

func (p *filterParser) errorf(off int, format string, args ...any) error {
	return &FilterError{Pos: p.position(off), Msg: fmt.Sprintf(format, args...)}
}

func isIdentStart(c byte) bool {
	return c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isUnitStart reports whether src[i:] starts a duration unit: an ASCII
// letter, or µ (U+00B5) or μ (U+03BC), which Go's durations accept.
func isUnitStart(src string, i int) bool {
	if i >= len(src) {
		return false
	}
	c := src[i]
	if ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') {
		return true
	}
	r, _ := utf8.DecodeRuneInString(src[i:])
	return r == 'µ' || r == 'μ'
}

func (p *filterParser) lex() error {
	src := p.src
	i := 0
	for {
		for i < len(src) && (src[i] == ' ' || src[i] == '\t' || src[i] == '\n' || src[i] == '\r') {
			i++
		}
		if i >= len(src) {
			p.toks = append(p.toks, token{kind: tokEOF, off: i})
			return nil
		}
		start := i
		c := src[i]
		kind := tokEOF
		switch {
		case isIdentStart(c):
			for i < len(src) && (isIdentStart(src[i]) || isDigit(src[i])) {
				i++
			}
			kind = tokIdent
		case isDigit(c) || (c == '-' && i+1 < len(src) && isDigit(src[i+1])):
			var err error
			if kind, i, err = lexNumber(src, i); err != nil {
				return p.errorf(start, "%v", err)
			}
		case c == '"' || c == '`':
			i++
			for i < len(src) && src[i] != c {
				if c == '"' && src[i] == '\\' {
					i++
				}
				if c == '"' && i < len(src) && src[i] == '\n' {
					return p.errorf(start, "unterminated string")
				}
				i++
			}
			if i >= len(src) {
				return p.errorf(start, "unterminated string")
			}
			i++
			val, err := strconv.Unquote(src[start:i])
			if err != nil {
				return p.errorf(start, "bad string literal %s", src[start:i])
			}
			p.toks = append(p.toks, token{kind: tokString, off: start, text: src[start:i], val: val})
			continue
		default:
			two := ""
			if i+1 < len(src) {
				two = src[i : i+2]
			}
			switch {
			case two == "==":
				kind, i = tokEq, i+2
			case two == "!=":
				kind, i = tokNe, i+2
			case two == "<=":
				kind, i = tokLe, i+2
			case two == ">=":
				kind, i = tokGe, i+2
			case two == "=~":
				kind, i = tokMatch, i+2
			default:
				i++
				switch c {
				case '(':
					kind = tokLParen
				case ')':
					kind = tokRParen
				case '[':
					kind = tokLBrack
				case ']':
					kind = tokRBrack
				case ',':
					kind = tokComma
				case '.':
					kind = tokDot
				case '=':
					kind = tokEq
				case '<':
					kind = tokLt
				case '>':
					kind = tokGt
				case '!':
					return p.errorf(start, "unexpected '!': write != or not")
				default:
					r, _ := utf8.DecodeRuneInString(src[start:])
					return p.errorf(start, "unexpected character %q", r)
				}
			}
		}
		p.toks = append(p.toks, token{kind: kind, off: start, text: src[start:i]})
	}
}

// lexNumber scans a number starting at i: an int, a double (fraction or
// exponent) or a duration (a number followed by units).
func lexNumber(src string, i int) (tokKind, int, error) {
	kind := tokInt
	if src[i] == '-' {
		i++
	}
	for i < len(src) && isDigit(src[i]) {
		i++
	}
	if i+1 < len(src) && src[i] == '.' && isDigit(src[i+1]) {
		kind = tokDouble
		i++
		for i < len(src) && isDigit(src[i]) {
			i++
		}
	}
	if i < len(src) && (src[i] == 'e' || src[i] == 'E') {
		j := i + 1
		if j < len(src) && (src[j] == '+' || src[j] == '-') {
			j++
		}
		if j < len(src) && isDigit(src[j]) {
			kind = tokDouble
			for i = j; i < len(src) && isDigit(src[i]); i++ {
			}
		}
	}
	if isUnitStart(src, i) {
		for i < len(src) && (isDigit(src[i]) || src[i] == '.' || isUnitStart(src, i)) {
			_, n := utf8.DecodeRuneInString(src[i:])
			i += n
		}
		return tokDuration, i, nil
	}
	if i < len(src) && (isIdentStart(src[i]) || src[i] == '.') {
		return 0, i, fmt.Errorf("bad number %q", src[:i+1])
	}
	return kind, i, nil
}

func (p *filterParser) peek() token { return p.toks[p.i] }

func (p *filterParser) peekAt(k int) token {
	if p.i+k < len(p.toks) {
		return p.toks[p.i+k]
	}
	return p.toks[len(p.toks)-1]
}

func (p *filterParser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

func (p *filterParser) isIdent(word string) bool {
	t := p.peek()
	return t.kind == tokIdent && t.text == word
}

func (p *filterParser) expect(k tokKind, what string) (token, error) {
	t := p.next()
	if t.kind != k {
		return t, p.errorf(t.off, "expected %s, found %s", what, t.describe())
	}
	return t, nil
}

func (p *filterParser) mark(e Expr, off int) Expr {
	p.pos[e] = off
	return e
}

func (p *filterParser) enter() error {
	p.depth++
	if p.depth > maxParseDepth {
		return p.errorf(p.peek().off, "the filter nests more than %d deep", maxParseDepth)
	}
	return nil
}

// parseOr parses: and { "or" and }.
func (p *filterParser) parseOr() (Expr, error) {
	return p.parseChain(OpOr, p.parseAnd)
}

// parseAnd parses: unary { "and" unary }.
func (p *filterParser) parseAnd() (Expr, error) {
	return p.parseChain(OpAnd, p.parseUnary)
}

func (p *filterParser) parseChain(op Op, operand func() (Expr, error)) (Expr, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	off := p.peek().off
	first, err := operand()
	if err != nil {
		return nil, err
	}
	if !p.isIdent(string(op)) {
		return first, nil
	}
	args := []Expr{first}
	for p.isIdent(string(op)) {
		p.next()
		e, err := operand()
		if err != nil {
			return nil, err
		}
		args = append(args, e)
	}
	return p.mark(&Call{Op: op, Args: args}, off), nil
}

// parseUnary parses: "not" unary | comparison.
func (p *filterParser) parseUnary() (Expr, error) {
	if !p.isIdent("not") {
		return p.parseComparison()
	}
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	t := p.next()
	e, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	return p.mark(&Call{Op: OpNot, Args: []Expr{e}}, t.off), nil
}

// parseComparison parses: primary [ cmpop primary | ["not"] "in" primary ].
func (p *filterParser) parseComparison() (Expr, error) {
	off := p.peek().off
	left, err := p.parsePrimary()
	if err != nil {
		return nil, err
	}
	var op Op
	switch t := p.peek(); {
	case t.kind == tokEq:
		op = OpEq
	case t.kind == tokNe:
		op = OpNe
	case t.kind == tokLt:
		op = OpLt
	case t.kind == tokLe:
		op = OpLte
	case t.kind == tokGt:
		op = OpGt
	case t.kind == tokGe:
		op = OpGte
	case t.kind == tokMatch:
		op = OpRegex
	case p.isIdent("in"):
		op = OpIn
	case p.isIdent("not") && p.peekAt(1).kind == tokIdent && p.peekAt(1).text == "in":
		op = OpNotIn
		p.next()
	default:
		return left, nil
	}
	p.next()
	right, err := p.parsePrimary()
	if err != nil {
		return nil, err
	}
	return p.mark(&Call{Op: op, Args: []Expr{left, right}}, off), nil
}

// listKinds maps the prefixes of typed lists to their kinds.
func listPrefix(word string) (ConstKind, bool) {
	switch word {
	case "any":
		return KindAny, true
	case "string":
		return KindString, true
	case "int":
		return KindInt, true
	case "double":
		return KindDouble, true
	case "bool":
		return KindBool, true
	}
	return 0, false
}

func (p *filterParser) parsePrimary() (Expr, error) {
	t := p.next()
	switch t.kind {
	case tokLParen:
		if err := p.enter(); err != nil {
			return nil, err
		}
		defer func() { p.depth-- }()
		e, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(tokRParen, "')'"); err != nil {
			return nil, err
		}
		return e, nil
	case tokString, tokInt, tokDouble, tokDuration:
		c, err := p.literal(t)
		if err != nil {
			return nil, err
		}
		return p.mark(&c, t.off), nil
	case tokLBrack:
		return p.parseList(t.off, KindAny, false)
	case tokIdent:
		return p.parseName(t)
	}
	return nil, p.errorf(t.off, "expected a predicate or a value, found %s", t.describe())
}

// literal reads a string, number or duration token as a constant.
func (p *filterParser) literal(t token) (Const, error) {
	switch t.kind {
	case tokString:
		return Const{Kind: KindString, Text: t.val}, nil
	case tokInt:
		n, err := strconv.ParseInt(t.text, 10, 64)
		if err != nil {
			return Const{}, p.errorf(t.off, "integer %s is out of range (write it as a double, %s.0)", t.text, t.text)
		}
		return Const{Kind: KindInt, Int: n}, nil
	case tokDouble:
		f, err := strconv.ParseFloat(t.text, 64)
		if err != nil {
			return Const{}, p.errorf(t.off, "double %s is out of range", t.text)
		}
		return Const{Kind: KindDouble, Double: f}, nil
	case tokDuration:
		d, err := time.ParseDuration(t.text)
		if err != nil {
			return Const{}, p.errorf(t.off, "bad duration %s (write 2s, 150ms, 1h30m, 250us)", t.text)
		}
		return Const{Kind: KindDuration, Int: int64(d)}, nil
	}
	return Const{}, p.errorf(t.off, "expected a value, found %s", t.describe())
}

// parseName parses what starts with an identifier: a function call, a
// typed list, attr["k"], level.attr["k"], level.field, true, false,
// events, links, or a bare field name.
func (p *filterParser) parseName(t token) (Expr, error) {
	name := t.text
	switch p.peek().kind {
	case tokLParen:
		return p.parseFunc(t)
	case tokLBrack:
		if name == "attr" {
			key, err := p.parseKey()
			if err != nil {
				return nil, err
			}
			return p.mark(&AttrRef{Level: LevelAny, Key: key}, t.off), nil
		}
		if k, ok := listPrefix(name); ok {
			p.next()
			return p.parseList(t.off, k, true)
		}
		return nil, p.errorf(p.peek().off, "unexpected '[' after %q: write attr[\"key\"] or a list", name)
	case tokDot:
		p.next()
		f, err := p.expect(tokIdent, "a field name or attr after '.'")
		if err != nil {
			return nil, err
		}
		if f.text == "attr" && p.peek().kind == tokLBrack {
			key, err := p.parseKey()
			if err != nil {
				return nil, err
			}
			return p.mark(&AttrRef{Level: Level(name), Key: key}, t.off), nil
		}
		return p.mark(&FieldRef{Level: Level(name), Name: f.text}, t.off), nil
	}
	switch name {
	case "true", "false":
		return p.mark(&Const{Kind: KindBool, Bool: name == "true"}, t.off), nil
	case "events":
		return p.mark(&NestedRef{Level: LevelEvent}, t.off), nil
	case "links":
		return p.mark(&NestedRef{Level: LevelLink}, t.off), nil
	case "and", "or", "not", "in":
		return nil, p.errorf(t.off, "expected a predicate or a value, found %q", name)
	}
	for i := len(p.scopes) - 1; i >= 0; i-- {
		if _, ok := LookupField(p.scopes[i], name); ok {
			return p.mark(&FieldRef{Level: p.scopes[i], Name: name}, t.off), nil
		}
	}
	if _, ok := LookupField(LevelSpan, name); ok {
		return p.mark(&FieldRef{Level: LevelSpan, Name: name}, t.off), nil
	}
	if name == "service" {
		return p.mark(&FieldRef{Level: LevelResource, Name: name}, t.off), nil
	}
	return nil, p.errorf(t.off, "unknown name %q: qualify a field (span.name, resource.service, event.name, …) and write an attribute as attr[\"key\"] or span.attr[\"key\"]", name)
}

// parseKey parses ["key"].
func (p *filterParser) parseKey() (string, error) {
	p.next() // [
	k, err := p.expect(tokString, "a quoted attribute key")
	if err != nil {
		return "", err
	}
	if _, err := p.expect(tokRBrack, "']'"); err != nil {
		return "", err
	}
	return k.val, nil
}

// parseFunc parses name(args): an operator in functional form or a
// constant constructor.
func (p *filterParser) parseFunc(t token) (Expr, error) {
	op := Op(t.text)
	switch t.text {
	case "any", "duration", "time", "double":
		c, err := p.parseConstructor(t)
		if err != nil {
			return nil, err
		}
		return p.mark(&c, t.off), nil
	}
	if !op.Valid() {
		return nil, p.errorf(t.off, "unknown function %q", t.text)
	}
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	p.next() // (
	scopes := len(p.scopes)
	defer func() { p.scopes = p.scopes[:scopes] }()
	var args []Expr
	for p.peek().kind != tokRParen {
		if len(args) > 0 {
			if _, err := p.expect(tokComma, "',' or ')'"); err != nil {
				return nil, err
			}
		}
		a, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if n, ok := a.(*NestedRef); ok && op == OpSome && len(args) == 0 {
			p.scopes = append(p.scopes, n.Level)
		}
		args = append(args, a)
	}
	p.next() // )
	return p.mark(&Call{Op: op, Args: args}, t.off), nil
}

// parseConstructor parses any("text"), duration("2s"), time("RFC 3339")
// or double("NaN").
func (p *filterParser) parseConstructor(t token) (Const, error) {
	p.next() // (
	s, err := p.expect(tokString, "a quoted string")
	if err != nil {
		return Const{}, err
	}
	if _, err := p.expect(tokRParen, "')'"); err != nil {
		return Const{}, err
	}
	switch t.text {
	case "any":
		return Const{Kind: KindAny, Text: s.val}, nil
	case "duration":
		d, err := time.ParseDuration(s.val)
		if err != nil {
			return Const{}, p.errorf(s.off, "bad duration %s: %v", s.text, err)
		}
		return Const{Kind: KindDuration, Int: int64(d)}, nil
	case "time":
		ns, err := parseTimestamp(s.val)
		if err != nil {
			return Const{}, p.errorf(s.off, "bad timestamp %s (want RFC 3339, 2026-01-02T15:04:05.999Z): %v", s.text, err)
		}
		return Const{Kind: KindTimestamp, Int: ns}, nil
	default: // double
		f, err := strconv.ParseFloat(s.val, 64)
		if err != nil {
			return Const{}, p.errorf(s.off, "bad double %s", s.text)
		}
		return Const{Kind: KindDouble, Double: f}, nil
	}
}

// Element classes of a list without a prefix.
const (
	elemString = iota
	elemInt
	elemDouble
	elemBool
	elemUntyped // a duration, timestamp or untyped constant: kept as text
)

var elemClassNames = [...]string{"string", "int", "double", "bool", "untyped"}

// parseList parses the elements of a list after its '['. With a prefix
// (typed true) the elements must be of kind; without, the kind is
// inferred: strings, ints, doubles (ints among doubles are read as
// doubles), bools, or untyped (durations, timestamps, any("…")), which keep
// the text they were written as.
func (p *filterParser) parseList(off int, kind ConstKind, typed bool) (Expr, error) {
	type elem struct {
		c     Const
		class int
		tok   token
	}
	var elems []elem
	for p.peek().kind != tokRBrack {
		if len(elems) > 0 {
			if _, err := p.expect(tokComma, "',' or ']'"); err != nil {
				return nil, err
			}
		}
		t := p.next()
		var e elem
		e.tok = t
		switch {
		case t.kind == tokString:
			e.c, e.class = Const{Kind: KindString, Text: t.val}, elemString
		case t.kind == tokInt || t.kind == tokDouble:
			c, err := p.literal(t)
			if err != nil {
				return nil, err
			}
			e.c, e.class = c, elemInt
			if t.kind == tokDouble {
				e.class = elemDouble
			}
		case t.kind == tokDuration:
			if _, err := p.literal(t); err != nil {
				return nil, err
			}
			e.c, e.class = Const{Kind: KindAny, Text: t.text}, elemUntyped
		case t.kind == tokIdent && (t.text == "true" || t.text == "false"):
			e.c, e.class = Const{Kind: KindBool, Bool: t.text == "true"}, elemBool
		case t.kind == tokIdent && p.peek().kind == tokLParen && (t.text == "any" || t.text == "duration" || t.text == "time" || t.text == "double"):
			c, err := p.parseConstructor(t)
			if err != nil {
				return nil, err
			}
			if t.text == "double" {
				e.c, e.class = c, elemDouble
			} else {
				// Keep the text as written: the list is untyped.
				e.c, e.class = Const{Kind: KindAny, Text: p.toks[p.i-2].val}, elemUntyped
			}
		case t.kind == tokEOF:
			return nil, p.errorf(off, "unterminated list")
		default:
			return nil, p.errorf(t.off, "expected a list element (a string, number, bool or duration), found %s", t.describe())
		}
		elems = append(elems, e)
	}
	p.next() // ]
	if !typed {
		kind = KindString
		classes := 0
		for _, e := range elems {
			classes |= 1 << e.class
		}
		switch classes {
		case 0, 1 << elemString:
			kind = KindString
		case 1 << elemInt:
			kind = KindInt
		case 1 << elemDouble, 1<<elemDouble | 1<<elemInt:
			kind = KindDouble
		case 1 << elemBool:
			kind = KindBool
		case 1 << elemUntyped:
			kind = KindAny
		default:
			numeric := func(c int) bool { return c == elemInt || c == elemDouble }
			first := elems[0].class
			for _, e := range elems[1:] {
				if e.class != first && !(numeric(e.class) && numeric(first)) {
					return nil, p.errorf(e.tok.off, "a list mixes %s and %s elements", elemClassNames[first], elemClassNames[e.class])
				}
			}
			return nil, p.errorf(off, "a list mixes elements of different types")
		}
	}
	l := &List{Kind: kind, Elems: make([]Const, len(elems))}
	for i, e := range elems {
		c := e.c
		switch {
		case kind == KindDouble && e.class == elemInt:
			f, err := strconv.ParseFloat(e.tok.text, 64)
			if err != nil {
				return nil, p.errorf(e.tok.off, "double %s is out of range", e.tok.text)
			}
			c = Const{Kind: KindDouble, Double: f}
		case kind == KindAny && e.class == elemString:
			c = Const{Kind: KindAny, Text: e.c.Text}
		case c.Kind != kind:
			return nil, p.errorf(e.tok.off, "element %s in a list of %s", e.tok.describe(), kind)
		}
		l.Elems[i] = c
	}
	return p.mark(l, off), nil
}
