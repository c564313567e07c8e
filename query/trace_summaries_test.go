package query

import (
	"context"
	"slices"
	"testing"

	"github.com/tracedb/tracedb/encoding"
)

// summary is the model's TraceSummary of trace h, from the raw spans.
func (m *searchModel) summary(h TraceHit) TraceSummary {
	spans := m.traceSpans(h.TraceID) // distinct, by start then span ID
	sum := TraceSummary{Hit: h, SpanCount: len(spans), Start: spans[0].StartUnixNano}
	root := spans[0]
	for _, s := range spans {
		if s.ParentSpanID.IsZero() {
			root = s
			break
		}
	}
	var end uint64
	seen := map[string]bool{}
	for _, s := range spans {
		end = max(end, s.EndUnixNano)
		if s.StatusCode == encoding.StatusError {
			sum.ErrorCount++
		}
		if svc := s.ServiceName(); svc != "" && !seen[svc] {
			seen[svc] = true
			sum.Services = append(sum.Services, svc)
		}
	}
	slices.Sort(sum.Services)
	sum.Duration = end - sum.Start
	sum.RootService, sum.RootOperation = root.ServiceName(), root.Name
	return sum
}

// checkSummaries compares FindTraceSummaries with the model for the hits
// want of q.
func checkSummaries(t *testing.T, e *Engine, m *searchModel, q TraceQuery, want []TraceHit) {
	t.Helper()
	next, seq, err := e.FindTraceSummaries(context.Background(), q)
	if err != nil {
		t.Fatalf("summaries %+v: %v", q, err)
	}
	if page, _ := e.FindTraceIDsPage(context.Background(), q); page.NextPageToken != next {
		t.Fatalf("summaries %+v: next token %q, the search's %q", q, next, page.NextPageToken)
	}
	i := 0
	for got, err := range seq {
		if err != nil {
			t.Fatalf("summaries %+v: %v", q, err)
		}
		if i >= len(want) {
			t.Fatalf("summaries %+v: more than %d", q, len(want))
		}
		w := m.summary(want[i])
		if got.Hit != w.Hit || got.RootService != w.RootService || got.RootOperation != w.RootOperation ||
			got.Start != w.Start || got.Duration != w.Duration || got.SpanCount != w.SpanCount ||
			got.ErrorCount != w.ErrorCount || !slices.Equal(got.Services, w.Services) {
			t.Fatalf("summaries %+v: #%d\n got %+v\nwant %+v", q, i, got, w)
		}
		i++
	}
	if i != len(want) {
		t.Fatalf("summaries %+v: %d, want %d", q, i, len(want))
	}
}

func TestFindTraceSummaries(t *testing.T) {
	api, web := testResource("api"), testResource("web")
	child := testSpan(1, 2, web, "render", 90, 50)
	child.ParentSpanID = encoding.SpanID{7: 1}
	child.StatusCode = encoding.StatusError
	root := testSpan(1, 1, api, "GET /", 100, 10)
	_, e := openWith(t, 2, root, child, root, testSpan(2, 1, api, "POST", 200, 30))
	next, seq, err := e.FindTraceSummaries(context.Background(), TraceQuery{Limit: 1, Service: "web"})
	if err != nil || next != "" {
		t.Fatalf("next %q, err %v", next, err)
	}
	var got []TraceSummary
	for s, err := range seq {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	want := TraceSummary{
		Hit:         TraceHit{TraceID: testTraceID(1), Start: testT0 + 90},
		RootService: "api", RootOperation: "GET /",
		Start: testT0 + 90, Duration: 50, SpanCount: 2, ErrorCount: 1,
		Services: []string{"api", "web"},
	}
	if len(got) != 1 || got[0].Hit != want.Hit || got[0].RootOperation != want.RootOperation || got[0].RootService != want.RootService ||
		got[0].Start != want.Start || got[0].Duration != want.Duration || got[0].SpanCount != want.SpanCount ||
		got[0].ErrorCount != want.ErrorCount || !slices.Equal(got[0].Services, want.Services) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}
