package index

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"sort"
	"strconv"
	"strings"
	"unsafe"

	"github.com/tracedb/tracedb/encoding"
)

// Term is one indexed (name, value) pair; its postings are the spans that
// carry it. Terms order by Name, then by Value, bytewise. The names and the
// form of the values are part of the on-disk format: see terms.md.
type Term struct {
	Name, Value string
}

// Less reports whether t sorts before o.
func (t Term) Less(o Term) bool { return t.Compare(o) < 0 }

// Compare orders terms by Name, then Value: -1, 0 or +1.
func (t Term) Compare(o Term) int {
	if c := strings.Compare(t.Name, o.Name); c != 0 {
		return c
	}
	return strings.Compare(t.Value, o.Value)
}

func (t Term) String() string { return t.Name + "=" + strconv.Quote(t.Value) }

// Term names. Attribute terms are named by a level prefix and the key, see
// AttrTermName.
const (
	NameService   = "service"   // value: the resource's service.name ("" when it has none)
	NameOperation = "operation" // value: OperationValue(service, span name)
	NameKind      = "kind"      // value: the span kind in decimal, "0" to "5"
	NameStatus    = "status"    // value: the status code in decimal, "0" to "2"
	NameDuration  = "duration"  // value: DurationValue(DurationBucket(end-start))
	NameEvent     = "event"     // value: the name of one of the span's events
	NameScope     = "scope"     // value: the instrumentation scope's name
)

// AttrLevel says where an attribute sits: on the span, its resource, its
// scope, one of its events or one of its links.
type AttrLevel uint8

const (
	LevelSpan AttrLevel = iota
	LevelResource
	LevelScope
	LevelEvent
	LevelLink
	numLevels
)

// attrPrefixes are the name prefixes of attribute terms, by level.
var attrPrefixes = [numLevels]string{"a:", "r:", "s:", "e:", "l:"}

// Prefix returns the term name prefix of the level, e.g. "a:" for span
// attributes; "" for an unknown level.
func (l AttrLevel) Prefix() string {
	if l < numLevels {
		return attrPrefixes[l]
	}
	return ""
}

// AttrTermName returns the term name of attribute key at level, e.g.
// AttrTermName(LevelSpan, "http.method") is "a:http.method".
func AttrTermName(level AttrLevel, key string) string { return level.Prefix() + key }

// ParseAttrTermName splits an attribute term name into its level and key;
// ok is false when name is not an attribute term name.
func ParseAttrTermName(name string) (level AttrLevel, key string, ok bool) {
	if len(name) < 2 || name[1] != ':' {
		return 0, "", false
	}
	for l, p := range attrPrefixes {
		if p[0] == name[0] {
			return AttrLevel(l), name[2:], true
		}
	}
	return 0, "", false
}

// operationSep separates the service from the span name in an operation
// term's value. It sorts before every other byte, so the operations of one
// service are contiguous and sorted by name.
const operationSep = "\x00"

// OperationValue returns the value of the operation term of spans named
// name in service: service, a NUL byte, name.
func OperationValue(service, name string) string { return service + operationSep + name }

// SplitOperationValue splits an operation term value into service and span
// name; ok is false when v has no separator.
func SplitOperationValue(v string) (service, name string, ok bool) {
	return strings.Cut(v, operationSep)
}

// durationValueWidth is the number of decimal digits of a duration term
// value: zero-padded, so that bytewise order is numeric order.
const durationValueWidth = 4

// DurationValue returns the value of the duration term of bucket b: the
// bucket number in decimal, zero-padded to four digits ("0000" to "1919"),
// so that values sort like bucket numbers.
func DurationValue(b uint16) string {
	var buf [durationValueWidth]byte
	return string(appendDurationValue(buf[:0], b))
}

func appendDurationValue(dst []byte, b uint16) []byte {
	return append(dst, byte('0'+b/1000%10), byte('0'+b/100%10), byte('0'+b/10%10), byte('0'+b%10))
}

// ParseDurationValue parses a duration term value; ok is false when s is
// not one.
func ParseDurationValue(s string) (b uint16, ok bool) {
	if len(s) != durationValueWidth {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		b = b*10 + uint16(c-'0')
	}
	return b, b < NumBuckets
}

// KindValue returns the value of the kind term of a span of that kind.
func KindValue(kind int32) string { return strconv.FormatInt(int64(kind), 10) }

// StatusValue returns the value of the status term of a span with that
// status code.
func StatusValue(code int32) string { return strconv.FormatInt(int64(code), 10) }

