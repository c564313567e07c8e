package encoding_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/internal/spangen"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func newCodec(tb testing.TB) *encoding.Codec {
	tb.Helper()
	c, err := encoding.NewCodec()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	return c
}

func encodeGroup(tb testing.TB, c *encoding.Codec, spans []*encoding.Span) []byte {
	tb.Helper()
	b, err := c.NewRowGroupEncoder().Encode(nil, spans)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// decodeGroup decodes every span of b.
func decodeGroup(c *encoding.Codec, b []byte) ([]*encoding.Span, *encoding.RowGroup, error) {
	g, err := c.DecodeRowGroup(b)
	if err != nil {
		return nil, nil, err
	}
	out := make([]*encoding.Span, g.Len())
	for i := range out {
		s, err := g.Span(i)
		if err != nil {
			return nil, nil, err
		}
		if s.TraceID != g.TraceID(i) {
			return nil, nil, fmt.Errorf("span %d: trace ID %s, TraceID(i) says %s", i, s.TraceID, g.TraceID(i))
		}
		if id, r, err := g.SpanOwner(i); err != nil || id != s.SpanID || r != s.Resource || r.ServiceName() != s.ServiceName() {
			return nil, nil, fmt.Errorf("span %d: SpanOwner says %s %p (%v), the span has %s %p", i, id, r, err, s.SpanID, s.Resource)
		}
		out[i] = s
	}
	// TraceIDFrom agrees with the spans for rows in ascending order, in
	// descending order, and with every hint.
	run := 0
	for i := range out {
		if id := g.TraceIDFrom(i, &run); id != out[i].TraceID {
			return nil, nil, fmt.Errorf("span %d: trace ID %s, TraceIDFrom (ascending) says %s", i, out[i].TraceID, id)
		}
	}
	for i := len(out) - 1; i >= 0; i-- {
		if id := g.TraceIDFrom(i, &run); id != out[i].TraceID {
			return nil, nil, fmt.Errorf("span %d: trace ID %s, TraceIDFrom (descending) says %s", i, out[i].TraceID, id)
		}
	}
	for i := range out {
		for _, hint := range []int{-1, 0, i / 3, i, len(out) + 5} {
			run := hint
			if id := g.TraceIDFrom(i, &run); id != out[i].TraceID {
				return nil, nil, fmt.Errorf("span %d: trace ID %s, TraceIDFrom from run %d says %s", i, out[i].TraceID, hint, id)
			}
		}
	}
	return out, g, nil
}

// checkRoundTrip encodes spans (sorting them first), decodes them, and
// checks equality, pointer sharing and TraceRange.
func checkRoundTrip(t *testing.T, c *encoding.Codec, enc *encoding.RowGroupEncoder, spans []*encoding.Span) []byte {
	t.Helper()
	spangen.Sort(spans)
	b, err := enc.Encode(nil, spans)
	if err != nil {
		t.Fatal(err)
	}
	// The time columns alone, before any span is decoded.
	times, err := c.DecodeRowGroup(b)
	if err != nil {
		t.Fatal(err)
	}
	starts, ends, err := times.Times()
	if err != nil {
		t.Fatalf("times: %v", err)
	}
	for i, s := range spans {
		if starts[i] != s.StartUnixNano || ends[i] != s.EndUnixNano {
			t.Fatalf("times of row %d: [%d, %d], want [%d, %d]", i, starts[i], ends[i], s.StartUnixNano, s.EndUnixNano)
		}
	}
	got, g, err := decodeGroup(c, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(spans) {
		t.Fatalf("decoded %d spans, want %d", len(got), len(spans))
	}
	for i := range spans {
		if !got[i].Equal(spans[i]) {
			t.Fatalf("span %d differs:\n got %s\nwant %s", i, dump(got[i]), dump(spans[i]))
		}
	}
	checkSharing(t, spans, got)
	checkTraceRanges(t, spans, g)
	return b
}

// checkSharing checks that decoded spans share a Resource / Scope pointer
// exactly when the originals are equal by content.
func checkSharing(t *testing.T, want, got []*encoding.Span) {
	t.Helper()
	for i := range want {
		for j := i + 1; j < len(want) && j < i+50; j++ {
			if eq, same := want[i].Resource.Equal(want[j].Resource), got[i].Resource == got[j].Resource; eq != same {
				t.Fatalf("spans %d and %d: resources equal %v, decoded pointers same %v", i, j, eq, same)
			}
			if eq, same := want[i].Scope.Equal(want[j].Scope), got[i].Scope == got[j].Scope; eq != same {
				t.Fatalf("spans %d and %d: scopes equal %v, decoded pointers same %v", i, j, eq, same)
			}
		}
	}
}

func checkTraceRanges(t *testing.T, spans []*encoding.Span, g *encoding.RowGroup) {
	t.Helper()
	for i := 0; i < len(spans); {
		j := i
		for j < len(spans) && spans[j].TraceID == spans[i].TraceID {
			j++
		}
		if lo, hi := g.TraceRange(spans[i].TraceID); lo != i || hi != j {
			t.Fatalf("TraceRange(%s) = [%d,%d), want [%d,%d)", spans[i].TraceID, lo, hi, i, j)
		}
		// An absent ID next to this one.
		id := spans[i].TraceID
		id[15]++
		if id != spans[min(j, len(spans)-1)].TraceID && id != spans[i].TraceID {
			if lo, hi := g.TraceRange(id); lo != hi {
				t.Fatalf("TraceRange(absent %s) = [%d,%d)", id, lo, hi)
			}
		}
		i = j
	}
}

func TestRowGroupRoundTripRandom(t *testing.T) {
	c := newCodec(t)
	enc := c.NewRowGroupEncoder() // reused across groups, as a block writer does
	sizes := []int{1, 2, 3, 5, 8, 13, 40, 100, 333, 1000}
	seeds := 300
	if testing.Short() {
		seeds = 30
	}
	for seed := range seeds {
		n := sizes[seed%len(sizes)]
		t.Run(fmt.Sprintf("seed=%d/n=%d", seed, n), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(seed), 1))
			checkRoundTrip(t, c, enc, spangen.Random(r, n))
		})
	}
}

