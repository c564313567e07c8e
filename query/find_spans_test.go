package query

import (
	"cmp"
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/tracedb/tracedb/encoding"
)

// findSpans is the model of FindSpans: every distinct matching span
// (exact duplicates once, by Span.Equal), sorted by the order's key, then
// trace ID, span ID and, shared with the engine for the order among spans
// with equal IDs only, spanHash.
func (m *searchModel) findSpans(q SpanQuery) []*encoding.Span {
	var attrs [][2]string
	for k, v := range q.Attributes {
		attrs = append(attrs, [2]string{k, v})
	}
	type ids struct {
		trace encoding.TraceID
		span  encoding.SpanID
	}
	var out []*encoding.Span
	same := map[ids][]*encoding.Span{}
	for i, s := range m.spans {
		k := ids{s.TraceID, s.SpanID}
		if m.matches(i, q.TraceQuery, attrs) && !slices.ContainsFunc(same[k], s.Equal) {
			same[k] = append(same[k], s)
			out = append(out, s)
		}
	}
	primary := func(s *encoding.Span) uint64 {
		if q.Order == SpanDurationDesc {
			return s.EndUnixNano - s.StartUnixNano
		}
		return s.StartUnixNano
	}
	slices.SortFunc(out, func(a, b *encoding.Span) int {
		c := cmp.Compare(primary(a), primary(b))
		if q.Order != SpanStartAsc {
			c = -c
		}
		return cmp.Or(c, a.TraceID.Compare(b.TraceID), slices.Compare(a.SpanID[:], b.SpanID[:]), cmp.Compare(spanHash(a), spanHash(b)))
	})
	return out
}

// checkSpanWalks walks every page of random span searches, in random
// orders and page sizes, and compares them with the model.
func checkSpanWalks(t *testing.T, e *Engine, m *searchModel, w *workload, fg *filterGen, seed uint64, walks int) {
	t.Helper()
	ctx := context.Background()
	var pages, spans, capped int
	for i := range walks {
		r := rand.New(rand.NewPCG(seed, uint64(i)|1<<61))
		g := &queryGen{r: r, w: w, maxLimit: e.opts.MaxLimit, fg: fg}
		q := SpanQuery{TraceQuery: g.query(), Order: SpanOrder(r.IntN(int(spanOrderCount)))}
		if m.invalid(q.TraceQuery) {
			if _, err := e.FindSpans(ctx, q); !errors.Is(err, ErrInvalidQuery) {
				t.Fatalf("seed %d span walk %d %+v: got %v, want ErrInvalidQuery", seed, i, q, err)
			}
			continue
		}
		want := m.findSpans(q)
		var got []*encoding.Span
		sizes := []int{1, 3, 10, 50, 200}
		const maxPages = 15
		n := 0
		for ; n < maxPages; n++ {
			q.Limit = sizes[r.IntN(len(sizes))]
			p, err := e.FindSpans(ctx, q)
			if err != nil {
				t.Fatalf("seed %d span walk %d page %d %+v: %v", seed, i, n, q, err)
			}
			if len(p.Spans) > q.Limit || (p.NextPageToken != "" && len(p.Spans) != q.Limit) {
				t.Fatalf("seed %d span walk %d page %d: %d spans for limit %d", seed, i, n, len(p.Spans), q.Limit)
			}
			got = append(got, p.Spans...)
			pages++
			if p.NextPageToken == "" {
				break
			}
			q.PageToken = p.NextPageToken
		}
		if n == maxPages {
			capped++
			want = want[:min(len(want), len(got))]
		}
		if len(got) != len(want) {
			t.Fatalf("seed %d span walk %d %+v (%s): got %d spans, want %d", seed, i, q, q.Order, len(got), len(want))
		}
		for j := range got {
			if !got[j].Equal(want[j]) {
				t.Fatalf("seed %d span walk %d %+v (%s): span %d:\n got %+v\nwant %+v", seed, i, q, q.Order, j, got[j], want[j])
			}
		}
		spans += len(got)
	}
	t.Logf("%d span walks: %d pages, %d spans, %d walks cut at the page cap", walks, pages, spans, capped)
}

func TestFindSpans(t *testing.T) {
	api, web := testResource("api"), testResource("web")
	dup := testSpan(1, 1, api, "GET", 100, 10)
	_, e := openWith(t, 2,
		dup,
		testSpan(1, 2, web, "render", 110, 50),
		testSpan(2, 1, api, "POST", 200, 30),
		dup, // an exact duplicate
		testSpan(3, 1, web, "GET", 300, 5),
	)
	ctx := context.Background()
	ids := func(spans []*encoding.Span) (out [][2]byte) {
		for _, s := range spans {
			out = append(out, [2]byte{s.TraceID[15], s.SpanID[7]})
		}
		return out
	}
	cases := []struct {
		order SpanOrder
		q     TraceQuery
		want  [][2]byte
	}{
		{SpanStartDesc, TraceQuery{}, [][2]byte{{3, 1}, {2, 1}, {1, 2}, {1, 1}}},
		{SpanStartAsc, TraceQuery{}, [][2]byte{{1, 1}, {1, 2}, {2, 1}, {3, 1}}},
		{SpanDurationDesc, TraceQuery{}, [][2]byte{{1, 2}, {2, 1}, {1, 1}, {3, 1}}},
		{SpanStartAsc, TraceQuery{Service: "api"}, [][2]byte{{1, 1}, {2, 1}}},
		{SpanDurationDesc, TraceQuery{DurationMax: 30}, [][2]byte{{2, 1}, {1, 1}, {3, 1}}},
	}
	for _, c := range cases {
		t.Run(c.order.String(), func(t *testing.T) {
			q := SpanQuery{TraceQuery: c.q, Order: c.order}
			p, err := e.FindSpans(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if g := ids(p.Spans); !slices.Equal(g, c.want) || p.NextPageToken != "" {
				t.Errorf("got %v (next %q), want %v", g, p.NextPageToken, c.want)
			}
			// One span per page gives the same.
			var walked []*encoding.Span
			q.Limit = 1
			for {
				p, err := e.FindSpans(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				walked = append(walked, p.Spans...)
				if p.NextPageToken == "" {
					break
				}
				q.PageToken = p.NextPageToken
			}
			if g := ids(walked); !slices.Equal(g, c.want) {
				t.Errorf("walked %v, want %v", g, c.want)
			}
		})
	}
	// A token of one order is refused with another, and a trace search's
	// token by a span search.
	p, _ := e.FindSpans(ctx, SpanQuery{TraceQuery: TraceQuery{Limit: 1}})
	if _, err := e.FindSpans(ctx, SpanQuery{TraceQuery: TraceQuery{Limit: 1, PageToken: p.NextPageToken}, Order: SpanStartAsc}); !errors.Is(err, ErrInvalidQuery) {
		t.Errorf("token of another order: %v", err)
	}
	tp, _ := e.FindTraceIDsPage(ctx, TraceQuery{Limit: 1})
	if _, err := e.FindSpans(ctx, SpanQuery{TraceQuery: TraceQuery{Limit: 1, PageToken: tp.NextPageToken}}); !errors.Is(err, ErrInvalidQuery) {
		t.Errorf("trace search token: %v", err)
	}
	if _, err := e.FindSpans(ctx, SpanQuery{Order: 9}); !errors.Is(err, ErrInvalidQuery) {
		t.Errorf("unknown order: %v", err)
	}
}
