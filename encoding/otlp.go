package encoding

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// This file converts between pdata, the model at tracedb's API boundary, and
// the row model of span.go. The conversion is lossless in both directions for
// every field ptrace exposes. Attribute maps with duplicate keys (invalid in
// OTLP) keep the last value when converted back, as pdata's Map does.

// SpanRef locates a span inside a ptrace.Traces: the indexes of its
// ResourceSpans, ScopeSpans and Span.
type SpanRef struct {
	Resource, Scope, Span int
}

// FromTraces appends every span of td to dst as rows and returns it, with
// refs[i] locating dst[len(dst)-n+i] in td. Spans of one ResourceSpans
// share one *Resource, and of one ScopeSpans one *Scope. The rows do not
// alias td's memory except for strings, which are immutable.
func FromTraces(dst []*Span, refs []SpanRef, td ptrace.Traces) ([]*Span, []SpanRef) {
	rss := td.ResourceSpans()
	n := td.SpanCount()
	slab := make([]Span, n) // one allocation for all rows of the batch
	// Span attributes come from a shared slab. Resources and scopes get
	// their own: a store keeps them (the head's tables) long after the
	// spans, and must not pin a slab with them.
	var kvs kvSlab
	own := kvSlab{unshared: true}
	k := 0
	for ri := 0; ri < rss.Len(); ri++ {
		rs := rss.At(ri)
		res := &Resource{
			Attrs:        own.fromMap(rs.Resource().Attributes()),
			DroppedAttrs: rs.Resource().DroppedAttributesCount(),
			SchemaURL:    rs.SchemaUrl(),
		}
		sss := rs.ScopeSpans()
		for si := 0; si < sss.Len(); si++ {
			ss := sss.At(si)
			is := ss.Scope()
			scope := &Scope{
				Name:         is.Name(),
				Version:      is.Version(),
				Attrs:        own.fromMap(is.Attributes()),
				DroppedAttrs: is.DroppedAttributesCount(),
				SchemaURL:    ss.SchemaUrl(),
			}
			spans := ss.Spans()
			for i := 0; i < spans.Len(); i++ {
				sp := spans.At(i)
				s := &slab[k]
				k++
				kvs.fromSpan(s, sp)
				s.Resource = res
				s.Scope = scope
				dst = append(dst, s)
				refs = append(refs, SpanRef{Resource: ri, Scope: si, Span: i})
			}
		}
	}
	return dst, refs
}

// kvSlab hands out the attribute lists of a batch's rows from shared
// chunks: one allocation per kvSlabChunk attributes instead of one per
// list.
type kvSlab struct {
	free     []KeyValue
	unshared bool // allocate every list apart
}

// kvSlabChunk is the number of KeyValues a kvSlab allocates at a time.
const kvSlabChunk = 1024

// alloc returns a list of n KeyValues whose capacity is n, so that an
// append to it cannot reach its neighbours.
func (a *kvSlab) alloc(n int) []KeyValue {
	if a.unshared || n > kvSlabChunk/4 {
		return make([]KeyValue, n)
	}
	if len(a.free) < n {
		a.free = make([]KeyValue, kvSlabChunk)
	}
	kvs := a.free[:n:n]
	a.free = a.free[n:]
	return kvs
}