func TestRowGroupRoundTripWorkloads(t *testing.T) {
	c := newCodec(t)
	enc := c.NewRowGroupEncoder()
	for _, w := range workloads() {
		t.Run(w.name, func(t *testing.T) {
			spans := spangen.Spans(w.gen(1), 4096)
			b := checkRoundTrip(t, c, enc, spans)
			t.Logf("%s: %d spans, %d bytes, %.1f bytes/span", w.name, len(spans), len(b), float64(len(b))/float64(len(spans)))
		})
	}
}

type workload struct {
	name string
	gen  func(seed uint64) spangen.Generator
}

func workloads() []workload {
	return []workload{
		{"clickhouse", func(seed uint64) spangen.Generator {
			return spangen.NewClickHouseShape(rand.New(rand.NewPCG(seed, 2)), false)
		}},
		{"clickhouse-uniform", func(seed uint64) spangen.Generator {
			return spangen.NewClickHouseShape(rand.New(rand.NewPCG(seed, 2)), true)
		}},
		{"mix", func(seed uint64) spangen.Generator { return spangen.NewMix(rand.New(rand.NewPCG(seed, 3))) }},
	}
}

// dump renders a span with every field, doubles by bits, for golden files
// and failure messages.
func dump(s *encoding.Span) string {
	var b strings.Builder
	fmt.Fprintf(&b, "span trace=%s span=%s parent=%s state=%q flags=%d name=%q kind=%d start=%d end=%d status=%d msg=%q dropped=%d/%d/%d\n",
		s.TraceID, s.SpanID, s.ParentSpanID, s.TraceState, s.Flags, s.Name, s.Kind, s.StartUnixNano, s.EndUnixNano,
		s.StatusCode, s.StatusMessage, s.DroppedAttrs, s.DroppedEvents, s.DroppedLinks)
	dumpKVs(&b, "  attr ", s.Attrs)
	for _, ev := range s.Events {
		fmt.Fprintf(&b, "  event time=%d name=%q dropped=%d\n", ev.TimeUnixNano, ev.Name, ev.DroppedAttrs)
		dumpKVs(&b, "    attr ", ev.Attrs)
	}
	for _, l := range s.Links {
		fmt.Fprintf(&b, "  link trace=%s span=%s state=%q flags=%d dropped=%d\n", l.TraceID, l.SpanID, l.TraceState, l.Flags, l.DroppedAttrs)
		dumpKVs(&b, "    attr ", l.Attrs)
	}
	r, sc := s.Resource, s.Scope // nil is the same as empty
	if r == nil {
		r = &encoding.Resource{}
	}
	if sc == nil {
		sc = &encoding.Scope{}
	}
	fmt.Fprintf(&b, "  resource schema=%q dropped=%d\n", r.SchemaURL, r.DroppedAttrs)
	dumpKVs(&b, "    attr ", r.Attrs)
	fmt.Fprintf(&b, "  scope name=%q version=%q schema=%q dropped=%d\n", sc.Name, sc.Version, sc.SchemaURL, sc.DroppedAttrs)
	dumpKVs(&b, "    attr ", sc.Attrs)
	return b.String()
}

