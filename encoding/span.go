package encoding

// This file is tracedb's row model of a span: the form spans take between
// the API boundary (pdata) and the on-disk formats. It holds every field OTLP
// carries, so that storage is lossless.
//
// Ownership: a *Span and everything it points to are immutable once handed to
// the store. Resource and Scope pointers are shared by all spans of one
// ResourceSpans / ScopeSpans and must not be modified through any of them.

// ValueType is the type of an attribute value, numbered as in OTLP's AnyValue
// (with Empty for a value that has none set).
type ValueType uint8

const (
	ValueEmpty ValueType = iota
	ValueStr
	ValueBool
	ValueInt
	ValueDouble
	ValueBytes
	ValueArray
	ValueMap
	valueTypeCount
)

// Valid reports whether t is a known value type.
func (t ValueType) Valid() bool { return t < valueTypeCount }

var valueTypeNames = [...]string{"empty", "str", "bool", "int", "double", "bytes", "array", "map"}

func (t ValueType) String() string {
	if t.Valid() {
		return valueTypeNames[t]
	}
	return "invalid"
}

// Value is an attribute value of any OTLP type. Exactly the fields its Type
// names are meaningful:
//
//	ValueStr    Str
//	ValueBytes  Str (the raw bytes)
//	ValueBool   Num (0 or 1)
//	ValueInt    Num (the int64's bits)
//	ValueDouble Num (the float64's bits, so NaN payloads and -0 survive)
//	ValueArray  Kids (elements; Key unused)
//	ValueMap    Kids (entries in their original order)
type Value struct {
	Type ValueType
	Str  string
	Num  uint64
	Kids []KeyValue
}

// KeyValue is one attribute, or one element of an array or map value.
type KeyValue struct {
	Key   string
	Value Value
}

// Resource is the resource that produced spans, with the ResourceSpans'
// schema URL.
type Resource struct {
	Attrs        []KeyValue
	DroppedAttrs uint32
	SchemaURL    string
}

// Scope is the instrumentation scope of spans, with the ScopeSpans' schema URL.
type Scope struct {
	Name         string
	Version      string
	Attrs        []KeyValue
	DroppedAttrs uint32
	SchemaURL    string
}

// Event is a span event.
type Event struct {
	TimeUnixNano uint64
	Name         string
	Attrs        []KeyValue
	DroppedAttrs uint32
}

// Link is a link from a span to another span.
type Link struct {
	TraceID      TraceID
	SpanID       SpanID
	TraceState   string
	Flags        uint32
	Attrs        []KeyValue
	DroppedAttrs uint32
}

// SpanKind and StatusCode are numbered as in OTLP.
const (
	KindUnspecified = 0
	KindInternal    = 1
	KindServer      = 2
	KindClient      = 3
	KindProducer    = 4
	KindConsumer    = 5

	StatusUnset = 0
	StatusOk    = 1
	StatusError = 2
)

// Span is one OTLP span with its resource and scope.
type Span struct {
	TraceID       TraceID
	SpanID        SpanID
	ParentSpanID  SpanID
	TraceState    string
	Flags         uint32
	Name          string
	Kind          int32
	StartUnixNano uint64
	EndUnixNano   uint64
	StatusCode    int32
	StatusMessage string

	Attrs         []KeyValue
	DroppedAttrs  uint32
	Events        []Event
	DroppedEvents uint32
	Links         []Link
	DroppedLinks  uint32

	Resource *Resource
	Scope    *Scope
}

// Duration returns End-Start in nanoseconds; 0 when End is before Start.
func (s *Span) Duration() uint64 {
	if s.EndUnixNano < s.StartUnixNano {
		return 0
	}
	return s.EndUnixNano - s.StartUnixNano
}

// ServiceName returns the resource's "service.name" string attribute, or ""
// when there is none.
func (s *Span) ServiceName() string { return s.Resource.ServiceName() }

// ServiceName returns the resource's service.name string attribute, or ""
// (also for a nil resource).
func (r *Resource) ServiceName() string {
	if r == nil {
		return ""
	}
	for i := range r.Attrs {
		kv := &r.Attrs[i]
		if kv.Key == ServiceNameKey && kv.Value.Type == ValueStr {
			return kv.Value.Str
		}
	}
	return ""
}