func (a *kvSlab) fromSpan(s *Span, sp ptrace.Span) {
	s.TraceID = TraceID(sp.TraceID())
	s.SpanID = SpanID(sp.SpanID())
	s.ParentSpanID = SpanID(sp.ParentSpanID())
	s.TraceState = sp.TraceState().AsRaw()
	s.Flags = sp.Flags()
	s.Name = sp.Name()
	s.Kind = int32(sp.Kind())
	s.StartUnixNano = uint64(sp.StartTimestamp())
	s.EndUnixNano = uint64(sp.EndTimestamp())
	s.StatusCode = int32(sp.Status().Code())
	s.StatusMessage = sp.Status().Message()
	s.Attrs = a.fromMap(sp.Attributes())
	s.DroppedAttrs = sp.DroppedAttributesCount()
	s.DroppedEvents = sp.DroppedEventsCount()
	s.DroppedLinks = sp.DroppedLinksCount()
	if evs := sp.Events(); evs.Len() > 0 {
		s.Events = make([]Event, evs.Len())
		for i := range s.Events {
			ev := evs.At(i)
			s.Events[i] = Event{
				TimeUnixNano: uint64(ev.Timestamp()),
				Name:         ev.Name(),
				Attrs:        a.fromMap(ev.Attributes()),
				DroppedAttrs: ev.DroppedAttributesCount(),
			}
		}
	}
	if lks := sp.Links(); lks.Len() > 0 {
		s.Links = make([]Link, lks.Len())
		for i := range s.Links {
			lk := lks.At(i)
			s.Links[i] = Link{
				TraceID:      TraceID(lk.TraceID()),
				SpanID:       SpanID(lk.SpanID()),
				TraceState:   lk.TraceState().AsRaw(),
				Flags:        lk.Flags(),
				Attrs:        a.fromMap(lk.Attributes()),
				DroppedAttrs: lk.DroppedAttributesCount(),
			}
		}
	}
}

func (a *kvSlab) fromMap(m pcommon.Map) []KeyValue {
	n := m.Len()
	if n == 0 {
		return nil
	}
	kvs := a.alloc(n)
	i := 0
	for k, v := range m.All() {
		kvs[i] = KeyValue{Key: k, Value: a.fromValue(v)}
		i++
	}
	return kvs[:i]
}

func (a *kvSlab) fromValue(v pcommon.Value) Value {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		return Value{Type: ValueStr, Str: v.Str()}
	case pcommon.ValueTypeBool:
		if v.Bool() {
			return Value{Type: ValueBool, Num: 1}
		}
		return Value{Type: ValueBool}
	case pcommon.ValueTypeInt:
		return Value{Type: ValueInt, Num: uint64(v.Int())}
	case pcommon.ValueTypeDouble:
		return Value{Type: ValueDouble, Num: float64bits(v.Double())}
	case pcommon.ValueTypeBytes:
		return Value{Type: ValueBytes, Str: string(v.Bytes().AsRaw())}
	case pcommon.ValueTypeSlice:
		sl := v.Slice()
		kids := make([]KeyValue, sl.Len())
		for i := range kids {
			kids[i].Value = a.fromValue(sl.At(i))
		}
		return Value{Type: ValueArray, Kids: kids}
	case pcommon.ValueTypeMap:
		return Value{Type: ValueMap, Kids: a.fromMap(v.Map())}
	}
	return Value{Type: ValueEmpty}
}

// TracesBuilder turns rows back into a ptrace.Traces. Rows sharing a
// *Resource go into one ResourceSpans and rows sharing a *Scope within it
// into one ScopeSpans, in order of first appearance. Not safe for
// concurrent use.
type TracesBuilder struct {
	td     ptrace.Traces
	res    map[*Resource]int
	scopes map[scopeKey]ptrace.SpanSlice
	n      int
}

type scopeKey struct {
	res   *Resource
	scope *Scope
}

// NewTracesBuilder returns an empty builder.
func NewTracesBuilder() *TracesBuilder {
	return &TracesBuilder{td: ptrace.NewTraces(), res: map[*Resource]int{}, scopes: map[scopeKey]ptrace.SpanSlice{}}
}

// Len returns the number of spans added since the last Take.
func (b *TracesBuilder) Len() int { return b.n }

// Add appends s.
func (b *TracesBuilder) Add(s *Span) {
	b.n++
	key := scopeKey{s.Resource, s.Scope}
	spans, ok := b.scopes[key]
	if !ok {
		ri, ok := b.res[s.Resource]
		rss := b.td.ResourceSpans()
		if !ok {
			ri = rss.Len()
			b.res[s.Resource] = ri
			rs := rss.AppendEmpty()
			if r := s.Resource; r != nil {
				toMap(rs.Resource().Attributes(), r.Attrs)
				rs.Resource().SetDroppedAttributesCount(r.DroppedAttrs)
				rs.SetSchemaUrl(r.SchemaURL)
			}
		}
		ss := rss.At(ri).ScopeSpans().AppendEmpty()
		if sc := s.Scope; sc != nil {
			ss.Scope().SetName(sc.Name)
			ss.Scope().SetVersion(sc.Version)
			toMap(ss.Scope().Attributes(), sc.Attrs)
			ss.Scope().SetDroppedAttributesCount(sc.DroppedAttrs)
			ss.SetSchemaUrl(sc.SchemaURL)
		}
		spans = ss.Spans()
		b.scopes[key] = spans
	}
	toSpan(spans.AppendEmpty(), s)
}

