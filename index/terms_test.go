package index

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/tracedb/tracedb/encoding"
)

func strV(s string) encoding.Value { return encoding.Value{Type: encoding.ValueStr, Str: s} }
func intV(i int64) encoding.Value  { return encoding.Value{Type: encoding.ValueInt, Num: uint64(i)} }
func dblV(f float64) encoding.Value {
	return encoding.Value{Type: encoding.ValueDouble, Num: math.Float64bits(f)}
}
func boolV(b bool) encoding.Value {
	v := encoding.Value{Type: encoding.ValueBool}
	if b {
		v.Num = 1
	}
	return v
}
func bytesV(b string) encoding.Value { return encoding.Value{Type: encoding.ValueBytes, Str: b} }
func arrV(vs ...encoding.Value) encoding.Value {
	v := encoding.Value{Type: encoding.ValueArray}
	for _, k := range vs {
		v.Kids = append(v.Kids, encoding.KeyValue{Value: k})
	}
	return v
}
func mapV(kvs ...encoding.KeyValue) encoding.Value {
	return encoding.Value{Type: encoding.ValueMap, Kids: kvs}
}
func kv(k string, v encoding.Value) encoding.KeyValue { return encoding.KeyValue{Key: k, Value: v} }

// toPdata copies v into dst, to compare ValueString with pdata's AsString.
func toPdata(v *encoding.Value, dst pcommon.Value) {
	switch v.Type {
	case encoding.ValueStr:
		dst.SetStr(v.Str)
	case encoding.ValueInt:
		dst.SetInt(int64(v.Num))
	case encoding.ValueBool:
		dst.SetBool(v.Num != 0)
	case encoding.ValueDouble:
		dst.SetDouble(math.Float64frombits(v.Num))
	case encoding.ValueBytes:
		dst.SetEmptyBytes().FromRaw([]byte(v.Str))
	case encoding.ValueArray:
		s := dst.SetEmptySlice()
		for i := range v.Kids {
			toPdata(&v.Kids[i].Value, s.AppendEmpty())
		}
	case encoding.ValueMap:
		m := dst.SetEmptyMap()
		for i := range v.Kids {
			toPdata(&v.Kids[i].Value, m.PutEmpty(v.Kids[i].Key))
		}
	}
}

var oddStrings = []string{"", "a", "<b>&amp;", "\u2028\u2029", "tab\there", "nul\x00", "bad\xffutf8", `quote"back\slash`, "日本語", "\x1f\x7f"}
var oddDoubles = []float64{0, math.Copysign(0, -1), 1, -1.5, 100, 1e20, 1e21, 123456789.125, 1e-6, 1e-7, 5e-324,
	math.MaxFloat64, 0.1, 1.0 / 3, 12345678912345678, math.NaN(), math.Inf(1), math.Inf(-1)}

func randValue(r *rand.Rand, depth int) encoding.Value {
	switch k := r.IntN(8); {
	case k == 0 && depth > 0:
		n := r.IntN(4)
		vs := make([]encoding.Value, n)
		for i := range vs {
			vs[i] = randValue(r, depth-1)
		}
		return arrV(vs...)
	case k == 1 && depth > 0:
		n := r.IntN(4)
		kvs := make([]encoding.KeyValue, n)
		for i := range kvs {
			kvs[i] = kv(oddStrings[r.IntN(len(oddStrings))], randValue(r, depth-1))
		}
		return mapV(kvs...)
	case k == 2:
		return intV(int64(r.Uint64()) >> r.IntN(64))
	case k == 3:
		if r.IntN(2) == 0 {
			return dblV(oddDoubles[r.IntN(len(oddDoubles))])
		}
		return dblV(math.Float64frombits(r.Uint64()))
	case k == 4:
		return boolV(r.IntN(2) == 0)
	case k == 5:
		return bytesV(oddStrings[r.IntN(len(oddStrings))])
	case k == 6 && r.IntN(4) == 0:
		return encoding.Value{}
	}
	return strV(oddStrings[r.IntN(len(oddStrings))])
}

func TestValueStringMatchesPdata(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	for i := 0; i < 20000; i++ {
		v := randValue(r, 3)
		got, ok := ValueString(&v)
		pv := pcommon.NewValueEmpty()
		toPdata(&v, pv)
		want := pv.AsString()
		if !ok {
			// Only empty values and JSON values holding NaN or infinities
			// are left out.
			if v.Type == encoding.ValueEmpty || (v.Type == encoding.ValueArray || v.Type == encoding.ValueMap) && want == "" {
				continue
			}
			t.Fatalf("%+v: not indexable; pdata says %q", v, want)
		}
		if got != want {
			t.Fatalf("%+v: ValueString = %q, pdata AsString = %q", v, got, want)
		}
	}
}

