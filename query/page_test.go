package query

import (
	"context"
	"errors"
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/tracedb/tracedb/encoding"
)

func TestPageTokenRoundTrip(t *testing.T) {
	cases := []pageCursor{
		{kind: pageTraces, hash: 1, key: 2, trace: encoding.TraceID{1, 15: 2}},
		{kind: pageSpans, order: 3, hash: math.MaxUint64, key: math.MaxUint64, trace: encoding.TraceID{15: 0xff}, span: encoding.SpanID{7: 9}, tie: 42},
		{kind: pageSpans},
	}
	for _, c := range cases {
		tok := c.encode()
		got, err := decodePageToken(tok, c.kind, c.hash)
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		if got != c {
			t.Fatalf("round trip: got %+v, want %+v", got, c)
		}
	}
}

func TestPageTokenRefused(t *testing.T) {
	good := (&pageCursor{kind: pageTraces, hash: 7, key: 1}).encode()
	raw, _ := pageTokenEncoding.DecodeString(good)
	flip := func(i int) string {
		b := slices.Clone(raw)
		b[i] ^= 1
		return pageTokenEncoding.EncodeToString(b)
	}
	reseal := func(mut func(b []byte)) string {
		b := slices.Clone(raw)
		mut(b)
		n := len(b) - 4
		sum := encoding.Checksum(b[:n])
		b[n], b[n+1], b[n+2], b[n+3] = byte(sum>>24), byte(sum>>16), byte(sum>>8), byte(sum)
		return pageTokenEncoding.EncodeToString(b)
	}
	cases := []struct {
		name, token string
		kind        pageKind
		hash        uint64
		corrupt     bool
		msg         string
	}{
		{"not base64", "!!!", pageTraces, 7, true, "base64"},
		{"short", good[:10], pageTraces, 7, true, "length"},
		{"long", good + "AAAA", pageTraces, 7, true, "length"},
		{"bit flip", flip(20), pageTraces, 7, true, "checksum"},
		{"bad magic", reseal(func(b []byte) { b[0] = 0 }), pageTraces, 7, true, "magic"},
		{"future version", reseal(func(b []byte) { b[1] = 9 }), pageTraces, 7, true, "version"},
		{"unknown kind", reseal(func(b []byte) { b[2] = 9 }), pageTraces, 7, true, "kind"},
		{"other kind", good, pageSpans, 7, false, "trace search, not a span search"},
		{"other query", good, pageTraces, 8, false, "another query"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := decodePageToken(c.token, c.kind, c.hash)
			if !errors.Is(err, ErrInvalidQuery) {
				t.Fatalf("got %v, want ErrInvalidQuery", err)
			}
			if errors.Is(err, encoding.ErrCorrupt) != c.corrupt {
				t.Errorf("%v: corrupt %v, want %v", err, !c.corrupt, c.corrupt)
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Errorf("%v does not say %q", err, c.msg)
			}
		})
	}
}

// FuzzPageToken checks that any string is either refused with
// ErrInvalidQuery or read as a cursor that encodes back to the same token.
func FuzzPageToken(f *testing.F) {
	f.Add((&pageCursor{kind: pageTraces, hash: 7, key: 1, trace: encoding.TraceID{3}}).encode())
	f.Add((&pageCursor{kind: pageSpans, order: 1, hash: 7, key: 1, span: encoding.SpanID{4}, tie: 5}).encode())
	f.Add("")
	f.Add("AAAA")
	f.Fuzz(func(t *testing.T, tok string) {
		raw, err := pageTokenEncoding.DecodeString(tok)
		var hash uint64 = 7
		if err == nil && len(raw) == pageTokenLen {
			hash = readBE64(raw[4:12])
		}
		for _, kind := range []pageKind{pageTraces, pageSpans} {
			c, err := decodePageToken(tok, kind, hash)
			if err != nil {
				if !errors.Is(err, ErrInvalidQuery) {
					t.Fatalf("%q: error %v does not wrap ErrInvalidQuery", tok, err)
				}
				continue
			}
			if back := c.encode(); back != tok {
				t.Fatalf("%q decodes to %+v which encodes to %q", tok, c, back)
			}
		}
	})
}

func readBE64(b []byte) uint64 {
	var v uint64
	for _, x := range b {
		v = v<<8 | uint64(x)
	}
	return v
}