// ValueString returns the string form of an attribute value that attribute
// terms hold and that a search for "key=value" compares with. It is the
// form OpenTelemetry's pdata gives (pcommon.Value.AsString), which is what
// Jaeger v2 shows and compares:
//
//	str     as is
//	int     decimal
//	bool    "true" or "false"
//	double  the shortest decimal that round-trips, in JavaScript's style:
//	        plain below 1e21 and from 1e-6 on ("100", "0.5"), exponent
//	        otherwise ("1e+21", "1e-7"); "NaN", "Infinity", "-Infinity"
//	bytes   standard base64 with padding
//	array   compact JSON: ["a",1,true]
//	map     compact JSON with keys sorted (a key that repeats keeps its
//	        last value): {"a":1,"b":"x"}
//
// Inside JSON, bytes are base64 strings (null when empty), empty values are
// null, and strings are escaped as encoding/json does without HTML escaping. ok is false for
// values that are not indexed: empty values, unknown types, and arrays or
// maps that hold a NaN or infinite double (JSON cannot express them).
func ValueString(v *encoding.Value) (s string, ok bool) {
	switch v.Type {
	case encoding.ValueStr:
		return v.Str, true
	case encoding.ValueArray, encoding.ValueMap:
		return jsonValueString(v)
	}
	b, ok := appendScalar(nil, v)
	return string(b), ok
}

// appendScalar appends the ValueString form of a value that is neither a
// string, an array nor a map.
func appendScalar(dst []byte, v *encoding.Value) ([]byte, bool) {
	switch v.Type {
	case encoding.ValueStr:
		return append(dst, v.Str...), true
	case encoding.ValueInt:
		return strconv.AppendInt(dst, int64(v.Num), 10), true
	case encoding.ValueBool:
		return strconv.AppendBool(dst, v.Num != 0), true
	case encoding.ValueDouble:
		return appendDouble(dst, math.Float64frombits(v.Num)), true
	case encoding.ValueBytes:
		return base64.StdEncoding.AppendEncode(dst, unsafe.Slice(unsafe.StringData(v.Str), len(v.Str))), true
	}
	return dst, false
}

// appendDouble formats f as JavaScript (and pdata) does: 'f' formatting
// between 1e-6 and 1e21, 'e' outside, with the exponent's leading zero
// dropped.
func appendDouble(dst []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "NaN"...)
	case math.IsInf(f, 1):
		return append(dst, "Infinity"...)
	case math.IsInf(f, -1):
		return append(dst, "-Infinity"...)
	}
	abs := math.Abs(f)
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		start := len(dst)
		dst = strconv.AppendFloat(dst, f, 'e', -1, 64)
		// Turn e-07 into e-7 (and e+07 into e+7).
		if n := len(dst) - start; n >= 4 && dst[len(dst)-4] == 'e' && dst[len(dst)-2] == '0' {
			dst[len(dst)-2] = dst[len(dst)-1]
			dst = dst[:len(dst)-1]
		}
		return dst
	}
	return strconv.AppendFloat(dst, f, 'f', -1, 64)
}

