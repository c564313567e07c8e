package query

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"time"
	"unicode/utf16"
)

// Validate checks that e is a filter tracedb can evaluate exactly, and
// says precisely why not otherwise: e must be a predicate (a *Call); every
// operator, level and field must be in the vocabulary; every call must
// have the arity and kinds of arguments its operator takes; the operands of
// a comparison must hold comparable kinds of value (and an order, for gt,
// lt, gte, lte); an untyped constant compared with a built-in field must
// read as that field's type; a pattern must be RE2 of at most MaxRegexLen
// bytes, without anchors, word boundaries, lazy quantifiers or inline
// flags; phrase and fulltext take an attribute and a non-empty list of
// words (checkWord); some must quantify over events or links, not over a level an
// enclosing some already binds; calls nest at most MaxFilterDepth deep.
// The error is a *FilterError whose Node is the offending node.
func Validate(e Expr) error {
	if isNil(e) {
		return &FilterError{Msg: "the filter is empty"}
	}
	if _, ok := e.(*Call); !ok {
		return &FilterError{Node: e, Msg: fmt.Sprintf("a filter is a predicate (a call such as eq, and or some), not %s", describe(e))}
	}
	return validatePred(e, 1, nil)
}

func errAt(node Expr, format string, args ...any) error {
	return &FilterError{Node: node, Msg: fmt.Sprintf(format, args...)}
}

// validatePred checks a predicate at call depth depth, inside some calls
// binding the levels in bound.
func validatePred(e Expr, depth int, bound []Level) error {
	c, ok := e.(*Call)
	if !ok || c == nil {
		if isNil(e) {
			return &FilterError{Msg: "a predicate is missing"}
		}
		return errAt(e, "expected a predicate, got %s", describe(e))
	}
	if depth > MaxFilterDepth {
		return errAt(c, "calls nest more than %d deep", MaxFilterDepth)
	}
	if !c.Op.Valid() {
		return errAt(c, "unknown operator %q", c.Op)
	}
	switch c.Op {
	case OpAnd, OpOr:
		if len(c.Args) < 2 {
			return errAt(c, "%s takes at least 2 arguments, got %d", c.Op, len(c.Args))
		}
		for _, a := range c.Args {
			if err := validatePredArg(c, a, depth, bound); err != nil {
				return err
			}
		}
		return nil
	case OpNot:
		if err := wantArity(c, 1); err != nil {
			return err
		}
		return validatePredArg(c, c.Args[0], depth, bound)
	case OpSome:
		if err := wantArity(c, 2); err != nil {
			return err
		}
		return validateSome(c, depth, bound)
	case OpExists:
		if err := wantArity(c, 1); err != nil {
			return err
		}
		return validateRef(c, c.Args[0], "its argument")
	case OpRegex:
		if err := wantArity(c, 2); err != nil {
			return err
		}
		return validateRegex(c)
	case OpIn, OpNotIn:
		if err := wantArity(c, 2); err != nil {
			return err
		}
		return validateMembership(c)
	case OpPhrase, OpFulltext:
		if err := wantArity(c, 2); err != nil {
			return err
		}
		return validateTextSearch(c)
	default:
		if err := wantArity(c, 2); err != nil {
			return err
		}
		return validateComparison(c)
	}
}

func wantArity(c *Call, n int) error {
	if len(c.Args) != n {
		return errAt(c, "%s takes %d argument(s), got %d", c.Op, n, len(c.Args))
	}
	for i, a := range c.Args {
		if isNil(a) {
			return errAt(c, "argument %d of %s is missing", i+1, c.Op)
		}
	}
	return nil
}

func validatePredArg(c *Call, a Expr, depth int, bound []Level) error {
	if isNil(a) {
		return errAt(c, "an argument of %s is missing", c.Op)
	}
	if _, ok := a.(*Call); !ok {
		return errAt(a, "%s takes predicates, and %s is not one", c.Op, describe(a))
	}
	return validatePred(a, depth+1, bound)
}