// TestPageTokenQueries checks that a token continues only its own query.
func TestPageTokenQueries(t *testing.T) {
	api := testResource("api")
	_, e := openWith(t, 2,
		testSpan(1, 1, api, "GET", 100, 10),
		testSpan(2, 1, api, "GET", 200, 10),
		testSpan(3, 1, api, "GET", 300, 10),
	)
	ctx := context.Background()
	q := TraceQuery{Service: "api", Limit: 1}
	p, err := e.FindTraceIDsPage(ctx, q)
	if err != nil || len(p.Hits) != 1 || p.NextPageToken == "" {
		t.Fatalf("first page: %+v, %v", p, err)
	}
	other := TraceQuery{Service: "web", Limit: 1, PageToken: p.NextPageToken}
	if _, err := e.FindTraceIDsPage(ctx, other); !errors.Is(err, ErrInvalidQuery) || !strings.Contains(err.Error(), "another query") {
		t.Errorf("token with another query: %v", err)
	}
	// The page size may change.
	q.PageToken, q.Limit = p.NextPageToken, 5
	p, err = e.FindTraceIDsPage(ctx, q)
	if err != nil || string(hitIDs(p.Hits)) != string([]byte{2, 1}) || p.NextPageToken != "" {
		t.Errorf("second page: %+v, %v", p, err)
	}
}

// checkPageWalks walks every page of random queries with random page
// sizes and compares the pages, joined, with the model's whole answer.
func checkPageWalks(t *testing.T, e *Engine, m *searchModel, w *workload, fg *filterGen, seed uint64, walks int) {
	t.Helper()
	ctx := context.Background()
	var pages, traces, capped int
	for i := range walks {
		r := rand.New(rand.NewPCG(seed, uint64(i)|1<<62))
		g := &queryGen{r: r, w: w, maxLimit: e.opts.MaxLimit, fg: fg}
		q := g.query()
		if m.invalid(q) {
			continue
		}
		all := q
		all.Limit = math.MaxInt
		want := m.find(all, 0)
		var got []TraceHit
		sizes := []int{1, 2, 3, 7, 20, 100}
		const maxPages = 40
		n := 0
		for ; n < maxPages; n++ {
			q.Limit = sizes[r.IntN(len(sizes))]
			p, err := e.FindTraceIDsPage(ctx, q)
			if err != nil {
				t.Fatalf("seed %d walk %d page %d %+v: %v", seed, i, n, q, err)
			}
			if len(p.Hits) > q.Limit || (p.NextPageToken != "" && len(p.Hits) != q.Limit) {
				t.Fatalf("seed %d walk %d page %d: %d hits for limit %d, next %q", seed, i, n, len(p.Hits), q.Limit, p.NextPageToken)
			}
			got = append(got, p.Hits...)
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
		if !slices.Equal(got, want) {
			t.Fatalf("seed %d walk %d %+v:\n got %d hits %v\nwant %d hits %v", seed, i, q, len(got), got, len(want), want)
		}
		traces += len(got)
	}
	t.Logf("%d page walks: %d pages, %d traces, %d walks cut at the page cap", walks, pages, traces, capped)
}

var updatePageToken = flag.Bool("update-page-token", false, "rewrite testdata/page_token_v1.golden")

// TestPageTokenGolden pins version 1 of the token format: the golden token
// must decode to the cursor below, and the cursor encode to it.
func TestPageTokenGolden(t *testing.T) {
	const path = "testdata/page_token_v1.golden"
	c := pageCursor{kind: pageSpans, order: byte(SpanDurationDesc), hash: 0x0123456789abcdef, key: 1750000000000000000,
		trace: encoding.TraceID{0: 0xab, 15: 1}, span: encoding.SpanID{0: 0xcd, 7: 2}, tie: 0xfedcba9876543210}
	if *updatePageToken {
		if err := os.WriteFile(path, []byte(c.encode()+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSuffix(string(b), "\n")
	got, err := decodePageToken(tok, c.kind, c.hash)
	if err != nil {
		t.Fatalf("golden token: %v", err)
	}
	if got != c || c.encode() != tok {
		t.Fatalf("golden token decodes to %+v, want %+v; encodes to %q", got, c, c.encode())
	}
}