// jsonValueString renders an array or map as compact JSON the way pdata
// does: through encoding/json, on the plain Go form of the value.
func jsonValueString(v *encoding.Value) (string, bool) {
	raw, ok := rawValue(v)
	if !ok {
		return "", false
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(raw); err != nil {
		return "", false
	}
	return strings.TrimSuffix(buf.String(), "\n"), true
}

// unrenderable marks a map entry whose value JSON cannot express.
type unrenderable struct{}

// rawValue converts v to the Go value encoding/json renders as pdata does.
func rawValue(v *encoding.Value) (any, bool) {
	switch v.Type {
	case encoding.ValueEmpty:
		return nil, true
	case encoding.ValueStr:
		return v.Str, true
	case encoding.ValueInt:
		return int64(v.Num), true
	case encoding.ValueBool:
		return v.Num != 0, true
	case encoding.ValueDouble:
		f := math.Float64frombits(v.Num)
		return f, !math.IsNaN(f) && !math.IsInf(f, 0)
	case encoding.ValueBytes:
		if v.Str == "" {
			return []byte(nil), true // null, as pdata renders empty bytes
		}
		return []byte(v.Str), true
	case encoding.ValueArray:
		out := make([]any, len(v.Kids))
		for i := range v.Kids {
			r, ok := rawValue(&v.Kids[i].Value)
			if !ok {
				return nil, false
			}
			out[i] = r
		}
		return out, true
	case encoding.ValueMap:
		// A repeated key keeps its last value, so a bad value only counts
		// when no later one replaces it.
		out := make(map[string]any, len(v.Kids))
		for i := range v.Kids {
			r, ok := rawValue(&v.Kids[i].Value)
			if !ok {
				r = unrenderable{}
			}
			out[v.Kids[i].Key] = r
		}
		for _, r := range out {
			if _, bad := r.(unrenderable); bad {
				return nil, false
			}
		}
		return out, true
	}
	return nil, false
}

// DefaultMaxValueLen is the default longest attribute value, event name or
// attribute key (in bytes) that gets a term. Longer ones are not indexed;
// the query engine checks them against the stored columns instead.
const DefaultMaxValueLen = 256

// Indexed reports whether an attribute with key and value string form s is
// indexed under maxValueLen (<= 0 means no limit): the query engine uses it
// to know whether postings can answer "key=s" or columns must be scanned.
// Event names are indexed under the same rule, with key "".
func Indexed(key, s string, maxValueLen int) bool {
	return maxValueLen <= 0 || (len(key) <= maxValueLen && len(s) <= maxValueLen)
}

// maxInternedNames bounds how many attribute term names a TermExtractor
// keeps per level, so that spans with ever new keys cannot grow it without
// limit. Names beyond it are built in the scratch buffer each time.
const maxInternedNames = 4096

// TermExtractor computes the terms of spans: SpanTerms runs for every
// ingested span, so it reuses its buffers, interns attribute term names and
// remembers the terms of the last resource and scope it saw (spans of one
// ResourceSpans share the pointer).
//
// Contract: the strings of a Term passed to fn may point into the
// extractor's scratch buffer. They stay valid until the next call of any
// method of the same extractor; a caller that keeps a term longer must copy
// it (strings.Clone). A TermExtractor is not safe for concurrent use; use one
// per ingesting goroutine.
type TermExtractor struct {
	maxValueLen int
	buf         []byte
	names       [numLevels]map[string]string // key -> term name, per level

	// The terms of the last resource and scope seen, with owned strings.
	// Holding the pointers keeps their addresses from being reused by other
	// resources or scopes while cached.
	resValid     bool
	lastResource *encoding.Resource
	service      string // lastResource's service name
	resTerms     []Term
	scopeValid   bool
	lastScope    *encoding.Scope
	scopeTerms   []Term
}

// NewTermExtractor returns an extractor that skips attribute values, keys
// and event names longer than maxValueLen bytes (<= 0: no limit; see
// Indexed and DefaultMaxValueLen).
func NewTermExtractor(maxValueLen int) *TermExtractor {
	return &TermExtractor{maxValueLen: maxValueLen}
}

// SpanTerms calls fn with every term of s once per occurrence, in no
// particular order: the terms of its resource (service, r:*), of its scope
// (scope, s:*) and its own (operation, kind, status, duration, a:*, event,
// e:*, l:*). A term may come more than once for one span (two events of the
// same name); MemPostings ignores the repeats.
func (x *TermExtractor) SpanTerms(s *encoding.Span, fn func(Term)) {
	x.cacheResource(s.Resource)
	for _, t := range x.resTerms {
		fn(t)
	}
	x.cacheScope(s.Scope)
	for _, t := range x.scopeTerms {
		fn(t)
	}
	x.spanOwnTerms(s, x.service, fn)
}

// SpanOwnTerms calls fn with the terms of s that do not come from its
// resource or scope: operation, kind, status, duration, span attributes,
// event names and attributes, link attributes. Together with ResourceTerms
// and ScopeTerms, which a caller may compute once per resource and scope,
// they make SpanTerms.
func (x *TermExtractor) SpanOwnTerms(s *encoding.Span, fn func(Term)) {
	x.cacheResource(s.Resource)
	x.spanOwnTerms(s, x.service, fn)
}

// ResourceTerms returns the terms every span of resource r carries: its
// service and its attributes (r:*). The returned strings are owned by the
// caller and may be kept; the slice too.
func (x *TermExtractor) ResourceTerms(r *encoding.Resource) []Term {
	x.cacheResource(r)
	return append([]Term(nil), x.resTerms...)
}

// ScopeTerms returns the terms every span of scope sc carries: its name
// (when not empty) and its attributes (s:*). The returned strings are owned
// by the caller and may be kept; the slice too.
func (x *TermExtractor) ScopeTerms(sc *encoding.Scope) []Term {
	x.cacheScope(sc)
	return append([]Term(nil), x.scopeTerms...)
}

func (x *TermExtractor) cacheResource(r *encoding.Resource) {
	if x.resValid && r == x.lastResource {
		return
	}
	x.resValid, x.lastResource = true, r
	x.service = ""
	if r != nil {
		s := encoding.Span{Resource: r}
		x.service = strings.Clone(s.ServiceName())
	}
	x.resTerms = append(x.resTerms[:0], Term{NameService, x.service})
	if r != nil {
		x.resTerms = x.appendOwnedAttrs(x.resTerms, LevelResource, r.Attrs)
	}
}

func (x *TermExtractor) cacheScope(sc *encoding.Scope) {
	if x.scopeValid && sc == x.lastScope {
		return
	}
	x.scopeValid, x.lastScope = true, sc
	x.scopeTerms = x.scopeTerms[:0]
	if sc == nil {
		return
	}
	if sc.Name != "" && Indexed("", sc.Name, x.maxValueLen) {
		x.scopeTerms = append(x.scopeTerms, Term{NameScope, strings.Clone(sc.Name)})
	}
	x.scopeTerms = x.appendOwnedAttrs(x.scopeTerms, LevelScope, sc.Attrs)
}

// appendOwnedAttrs appends the attribute terms of kvs with freshly
// allocated strings.
func (x *TermExtractor) appendOwnedAttrs(dst []Term, level AttrLevel, kvs []encoding.KeyValue) []Term {
	for i := range kvs {
		kv := &kvs[i]
		v, ok := ValueString(&kv.Value)
		if !ok || !Indexed(kv.Key, v, x.maxValueLen) {
			continue
		}
		dst = append(dst, Term{AttrTermName(level, kv.Key), strings.Clone(v)})
	}
	return dst
}

func (x *TermExtractor) spanOwnTerms(s *encoding.Span, service string, fn func(Term)) {
	x.buf = x.buf[:0]

	start := len(x.buf)
	x.buf = append(x.buf, service...)
	x.buf = append(x.buf, operationSep...)
	x.buf = append(x.buf, s.Name...)
	fn(Term{NameOperation, x.str(start)})

	fn(Term{NameKind, KindValue(s.Kind)}) // strconv allocates nothing below 100
	fn(Term{NameStatus, StatusValue(s.StatusCode)})

	start = len(x.buf)
	x.buf = appendDurationValue(x.buf, DurationBucket(s.Duration()))
	fn(Term{NameDuration, x.str(start)})

	x.attrTerms(LevelSpan, s.Attrs, fn)
	for i := range s.Events {
		ev := &s.Events[i]
		if Indexed("", ev.Name, x.maxValueLen) {
			fn(Term{NameEvent, ev.Name})
		}
		x.attrTerms(LevelEvent, ev.Attrs, fn)
	}
	for i := range s.Links {
		x.attrTerms(LevelLink, s.Links[i].Attrs, fn)
	}
}

func (x *TermExtractor) attrTerms(level AttrLevel, kvs []encoding.KeyValue, fn func(Term)) {
	for i := range kvs {
		kv := &kvs[i]
		var v string
		switch kv.Value.Type {
		case encoding.ValueStr:
			v = kv.Value.Str
		case encoding.ValueArray, encoding.ValueMap:
			var ok bool
			if v, ok = jsonValueString(&kv.Value); !ok {
				continue
			}
		default:
			start := len(x.buf)
			var ok bool
			if x.buf, ok = appendScalar(x.buf, &kv.Value); !ok {
				continue
			}
			v = x.str(start)
		}
		if !Indexed(kv.Key, v, x.maxValueLen) {
			continue
		}
		fn(Term{x.attrName(level, kv.Key), v})
	}
}

// attrName returns the term name of key at level, interned when possible.
func (x *TermExtractor) attrName(level AttrLevel, key string) string {
	m := x.names[level]
	if name, ok := m[key]; ok {
		return name
	}
	if m == nil {
		m = make(map[string]string)
		x.names[level] = m
	}
	if len(m) < maxInternedNames {
		name := AttrTermName(level, key)
		m[name[2:]] = name // the key shares the name's memory
		return name
	}
	start := len(x.buf)
	x.buf = append(x.buf, level.Prefix()...)
	x.buf = append(x.buf, key...)
	return x.str(start)
}

// str returns x.buf[start:] as a string without copying. The bytes are
// never written again before the next call that resets x.buf: appends only
// add bytes after them (or move the buffer, leaving the old array to the
// strings that point into it).
func (x *TermExtractor) str(start int) string {
	b := x.buf[start:]
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// SpanTerms calls fn with every term of s (see TermExtractor.SpanTerms),
// skipping values longer than maxValueLen (<= 0: no limit). It is the
// convenient, allocating form: the strings it passes may be kept. Ingest
// paths use a TermExtractor.
func SpanTerms(s *encoding.Span, maxValueLen int, fn func(Term)) {
	NewTermExtractor(maxValueLen).SpanTerms(s, fn)
}

// SortTerms sorts terms by Name, then Value.
func SortTerms(ts []Term) {
	sort.Slice(ts, func(i, j int) bool { return ts[i].Less(ts[j]) })
}
