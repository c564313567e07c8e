package spangen

import (
	"math"
	"math/rand/v2"

	"github.com/tracedb/tracedb/encoding"
)

// MaxRandomDepth is the deepest nesting of array and map values Random
// makes (a top-level attribute's value is at depth 1).
const MaxRandomDepth = 4

// Random returns n spans of adversarial variety, for property tests:
// traces of 1 to 12 spans (in generation order, not sorted); every value
// type, arrays and maps nested up to MaxRandomDepth, empty and nil slices,
// empty, long, non-UTF-8 and non-ASCII strings, -0, NaN, ±Inf and subnormal
// doubles, extreme integers; zero, in-trace and dangling parents; events
// and links with attributes; dropped counts, trace states, flags, odd kinds
// and status codes; resources and scopes shared by pointer among some
// spans, equal by content but distinct by pointer among others, or nil.
// Trace and span IDs are never all-zero, and End >= Start. In about a third
// of the calls every time is a multiple of a microsecond or a millisecond.
func Random(r *rand.Rand, n int) []*encoding.Span {
	g := randomGen{r: r}
	switch r.IntN(3) {
	case 0:
		g.grain = 1
	case 1:
		g.grain = 1000
	default:
		g.grain = 1 + uint64(r.IntN(2))*999_999 // 1 or 1e6
	}
	for range 1 + r.IntN(4) {
		g.resources = append(g.resources, g.resource())
	}
	for range 1 + r.IntN(3) {
		g.scopes = append(g.scopes, g.scope())
	}
	out := make([]*encoding.Span, 0, n)
	for len(out) < n {
		out = append(out, g.trace(min(1+r.IntN(12), n-len(out)))...)
	}
	return out
}

type randomGen struct {
	r         *rand.Rand
	grain     uint64 // every time is a multiple of this
	resources []*encoding.Resource
	scopes    []*encoding.Scope
}

var randomStrings = []string{
	"", "a", "GET", "service.name", "http.request.method", "ключ", "值", "🙂 emoji", "tab\tnew\nline",
	"nul\x00byte", "\xff\xfe invalid utf-8", "a much longer string that repeats a much longer string that repeats",
}

// text returns a string: often from a small set (so that values repeat),
// sometimes random bytes or a long random string.
func (g *randomGen) text() string {
	r := g.r
	switch r.IntN(6) {
	case 0:
		b := make([]byte, r.IntN(20))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return string(b)
	case 1:
		b := make([]byte, 100+r.IntN(400))
		for i := range b {
			b[i] = 'a' + byte(r.IntN(26))
		}
		return string(b)
	default:
		return randomStrings[r.IntN(len(randomStrings))]
	}
}

var specialInts = []int64{0, 1, -1, math.MaxInt64, math.MinInt64, math.MaxInt32, math.MinInt32, 200, 404}

var specialDoubles = []uint64{
	0, 1 << 63, // +0, -0
	0x7ff8000000000000, 0x7ff0000000000001, 0xfff8000000000000, 0x7ff8dead0000beef, // NaNs
	0x7ff0000000000000, 0xfff0000000000000, // ±Inf
	1, 0x000fffffffffffff, // subnormals
	math.Float64bits(math.MaxFloat64), math.Float64bits(3.14159),
}

// value returns a value at depth (1 for a top-level attribute).
func (g *randomGen) value(depth int) encoding.Value {
	r := g.r
	t := encoding.ValueType(r.IntN(8))
	if depth >= MaxRandomDepth && (t == encoding.ValueArray || t == encoding.ValueMap) {
		t = encoding.ValueStr
	}
	v := encoding.Value{Type: t}
	switch t {
	case encoding.ValueStr:
		v.Str = g.text()
	case encoding.ValueBytes:
		b := make([]byte, r.IntN(24))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		v.Str = string(b)
	case encoding.ValueBool:
		v.Num = uint64(r.IntN(2))
	case encoding.ValueInt:
		if r.IntN(2) == 0 {
			v.Num = uint64(specialInts[r.IntN(len(specialInts))])
		} else {
			v.Num = r.Uint64()
		}
	case encoding.ValueDouble:
		if r.IntN(2) == 0 {
			v.Num = specialDoubles[r.IntN(len(specialDoubles))]
		} else {
			v.Num = math.Float64bits(r.NormFloat64() * 1e6)
		}
	case encoding.ValueArray:
		switch r.IntN(4) {
		case 0: // nil
		case 1:
			v.Kids = []encoding.KeyValue{}
		default:
			v.Kids = make([]encoding.KeyValue, 1+r.IntN(4))
			et := encoding.ValueType(1 + r.IntN(5)) // arrays are usually homogeneous
			for i := range v.Kids {
				if r.IntN(4) == 0 {
					v.Kids[i].Value = g.value(depth + 1)
				} else {
					v.Kids[i].Value = g.scalar(et)
				}
			}
		}
	case encoding.ValueMap:
		v.Kids = g.attrs(r.IntN(4), depth+1)
	}
	return v
}

// scalar returns a value of scalar type t.
func (g *randomGen) scalar(t encoding.ValueType) encoding.Value {
	for {
		v := g.value(MaxRandomDepth)
		if v.Type == t {
			return v
		}
	}
}

// attrs returns n attributes whose values are at depth.
func (g *randomGen) attrs(n, depth int) []encoding.KeyValue {
	if n == 0 {
		if g.r.IntN(2) == 0 {
			return nil
		}
		return []encoding.KeyValue{}
	}
	kvs := make([]encoding.KeyValue, n)
	for i := range kvs {
		kvs[i] = encoding.KeyValue{Key: g.text(), Value: g.value(depth)}
	}
	return kvs
}