func dumpKVs(b *strings.Builder, indent string, kvs []encoding.KeyValue) {
	for _, kv := range kvs {
		fmt.Fprintf(b, "%s%q %s", indent, kv.Key, kv.Value.Type)
		switch kv.Value.Type {
		case encoding.ValueStr, encoding.ValueBytes:
			fmt.Fprintf(b, " %q\n", kv.Value.Str)
		case encoding.ValueInt:
			fmt.Fprintf(b, " %d\n", int64(kv.Value.Num))
		case encoding.ValueDouble:
			fmt.Fprintf(b, " %#016x (%g)\n", kv.Value.Num, math.Float64frombits(kv.Value.Num))
		case encoding.ValueBool:
			fmt.Fprintf(b, " %d\n", kv.Value.Num)
		case encoding.ValueArray, encoding.ValueMap:
			fmt.Fprintf(b, " %d\n", len(kv.Value.Kids))
			dumpKVs(b, indent+"  ", kv.Value.Kids)
		default:
			b.WriteString("\n")
		}
	}
}

func TestRowGroupSize(t *testing.T) {
	// Bytes per span of the two benchmark workloads and the stress variant,
	// column by column; run with -v to see them.
	c := newCodec(t)
	for _, w := range workloads() {
		spans := spangen.Spans(w.gen(1), 4096)
		spangen.Sort(spans)
		b := encodeGroup(t, c, spans)
		st, err := encoding.RowGroupColumnStats(c, b, len(spans))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d spans, %d bytes, %.2f bytes/span\n  %s", w.name, len(spans), len(b),
			float64(len(b))/float64(len(spans)), strings.Join(st, "\n  "))
	}
}

func TestRowGroupEmpty(t *testing.T) {
	c := newCodec(t)
	b := encodeGroup(t, c, nil)
	g, err := c.DecodeRowGroup(b)
	if err != nil {
		t.Fatal(err)
	}
	if g.Len() != 0 {
		t.Fatalf("Len = %d", g.Len())
	}
	if lo, hi := g.TraceRange(encoding.TraceID{1}); lo != 0 || hi != 0 {
		t.Fatalf("TraceRange = [%d,%d)", lo, hi)
	}
}

func TestRowGroupAppends(t *testing.T) {
	// Encode appends to dst and leaves what was there alone.
	c := newCodec(t)
	spans := spangen.Random(rand.New(rand.NewPCG(7, 7)), 20)
	spangen.Sort(spans)
	prefix := []byte("prefix")
	b, err := c.NewRowGroupEncoder().Encode(append([]byte(nil), prefix...), spans)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, prefix) {
		t.Fatal("dst prefix lost")
	}
	if got, _, err := decodeGroup(c, b[len(prefix):]); err != nil || len(got) != len(spans) {
		t.Fatalf("decode: %v", err)
	}
}

