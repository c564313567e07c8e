package query

import (
	"context"
	"testing"
)

// BenchmarkFilterSearch measures searches with a structured filter: one
// whose terms select the candidates, one that only Match can answer.
func BenchmarkFilterSearch(b *testing.B) {
	e, _ := benchEngine(b)
	for _, bc := range []struct{ name, filter string }{
		{"terms", `resource.service = "frontend" and span.attr["http.method"] = "GET"`},
		{"terms and regex", `resource.service = "checkout" and span.name =~ "^GET"`},
		{"match only", `span.duration > 100ms and not span.status = "ok"`},
	} {
		x, err := ParseFilter(bc.filter)
		if err != nil {
			b.Fatal(err)
		}
		f, err := Compile(x)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.FindTraceIDs(context.Background(), TraceQuery{Filter: f}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFindTraceIDsPage measures the tenth page of 20 traces: the
// cost of leaving out the earlier pages' traces.
func BenchmarkFindTraceIDsPage(b *testing.B) {
	e, _ := benchEngine(b)
	ctx := context.Background()
	q := TraceQuery{Service: "frontend", Limit: 20}
	for range 9 {
		p, err := e.FindTraceIDsPage(ctx, q)
		if err != nil || p.NextPageToken == "" {
			b.Fatalf("%v, token %q", err, p.NextPageToken)
		}
		q.PageToken = p.NextPageToken
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.FindTraceIDsPage(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFindSpans(b *testing.B) {
	e, _ := benchEngine(b)
	for _, o := range []SpanOrder{SpanStartDesc, SpanStartAsc, SpanDurationDesc} {
		b.Run(o.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.FindSpans(context.Background(), SpanQuery{TraceQuery: TraceQuery{Service: "frontend", Limit: 100}, Order: o}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkFindTraceSummaries(b *testing.B) {
	e, _ := benchEngine(b)
	b.ReportAllocs()
	for b.Loop() {
		_, seq, err := e.FindTraceSummaries(context.Background(), TraceQuery{Service: "frontend"})
		if err != nil {
			b.Fatal(err)
		}
		for _, err := range seq {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}
