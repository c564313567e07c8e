package spangen_test

import (
	"math/rand/v2"
	"testing"

	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/internal/spangen"
)

func generators(seed uint64) map[string]func(n int) []*encoding.Span {
	return map[string]func(n int) []*encoding.Span{
		"random": func(n int) []*encoding.Span { return spangen.Random(rand.New(rand.NewPCG(seed, 1)), n) },
		"clickhouse": func(n int) []*encoding.Span {
			return spangen.Spans(spangen.NewClickHouseShape(rand.New(rand.NewPCG(seed, 2)), false), n)
		},
		"clickhouse-uniform": func(n int) []*encoding.Span {
			return spangen.Spans(spangen.NewClickHouseShape(rand.New(rand.NewPCG(seed, 2)), true), n)
		},
		"mix": func(n int) []*encoding.Span { return spangen.Spans(spangen.NewMix(rand.New(rand.NewPCG(seed, 3))), n) },
	}
}

func TestDeterministic(t *testing.T) {
	for name, gen := range generators(42) {
		t.Run(name, func(t *testing.T) {
			a, b := gen(500), generators(42)[name](500)
			if len(a) != 500 || len(b) != 500 {
				t.Fatalf("got %d and %d spans, want 500", len(a), len(b))
			}
			for i := range a {
				if !a[i].Equal(b[i]) {
					t.Fatalf("span %d differs between two runs with the same seed", i)
				}
			}
			c := generators(43)[name](500)
			same := 0
			for i := range a {
				if a[i].Equal(c[i]) {
					same++
				}
			}
			if same == len(a) {
				t.Fatal("another seed gave the same spans")
			}
		})
	}
}

func depth(kvs []encoding.KeyValue) int {
	d := 0
	for _, kv := range kvs {
		if kv.Value.Type == encoding.ValueArray || kv.Value.Type == encoding.ValueMap {
			d = max(d, 1+depth(kv.Value.Kids))
		} else {
			d = max(d, 1)
		}
	}
	return d
}

func TestInvariants(t *testing.T) {
	for name, gen := range generators(7) {
		t.Run(name, func(t *testing.T) {
			for i, s := range gen(3000) {
				if s.TraceID.IsZero() || s.SpanID.IsZero() {
					t.Fatalf("span %d: zero ID", i)
				}
				if s.EndUnixNano < s.StartUnixNano {
					t.Fatalf("span %d: ends before it starts", i)
				}
				if d := depth(s.Attrs); d > spangen.MaxRandomDepth {
					t.Fatalf("span %d: attributes nested %d deep", i, d)
				}
			}
		})
	}
}

func TestRandomVariety(t *testing.T) {
	// Random covers what the property tests rely on.
	seen := map[string]bool{}
	for seed := range 20 {
		for _, s := range spangen.Random(rand.New(rand.NewPCG(uint64(seed), 0)), 200) {
			var walk func(kvs []encoding.KeyValue)
			walk = func(kvs []encoding.KeyValue) {
				for _, kv := range kvs {
					seen["type "+kv.Value.Type.String()] = true
					if kv.Value.Type == encoding.ValueDouble && kv.Value.Num == 1<<63 {
						seen["-0"] = true
					}
					if kv.Value.Type == encoding.ValueArray && kv.Value.Kids == nil {
						seen["nil array"] = true
					}
					walk(kv.Value.Kids)
				}
			}
			walk(s.Attrs)
			for _, ev := range s.Events {
				walk(ev.Attrs)
			}
			for _, l := range s.Links {
				walk(l.Attrs)
			}
			if s.Resource != nil {
				walk(s.Resource.Attrs)
			}
			seen["parent zero"] = seen["parent zero"] || s.ParentSpanID.IsZero()
			seen["nil resource"] = seen["nil resource"] || s.Resource == nil
			seen["events"] = seen["events"] || len(s.Events) > 0
			seen["links"] = seen["links"] || len(s.Links) > 0
			seen["trace state"] = seen["trace state"] || s.TraceState != ""
		}
	}
	for _, want := range []string{"type empty", "type str", "type bool", "type int", "type double", "type bytes",
		"type array", "type map", "-0", "nil array", "parent zero", "nil resource", "events", "links", "trace state"} {
		if !seen[want] {
			t.Errorf("Random never made: %s", want)
		}
	}
}

func TestClickHouseShape(t *testing.T) {
	g := spangen.NewClickHouseShape(rand.New(rand.NewPCG(1, 1)), false)
	for range 20 {
		tr := g.Trace()
		if len(tr) != 10 {
			t.Fatalf("trace of %d spans, want 10", len(tr))
		}
		ids := map[encoding.SpanID]bool{}
		for i, s := range tr {
			if len(s.Attrs) != 11 {
				t.Fatalf("span with %d attributes, want 11", len(s.Attrs))
			}
			if s.TraceID != tr[0].TraceID {
				t.Fatal("spans of one trace with different trace IDs")
			}
			if i > 0 && !ids[s.ParentSpanID] {
				t.Fatalf("span %d: parent is not an earlier span of the trace", i)
			}
			ids[s.SpanID] = true
		}
	}
}

func TestSort(t *testing.T) {
	spans := spangen.Random(rand.New(rand.NewPCG(5, 5)), 300)
	spangen.Sort(spans)
	for i := 1; i < len(spans); i++ {
		a, b := spans[i-1], spans[i]
		if c := a.TraceID.Compare(b.TraceID); c > 0 || c == 0 && a.StartUnixNano > b.StartUnixNano {
			t.Fatalf("spans %d and %d out of order", i-1, i)
		}
	}
}
