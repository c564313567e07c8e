package query

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/index"
)

// filterTestStart is the test span's start: 2025-01-01T00:00:00Z.
const filterTestStart uint64 = 1735689600_000_000_000

func kvStr(k, v string) encoding.KeyValue {
	return encoding.KeyValue{Key: k, Value: encoding.Value{Type: encoding.ValueStr, Str: v}}
}

func kvInt(k string, v int64) encoding.KeyValue {
	return encoding.KeyValue{Key: k, Value: encoding.Value{Type: encoding.ValueInt, Num: uint64(v)}}
}

func kvDouble(k string, v float64) encoding.KeyValue {
	return encoding.KeyValue{Key: k, Value: encoding.Value{Type: encoding.ValueDouble, Num: math.Float64bits(v)}}
}

func kvBool(k string, v bool) encoding.KeyValue {
	n := uint64(0)
	if v {
		n = 1
	}
	return encoding.KeyValue{Key: k, Value: encoding.Value{Type: encoding.ValueBool, Num: n}}
}

// filterTestSpan is a root server span of service cart with attributes of
// every type, two events (one before the span's start) and a link.
func filterTestSpan() *encoding.Span {
	return &encoding.Span{
		TraceID:       encoding.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanID:        encoding.SpanID{0xa, 0xb, 0xc, 0xd, 0, 0, 0, 1},
		Name:          "GET /cart",
		Kind:          encoding.KindServer,
		StartUnixNano: filterTestStart,
		EndUnixNano:   filterTestStart + 1_500_000_000,
		StatusCode:    encoding.StatusError,
		StatusMessage: "boom",
		Attrs: []encoding.KeyValue{
			kvStr("http.method", "GET"),
			kvInt("http.status_code", 503),
			kvDouble("ratio", 0.5),
			kvDouble("nan", math.NaN()),
			kvDouble("negzero", math.Copysign(0, -1)),
			kvDouble("big", 1e21),
			kvInt("i53", 1<<53+1),
			kvDouble("d500", 500),
			kvBool("ok", true),
			{Key: "raw", Value: encoding.Value{Type: encoding.ValueBytes, Str: "\x00\x01\xff"}},
			{Key: "tags", Value: encoding.Value{Type: encoding.ValueArray, Kids: []encoding.KeyValue{
				{Value: encoding.Value{Type: encoding.ValueStr, Str: "a"}},
				{Value: encoding.Value{Type: encoding.ValueInt, Num: 1}},
				{Value: encoding.Value{Type: encoding.ValueBool, Num: 1}},
			}}},
			{Key: "m", Value: encoding.Value{Type: encoding.ValueMap, Kids: []encoding.KeyValue{kvInt("b", 1), kvStr("a", "x")}}},
			{Key: "nanarr", Value: encoding.Value{Type: encoding.ValueArray, Kids: []encoding.KeyValue{kvDouble("", math.NaN())}}},
			{Key: "empty"},
			kvStr("code_str", "500"),
			kvInt("shared", 8),
			kvStr("dup", "one"),
			kvStr("dup", "two"),
			kvStr("msg", "Connection REFUSED: dial tcp 10.0.0.1:443, retrying (\u00e9t\u00e9)"),
		},
		Events: []encoding.Event{
			{TimeUnixNano: filterTestStart + 100_000_000, Name: "exception", Attrs: []encoding.KeyValue{kvStr("exception.type", "IOError"), kvInt("attempt", 2)}},
			{TimeUnixNano: filterTestStart - 1, Name: "retry", Attrs: []encoding.KeyValue{kvInt("attempt", 3)}},
		},
		Links: []encoding.Link{{
			TraceID:    encoding.TraceID{15: 9},
			SpanID:     encoding.SpanID{7: 9},
			TraceState: "k=v",
			Attrs:      []encoding.KeyValue{kvStr("link.kind", "follows")},
		}},
		Resource: &encoding.Resource{
			Attrs:     []encoding.KeyValue{kvStr("service.name", "cart"), kvStr("host", "h1"), kvInt("shared", 7)},
			SchemaURL: "https://opentelemetry.io/schemas/1.21.0",
		},
		Scope: &encoding.Scope{Name: "io.opentelemetry.http", Version: "1.2.3", Attrs: []encoding.KeyValue{kvStr("lib", "x")}},
	}
}