func TestValueStringTable(t *testing.T) {
	for _, tc := range []struct {
		v    encoding.Value
		want string
		ok   bool
	}{
		{strV("GET"), "GET", true},
		{intV(-42), "-42", true},
		{boolV(true), "true", true},
		{dblV(0.5), "0.5", true},
		{dblV(1e6), "1000000", true},
		{dblV(1e21), "1e+21", true},
		{dblV(1e-7), "1e-7", true},
		{dblV(math.NaN()), "NaN", true},
		{bytesV("\x01\x02"), "AQI=", true},
		{arrV(strV("a"), intV(1), boolV(false), encoding.Value{}), `["a",1,false,null]`, true},
		{mapV(kv("b", strV("<x>")), kv("a", dblV(1.5))), `{"a":1.5,"b":"<x>"}`, true},
		{arrV(dblV(math.Inf(1))), "", false},
		{encoding.Value{}, "", false},
		{encoding.Value{Type: 99}, "", false},
	} {
		t.Run(tc.want, func(t *testing.T) {
			got, ok := ValueString(&tc.v)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("ValueString = %q, %v; want %q, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestTermHelpers(t *testing.T) {
	for b := uint16(0); b < NumBuckets; b++ {
		v := DurationValue(b)
		if got, ok := ParseDurationValue(v); !ok || got != b {
			t.Fatalf("ParseDurationValue(%q) = %d, %v", v, got, ok)
		}
		if b > 0 && DurationValue(b-1) >= v {
			t.Fatalf("duration values out of order at %d", b)
		}
	}
	for _, s := range []string{"", "123", "12345", "x000", "1920", "9999"} {
		if _, ok := ParseDurationValue(s); ok {
			t.Fatalf("ParseDurationValue(%q) accepted", s)
		}
	}
	for l := LevelSpan; l < numLevels; l++ {
		name := AttrTermName(l, "http.method")
		if gl, key, ok := ParseAttrTermName(name); !ok || gl != l || key != "http.method" {
			t.Fatalf("ParseAttrTermName(%q) = %v, %q, %v", name, gl, key, ok)
		}
	}
	for _, n := range []string{NameService, NameOperation, NameKind, NameStatus, NameDuration, NameEvent, NameScope, "x:y", "a"} {
		if _, _, ok := ParseAttrTermName(n); ok {
			t.Fatalf("ParseAttrTermName(%q) accepted", n)
		}
	}
	if svc, name, ok := SplitOperationValue(OperationValue("svc", "GET /x")); !ok || svc != "svc" || name != "GET /x" {
		t.Fatalf("SplitOperationValue: %q, %q, %v", svc, name, ok)
	}
	if OperationValue("a", "z") > OperationValue("a.b", "a") {
		t.Fatal("operations of one service are not contiguous")
	}
}

func testSpan() *encoding.Span {
	res := &encoding.Resource{Attrs: []encoding.KeyValue{
		kv("service.name", strV("checkout")),
		kv("host.name", strV("h1")),
		kv("huge", strV(strings.Repeat("x", 300))),
	}}
	scope := &encoding.Scope{Name: "otel-go", Attrs: []encoding.KeyValue{kv("lib.n", intV(7))}}
	return &encoding.Span{
		Name: "GET /cart", Kind: encoding.KindServer, StatusCode: encoding.StatusError,
		StartUnixNano: 1000, EndUnixNano: 1000 + 2_500_000,
		Attrs: []encoding.KeyValue{
			kv("http.method", strV("GET")),
			kv("http.status_code", intV(500)),
			kv("ratio", dblV(0.25)),
			kv("cached", boolV(false)),
			kv("blob", bytesV("hi")),
			kv("tags", arrV(strV("a"), strV("b"))),
			kv("nothing", encoding.Value{}),
			kv(strings.Repeat("k", 300), strV("long key")),
		},
		Events: []encoding.Event{
			{Name: "retry", Attrs: []encoding.KeyValue{kv("attempt", intV(1))}},
			{Name: "retry", Attrs: []encoding.KeyValue{kv("attempt", intV(2))}},
		},
		Links:    []encoding.Link{{Attrs: []encoding.KeyValue{kv("link.kind", strV("follows"))}}},
		Resource: res,
		Scope:    scope,
	}
}

func collectTerms(fn func(func(Term))) []Term {
	var out []Term
	fn(func(t Term) { out = append(out, Term{strings.Clone(t.Name), strings.Clone(t.Value)}) })
	SortTerms(out)
	return out
}

func TestSpanTerms(t *testing.T) {
	s := testSpan()
	want := []Term{
		{"a:blob", "aGk="},
		{"a:cached", "false"},
		{"a:http.method", "GET"},
		{"a:http.status_code", "500"},
		{"a:ratio", "0.25"},
		{"a:tags", `["a","b"]`},
		{"duration", DurationValue(DurationBucket(2_500_000))},
		{"e:attempt", "1"},
		{"e:attempt", "2"},
		{"event", "retry"},
		{"event", "retry"},
		{"kind", "2"},
		{"l:link.kind", "follows"},
		{"operation", "checkout\x00GET /cart"},
		{"r:host.name", "h1"},
		{"r:service.name", "checkout"},
		{"scope", "otel-go"},
		{"s:lib.n", "7"},
		{"service", "checkout"},
		{"status", "2"},
	}
	SortTerms(want)
	got := collectTerms(func(fn func(Term)) { SpanTerms(s, DefaultMaxValueLen, fn) })
	if !slices.Equal(got, want) {
		t.Fatalf("SpanTerms:\n got %v\nwant %v", got, want)
	}

	// The extractor gives the same terms span after span, whether the
	// resource is cached or changes, and its split methods add up to
	// SpanTerms.
	x := NewTermExtractor(DefaultMaxValueLen)
	other := *s
	other.Resource = &encoding.Resource{Attrs: []encoding.KeyValue{kv("service.name", strV("cart"))}}
	other.Scope = nil
	wantOther := collectTerms(func(fn func(Term)) { SpanTerms(&other, DefaultMaxValueLen, fn) })
	for i := 0; i < 3; i++ {
		for _, c := range []struct {
			s    *encoding.Span
			want []Term
		}{{s, want}, {s, want}, {&other, wantOther}} {
			if got := collectTerms(func(fn func(Term)) { x.SpanTerms(c.s, fn) }); !slices.Equal(got, c.want) {
				t.Fatalf("round %d: extractor:\n got %v\nwant %v", i, got, c.want)
			}
			split := collectTerms(func(fn func(Term)) {
				for _, t := range x.ResourceTerms(c.s.Resource) {
					fn(t)
				}
				for _, t := range x.ScopeTerms(c.s.Scope) {
					fn(t)
				}
				x.SpanOwnTerms(c.s, fn)
			})
			if !slices.Equal(split, c.want) {
				t.Fatalf("round %d: split:\n got %v\nwant %v", i, split, c.want)
			}
		}
	}

	// No limit indexes the long value and key too.
	all := collectTerms(func(fn func(Term)) { SpanTerms(s, 0, fn) })
	if len(all) != len(want)+2 {
		t.Fatalf("no limit: %d terms, want %d", len(all), len(want)+2)
	}
}

func TestSpanTermsNoResource(t *testing.T) {
	s := &encoding.Span{Name: "x"}
	got := collectTerms(func(fn func(Term)) { SpanTerms(s, 0, fn) })
	want := []Term{{NameDuration, "0000"}, {NameKind, "0"}, {NameOperation, "\x00x"}, {NameService, ""}, {NameStatus, "0"}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// benchSpans returns spans shaped like the ClickHouse workload: 11
// attributes per span from 97 keys with 1,000 values each, mostly strings,
// some ints; spans of one resource share its pointer.
func benchSpans(n int) []*encoding.Span {
	r := rand.New(rand.NewPCG(9, 9))
	resources := make([]*encoding.Resource, 10)
	for i := range resources {
		resources[i] = &encoding.Resource{Attrs: []encoding.KeyValue{
			kv("service.name", strV(fmt.Sprintf("service-%d", i))),
			kv("host.name", strV(fmt.Sprintf("host-%d", i))),
			kv("telemetry.sdk.language", strV("go")),
		}}
	}
	scope := &encoding.Scope{Name: "otel-go"}
	spans := make([]*encoding.Span, n)
	for i := range spans {
		s := &encoding.Span{
			Name:          fmt.Sprintf("op-%d", r.IntN(20)),
			Kind:          int32(1 + r.IntN(5)),
			StartUnixNano: 1e18,
			EndUnixNano:   1e18 + uint64(r.ExpFloat64()*1e7),
			Resource:      resources[(i/100)%len(resources)],
			Scope:         scope,
		}
		keys := r.Perm(97)[:11]
		for j, k := range keys {
			v := strV(fmt.Sprintf("value-%d", r.IntN(1000)))
			if j >= 8 {
				v = intV(int64(r.IntN(1000)))
			}
			s.Attrs = append(s.Attrs, kv(fmt.Sprintf("attribute.key.%d", k), v))
		}
		spans[i] = s
	}
	return spans
}

func BenchmarkSpanTerms(b *testing.B) {
	spans := benchSpans(4096)
	x := NewTermExtractor(DefaultMaxValueLen)
	n := 0
	fn := func(Term) { n++ }
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		x.SpanTerms(spans[i&4095], fn)
		i++
	}
	b.ReportMetric(float64(n)/float64(i), "terms/span")
}