func (g *randomGen) count() uint32 {
	switch g.r.IntN(6) {
	case 0:
		return g.r.Uint32()
	case 1:
		return math.MaxUint32
	case 2:
		return uint32(g.r.IntN(5))
	}
	return 0
}

func (g *randomGen) resource() *encoding.Resource {
	return &encoding.Resource{Attrs: g.attrs(g.r.IntN(6), 1), DroppedAttrs: g.count(), SchemaURL: g.text()}
}

func (g *randomGen) scope() *encoding.Scope {
	return &encoding.Scope{Name: g.text(), Version: g.text(), Attrs: g.attrs(g.r.IntN(3), 1),
		DroppedAttrs: g.count(), SchemaURL: g.text()}
}

// time returns a start time: usually recent, sometimes extreme.
func (g *randomGen) time() uint64 {
	var t uint64
	switch g.r.IntN(8) {
	case 0:
		t = 0
	case 1:
		t = g.r.Uint64() >> 1
	default:
		t = Epoch + g.r.Uint64N(3600e9)
	}
	return t / g.grain * g.grain
}

func (g *randomGen) trace(n int) []*encoding.Span {
	r := g.r
	tid := traceID(r)
	if r.IntN(4) == 0 { // a trace ID that differs from some other only in its last byte
		tid = encoding.TraceID{0: 1, 15: byte(r.IntN(3) + 1)}
	}
	base := g.time()
	spans := make([]*encoding.Span, n)
	for i := range spans {
		s := &encoding.Span{TraceID: tid, SpanID: spanID(r)}
		switch {
		case i == 0 || r.IntN(8) == 0:
			// root or zero parent
		case r.IntN(8) == 0:
			s.ParentSpanID = spanID(r) // dangling
		default:
			s.ParentSpanID = spans[r.IntN(i)].SpanID
		}
		if i > 0 && r.IntN(10) == 0 {
			s.SpanID = spans[r.IntN(i)].SpanID // a shared span ID (Zipkin style)
		}
		if r.IntN(4) == 0 {
			s.TraceState = g.text()
		}
		if r.IntN(3) == 0 {
			s.Flags = r.Uint32()
		}
		s.Name = g.text()
		s.Kind = int32(r.IntN(6))
		if r.IntN(10) == 0 {
			s.Kind = int32(r.Uint32())
		}
		s.StatusCode = int32(r.IntN(3))
		if r.IntN(10) == 0 {
			s.StatusCode = int32(r.Uint32())
		}
		if r.IntN(3) == 0 {
			s.StatusMessage = g.text()
		}
		s.StartUnixNano = base
		if r.IntN(2) == 0 {
			s.StartUnixNano += r.Uint64N(1e9) / g.grain * g.grain
		}
		s.EndUnixNano = s.StartUnixNano
		switch r.IntN(6) {
		case 0:
		case 1:
			s.EndUnixNano = math.MaxUint64 / g.grain * g.grain
		default:
			s.EndUnixNano += r.Uint64N(5e9) / g.grain * g.grain
		}
		if s.EndUnixNano < s.StartUnixNano {
			s.EndUnixNano = s.StartUnixNano
		}
		s.Attrs = g.attrs(r.IntN(7), 1)
		s.DroppedAttrs = g.count()
		if k := r.IntN(4); k > 0 || r.IntN(2) == 0 {
			s.Events = make([]encoding.Event, k)
			for j := range s.Events {
				ev := &s.Events[j]
				ev.TimeUnixNano = s.StartUnixNano + r.Uint64N(2e9)/g.grain*g.grain
				if r.IntN(5) == 0 && s.StartUnixNano >= 1e9 { // before the span
					ev.TimeUnixNano = s.StartUnixNano - r.Uint64N(1e9)/g.grain*g.grain
				}
				ev.Name = g.text()
				ev.Attrs = g.attrs(r.IntN(3), 1)
				ev.DroppedAttrs = g.count()
			}
		}
		s.DroppedEvents = g.count()
		if k := r.IntN(3); k > 0 || r.IntN(2) == 0 {
			s.Links = make([]encoding.Link, k)
			for j := range s.Links {
				l := &s.Links[j]
				l.TraceID = tid
				if r.IntN(2) == 0 {
					l.TraceID = traceID(r)
				}
				l.SpanID = spanID(r)
				if r.IntN(2) == 0 {
					l.TraceState = g.text()
				}
				l.Flags = r.Uint32N(4)
				l.Attrs = g.attrs(r.IntN(3), 1)
				l.DroppedAttrs = g.count()
			}
		}
		s.DroppedLinks = g.count()
		switch r.IntN(6) {
		case 0:
			s.Resource = nil
		case 1:
			c := *g.resources[r.IntN(len(g.resources))] // equal content, another pointer
			s.Resource = &c
		default:
			s.Resource = g.resources[r.IntN(len(g.resources))]
		}
		switch r.IntN(6) {
		case 0:
			s.Scope = nil
		case 1:
			c := *g.scopes[r.IntN(len(g.scopes))]
			s.Scope = &c
		case 2:
			s.Scope = &encoding.Scope{} // empty: equal to nil
		default:
			s.Scope = g.scopes[r.IntN(len(g.scopes))]
		}
		spans[i] = s
	}
	return spans
}
