package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
)

func TestTraceWaterfallGolden(t *testing.T) {
	dir := fixtureStore(t)
	out := mustRun(t, "trace", fmtID(fixtureCheckoutID), "--width", "100", "--data-dir", dir)
	golden(t, "trace_waterfall.golden", out)
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if n := len([]rune(line)); n > 100 {
			t.Errorf("line of %d runes, over --width 100: %q", n, line)
		}
	}
}

func TestHistogramGolden(t *testing.T) {
	dir := fixtureStore(t)
	for _, tc := range []struct {
		golden string
		args   []string
	}{
		{"histogram_all.golden", nil},
		{"histogram_database.golden", []string{"--service", "database", "--rows", "12"}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			out := mustRun(t, append([]string{"histogram", "--width", "100", "--data-dir", dir}, tc.args...)...)
			golden(t, tc.golden, out)
		})
	}
	// The filter of histogram's help example; database's client spans are
	// its SELECTs and the checkout's INSERT.
	out := mustRun(t, "histogram", "--filter", `resource.service = "database" and span.kind = "client"`, "--data-dir", dir)
	if !strings.Contains(out, "\n31 spans  p50 ") {
		t.Errorf("filtered histogram:\n%s", out)
	}
}

func TestTraceOutputs(t *testing.T) {
	dir := fixtureStore(t)
	id := fmtID(fixtureCheckoutID)

	var jt jsonTrace
	if err := json.Unmarshal([]byte(mustRun(t, "trace", id, "-o", "json", "--data-dir", dir)), &jt); err != nil {
		t.Fatal(err)
	}
	if jt.TraceID != id || len(jt.Spans) != len(checkoutTrace) {
		t.Fatalf("json: trace %s with %d spans, want %s with %d", jt.TraceID, len(jt.Spans), id, len(checkoutTrace))
	}
	if s := jt.Spans[0]; s.Service != "frontend" || s.Kind != "server" || s.Attributes["http.route"] != "/checkout" || s.Start != "2024-05-01T12:00:00Z" {
		t.Errorf("json: first span %+v", s)
	}

	out := mustRun(t, "trace", id, "-o", "otlp-json", "--data-dir", dir)
	if !strings.HasPrefix(out, `{"resourceSpans":`) || strings.Count(out, "\n") != 1 {
		t.Errorf("otlp-json: want one TracesData line, got:\n%s", out)
	}

	out = mustRun(t, "trace", id, "--max-spans", "3", "--width", "80", "--data-dir", dir)
	if !strings.Contains(out, "only the first 3 spans") || strings.Count(out, "\n") != 3+3+1 {
		t.Errorf("--max-spans 3:\n%s", out)
	}

	_, _, err := run(t, "trace", fmtID(99), "--data-dir", dir)
	if err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("unknown trace: err = %v", err)
	}
	_, _, err = run(t, "trace", fmtID(fixtureAcmeID), "--data-dir", dir)
	if err == nil {
		t.Errorf("acme's trace found without --tenant acme")
	}
	out = mustRun(t, "trace", fmtID(fixtureAcmeID), "--tenant", "acme", "--data-dir", dir, "--width", "80")
	if !strings.Contains(out, "gateway POST /api/orders") {
		t.Errorf("acme's trace:\n%s", out)
	}
}

func TestSearch(t *testing.T) {
	dir := fixtureStore(t)
	for _, tc := range []struct {
		name  string
		args  []string
		want  []int // trace numbers, newest first
		stats string
	}{
		{"error in payment", []string{"--service", "payment", "--tag", "error=true"}, []int{1}, "1 traces"},
		{"operation and duration", []string{"--service", "database", "--operation", "SELECT products", "--min-duration", "80ms", "--max-duration", "95ms"}, []int{31, 26, 21, 14, 9, 4}, "6 traces"},
		{"time range", []string{"--start", "2024-05-01T12:29:00Z", "--end", "2024-05-01T12:29:59Z"}, []int{30}, "1 traces"},
		{"filter", []string{"--filter", `resource.service = "queue" and span.kind = "producer"`}, []int{1}, "1 traces"},
		{"filter on events", []string{"--filter", `some(events, event.name = "retry")`}, []int{1}, "1 traces"},
		{"limit", []string{"--service", "catalog", "--limit", "2"}, []int{31, 30}, "2 traces"},
		{"tenant", []string{"--tenant", "acme"}, []int{fixtureAcmeID}, "1 traces"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := mustRun(t, append([]string{"search", "--data-dir", dir}, tc.args...)...)
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if len(lines) != len(tc.want)+2 || lines[len(lines)-1] != tc.stats {
				t.Fatalf("got:\n%s", out)
			}
			for i, n := range tc.want {
				if !strings.HasPrefix(lines[i+1], fmtID(n)+" ") {
					t.Errorf("line %d: %q, want trace %s", i+1, lines[i+1], fmtID(n))
				}
			}
		})
	}
	out := mustRun(t, "search", "--service", "payment", "-o", "json", "--data-dir", dir)
	var s jsonSummary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatal(err)
	}
	if s.TraceID != fmtID(1) || s.Spans != 8 || s.Errors != 1 || s.RootOperation != "GET /checkout" || len(s.Services) != 8 {
		t.Errorf("json summary %+v", s)
	}
	_, errs, _ := run(t, "search", "--limit", "5", "--data-dir", dir)
	if !strings.Contains(errs, "--page-token") {
		t.Errorf("a full page gives no continuation hint on stderr: %q", errs)
	}
}