// Take returns the traces built so far and resets the builder.
func (b *TracesBuilder) Take() ptrace.Traces {
	td := b.td
	b.td = ptrace.NewTraces()
	clear(b.res)
	clear(b.scopes)
	b.n = 0
	return td
}

// ToTraces converts rows into a new ptrace.Traces.
func ToTraces(spans []*Span) ptrace.Traces {
	b := NewTracesBuilder()
	for _, s := range spans {
		b.Add(s)
	}
	return b.Take()
}

func toSpan(sp ptrace.Span, s *Span) {
	sp.SetTraceID(pcommon.TraceID(s.TraceID))
	sp.SetSpanID(pcommon.SpanID(s.SpanID))
	sp.SetParentSpanID(pcommon.SpanID(s.ParentSpanID))
	sp.TraceState().FromRaw(s.TraceState)
	sp.SetFlags(s.Flags)
	sp.SetName(s.Name)
	sp.SetKind(ptrace.SpanKind(s.Kind))
	sp.SetStartTimestamp(pcommon.Timestamp(s.StartUnixNano))
	sp.SetEndTimestamp(pcommon.Timestamp(s.EndUnixNano))
	sp.Status().SetCode(ptrace.StatusCode(s.StatusCode))
	sp.Status().SetMessage(s.StatusMessage)
	toMap(sp.Attributes(), s.Attrs)
	sp.SetDroppedAttributesCount(s.DroppedAttrs)
	sp.SetDroppedEventsCount(s.DroppedEvents)
	sp.SetDroppedLinksCount(s.DroppedLinks)
	if len(s.Events) > 0 {
		evs := sp.Events()
		evs.EnsureCapacity(len(s.Events))
		for i := range s.Events {
			e := &s.Events[i]
			ev := evs.AppendEmpty()
			ev.SetTimestamp(pcommon.Timestamp(e.TimeUnixNano))
			ev.SetName(e.Name)
			toMap(ev.Attributes(), e.Attrs)
			ev.SetDroppedAttributesCount(e.DroppedAttrs)
		}
	}
	if len(s.Links) > 0 {
		lks := sp.Links()
		lks.EnsureCapacity(len(s.Links))
		for i := range s.Links {
			l := &s.Links[i]
			lk := lks.AppendEmpty()
			lk.SetTraceID(pcommon.TraceID(l.TraceID))
			lk.SetSpanID(pcommon.SpanID(l.SpanID))
			lk.TraceState().FromRaw(l.TraceState)
			lk.SetFlags(l.Flags)
			toMap(lk.Attributes(), l.Attrs)
			lk.SetDroppedAttributesCount(l.DroppedAttrs)
		}
	}
}

func toMap(m pcommon.Map, kvs []KeyValue) {
	if len(kvs) == 0 {
		return
	}
	m.EnsureCapacity(len(kvs))
	for i := range kvs {
		toValue(m.PutEmpty(kvs[i].Key), &kvs[i].Value)
	}
}

func toValue(dst pcommon.Value, v *Value) {
	switch v.Type {
	case ValueStr:
		dst.SetStr(v.Str)
	case ValueBool:
		dst.SetBool(v.Num != 0)
	case ValueInt:
		dst.SetInt(int64(v.Num))
	case ValueDouble:
		dst.SetDouble(float64frombits(v.Num))
	case ValueBytes:
		dst.SetEmptyBytes().FromRaw([]byte(v.Str))
	case ValueArray:
		sl := dst.SetEmptySlice()
		sl.EnsureCapacity(len(v.Kids))
		for i := range v.Kids {
			toValue(sl.AppendEmpty(), &v.Kids[i].Value)
		}
	case ValueMap:
		toMap(dst.SetEmptyMap(), v.Kids)
	}
}