// ServiceNameKey is the resource attribute that names a span's service.
const ServiceNameKey = "service.name"

// Equal reports whether a and b hold exactly the same data (deep
// comparison; doubles compare by bits).
func (a *Span) Equal(b *Span) bool {
	if a.TraceID != b.TraceID || a.SpanID != b.SpanID || a.ParentSpanID != b.ParentSpanID ||
		a.TraceState != b.TraceState || a.Flags != b.Flags || a.Name != b.Name || a.Kind != b.Kind ||
		a.StartUnixNano != b.StartUnixNano || a.EndUnixNano != b.EndUnixNano ||
		a.StatusCode != b.StatusCode || a.StatusMessage != b.StatusMessage ||
		a.DroppedAttrs != b.DroppedAttrs || a.DroppedEvents != b.DroppedEvents || a.DroppedLinks != b.DroppedLinks {
		return false
	}
	if !kvsEqual(a.Attrs, b.Attrs) || len(a.Events) != len(b.Events) || len(a.Links) != len(b.Links) {
		return false
	}
	for i := range a.Events {
		x, y := &a.Events[i], &b.Events[i]
		if x.TimeUnixNano != y.TimeUnixNano || x.Name != y.Name || x.DroppedAttrs != y.DroppedAttrs || !kvsEqual(x.Attrs, y.Attrs) {
			return false
		}
	}
	for i := range a.Links {
		x, y := &a.Links[i], &b.Links[i]
		if x.TraceID != y.TraceID || x.SpanID != y.SpanID || x.TraceState != y.TraceState || x.Flags != y.Flags ||
			x.DroppedAttrs != y.DroppedAttrs || !kvsEqual(x.Attrs, y.Attrs) {
			return false
		}
	}
	return a.Resource.Equal(b.Resource) && a.Scope.Equal(b.Scope)
}

// Equal reports whether r and o are the same resource; nil equals only nil
// or an empty resource.
func (r *Resource) Equal(o *Resource) bool {
	if r == o {
		return true
	}
	var e Resource
	if r == nil {
		r = &e
	}
	if o == nil {
		o = &e
	}
	return r.DroppedAttrs == o.DroppedAttrs && r.SchemaURL == o.SchemaURL && kvsEqual(r.Attrs, o.Attrs)
}

// Equal reports whether s and o are the same scope; nil equals only nil or
// an empty scope.
func (s *Scope) Equal(o *Scope) bool {
	if s == o {
		return true
	}
	var e Scope
	if s == nil {
		s = &e
	}
	if o == nil {
		o = &e
	}
	return s.Name == o.Name && s.Version == o.Version && s.DroppedAttrs == o.DroppedAttrs &&
		s.SchemaURL == o.SchemaURL && kvsEqual(s.Attrs, o.Attrs)
}

func kvsEqual(a, b []KeyValue) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key || !a[i].Value.Equal(&b[i].Value) {
			return false
		}
	}
	return true
}

// Equal reports whether v and o have the same type and content.
func (v *Value) Equal(o *Value) bool {
	return v.Type == o.Type && v.Str == o.Str && v.Num == o.Num && kvsEqual(v.Kids, o.Kids)
}

// StrKV, IntKV, BoolKV and DoubleKV make attributes of each scalar type.
func StrKV(key, v string) KeyValue {
	return KeyValue{Key: key, Value: Value{Type: ValueStr, Str: v}}
}

// IntKV makes an int attribute.
func IntKV(key string, v int64) KeyValue {
	return KeyValue{Key: key, Value: Value{Type: ValueInt, Num: uint64(v)}}
}

// BoolKV makes a bool attribute.
func BoolKV(key string, v bool) KeyValue {
	kv := KeyValue{Key: key, Value: Value{Type: ValueBool}}
	if v {
		kv.Value.Num = 1
	}
	return kv
}

// DoubleKV makes a double attribute.
func DoubleKV(key string, v float64) KeyValue {
	return KeyValue{Key: key, Value: Value{Type: ValueDouble, Num: float64bits(v)}}
}