func TestServicesOperationsDeps(t *testing.T) {
	dir := fixtureStore(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"services"}, "auth\ncache\ncart\ncatalog\ndatabase\nfrontend\ngateway\npayment\nqueue\n"},
		{[]string{"services", "--tenant", "acme"}, "frontend\ngateway\n"},
		{[]string{"operations", "frontend"}, "OPERATION      KIND\nGET /checkout  server\nGET /products  server\n"},
		{[]string{"operations", "queue", "--kind", "producer"}, "OPERATION              KIND\npublish order.created  producer\n"},
		{[]string{"operations", "queue", "--kind", "server"}, "OPERATION  KIND\n"},
		{[]string{"deps", "--start", "2024-05-01T12:01:00Z"}, "PARENT    CHILD     CALLS\ncatalog   database  30\nfrontend  catalog   30\n"},
		{[]string{"deps", "--end", "2024-05-01T12:00:30Z", "-o", "dot"}, `digraph tracedb {
  rankdir=LR;
  node [shape=box];
  "cart" -> "cache" [label="1"];
  "frontend" -> "gateway" [label="1"];
  "gateway" -> "auth" [label="1"];
  "gateway" -> "cart" [label="1"];
  "gateway" -> "payment" [label="1"];
  "payment" -> "database" [label="1"];
  "payment" -> "queue" [label="1"];
}
`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			if got := mustRun(t, append(tc.args, "--data-dir", dir)...); got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestRate(t *testing.T) {
	dir := fixtureStore(t)
	out := mustRun(t, "rate", "--start", "2024-05-01T12:00:00Z", "--end", "2024-05-01T12:09:59.999Z", "--step", "5m",
		"-o", "table", "--data-dir", dir)
	want := []string{
		"2024-05-01T12:00:00.000Z to 2024-05-01T12:09:59.999Z, step 5m0s, 2 steps",
		"START  REQUESTS   REQ/S  ERRORS    ERR/S  ERROR RATIO",
		"2024-05-01T12:00:00.000Z        20  0.0667       2  0.00667        10.0%",
		"2024-05-01T12:05:00.000Z        15    0.05       0        0         0.0%",
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("lacks %q:\n%s", w, out)
		}
	}
	// Without a range, the store's own, in whole steps.
	out = mustRun(t, "rate", "--width", "100", "--data-dir", dir)
	for _, w := range []string{"to 2024-05-01T12:30:59.999Z, step 1m0s, 31 steps", "total 98, peak 0.133/s", "total 5, peak 0.0167/s", "overall 5.1%, peak 33.3%"} {
		if !strings.Contains(out, w) {
			t.Errorf("lacks %q:\n%s", w, out)
		}
	}
}

func TestStats(t *testing.T) {
	dir := fixtureStore(t)
	out := mustRun(t, "stats", "--partitions", "--data-dir", dir)
	for _, re := range []string{
		"TENANT   PARTITIONS  BLOCKS  SPANS  HEAD SPANS",
		"acme     1           1       2      0",
		"default  1           2       98     0",
		"default  476268     2       98",
	} {
		if !strings.Contains(out, re) {
			t.Errorf("lacks %q:\n%s", re, out)
		}
	}
	out = mustRun(t, "stats", "--tenant", "acme", "--data-dir", dir)
	if strings.Contains(out, "default") || !strings.Contains(out, "acme") {
		t.Errorf("--tenant acme:\n%s", out)
	}
}

// TestExportImportRoundTrip exports the fixture in both formats, imports
// each into a fresh store, and compares every trace span by span.
func TestExportImportRoundTrip(t *testing.T) {
	src := fixtureStore(t)
	ids := []int{fixtureCheckoutID}
	for i := range fixtureBrowseTraces {
		ids = append(ids, i+2)
	}
	for _, format := range []string{"json", "proto"} {
		t.Run(format, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "export."+format)
			mustRun(t, "export", "--format", format, "-o", file, "--batch-spans", "7", "--data-dir", src)
			dst := filepath.Join(t.TempDir(), "copy")
			out := mustRun(t, "import", file, "--data-dir", dst) // auto-detected
			if !strings.HasPrefix(out, "imported 98 spans from 14 TracesData") {
				t.Errorf("import said %q", out)
			}
			compareTraces(t, src, dst, db.DefaultTenant, ids)
		})
	}
	t.Run("time range and tenant", func(t *testing.T) {
		out := mustRun(t, "export", "--tenant", "acme", "--end", "2024-05-01T12:00:00.003Z", "--data-dir", src)
		dst := filepath.Join(t.TempDir(), "copy")
		root := testRoot()
		root.SetIn(strings.NewReader(out))
		var stdout bytes.Buffer
		root.SetOut(&stdout)
		root.SetErr(&stdout)
		root.SetArgs([]string{"import", "-", "--format", "json", "--tenant", "acme", "--data-dir", dst})
		if err := root.Execute(); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(stdout.String(), "imported 2 spans from 1 TracesData") {
			t.Errorf("import said %q", stdout.String())
		}
		compareTraces(t, src, dst, "acme", []int{fixtureAcmeID})
	})
}