func TestRowGroupLargeTrace(t *testing.T) {
	// One trace of many spans: parents found through a map, not a scan.
	c := newCodec(t)
	r := rand.New(rand.NewPCG(3, 3))
	tid := encoding.TraceID{9, 9, 9}
	spans := make([]*encoding.Span, 700)
	for i := range spans {
		s := &encoding.Span{TraceID: tid, SpanID: encoding.SpanID{byte(i >> 8), byte(i), 1}, Name: "op",
			StartUnixNano: spangen.Epoch + uint64(i)*1000 + r.Uint64N(1000)}
		s.EndUnixNano = s.StartUnixNano + r.Uint64N(1e9)
		switch {
		case i == 0:
		case i%50 == 0:
			s.ParentSpanID = encoding.SpanID{0xde, 0xad} // dangling
		default:
			s.ParentSpanID = spans[r.IntN(i)].SpanID
		}
		spans[i] = s
	}
	spans[10].SpanID = spans[5].SpanID // shared
	spans[699].ParentSpanID = spans[10].SpanID
	checkRoundTrip(t, c, c.NewRowGroupEncoder(), spans)
}

// nested returns a value with arrays and maps nested to depth (1 for a
// scalar).
func nested(depth int) encoding.Value {
	if depth == 1 {
		return encoding.Value{Type: encoding.ValueInt, Num: 42}
	}
	t := encoding.ValueArray
	if depth%2 == 0 {
		t = encoding.ValueMap
	}
	return encoding.Value{Type: t, Kids: []encoding.KeyValue{{Key: "k", Value: nested(depth - 1)}}}
}

func TestRowGroupDepthLimit(t *testing.T) {
	c := newCodec(t)
	span := func(v encoding.Value) *encoding.Span {
		return &encoding.Span{TraceID: encoding.TraceID{1}, SpanID: encoding.SpanID{1},
			Attrs: []encoding.KeyValue{{Key: "deep", Value: v}}}
	}
	checkRoundTrip(t, c, c.NewRowGroupEncoder(), []*encoding.Span{span(nested(encoding.MaxValueDepth))})
	// An empty array at the deepest level is fine too.
	v := nested(encoding.MaxValueDepth - 1)
	leaf := &v
	for len(leaf.Kids) > 0 {
		leaf = &leaf.Kids[0].Value
	}
	*leaf = encoding.Value{Type: encoding.ValueArray, Kids: []encoding.KeyValue{{Value: encoding.Value{Type: encoding.ValueArray}}}}
	checkRoundTrip(t, c, c.NewRowGroupEncoder(), []*encoding.Span{span(v)})

	if _, err := c.NewRowGroupEncoder().Encode(nil, []*encoding.Span{span(nested(encoding.MaxValueDepth + 1))}); err == nil {
		t.Fatal("encoded a value nested too deep")
	}
}

func TestRowGroupEncodeErrors(t *testing.T) {
	c := newCodec(t)
	ok := func() *encoding.Span {
		return &encoding.Span{TraceID: encoding.TraceID{5}, SpanID: encoding.SpanID{1}}
	}
	deep := []encoding.KeyValue{{Key: "x", Value: nested(encoding.MaxValueDepth + 1)}}
	bad := []encoding.KeyValue{{Key: "x", Value: encoding.Value{Type: 99}}}
	tooMany := make([]*encoding.Span, encoding.MaxRowGroupSpans+1)
	for i := range tooMany {
		tooMany[i] = ok()
	}
	tests := []struct {
		name  string
		spans func() []*encoding.Span
		want  string
	}{
		{"nil span", func() []*encoding.Span { return []*encoding.Span{ok(), nil} }, "nil"},
		{"unsorted", func() []*encoding.Span {
			a, b := ok(), ok()
			a.TraceID[0] = 6
			return []*encoding.Span{a, b}
		}, "sorted"},
		{"too many", func() []*encoding.Span { return tooMany }, "at most"},
		{"deep span attr", func() []*encoding.Span { s := ok(); s.Attrs = deep; return []*encoding.Span{s} }, "deeper"},
		{"deep event attr", func() []*encoding.Span {
			s := ok()
			s.Events = []encoding.Event{{Attrs: deep}}
			return []*encoding.Span{s}
		}, "deeper"},
		{"deep link attr", func() []*encoding.Span {
			s := ok()
			s.Links = []encoding.Link{{Attrs: deep}}
			return []*encoding.Span{s}
		}, "deeper"},
		{"deep resource attr", func() []*encoding.Span {
			s := ok()
			s.Resource = &encoding.Resource{Attrs: deep}
			return []*encoding.Span{s}
		}, "deeper"},
		{"deep scope attr", func() []*encoding.Span {
			s := ok()
			s.Scope = &encoding.Scope{Attrs: deep}
			return []*encoding.Span{s}
		}, "deeper"},
		{"invalid type", func() []*encoding.Span { s := ok(); s.Attrs = bad; return []*encoding.Span{s} }, "invalid value type"},
		{"invalid type in resource", func() []*encoding.Span {
			s := ok()
			s.Resource = &encoding.Resource{Attrs: bad}
			return []*encoding.Span{s}
		}, "invalid value type"},
	}
	enc := c.NewRowGroupEncoder()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte("keep")
			out, err := enc.Encode(dst, tt.spans())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if string(out) != "keep" {
				t.Fatalf("dst changed to %q", out)
			}
		})
	}
	// The encoder still works after errors.
	checkRoundTrip(t, c, enc, spangen.Random(rand.New(rand.NewPCG(1, 1)), 30))
}