func validateSome(c *Call, depth int, bound []Level) error {
	n, ok := c.Args[0].(*NestedRef)
	if !ok {
		return errAt(c.Args[0], "some quantifies over events or links, and %s is neither", describe(c.Args[0]))
	}
	if !n.Level.collection() {
		return errAt(n, "some quantifies over events or links; level %q has no collection", n.Level)
	}
	if slices.Contains(bound, n.Level) {
		return errAt(c, "some over %ss inside some over %ss: what the inner one binds is not defined", n.Level, n.Level)
	}
	return validatePredArg(c, c.Args[1], depth, append(slices.Clip(bound), n.Level))
}

// validateRef checks an operand that must name a value on the span.
func validateRef(c *Call, a Expr, what string) error {
	switch r := a.(type) {
	case *AttrRef:
		return validateAttr(r)
	case *FieldRef:
		_, err := validateField(r)
		return err
	}
	return errAt(a, "%s takes an attribute or a field as %s, not %s", c.Op, what, describe(a))
}

func validateAttr(r *AttrRef) error {
	if r.Level != LevelAny && !r.Level.Valid() {
		return errAt(r, "unknown level %q (want span, resource, scope, event, link or none)", r.Level)
	}
	if r.Key == "" {
		return errAt(r, "an attribute reference needs a key")
	}
	return nil
}

func validateField(r *FieldRef) (FieldInfo, error) {
	if !r.Level.Valid() {
		return FieldInfo{}, errAt(r, "unknown level %q of field %q (want span, resource, scope, event or link)", r.Level, r.Name)
	}
	f, ok := LookupField(r.Level, r.Name)
	if !ok {
		return FieldInfo{}, errAt(r, "unknown field %s.%s (the %s fields are %s); for an attribute write %s.attr[%q]",
			r.Level, r.Name, r.Level, fieldNames(r.Level), r.Level, r.Name)
	}
	return f, nil
}

func fieldNames(l Level) string {
	var names []string
	for _, f := range filterFields {
		if f.Level == l {
			names = append(names, f.Name)
		}
	}
	return strings.Join(names, ", ")
}

func validateConst(c *Const) error {
	if c.Kind >= numConstKinds {
		return errAt(c, "invalid constant kind %d", c.Kind)
	}
	return nil
}

// validateOperand checks one side of a comparison.
func validateOperand(c *Call, a Expr) error {
	switch x := a.(type) {
	case *AttrRef:
		return validateAttr(x)
	case *FieldRef:
		_, err := validateField(x)
		return err
	case *Const:
		return validateConst(x)
	case *NestedRef:
		return errAt(a, "%s can only be the first argument of some", describe(a))
	case *List:
		return errAt(a, "a list is only the second argument of in or not_in, not of %s", c.Op)
	case *Call:
		return errAt(a, "%s compares values, not predicates such as %s", c.Op, short(a))
	}
	return errAt(c, "%s has an argument of unknown type %T", c.Op, a)
}

// domain is the kind of value an operand holds; domUnknown (an attribute,
// an untyped constant) compares with anything.
type domain uint8

const (
	domUnknown domain = iota
	domText
	domNumber
	domBool
	domDuration
	domTimestamp
)

var domainNames = [...]string{"a value of any type", "text", "a number", "a bool", "a duration", "a timestamp"}

func (d domain) String() string { return domainNames[d] }

func fieldDomain(t FieldType) domain {
	switch t {
	case FieldDuration:
		return domDuration
	case FieldTimestamp:
		return domTimestamp
	}
	return domText
}

func constDomain(k ConstKind) domain {
	switch k {
	case KindString:
		return domText
	case KindInt, KindDouble:
		return domNumber
	case KindBool:
		return domBool
	case KindDuration:
		return domDuration
	case KindTimestamp:
		return domTimestamp
	}
	return domUnknown
}

func operandDomain(a Expr) domain {
	switch x := a.(type) {
	case *FieldRef:
		f, _ := LookupField(x.Level, x.Name)
		return fieldDomain(f.Type)
	case *Const:
		return constDomain(x.Kind)
	}
	return domUnknown
}