// filterTestChild is a child span without resource or scope, of a kind and
// status outside OTLP's enums, with a trace state.
func filterTestChild() *encoding.Span {
	return &encoding.Span{
		TraceID:      encoding.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanID:       encoding.SpanID{7: 2},
		ParentSpanID: encoding.SpanID{0xa, 0xb, 0xc, 0xd, 0, 0, 0, 1},
		TraceState:   "rojo=00f067aa0ba902b7",
		Name:         "SELECT",
		// A link without a trace state: link.traceState is the empty text.
		Links:         []encoding.Link{{TraceID: encoding.TraceID{15: 8}, SpanID: encoding.SpanID{7: 8}}},
		Kind:          42,
		StatusCode:    7,
		StartUnixNano: 5,
		EndUnixNano:   5,
	}
}

func TestFilterMatch(t *testing.T) {
	root, child := filterTestSpan(), filterTestChild()
	tests := []struct {
		filter      string
		root, child bool
	}{
		// Resource fields and attributes.
		{`service = "cart"`, true, false},
		{`service = "shop"`, false, false},
		{`resource.service != "shop"`, true, false},
		{`not exists(resource.service)`, false, true},
		{`resource.schemaURL =~ "1\\.21"`, true, false},
		{`resource.attr["host"] = "h1"`, true, false},
		{`resource.service = resource.attr["service.name"]`, true, false},

		// Span fields.
		{`span.name = "GET /cart"`, true, false},
		{`span.name > "GET"`, true, true},
		{`span.name < "A"`, false, false},
		{`span.name >= "SELECT" and span.name <= "SELECT"`, false, true},
		{`span.name =~ "GET /"`, true, false},
		{`span.name =~ "c[a]rt"`, true, false},
		{`span.name =~ "CART"`, false, false},
		{`span.name =~ "[Cc][Aa][Rr][Tt]"`, true, false},
		{`span.name in ["SELECT", "GET /cart"]`, true, true},
		{`span.name not in ["SELECT"]`, true, false},
		{`span.kind = "server"`, true, false},
		{`span.kind != "server"`, false, true},
		{`span.kind = any("server")`, true, false},
		{`span.kind in ["client", "server"]`, true, false},
		{`span.kind not in ["client"]`, true, true},
		{`span.kind in any["internal"]`, false, false},
		{`span.kind =~ "4"`, false, true},
		{`span.status = "error"`, true, false},
		{`span.status != "unset"`, true, true},
		{`span.statusMessage = "boom"`, true, false},
		{`exists(span.statusMessage)`, true, false},
		{`exists(span.traceState)`, false, true},
		{`span.traceState =~ "rojo"`, false, true},
		{`exists(span.parentSpanID)`, false, true},
		{`span.parentSpanID = "0a0b0c0d00000001"`, false, true},
		{`span.parentSpanID != "x"`, false, true},
		{`span.spanID = "0a0b0c0d00000001"`, true, false},
		{`span.traceID = "0102030405060708090a0b0c0d0e0f10"`, true, true},
		{`span.traceID =~ "0102"`, true, true},
		{`span.traceID > "0102"`, true, true},
		{`span.startTime = time("2025-01-01T00:00:00Z")`, true, false},
		{`span.startTime >= any("2025-01-01T00:00:00Z")`, true, false},
		{`span.startTime < time("1970-01-01T00:00:00.000000006Z")`, false, true},
		{`span.startTime > time("1969-12-31T23:59:59Z")`, true, true},
		{`span.startTime in [time("2025-01-01T00:00:00Z"), time("1970-01-01T00:00:00.000000005Z")]`, true, true},
		{`span.endTime > span.startTime`, true, false},
		{`span.endTime = span.startTime`, false, true},
		{`span.endTime = time("2025-01-01T00:00:01.5Z")`, true, false},
		{`span.duration = 1.5s`, true, false},
		{`span.duration > 1s`, true, false},
		{`span.duration >= any("1500ms")`, true, false},
		{`span.duration in any["1.5s", "3s"]`, true, false},
		{`span.duration in [1.5s, 0s]`, true, true},
		{`span.duration not in [0s]`, true, false},
		{`span.duration < 1ns`, false, true},
		{`span.duration > -1s`, true, true},
		{`span.duration >= duration("-2562047h47m16.854775808s")`, true, true},

		// Scope.
		{`scope.name = "io.opentelemetry.http"`, true, false},
		{`scope.version = "1.2.3"`, true, false},
		{`exists(scope.schemaURL)`, false, false},
		{`not exists(scope.name)`, false, true},
		{`scope.attr["lib"] = "x"`, true, false},
		{`scope.name != "x"`, true, false},

		// Events: some binds one event for the whole predicate; a leaf
		// outside some holds when some event satisfies that leaf alone.
		{`some(events, name = "exception")`, true, false},
		{`some(events, event.name = "exception" and event.attr["attempt"] = 3)`, false, false},
		{`some(events, event.name = "retry" and event.attr["attempt"] = 3)`, true, false},
		{`event.name = "exception" and event.attr["attempt"] = 3`, true, false},
		{`event.attr["exception.type"] = "IOError"`, true, false},
		{`not event.name = "nope"`, true, true},
		{`not some(events, name = "nope")`, true, true},
		{`some(events, event.timeSinceStart = 100ms)`, true, false},
		{`some(events, event.timeSinceStart < 0s)`, true, false},
		{`some(events, event.timeSinceStart = -1ns)`, true, false},
		{`some(events, event.timeSinceStart > -1ns and event.timeSinceStart < 100ms)`, false, false},
		{`some(events, event.time < span.startTime)`, true, false},
		{`some(events, event.time = time("2025-01-01T00:00:00.1Z"))`, true, false},
		{`some(events, event.time > span.endTime)`, false, false},
		{`some(events, exists(event.attr["exception.type"]) and event.attr["attempt"] >= 2)`, true, false},
		{`some(events, not exists(event.attr["exception.type"]))`, true, false},
		{`event.name in ["retry"] and span.name = "GET /cart"`, true, false},
		{`event.attr["attempt"] not in [2]`, false, false}, // one event has 2
		{`event.attr["attempt"] not in [4]`, true, false},
		{`event.attr["attempt"] != 2`, false, false},
		{`some(events, event.attr["attempt"] != 2)`, true, false},
		{`span.attr["missing"] != 2`, false, false},
		{`not span.attr["missing"] = 2`, true, true},
		{`span.attr["dup"] not in ["one"]`, false, false},
		{`span.attr["dup"] not in ["three"]`, true, false},
		{`attr["x"] in any["a"]`, false, false},
		{`span.attr["http.status_code"] in any["503", "x"]`, true, false},
		{`span.attr["code_str"] in any["500"]`, true, false},

		// Text search: words of string values, ASCII and Unicode case
		// folded, punctuation between words, no normalisation.
		{`phrase(span.attr["msg"], ["connection", "refused"])`, true, false},
		{`phrase(span.attr["msg"], ["refused", "connection"])`, false, false},
		{`fulltext(span.attr["msg"], ["refused", "connection"])`, true, false},
		{`phrase(span.attr["msg"], ["dial", "tcp", "10"])`, true, false},
		{`phrase(span.attr["msg"], ["refused", "dial"])`, true, false},
		{`phrase(span.attr["msg"], ["connection", "dial"])`, false, false},
		{`phrase(span.attr["msg"], ["1", "443"])`, true, false},
		{`fulltext(span.attr["msg"], ["\u00c9T\u00c9"])`, true, false},
		{`fulltext(span.attr["msg"], ["e\u0301te\u0301"])`, false, false},
		{`fulltext(span.attr["msg"], ["conn"])`, false, false},
		{`fulltext(attr["msg"], any["CONNECTION"])`, true, false},
		{`fulltext(span.attr["http.status_code"], ["503"])`, false, false},
		{`fulltext(span.attr["code_str"], ["500"])`, true, false},
		{`fulltext(span.attr["missing"], ["x"])`, false, false},
		{`not fulltext(span.attr["missing"], ["x"])`, true, true},
		{`phrase(span.attr["dup"], ["two"])`, true, false},
		{`fulltext(event.attr["exception.type"], ["ioerror"])`, true, false},
		{`some(events, fulltext(event.attr["exception.type"], ["IOError"]) and event.attr["attempt"] = 3)`, false, false},

		// Links.
		{`some(links, link.traceState = "k=v")`, true, false},
		{`some(links, link.traceState = "")`, false, true},
		{`link.attr["link.kind"] = "follows"`, true, false},
		{`some(links, link.traceID = "00000000000000000000000000000009" and link.spanID = "0000000000000009")`, true, false},
		{`exists(link.traceState)`, true, true}, // carried whenever a link is
		{`not exists(link.traceID)`, false, false},
		{`not exists(event.name)`, false, true},
		{`some(events, some(links, link.attr["link.kind"] = "follows" and event.name = "retry"))`, true, false},
		{`some(links, some(events, event.attr["attempt"] = 3) and link.traceState = "k=v")`, true, false},

		// Numbers: ints and doubles compare exactly with each other.
		{`span.attr["http.status_code"] = 503`, true, false},
		{`span.attr["http.status_code"] >= 500`, true, false},
		{`span.attr["http.status_code"] = 503.0`, true, false},
		{`span.attr["http.status_code"] > 502.5`, true, false},
		{`span.attr["http.status_code"] < 503.0000001`, true, false},
		{`span.attr["http.status_code"] in [500, 503]`, true, false},
		{`span.attr["http.status_code"] in [503.0]`, true, false},
		{`span.attr["http.status_code"] not in [1, 2]`, true, false},
		{`span.attr["i53"] = 9007199254740992.0`, false, false},
		{`span.attr["i53"] > 9007199254740992.0`, true, false},
		{`span.attr["i53"] = 9007199254740993`, true, false},
		{`span.attr["d500"] = 500`, true, false},
		{`span.attr["d500"] >= 500 and span.attr["d500"] <= 500`, true, false},
		{`span.attr["ratio"] = 0.5`, true, false},
		{`span.attr["ratio"] > 0 and span.attr["ratio"] < 1`, true, false},
		{`span.attr["big"] > 9223372036854775807`, true, false},
		{`span.attr["big"] = 1e21`, true, false},
		// NaN: IEEE 754, so only ne holds.
		{`span.attr["nan"] = double("NaN")`, false, false},
		{`span.attr["nan"] != double("NaN")`, true, false},
		{`span.attr["nan"] != 1`, true, false},
		{`span.attr["nan"] > 0 or span.attr["nan"] <= 0`, false, false},
		{`span.attr["nan"] in [1.0]`, false, false},
		{`span.attr["nan"] not in [1.0]`, true, false},
		{`exists(span.attr["nan"])`, true, false},
		{`span.attr["http.status_code"] != double("NaN")`, true, false},
		// -0 equals 0.
		{`span.attr["negzero"] = 0`, true, false},
		{`span.attr["negzero"] = 0.0`, true, false},
		{`span.attr["negzero"] = -0.0`, true, false},
		{`span.attr["negzero"] >= 0 and span.attr["negzero"] <= 0`, true, false},
		{`span.attr["negzero"] < 0`, false, false},

		// A typed constant matches values of its type only.
		{`span.attr["http.status_code"] = "503"`, false, false},
		{`span.attr["http.status_code"] != "x"`, false, false},
		{`span.attr["http.status_code"] in ["503"]`, false, false},
		{`span.attr["http.status_code"] not in ["x"]`, false, false},
		{`span.attr["code_str"] = "500"`, true, false},
		{`span.attr["code_str"] = 500`, false, false},
		{`span.attr["code_str"] != 500`, false, false},
		{`span.attr["ok"] = true`, true, false},
		{`span.attr["ok"] != false`, true, false},
		{`span.attr["ok"] = "true"`, false, false},
		{`span.attr["ok"] = 1`, false, false},
		{`span.attr["ok"] in [true]`, true, false},

		// An untyped constant: by text for eq, ne, in; by number or text
		// for the ordered comparisons.
		{`span.attr["http.status_code"] = any("503")`, true, false},
		{`span.attr["http.status_code"] = any("503.0")`, false, false},
		{`span.attr["http.status_code"] >= any("503.0")`, true, false},
		{`span.attr["http.status_code"] > any("5e2")`, true, false},
		{`span.attr["http.status_code"] > any("abc")`, false, false},
		{`span.attr["code_str"] = any("500")`, true, false},
		{`span.attr["code_str"] > any("4")`, true, false},
		{`span.attr["code_str"] > any("1000")`, true, false},
		{`span.attr["ratio"] = any("0.5")`, true, false},
		{`span.attr["nan"] = any("NaN")`, true, false},
		{`span.attr["negzero"] = any("0")`, false, false},
		{`span.attr["negzero"] = any("-0")`, true, false},
		{`span.attr["big"] = any("1e+21")`, true, false},
		{`span.attr["ok"] = any("true")`, true, false},
		{`span.attr["ok"] > any("false")`, false, false},
		{`span.attr["raw"] = any("AAH/")`, true, false},
		{`span.attr["http.method"] != any("POST")`, true, false},

		// Bytes, arrays and maps compare by their index.ValueString text.
		{`span.attr["raw"] = "AAH/"`, true, false},
		{`span.attr["raw"] =~ "AAH"`, true, false},
		{`span.attr["tags"] = "[\"a\",1,true]"`, true, false},
		{`span.attr["tags"] =~ "\"a\""`, true, false},
		{`span.attr["tags"] > "["`, true, false},
		{`span.attr["m"] = "{\"a\":\"x\",\"b\":1}"`, true, false},
		{`span.attr["m"] in ["{\"a\":\"x\",\"b\":1}"]`, true, false},
		{`span.attr["http.status_code"] =~ "5"`, true, false},
		{`span.attr["ok"] =~ "true"`, true, false},
		// An array holding a NaN has no text: it exists and equals nothing.
		{`exists(span.attr["nanarr"])`, true, false},
		{`span.attr["nanarr"] =~ ""`, false, false},
		{`span.attr["nanarr"] != "x"`, false, false},

		// Empty values exist and equal nothing; missing ones do not exist.
		{`exists(span.attr["empty"])`, true, false},
		{`span.attr["empty"] = ""`, false, false},
		{`span.attr["empty"] != ""`, false, false},
		{`not span.attr["empty"] = ""`, true, true},
		{`span.attr["missing"] = 1`, false, false},
		{`span.attr["missing"] != 1`, false, false},
		{`not span.attr["missing"] = 1`, true, true},
		{`exists(span.attr["missing"])`, false, false},
		{`span.attr["missing"] =~ ""`, false, false},
		{`span.attr["missing"] not in ["a"]`, false, false},

		// Unqualified attributes: the span's or the resource's.
		{`attr["host"] = "h1"`, true, false},
		{`attr["http.method"] = "GET"`, true, false},
		{`attr["shared"] = 7`, true, false},
		{`attr["shared"] = 8`, true, false},
		{`span.attr["shared"] = 7`, false, false},
		{`attr["lib"] = "x"`, false, false},
		{`attr["attempt"] = 2`, false, false},
		{`exists(attr["service.name"])`, true, false},

		// Repeated keys: any occurrence.
		{`span.attr["dup"] = "two"`, true, false},
		{`span.attr["dup"] != "one"`, false, false}, // a negated leaf: no value equals
		{`span.attr["dup"] != "three"`, true, false},
		{`span.attr["dup"] = "one" and span.attr["dup"] = "two"`, true, false},

		// Attribute against attribute, constants against constants.
		{`span.attr["shared"] != resource.attr["shared"]`, true, false},
		{`span.attr["shared"] = resource.attr["shared"]`, false, false},
		{`span.attr["http.status_code"] > resource.attr["shared"]`, true, false},
		{`span.attr["http.method"] < resource.attr["host"]`, true, false},
		{`span.attr["http.method"] = resource.attr["shared"]`, false, false},
		{`span.name = attr["http.method"]`, false, false},
		{`eq(1, 1.0)`, true, true},
		{`"a" < "b"`, true, true},
		{`any("7") = 7`, true, true},
		{`7 > any("10")`, false, false},
		{`any("b") > any("a")`, true, true},
		{`eq(true, any("true"))`, true, true},
		{`1s > any("1s")`, false, false},
		{`eq(any("1s"), 1s)`, true, true},

		// Boolean structure.
		{`service = "cart" and span.attr["http.status_code"] >= 500 and some(events, name = "exception")`, true, false},
		{`service = "shop" or span.name = "SELECT"`, false, true},
		{`not (service = "cart" or span.name = "SELECT")`, false, false},
		{`not not service = "cart"`, true, false},
		{`or(span.name = "a", span.name = "b", span.name = "SELECT")`, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			e, err := ParseFilter(tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			f, err := Compile(e)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Match(root); got != tt.root {
				t.Errorf("root: got %v", got)
			}
			if got := f.Match(child); got != tt.child {
				t.Errorf("child: got %v", got)
			}
			if got := naiveMatch(e, root); got != tt.root {
				t.Errorf("naive evaluator on root: got %v", got)
			}
			if got := naiveMatch(e, child); got != tt.child {
				t.Errorf("naive evaluator on child: got %v", got)
			}
			if f.Match(nil) {
				t.Error("nil span matched")
			}
			checkTerms(t, f, root, 0)
			checkTerms(t, f, child, 0)
			checkBounds(t, f, root)
			checkBounds(t, f, child)
		})
	}
}

