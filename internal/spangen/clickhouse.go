package spangen

import (
	"fmt"
	"math/rand/v2"

	"github.com/tracedb/tracedb/encoding"
)

// ClickHouseShape generates the workload of Jaeger's ClickHouse storage
// benchmark, which ran jaeger-tracegen with its defaults of 11 attributes
// per span, 97 distinct keys and 1,000 distinct values:
//
//   - traces of 10 spans: a root and 9 descendants, each span's parent a
//     random earlier span of the trace, each child within its parent's time;
//   - random 16-byte trace IDs and 8-byte span IDs;
//   - 4 services (one Resource pointer each), 4 operations per service;
//   - root durations log-uniform from 1 ms to 2 s, nanosecond precision;
//     traces start on average 1 ms apart;
//   - 11 string attributes per span, keys "attr_NN" from 97, values
//     "val_NNN" from 1,000.
//
// By default keys and values cycle as tracegen makes them: each attribute
// takes the next key (mod 97) and the next value (mod 1,000), so spans
// repeat with a period of 97,000 attributes. With Uniform set, each span
// instead takes 11 distinct keys uniformly at random and each value
// uniformly at random: the same shape with the most entropy it can have.
type ClickHouseShape struct {
	r         *rand.Rand
	uniform   bool
	now       uint64
	keyNo     int
	valNo     int
	resources []*encoding.Resource
	scope     *encoding.Scope
}

// ClickHouse shape parameters.
const (
	chSpans    = 10
	chAttrs    = 11
	chKeys     = 97
	chValues   = 1000
	chServices = 4
	chOps      = 4
)

var (
	chKeyNames = func() (k [chKeys]string) {
		for i := range k {
			k[i] = fmt.Sprintf("attr_%02d", i)
		}
		return k
	}()
	chValNames = func() (v [chValues]string) {
		for i := range v {
			v[i] = fmt.Sprintf("val_%02d", i)
		}
		return v
	}()
)

// NewClickHouseShape returns a generator drawing from r. With uniform set,
// attribute keys and values are drawn at random instead of cycling.
func NewClickHouseShape(r *rand.Rand, uniform bool) *ClickHouseShape {
	g := &ClickHouseShape{r: r, uniform: uniform, now: Epoch}
	for i := range chServices {
		g.resources = append(g.resources, &encoding.Resource{Attrs: []encoding.KeyValue{
			encoding.StrKV("service.name", fmt.Sprintf("tracegen-%02d", i)),
			encoding.StrKV("telemetry.sdk.language", "go"),
			encoding.StrKV("telemetry.sdk.name", "opentelemetry"),
			encoding.StrKV("telemetry.sdk.version", "1.28.0"),
		}})
	}
	g.scope = &encoding.Scope{Name: "tracegen"}
	return g
}

// Trace returns the next trace.
func (g *ClickHouseShape) Trace() []*encoding.Span {
	r := g.r
	g.now += uint64(r.ExpFloat64() * 1e6)
	tid := traceID(r)
	svc := r.IntN(chServices)
	spans := make([]*encoding.Span, chSpans)
	for i := range spans {
		s := &encoding.Span{
			TraceID:  tid,
			SpanID:   spanID(r),
			Flags:    1,
			Kind:     encoding.KindClient,
			Resource: g.resources[svc],
			Scope:    g.scope,
		}
		op := r.IntN(chOps)
		if i == 0 {
			s.Kind = encoding.KindServer
			s.StartUnixNano = g.now
			s.EndUnixNano = g.now + logUniform(r, 1e6, 2e9)
			op = 0
		} else {
			p := spans[r.IntN(i)]
			s.ParentSpanID = p.SpanID
			d := p.EndUnixNano - p.StartUnixNano
			s.StartUnixNano = p.StartUnixNano + r.Uint64N(d+1)
			s.EndUnixNano = s.StartUnixNano + r.Uint64N(p.EndUnixNano-s.StartUnixNano+1)
			if r.IntN(3) == 0 { // some children run on another service
				svc = r.IntN(chServices)
				s.Resource = g.resources[svc]
			}
		}
		s.Name = fmt.Sprintf("op-%d-%d", svc, op)
		s.Attrs = g.attrs()
		spans[i] = s
	}
	return spans
}

func (g *ClickHouseShape) attrs() []encoding.KeyValue {
	kvs := make([]encoding.KeyValue, chAttrs)
	if !g.uniform {
		for i := range kvs {
			kvs[i] = encoding.StrKV(chKeyNames[g.keyNo], chValNames[g.valNo])
			g.keyNo = (g.keyNo + 1) % chKeys
			g.valNo = (g.valNo + 1) % chValues
		}
		return kvs
	}
	var used [chKeys]bool
	for i := range kvs {
		k := g.r.IntN(chKeys)
		for used[k] {
			k = g.r.IntN(chKeys)
		}
		used[k] = true
		kvs[i] = encoding.StrKV(chKeyNames[k], chValNames[g.r.IntN(chValues)])
	}
	return kvs
}
