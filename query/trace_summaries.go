package query

import (
	"bytes"
	"context"
	"fmt"
	"iter"
	"slices"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
)

// TraceSummary describes one trace found by a search, computed from all
// its spans (exact duplicates once), matching or not.
type TraceSummary struct {
	Hit TraceHit
	// RootService and RootOperation are the service and the name of the
	// root span: the earliest span without a parent (then the smallest
	// span ID); when every span has a parent (the root is missing), the
	// earliest span.
	RootService, RootOperation string
	// Start is the earliest span start, Unix ns; Duration runs from it to
	// the latest span end, in ns.
	Start, Duration uint64
	// SpanCount counts the spans, ErrorCount those whose status is Error.
	SpanCount, ErrorCount int
	// Services are the distinct non-empty services of the spans, sorted.
	Services []string
}

// FindTraceSummaries finds one page of traces as FindTraceIDsPage does and
// returns the next page's token and the sequence of the page's summaries,
// in the page's order. Each summary is computed while its trace is read in
// bounded chunks, so memory stays bounded by the chunk size and the number
// of distinct services of a trace, whatever the traces' sizes. A trace
// whose spans vanished between the search and the read (dropped by
// retention) yields nothing. Errors of the read are yielded once and end
// the sequence.
func (e *Engine) FindTraceSummaries(ctx context.Context, q TraceQuery) (next string, summaries iter.Seq2[TraceSummary, error], err error) {
	page, err := e.FindTraceIDsPage(ctx, q)
	if err != nil {
		return "", nil, err
	}
	return page.NextPageToken, func(yield func(TraceSummary, error) bool) {
		var buf []*encoding.Span
		for _, h := range page.Hits {
			sum := summarizer{sum: TraceSummary{Hit: h}}
			for td, err := range e.store.GetTrace(ctx, h.TraceID, db.TimeRange{}) {
				if err != nil {
					yield(TraceSummary{}, fmt.Errorf("find trace summaries: read trace %s: %w", h.TraceID, err))
					return
				}
				buf, _ = encoding.FromTraces(buf[:0], nil, td)
				for _, s := range buf {
					sum.add(s)
				}
			}
			if sum.sum.SpanCount == 0 {
				continue
			}
			if !yield(sum.done(), nil) {
				return
			}
		}
	}, nil
}

// summarizer accumulates a TraceSummary span by span.
type summarizer struct {
	sum      TraceSummary
	end      uint64
	root     *encoding.Span // the best root candidate so far
	services map[string]bool
}

func (z *summarizer) add(s *encoding.Span) {
	if z.sum.SpanCount == 0 || s.StartUnixNano < z.sum.Start {
		z.sum.Start = s.StartUnixNano
	}
	z.end = max(z.end, s.EndUnixNano)
	z.sum.SpanCount++
	if s.StatusCode == encoding.StatusError {
		z.sum.ErrorCount++
	}
	if svc := s.ServiceName(); svc != "" {
		if z.services == nil {
			z.services = map[string]bool{}
		}
		z.services[svc] = true
	}
	if z.root == nil || rootBefore(s, z.root) {
		z.root = s
	}
}

// rootBefore reports whether a is a better root than b: parentless first,
// then earlier, then the smaller span ID.
func rootBefore(a, b *encoding.Span) bool {
	if ap, bp := a.ParentSpanID.IsZero(), b.ParentSpanID.IsZero(); ap != bp {
		return ap
	}
	if a.StartUnixNano != b.StartUnixNano {
		return a.StartUnixNano < b.StartUnixNano
	}
	return bytes.Compare(a.SpanID[:], b.SpanID[:]) < 0
}

func (z *summarizer) done() TraceSummary {
	z.sum.Duration = z.end - min(z.end, z.sum.Start)
	z.sum.RootService, z.sum.RootOperation = z.root.ServiceName(), z.root.Name
	for svc := range z.services {
		z.sum.Services = append(z.sum.Services, svc)
	}
	slices.Sort(z.sum.Services)
	return z.sum
}