// checkTerms fails when s matches f but lacks every term of one of its
// term sets.
func checkTerms(t testing.TB, f *Filter, s *encoding.Span, maxValueLen int) {
	t.Helper()
	if !f.Match(s) {
		return
	}
	have := map[index.Term]bool{}
	index.SpanTerms(s, maxValueLen, func(tm index.Term) { have[tm] = true })
	for _, set := range f.Terms(maxValueLen) {
		if len(set) == 0 {
			t.Fatalf("%s: empty term set", f)
		}
		if !slices.ContainsFunc(set, func(tm index.Term) bool { return have[tm] }) {
			t.Fatalf("%s matches a span that carries none of %v", f, set)
		}
	}
}

func checkBounds(t testing.TB, f *Filter, s *encoding.Span) {
	t.Helper()
	if !f.Match(s) {
		return
	}
	b := f.Bounds()
	if b.Empty || s.StartUnixNano < b.StartMin || s.StartUnixNano > b.StartMax ||
		s.Duration() < b.DurationMin || s.Duration() > b.DurationMax {
		t.Fatalf("%s matches a span (start %d, duration %d) outside %+v", f, s.StartUnixNano, s.Duration(), b)
	}
}

func TestFilterTerms(t *testing.T) {
	tests := []struct {
		filter string
		max    int
		want   string // the sets, ";"-separated, terms ","-separated
	}{
		{`service = "cart"`, 0, `service="cart"`},
		{`service = "cart" and span.name = "GET"`, 0, `service="cart";operation="cart\x00GET"`},
		{`service in ["a", "b"] and span.name in ["x", "y"]`, 0,
			`service="a",service="b";operation="a\x00x",operation="a\x00y",operation="b\x00x",operation="b\x00y"`},
		{`span.name = "GET"`, 0, ``},
		{`span.kind = "server" and span.status in ["ok", "error"]`, 0, `kind="2";status="1",status="2"`},
		{`span.kind != "server"`, 0, ``},
		{`scope.name = "lib" and scope.name = ""`, 0, `scope="lib"`},
		{`some(events, name = "exception" and event.attr["type"] = "IOError")`, 0, `event="exception";e:type="IOError"`},
		{`event.name = "exception"`, 0, `event="exception"`},
		{`span.attr["code"] = 500`, 0, `a:code="500"`},
		{`resource.attr["code"] = 0`, 0, `r:code="0",r:code="-0"`},
		{`scope.attr["code"] = 0.0`, 0, `s:code="0",s:code="-0"`},
		{`link.attr["code"] = 2.5`, 0, `l:code="2.5"`},
		{`event.attr["code"] = 1e21`, 0, `e:code="1e+21"`},
		{`span.attr["code"] = 9007199254740993`, 0, `a:code="9007199254740993"`},
		{`span.attr["code"] = 1152921504606846976`, 0, `a:code="1152921504606846976",a:code="1152921504606847000"`},
		{`span.attr["code"] = -9223372036854775808.0`, 0, `a:code="-9223372036854776000",a:code="-9223372036854775808"`},
		{`span.attr["code"] = double("NaN")`, 0, ``},
		{`span.attr["ok"] = true and span.attr["s"] = any("x")`, 0, `a:ok="true";a:s="x"`},
		{`attr["k"] = "v"`, 0, `a:k="v",r:k="v"`},
		{`attr["k"] in ["v", "w"]`, 0, `a:k="v",r:k="v",a:k="w",r:k="w"`},
		{`span.attr["k"] = "a long value"`, 5, ``},
		{`span.attr["a long key"] = "v"`, 5, ``},
		{`event.name = "a long name"`, 5, ``},
		{`service = "a long service"`, 5, `service="a long service"`},
		{`span.attr["k"] = "v" or resource.attr["k"] = "w"`, 0, `a:k="v",r:k="w"`},
		{`span.attr["k"] = "v" or span.name = "x"`, 0, ``},
		{`not span.attr["k"] = "v"`, 0, ``},
		{`span.attr["k"] != "v" and span.attr["k"] > "v" and span.attr["k"] =~ "v" and exists(span.attr["k"]) and span.attr["k"] not in ["v"]`, 0, ``},
		{`span.attr["a"] = span.attr["b"]`, 0, ``},
		{`"v" = span.attr["k"]`, 0, `a:k="v"`},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			e, err := ParseFilter(tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			f, err := Compile(e)
			if err != nil {
				t.Fatal(err)
			}
			var sets []string
			for _, set := range f.Terms(tt.max) {
				var ts []string
				for _, tm := range set {
					ts = append(ts, tm.String())
				}
				sets = append(sets, strings.Join(ts, ","))
			}
			if got := strings.Join(sets, ";"); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestFilterBounds(t *testing.T) {
	tests := []struct {
		filter string
		want   FilterBounds
	}{
		{`span.name = "x"`, FilterBounds{StartMax: math.MaxUint64, DurationMax: math.MaxUint64}},
		{`span.duration > 1s and span.duration <= 2s`, FilterBounds{StartMax: math.MaxUint64, DurationMin: 1e9 + 1, DurationMax: 2e9}},
		{`1s <= span.duration and 2s > span.duration`, FilterBounds{StartMax: math.MaxUint64, DurationMin: 1e9, DurationMax: 2e9 - 1}},
		{`span.duration = 5ns`, FilterBounds{StartMax: math.MaxUint64, DurationMin: 5, DurationMax: 5}},
		{`span.duration >= -5s`, FilterBounds{StartMax: math.MaxUint64, DurationMax: math.MaxUint64}},
		{`span.duration < 0s`, FilterBounds{StartMax: math.MaxUint64, DurationMin: 1, DurationMax: 0, Empty: true}},
		{`span.duration > 2s and span.duration < 1s`, FilterBounds{StartMax: math.MaxUint64, DurationMin: 2e9 + 1, DurationMax: 1e9 - 1, Empty: true}},
		{`span.startTime >= time("2025-01-01T00:00:00Z") and span.startTime < time("2025-01-01T01:00:00Z")`,
			FilterBounds{StartMin: filterTestStart, StartMax: filterTestStart + 3600e9 - 1, DurationMax: math.MaxUint64}},
		{`span.startTime <= any("1969-01-01T00:00:00Z")`, FilterBounds{StartMin: 1, StartMax: 0, DurationMax: math.MaxUint64, Empty: true}},
		{`span.startTime > time("1969-01-01T00:00:00Z")`, FilterBounds{StartMax: math.MaxUint64, DurationMax: math.MaxUint64}},
		{`span.duration > 1s or span.duration < 1ms`, FilterBounds{StartMax: math.MaxUint64, DurationMax: math.MaxUint64}},
		{`some(events, span.duration > 1s)`, FilterBounds{StartMax: math.MaxUint64, DurationMax: math.MaxUint64}},
		{`span.duration in [1s]`, FilterBounds{StartMax: math.MaxUint64, DurationMax: math.MaxUint64}},
	}
	for _, tt := range tests {
		e, err := ParseFilter(tt.filter)
		if err != nil {
			t.Fatal(err)
		}
		f, _ := Compile(e)
		if got := f.Bounds(); got != tt.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.filter, got, tt.want)
		}
	}
}

// TestFilterMatchAllocs checks that Match allocates nothing for filters
// that read no ID and no array or map text.
func TestFilterMatchAllocs(t *testing.T) {
	s := filterTestSpan()
	for _, text := range []string{
		`service = "cart" and span.attr["http.status_code"] >= 500 and some(events, name = "exception")`,
		`span.duration > 1s and span.kind in ["server", "client"] and not span.attr["missing"] = 1`,
		`attr["http.status_code"] = any("503") and span.name =~ "cart"`,
		`some(links, link.attr["link.kind"] = "follows") or event.attr["attempt"] > 2.5`,
	} {
		e, err := ParseFilter(text)
		if err != nil {
			t.Fatal(err)
		}
		f, _ := Compile(e)
		if !f.Match(s) {
			t.Fatalf("%s does not match", text)
		}
		if n := testing.AllocsPerRun(100, func() { f.Match(s) }); n != 0 {
			t.Errorf("%s: %v allocations per Match", text, n)
		}
	}
}

// TestFilterConcurrent runs one Filter from several goroutines (run with
// -race): a compiled filter holds no evaluation state.
func TestFilterConcurrent(t *testing.T) {
	e, err := ParseFilter(`some(events, event.name =~ "exc" and event.attr["attempt"] >= 2) and span.traceID =~ "0102" and attr["tags"] = "[\"a\",1,true]"`)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := Compile(e)
	s := filterTestSpan()
	done := make(chan bool)
	for range 4 {
		go func() {
			ok := true
			for range 200 {
				ok = ok && f.Match(s)
			}
			done <- ok
		}()
	}
	for range 4 {
		if !<-done {
			t.Error("a concurrent Match failed")
		}
	}
}