func validateComparison(c *Call) error {
	a, b := c.Args[0], c.Args[1]
	for _, x := range c.Args {
		if err := validateOperand(c, x); err != nil {
			return err
		}
	}
	// A constant beside a field is read as the field's type.
	for i, x := range c.Args {
		f, ok := x.(*FieldRef)
		if !ok {
			continue
		}
		if k, ok := c.Args[1-i].(*Const); ok {
			fi, _ := LookupField(f.Level, f.Name)
			if _, err := resolveConst(fi, k); err != nil {
				return errAt(k, "%s: %v", short(c), err)
			}
		}
	}
	da, db := operandDomain(a), operandDomain(b)
	for i, x := range c.Args {
		if _, ok := x.(*AttrRef); !ok {
			continue
		}
		if d := operandDomain(c.Args[1-i]); d == domDuration || d == domTimestamp {
			return errAt(c, "%s: an attribute holds no %s; compare %s with a field such as %s",
				short(c), strings.TrimPrefix(d.String(), "a "), describe(c.Args[1-i]), timeFieldsFor(d))
		}
	}
	if da != domUnknown && db != domUnknown && da != db {
		return errAt(c, "%s: cannot compare %s (%s) with %s (%s)", short(c), describe(a), da, describe(b), db)
	}
	if c.Op.isOrdered() {
		for _, x := range c.Args {
			if !orderable(x) {
				return errAt(c, "%s: %s has no order, so %s cannot compare it", short(c), describe(x), c.Op)
			}
		}
	}
	return nil
}

func timeFieldsFor(d domain) string {
	if d == domDuration {
		return "span.duration or event.timeSinceStart"
	}
	return "span.startTime, span.endTime or event.time"
}

// orderable reports whether an operand's values have an order: not a bool,
// not span.kind or span.status.
func orderable(a Expr) bool {
	switch x := a.(type) {
	case *FieldRef:
		f, _ := LookupField(x.Level, x.Name)
		return f.Type != FieldKind && f.Type != FieldStatus
	case *Const:
		return x.Kind != KindBool
	}
	return true
}

// resolveConst reads constant c as the type of field f: an untyped
// constant is parsed (a Go duration, an RFC 3339 timestamp, a span kind or
// status word); a typed one must be of the field's kind.
func resolveConst(f FieldInfo, c *Const) (Const, error) {
	switch f.Type {
	case FieldText:
		switch c.Kind {
		case KindAny, KindString:
			return Const{Kind: KindString, Text: c.Text}, nil
		}
	case FieldKind, FieldStatus:
		if c.Kind == KindAny || c.Kind == KindString {
			words := spanKindWords[:]
			if f.Type == FieldStatus {
				words = spanStatusWords[:]
			}
			if !slices.Contains(words, c.Text) {
				return Const{}, fmt.Errorf("%s.%s is one of %s, not %q", f.Level, f.Name, strings.Join(words, ", "), c.Text)
			}
			return Const{Kind: KindString, Text: c.Text}, nil
		}
	case FieldDuration:
		switch c.Kind {
		case KindDuration:
			return *c, nil
		case KindAny:
			d, err := time.ParseDuration(c.Text)
			if err != nil {
				return Const{}, fmt.Errorf("%s.%s holds a duration, and %q is not one (write 2s, 150ms, 1h30m): %v", f.Level, f.Name, c.Text, err)
			}
			return Const{Kind: KindDuration, Int: int64(d)}, nil
		}
	case FieldTimestamp:
		switch c.Kind {
		case KindTimestamp:
			return *c, nil
		case KindAny:
			ns, err := parseTimestamp(c.Text)
			if err != nil {
				return Const{}, fmt.Errorf("%s.%s holds a timestamp, and %q is not one: %v", f.Level, f.Name, c.Text, err)
			}
			return Const{Kind: KindTimestamp, Int: ns}, nil
		}
	}
	return Const{}, fmt.Errorf("cannot compare %s.%s (%s) with %s (%s)", f.Level, f.Name, fieldDomain(f.Type), describe(c), constDomain(c.Kind))
}