func TestRowGroupStoresOnlyMeaningfulFields(t *testing.T) {
	// Fields a value's type does not name are not stored (see Value).
	c := newCodec(t)
	in := &encoding.Span{TraceID: encoding.TraceID{1}, SpanID: encoding.SpanID{1}, Attrs: []encoding.KeyValue{
		{Key: "s", Value: encoding.Value{Type: encoding.ValueStr, Str: "x", Num: 7, Kids: []encoding.KeyValue{{Key: "k"}}}},
		{Key: "i", Value: encoding.Value{Type: encoding.ValueInt, Str: "junk", Num: 7}},
		{Key: "e", Value: encoding.Value{Type: encoding.ValueEmpty, Str: "junk", Num: 7}},
		{Key: "a", Value: encoding.Value{Type: encoding.ValueArray, Str: "junk", Num: 7}},
	}}
	want := []encoding.KeyValue{
		{Key: "s", Value: encoding.Value{Type: encoding.ValueStr, Str: "x"}},
		{Key: "i", Value: encoding.Value{Type: encoding.ValueInt, Num: 7}},
		{Key: "e", Value: encoding.Value{Type: encoding.ValueEmpty}},
		{Key: "a", Value: encoding.Value{Type: encoding.ValueArray}},
	}
	got, _, err := decodeGroup(c, encodeGroup(t, c, []*encoding.Span{in}))
	if err != nil {
		t.Fatal(err)
	}
	if exp := (&encoding.Span{TraceID: in.TraceID, SpanID: in.SpanID, Attrs: want}); !got[0].Equal(exp) {
		t.Fatalf("got %s", dump(got[0]))
	}
}

func TestRowGroupDoesNotAlias(t *testing.T) {
	// The RowGroup must stay valid after the bytes it came from change (a
	// Badger value is valid only inside its transaction).
	c := newCodec(t)
	spans := spangen.Random(rand.New(rand.NewPCG(11, 11)), 200)
	spangen.Sort(spans)
	for _, enc := range []*encoding.RowGroupEncoder{c.NewRowGroupEncoder(), c.NewRawRowGroupEncoder()} {
		b, err := enc.Encode(nil, spans)
		if err != nil {
			t.Fatal(err)
		}
		g, err := c.DecodeRowGroup(b)
		if err != nil {
			t.Fatal(err)
		}
		for i := range b {
			b[i] = 0xa5
		}
		for i := range spans {
			s, err := g.Span(i)
			if err != nil {
				t.Fatal(err)
			}
			if !s.Equal(spans[i]) {
				t.Fatalf("span %d changed with the input bytes", i)
			}
		}
	}
}

