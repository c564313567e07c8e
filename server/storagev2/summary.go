package storagev2

import (
	"bytes"
	"cmp"
	"context"
	"slices"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
	pb "github.com/tracedb/tracedb/server/pb/storagev2"
)

// serviceNameKey is the resource attribute that names a span's service.
const serviceNameKey = "service.name"

// summarize reads trace id in chunks and summarizes it; nil when the trace
// has no spans. Memory is bounded by a chunk plus 16 bytes per span (the
// span and parent IDs that orphan counting needs) and the trace's
// services.
//
// The root is the earliest span without a parent (then the smallest span
// ID); when every span has a parent, the earliest span. A span is an
// orphan when it has a parent that is not among the trace's spans.
// Services are listed by name; spans without a service.name count in no
// service.
func (s *server) summarize(ctx context.Context, id encoding.TraceID) (*pb.TraceSummary, error) {
	var z summarizer
	for td, err := range s.traces.GetTrace(ctx, id, db.TimeRange{}) {
		if err != nil {
			return nil, err
		}
		z.add(td)
	}
	if z.spans == 0 {
		return nil, nil
	}
	return z.done(id), nil
}

// summarizer accumulates a trace's summary chunk by chunk.
type summarizer struct {
	spans, errors int
	start, end    uint64
	root          rootCandidate
	hasRoot       bool
	ids, parents  []pcommon.SpanID
	services      map[string]*pb.ServiceSummary
}

type rootCandidate struct {
	parentless bool
	start      uint64
	id         pcommon.SpanID
	service    string
	name       string
}

// better reports whether c is a better root than o.
func (c *rootCandidate) better(o *rootCandidate) bool {
	if c.parentless != o.parentless {
		return c.parentless
	}
	if c.start != o.start {
		return c.start < o.start
	}
	return bytes.Compare(c.id[:], o.id[:]) < 0
}

func (z *summarizer) add(td ptrace.Traces) {
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		svc := ""
		if v, ok := rs.Resource().Attributes().Get(serviceNameKey); ok && v.Type() == pcommon.ValueTypeStr {
			svc = v.Str()
		}
		var ss *pb.ServiceSummary
		if svc != "" {
			if z.services == nil {
				z.services = map[string]*pb.ServiceSummary{}
			}
			if ss = z.services[svc]; ss == nil {
				ss = &pb.ServiceSummary{Name: svc}
				z.services[svc] = ss
			}
		}
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				sp := spans.At(k)
				start, end := uint64(sp.StartTimestamp()), uint64(sp.EndTimestamp())
				if z.spans == 0 || start < z.start {
					z.start = start
				}
				z.end = max(z.end, end)
				z.spans++
				isErr := sp.Status().Code() == ptrace.StatusCodeError
				if isErr {
					z.errors++
				}
				if ss != nil {
					ss.SpanCount++
					if isErr {
						ss.ErrorSpanCount++
					}
				}
				z.ids = append(z.ids, sp.SpanID())
				parent := sp.ParentSpanID()
				if !parent.IsEmpty() {
					z.parents = append(z.parents, parent)
				}
				c := rootCandidate{parentless: parent.IsEmpty(), start: start, id: sp.SpanID()}
				if !z.hasRoot || c.better(&z.root) {
					c.service, c.name = svc, sp.Name()
					z.root, z.hasRoot = c, true
				}
			}
		}
	}
}

func (z *summarizer) done(id encoding.TraceID) *pb.TraceSummary {
	slices.SortFunc(z.ids, func(a, b pcommon.SpanID) int { return bytes.Compare(a[:], b[:]) })
	orphans := 0
	for _, p := range z.parents {
		if _, found := slices.BinarySearchFunc(z.ids, p, func(a, b pcommon.SpanID) int { return bytes.Compare(a[:], b[:]) }); !found {
			orphans++
		}
	}
	sum := &pb.TraceSummary{
		TraceId:              append([]byte(nil), id[:]...),
		RootServiceName:      z.root.service,
		RootOperationName:    z.root.name,
		MinStartTimeUnixNano: z.start,
		MaxEndTimeUnixNano:   z.end,
		SpanCount:            clampInt32(z.spans),
		ErrorSpanCount:       clampInt32(z.errors),
		OrphanSpanCount:      clampInt32(orphans),
	}
	for _, ss := range z.services {
		sum.Services = append(sum.Services, ss)
	}
	slices.SortFunc(sum.Services, func(a, b *pb.ServiceSummary) int { return cmp.Compare(a.Name, b.Name) })
	return sum
}

// clampInt32 converts a count to the proto's int32, saturating.
func clampInt32(n int) int32 {
	return int32(min(n, 1<<31-1))
}
