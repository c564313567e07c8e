package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// fixtureBase is the start of the fixture's first trace.
var fixtureBase = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// fixtureSpan is one span of a fixture trace; times in ms from the trace's
// start.
type fixtureSpan struct {
	service, op     string
	kind            ptrace.SpanKind
	parent          int // index of the parent; -1 for a root
	startMs, durMs  float64
	err             bool
	attrs           map[string]string
	event, linkPrev bool
}

// checkoutTrace is a small shop's checkout: nested calls, an error in
// payment, a cache hit, an event; auth runs beside cart, so it is off the
// critical path, which runs through cart, payment, the database and the
// queue.
var checkoutTrace = []fixtureSpan{
	{"frontend", "GET /checkout", ptrace.SpanKindServer, -1, 0, 182, false, map[string]string{"http.route": "/checkout"}, false, false},
	{"gateway", "POST /api/orders", ptrace.SpanKindClient, 0, 3, 170, false, nil, false, false},
	{"auth", "VerifyToken", ptrace.SpanKindServer, 1, 4, 10, false, nil, false, false},
	{"cart", "GetCart", ptrace.SpanKindServer, 1, 6, 21, false, map[string]string{"user.id": "u-4711"}, false, false},
	{"cache", "GET cart:u-4711", ptrace.SpanKindClient, 3, 8, 2, false, map[string]string{"db.system": "redis"}, false, false},
	{"payment", "Charge", ptrace.SpanKindServer, 1, 34, 138, true, map[string]string{"payment.provider": "acme-pay"}, true, false},
	{"database", "INSERT orders", ptrace.SpanKindClient, 5, 40, 95, false, map[string]string{"db.system": "postgresql"}, false, false},
	{"queue", "publish order.created", ptrace.SpanKindProducer, 5, 140, 1.5, false, nil, false, false},
}

// browseTrace is a product listing: frontend, catalog, database.
func browseTrace(i int) []fixtureSpan {
	d := float64(10 + (i*37)%90) // 10 to 99 ms, deterministic
	return []fixtureSpan{
		{"frontend", "GET /products", ptrace.SpanKindServer, -1, 0, d + 4, false, map[string]string{"http.route": "/products"}, false, false},
		{"catalog", "ListProducts", ptrace.SpanKindServer, 0, 1, d + 2, false, nil, false, false},
		{"database", "SELECT products", ptrace.SpanKindClient, 1, 2, d, i%7 == 3, map[string]string{"db.system": "postgresql"}, false, i > 0},
	}
}

func fixtureTraceID(n int) encoding.TraceID {
	var id encoding.TraceID
	id[0], id[15] = 0xab, byte(n)
	id[14] = byte(n >> 8)
	return id
}

// addTrace appends trace n, starting at start, to td.
func addTrace(td ptrace.Traces, n int, start time.Time, spans []fixtureSpan) {
	tid := fixtureTraceID(n)
	ids := make([]pcommon.SpanID, len(spans))
	for i, f := range spans {
		ids[i] = pcommon.SpanID{0xcd, byte(n >> 8), byte(n), 0, 0, 0, 0, byte(i + 1)}
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", f.service)
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("fixture")
		s := ss.Spans().AppendEmpty()
		s.SetTraceID(pcommon.TraceID(tid))
		s.SetSpanID(ids[i])
		if f.parent >= 0 {
			s.SetParentSpanID(ids[f.parent])
		}
		s.SetName(f.op)
		s.SetKind(f.kind)
		t0 := start.Add(time.Duration(f.startMs * float64(time.Millisecond)))
		s.SetStartTimestamp(pcommon.NewTimestampFromTime(t0))
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(t0.Add(time.Duration(f.durMs * float64(time.Millisecond)))))
		for k, v := range f.attrs {
			s.Attributes().PutStr(k, v)
		}
		s.Attributes().PutInt("fixture.n", int64(n))
		if f.err {
			s.Status().SetCode(ptrace.StatusCodeError)
			s.Status().SetMessage("failed")
		}
		if f.event {
			ev := s.Events().AppendEmpty()
			ev.SetName("retry")
			ev.SetTimestamp(pcommon.NewTimestampFromTime(t0.Add(time.Millisecond)))
			ev.Attributes().PutBool("card.declined", true)
		}
		if f.linkPrev {
			l := s.Links().AppendEmpty()
			l.SetTraceID(pcommon.TraceID(fixtureTraceID(n - 1)))
			l.SetSpanID(pcommon.SpanID{0xcd, byte((n - 1) >> 8), byte(n - 1), 0, 0, 0, 0, 1})
		}
	}
}

// Fixture shape, for the assertions.
const (
	fixtureBrowseTraces = 30
	fixtureCheckoutID   = 1
	fixtureAcmeID       = 500
)

// fixtureStore writes the fixture into a new store and returns its
// directory: trace 1 (a checkout), then 30 product listings one minute
// apart (traces 2 to 31), half flushed to a block before the rest, and
// one trace for tenant acme.
func fixtureStore(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	store, err := db.Open(dir, db.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	write := func(ctx context.Context, td ptrace.Traces) {
		t.Helper()
		res, err := store.Write(ctx, td)
		if err != nil || len(res.Rejected) > 0 {
			t.Fatalf("write: %v %v", err, res.Rejected)
		}
	}
	td := ptrace.NewTraces()
	addTrace(td, fixtureCheckoutID, fixtureBase, checkoutTrace)
	for i := range fixtureBrowseTraces / 2 {
		addTrace(td, i+2, fixtureBase.Add(time.Duration(i+1)*time.Minute), browseTrace(i))
	}
	write(ctx, td)
	if err := store.Flush(); err != nil {
		t.Fatal(err)
	}
	td = ptrace.NewTraces()
	for i := fixtureBrowseTraces / 2; i < fixtureBrowseTraces; i++ {
		addTrace(td, i+2, fixtureBase.Add(time.Duration(i+1)*time.Minute), browseTrace(i))
	}
	write(ctx, td)
	td = ptrace.NewTraces()
	addTrace(td, fixtureAcmeID, fixtureBase, checkoutTrace[:2])
	write(db.WithTenant(ctx, "acme"), td)
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// testRoot is the root command with the inspecting and maintenance
// commands, as main.go builds it.
func testRoot() *cobra.Command {
	root := &cobra.Command{Use: "tracedb", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(inspectCmds()...)
	root.AddCommand(maintenanceCmds()...)
	return root
}

// run runs the CLI with args and returns its stdout and stderr.
func run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := testRoot()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetIn(bytes.NewReader(nil))
	root.SetArgs(args)
	err = root.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

// mustRun is run that fails the test on an error.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errs, err := run(t, args...)
	if err != nil {
		t.Fatalf("tracedb %v: %v\nstderr: %s", args, err, errs)
	}
	return out
}

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("output differs from %s (go test -update rewrites it):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func fmtID(n int) string { return fmt.Sprint(fixtureTraceID(n)) }