func TestRowGroupConcurrentDecode(t *testing.T) {
	c := newCodec(t)
	var groups [][]byte
	var want [][]*encoding.Span
	for seed := range 8 {
		spans := spangen.Random(rand.New(rand.NewPCG(uint64(seed), 5)), 150)
		spangen.Sort(spans)
		groups = append(groups, encodeGroup(t, c, spans))
		want = append(want, spans)
	}
	errs := make(chan error, 4*len(groups))
	for w := range 4 {
		go func() {
			for k := range groups {
				k = (k + w) % len(groups)
				got, _, err := decodeGroup(c, groups[k])
				if err == nil {
					for i := range got {
						if !got[i].Equal(want[k][i]) {
							err = fmt.Errorf("group %d span %d differs", k, i)
							break
						}
					}
				}
				errs <- err
			}
		}()
	}
	for range 4 * len(groups) {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// smallGroups returns small encodings, compressed and raw, for the
// corruption tests and the fuzz seeds.
func smallGroups(tb testing.TB, c *encoding.Codec) [][]byte {
	var out [][]byte
	for seed, n := range []int{1, 3, 6} {
		spans := spangen.Random(rand.New(rand.NewPCG(uint64(seed), 9)), n)
		spangen.Sort(spans)
		for _, enc := range []*encoding.RowGroupEncoder{c.NewRowGroupEncoder(), c.NewRawRowGroupEncoder()} {
			b, err := enc.Encode(nil, spans)
			if err != nil {
				tb.Fatal(err)
			}
			out = append(out, b)
		}
	}
	ch := spangen.Spans(spangen.NewClickHouseShape(rand.New(rand.NewPCG(1, 1)), false), 10)
	mix := spangen.Spans(spangen.NewMix(rand.New(rand.NewPCG(1, 1))), 12)
	for _, spans := range [][]*encoding.Span{ch, mix} {
		spangen.Sort(spans)
		b, err := c.NewRawRowGroupEncoder().Encode(nil, spans)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b, encodeGroup(tb, c, spans))
	}
	return append(out, encodeGroup(tb, c, nil))
}

// checkCorrupt decodes b fully and fails unless that errs with ErrCorrupt
// or yields exactly want.
func checkCorrupt(t *testing.T, c *encoding.Codec, b []byte, want []*encoding.Span, what string) {
	t.Helper()
	got, _, err := decodeGroup(c, b)
	if err != nil {
		if !errors.Is(err, encoding.ErrCorrupt) {
			t.Fatalf("%s: error %v does not wrap ErrCorrupt", what, err)
		}
		return
	}
	if len(got) != len(want) {
		t.Fatalf("%s: decoded %d spans, want %d or an error", what, len(got), len(want))
	}
	for i := range got {
		if !got[i].Equal(want[i]) {
			t.Fatalf("%s: span %d decoded differently without an error", what, i)
		}
	}
}

func TestRowGroupByteFlips(t *testing.T) {
	c := newCodec(t)
	for gi, b := range smallGroups(t, c) {
		want, _, err := decodeGroup(c, b)
		if err != nil {
			t.Fatal(err)
		}
		for i := range b {
			for _, x := range []byte{0x01, 0x80, 0xff} {
				m := append([]byte(nil), b...)
				m[i] ^= x
				checkCorrupt(t, c, m, want, fmt.Sprintf("group %d byte %d ^ %#x", gi, i, x))
				// With the checksums repaired the column decoders see the
				// flip: they may decode something else but must not panic
				// or return a non-corruption error.
				if f := encoding.FixRowGroupChecksums(m); f != nil {
					if _, _, err := decodeGroup(c, f); err != nil && !errors.Is(err, encoding.ErrCorrupt) {
						t.Fatalf("group %d byte %d ^ %#x, checksums fixed: %v", gi, i, x, err)
					}
				}
			}
		}
	}
}

func TestRowGroupTruncation(t *testing.T) {
	c := newCodec(t)
	for gi, b := range smallGroups(t, c) {
		for n := range len(b) {
			if _, _, err := decodeGroup(c, b[:n]); !errors.Is(err, encoding.ErrCorrupt) {
				t.Fatalf("group %d cut to %d of %d bytes: error %v, want ErrCorrupt", gi, n, len(b), err)
			}
		}
		if _, _, err := decodeGroup(c, append(append([]byte(nil), b...), 0)); !errors.Is(err, encoding.ErrCorrupt) {
			t.Fatalf("group %d with a trailing byte: error %v, want ErrCorrupt", gi, err)
		}
	}
}

// Golden file: a row group of spangen.Random(goldenSeed) as version 1 wrote
// it, and a dump of the spans it holds. It must decode to the same spans
// forever; regenerate it only for a new format version (-update).
const goldenSeed = 20250101

func TestRowGroupGolden(t *testing.T) {
	c := newCodec(t)
	bin := filepath.Join("testdata", "rowgroup", "v1.bin")
	txt := filepath.Join("testdata", "rowgroup", "v1.txt")
	if *update {
		spans := spangen.Random(rand.New(rand.NewPCG(goldenSeed, goldenSeed)), 60)
		spans = append(spans, spangen.Spans(spangen.NewMix(rand.New(rand.NewPCG(goldenSeed, 1))), 40)...)
		spangen.Sort(spans)
		var d strings.Builder
		for _, s := range spans {
			d.WriteString(dump(s))
		}
		if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, encodeGroup(t, c, spans), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(txt, []byte(d.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(txt)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := decodeGroup(c, b)
	if err != nil {
		t.Fatal(err)
	}
	var d strings.Builder
	for _, s := range got {
		d.WriteString(dump(s))
	}
	if d.String() != string(want) {
		t.Fatalf("%s no longer decodes to %s", bin, txt)
	}
}

func BenchmarkRowGroupLevels(b *testing.B) {
	// Size and encoding speed of each zstd level, to choose one.
	for _, w := range workloads() {
		spans := spangen.Spans(w.gen(1), 4096)
		spangen.Sort(spans)
		for l := 1; l <= 4; l++ {
			b.Run(fmt.Sprintf("%s/level=%d", w.name, l), func(b *testing.B) {
				c, err := encoding.NewCodecLevel(l)
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				enc := c.NewRowGroupEncoder()
				var out []byte
				for b.Loop() {
					if out, err = enc.Encode(out[:0], spans); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(spans)*b.N)/b.Elapsed().Seconds(), "spans/s")
				b.ReportMetric(float64(len(out))/float64(len(spans)), "bytes/span")
			})
		}
	}
}

func BenchmarkRowGroupEncode(b *testing.B) {
	c := newCodec(b)
	for _, w := range workloads() {
		b.Run(w.name, func(b *testing.B) {
			spans := spangen.Spans(w.gen(1), 4096)
			spangen.Sort(spans)
			enc := c.NewRowGroupEncoder()
			var out []byte
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if out, err = enc.Encode(out[:0], spans); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(spans)*b.N)/b.Elapsed().Seconds(), "spans/s")
			b.ReportMetric(float64(len(out))/float64(len(spans)), "bytes/span")
		})
	}
}

// BenchmarkRowGroupDecode decodes a 4,096-span group: "all" materialises
// every span (a scan or a compaction), "trace" the ~10 spans of one trace
// (trace by ID).
func BenchmarkRowGroupDecode(b *testing.B) {
	c := newCodec(b)
	for _, w := range workloads() {
		spans := spangen.Spans(w.gen(1), 4096)
		spangen.Sort(spans)
		enc := encodeGroup(b, c, spans)
		b.Run(w.name+"/all", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				g, err := c.DecodeRowGroup(enc)
				if err != nil {
					b.Fatal(err)
				}
				for i := range g.Len() {
					if _, err := g.Span(i); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(len(spans)*b.N)/b.Elapsed().Seconds(), "spans/s")
			b.ReportMetric(float64(len(enc))/float64(len(spans)), "bytes/span")
		})
		b.Run(w.name+"/trace", func(b *testing.B) {
			id := spans[len(spans)/2].TraceID
			b.ReportAllocs()
			for b.Loop() {
				g, err := c.DecodeRowGroup(enc)
				if err != nil {
					b.Fatal(err)
				}
				lo, hi := g.TraceRange(id)
				for i := lo; i < hi; i++ {
					if _, err := g.Span(i); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