// compareTraces checks that traces ids of tenant are the same in stores a
// and b.
func compareTraces(t *testing.T, a, b, tenant string, ids []int) {
	t.Helper()
	read := func(dir string) map[encoding.TraceID][]*encoding.Span {
		store, err := db.Open(dir, db.Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		ctx := db.WithTenant(context.Background(), tenant)
		out := map[encoding.TraceID][]*encoding.Span{}
		for _, n := range ids {
			id := fixtureTraceID(n)
			for s, err := range store.TraceSpans(ctx, id, db.TimeRange{}) {
				if err != nil {
					t.Fatal(err)
				}
				out[id] = append(out[id], s)
			}
			slices.SortFunc(out[id], func(x, y *encoding.Span) int {
				return cmp.Or(cmp.Compare(x.StartUnixNano, y.StartUnixNano), bytes.Compare(x.SpanID[:], y.SpanID[:]))
			})
		}
		return out
	}
	want, got := read(a), read(b)
	for _, n := range ids {
		id := fixtureTraceID(n)
		w, g := want[id], got[id]
		if len(w) == 0 || len(w) != len(g) {
			t.Errorf("trace %s: %d spans, want %d (> 0)", id, len(g), len(w))
			continue
		}
		for i := range w {
			if !w[i].Equal(g[i]) {
				t.Errorf("trace %s span %d differs:\ngot  %+v\nwant %+v", id, i, g[i], w[i])
			}
		}
	}
}

func TestImportRejectsAndReportsBadInput(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content, format, want string
	}{
		{"bad json", "{\"resourceSpans\": [}\n", "auto", "TracesData 1"},
		{"truncated proto", "\x20\x0a\x01", "proto", "TracesData 1: truncated"},
		{"huge length", "\xff\xff\xff\xff\x0f", "proto", "over the limit"},
		{"zero trace id", `{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":"0102030405060708","name":"x","startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}`, "json", "1 spans rejected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "in")
			if err := os.WriteFile(file, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, _, err := run(t, "import", file, "--format", tc.format, "--data-dir", filepath.Join(dir, tc.name))
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("err = %v, want one line with %q", err, tc.want)
			}
		})
	}
}

func TestStoreInUseAndMissing(t *testing.T) {
	dir := fixtureStore(t)
	held, err := db.Open(dir, db.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	for _, args := range [][]string{{"services"}, {"trace", fmtID(1)}, {"stats"}, {"import", "-"}} {
		_, _, err := run(t, append(args, "--data-dir", dir)...)
		if !errors.Is(err, errStoreInUse) || !strings.Contains(err.Error(), "the store in "+dir+" is in use by another process") {
			t.Errorf("%v: err = %v", args, err)
		}
	}
	missing := filepath.Join(t.TempDir(), "nothing")
	_, _, err = run(t, "services", "--data-dir", missing)
	if err == nil || !strings.Contains(err.Error(), "no store in "+missing) {
		t.Errorf("missing directory: err = %v", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a read created %s", missing)
	}
}

func TestFlagErrors(t *testing.T) {
	dir := fixtureStore(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"search", "--tag", "novalue"}, `--tag "novalue": want key=value`},
		{[]string{"search", "--start", "yesterday"}, `"yesterday" is neither RFC 3339`},
		{[]string{"search", "--start", "1h", "--end", "2h"}, "is after --end"},
		{[]string{"search", "--filter", "span.duration >"}, "--filter"},
		{[]string{"search", "--operation", "x"}, "without a service"},
		{[]string{"trace", "xyz"}, "parse trace id"},
		{[]string{"trace", fmtID(1), "-o", "yaml"}, "want text, json or otlp-json"},
		{[]string{"operations", "x", "--kind", "sideways"}, "want one of unspecified, internal"},
		{[]string{"deps", "-o", "svg"}, "want table or dot"},
		{[]string{"histogram", "--rows", "0"}, "--rows 0"},
		{[]string{"rate", "--step", "1ns", "--start", "2024-05-01T12:00:00Z", "--end", "2024-05-01T13:00:00Z"}, "more than"},
		{[]string{"export", "--format", "xml"}, "want json or proto"},
		{[]string{"search", "--tenant", "a b"}, "--tenant"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, _, err := run(t, append(tc.args, "--data-dir", dir)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("err = %v, want one line with %q", err, tc.want)
			}
		})
	}
}

func TestEveryCommandHasAnExample(t *testing.T) {
	for _, c := range inspectCmds() {
		if c.Example == "" || c.Short == "" {
			t.Errorf("%s: no example or no short help", c.Name())
		}
		if c.Flags().Lookup("data-dir") == nil || c.Flags().Lookup("tenant") == nil {
			t.Errorf("%s: no --data-dir or --tenant", c.Name())
		}
	}
}