// parseTimestamp reads an RFC 3339 time (with optional fraction) as Unix
// nanoseconds, which an int64 holds from 1677-09-21 to 2262-04-11.
func parseTimestamp(s string) (int64, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, err
	}
	if t.Before(time.Unix(0, math.MinInt64)) || t.After(time.Unix(0, math.MaxInt64)) {
		return 0, fmt.Errorf("outside the years 1678 to 2262")
	}
	return t.UnixNano(), nil
}

func validateRegex(c *Call) error {
	if err := validateRef(c, c.Args[0], "its subject"); err != nil {
		return err
	}
	if f, ok := c.Args[0].(*FieldRef); ok {
		fi, _ := LookupField(f.Level, f.Name)
		if d := fieldDomain(fi.Type); d != domText {
			return errAt(c, "%s: regex matches text, and %s holds %s", short(c), describe(f), d)
		}
	}
	p, ok := c.Args[1].(*Const)
	if !ok || (p.Kind != KindString && p.Kind != KindAny) {
		return errAt(c.Args[1], "regex takes a string pattern, not %s", describe(c.Args[1]))
	}
	if _, err := compileRegex(p.Text); err != nil {
		return errAt(p, "%v", err)
	}
	if err := checkPortableRegex(p.Text); err != nil {
		return errAt(p, "%s: %v (jaeger-idl v0.14.0 refuses it: the backends' engines do not share it)", short(c), err)
	}
	return nil
}

// checkPortableRegex refuses what jaeger-idl's regex leaves out: anchors
// (^ $ \A \z), word boundaries (\b \B), lazy quantifiers (*? +? ?? {n,m}?)
// and inline flags ((?i), (?s:…), …). A non-capturing (?:…) and named
// groups stay. pattern has compiled.
func checkPortableRegex(pattern string) error {
	if inlineFlags(pattern) {
		return errors.New("inline flags such as (?i) are refused")
	}
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return err
	}
	return walkPortable(re)
}

func walkPortable(re *syntax.Regexp) error {
	switch re.Op {
	case syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText:
		return errors.New("anchors are refused")
	case syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return errors.New("word boundaries are refused")
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		if re.Flags&syntax.NonGreedy != 0 {
			return errors.New("lazy quantifiers are refused")
		}
	}
	for _, s := range re.Sub {
		if err := walkPortable(s); err != nil {
			return err
		}
	}
	return nil
}

// inlineFlags reports whether a compiled pattern has a group "(?" that
// sets flags, outside escapes and character classes.
func inlineFlags(p string) bool {
	inClass := false
	for i := 0; i < len(p); i++ {
		switch {
		case strings.HasPrefix(p[i:], `\Q`):
			// \Q…\E quotes its text literally.
			end := strings.Index(p[i+2:], `\E`)
			if end < 0 {
				return false
			}
			i += end + 3
		case p[i] == '\\':
			i++
		case inClass:
			if p[i] == '[' && strings.HasPrefix(p[i+1:], ":") {
				if end := strings.Index(p[i+2:], ":]"); end >= 0 {
					i += end + 3
				}
			} else if p[i] == ']' {
				inClass = false
			}
		case p[i] == '[':
			inClass = true
			// A ']' first in the class (after an optional '^') is literal.
			if strings.HasPrefix(p[i+1:], "^]") {
				i += 2
			} else if strings.HasPrefix(p[i+1:], "]") {
				i++
			}
		case p[i] == '(' && strings.HasPrefix(p[i+1:], "?"):
			rest := p[i+2:]
			if !strings.HasPrefix(rest, ":") && !strings.HasPrefix(rest, "P<") && !strings.HasPrefix(rest, "<") {
				return true
			}
		}
	}
	return false
}

// compileRegex compiles a pattern: RE2 syntax, unanchored (matching
// anywhere in the text), case-sensitive unless the pattern says (?i).
func compileRegex(pattern string) (*regexp.Regexp, error) {
	if len(pattern) > MaxRegexLen {
		return nil, fmt.Errorf("regex pattern of %d bytes is longer than %d", len(pattern), MaxRegexLen)
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("bad regex pattern: %v", err)
	}
	return re, nil
}

func validateMembership(c *Call) error {
	if err := validateRef(c, c.Args[0], "its subject"); err != nil {
		return err
	}
	l, ok := c.Args[1].(*List)
	if !ok {
		return errAt(c.Args[1], "%s takes a list as its second argument, not %s", c.Op, describe(c.Args[1]))
	}
	switch l.Kind {
	case KindAny, KindString, KindInt, KindDouble, KindBool:
	default:
		return errAt(l, "a list holds strings, ints, doubles, bools or untyped values, not %s", l.Kind)
	}
	if len(l.Elems) == 0 {
		return errAt(l, "%s takes a list of at least one element (an empty list matches nothing)", c.Op)
	}
	for i := range l.Elems {
		if l.Elems[i].Kind != l.Kind {
			return errAt(l, "element %d of a list of %s is %s", i, l.Kind, l.Elems[i].Kind)
		}
	}
	if s, ok := c.Args[0].(*FieldRef); ok {
		fi, _ := LookupField(s.Level, s.Name)
		for i := range l.Elems {
			if _, err := resolveConst(fi, &l.Elems[i]); err != nil {
				return errAt(l, "%s: element %d: %v", short(c), i, err)
			}
		}
	}
	return nil
}

// MaxWordLen is the longest word of phrase and fulltext, in UTF-16 code
// units (jaeger-idl v0.14.0).
const MaxWordLen = 255

func validateTextSearch(c *Call) error {
	a, ok := c.Args[0].(*AttrRef)
	if !ok {
		return errAt(c.Args[0], "%s searches the text of an attribute, not %s (search a built-in field with = or =~)", c.Op, describe(c.Args[0]))
	}
	if err := validateAttr(a); err != nil {
		return err
	}
	l, ok := c.Args[1].(*List)
	if !ok {
		return errAt(c.Args[1], "%s takes a list of words as its second argument, not %s", c.Op, describe(c.Args[1]))
	}
	if l.Kind != KindString && l.Kind != KindAny {
		return errAt(l, "%s takes a list of strings, not of %s", c.Op, l.Kind)
	}
	if len(l.Elems) == 0 {
		return errAt(l, "%s takes a list of at least one word", c.Op)
	}
	for i := range l.Elems {
		e := &l.Elems[i]
		if e.Kind != l.Kind {
			return errAt(l, "element %d of a list of %s is %s", i, l.Kind, e.Kind)
		}
		if err := checkWord(e.Text); err != nil {
			return errAt(l, "%s: element %d %q: %v", short(c), i, e.Text, err)
		}
	}
	return nil
}

// checkWord checks one word of phrase or fulltext: a non-empty run of
// Unicode letters, decimal digits and combining marks, at most MaxWordLen
// UTF-16 code units.
func checkWord(w string) error {
	if w == "" {
		return errors.New("a word is not empty")
	}
	n := 0
	for _, r := range w {
		// An invalid byte reads as U+FFFD, which is not a word rune.
		if !isWordRune(r) {
			return fmt.Errorf("a word holds only letters, digits and combining marks, not %q (the caller splits the words)", r)
		}
		n += utf16.RuneLen(r)
	}
	if n > MaxWordLen {
		return fmt.Errorf("a word is at most %d UTF-16 code units, not %d", MaxWordLen, n)
	}
	return nil
}

// maxShownLen is how much of a node's text an error message shows.
const maxShownLen = 80

// short returns a node's text, cut short for an error message.
func short(e Expr) string {
	if isNil(e) {
		return "<nil>"
	}
	s := e.String()
	if len(s) > maxShownLen {
		s = s[:maxShownLen] + "…"
	}
	return s
}

// describe names a node for an error message: its text, cut short, and
// what it is.
func describe(e Expr) string {
	if isNil(e) {
		return "a missing node"
	}
	s := short(e)
	switch x := e.(type) {
	case *Call:
		return "the predicate " + s
	case *AttrRef:
		return "the attribute " + s
	case *FieldRef:
		return s
	case *NestedRef:
		return "the collection " + s
	case *List:
		return "the list " + s
	case *Const:
		return fmt.Sprintf("the %s constant %s", x.Kind, s)
	}
	return s
}
