package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracedb/tracedb/internal/jaegerconf"
)

// The test's knobs. Everything runs on loopback, so the timeouts only bound
// how long a broken build takes to fail; a working one takes a few seconds.
const (
	// envJaegerBin names the Jaeger v2 binary (scripts/build-jaeger.sh
	// prints its path). Without it the test skips.
	envJaegerBin = "TRACEDB_JAEGER_BIN"
	// envTracedbBin optionally names a prebuilt tracedb binary; without it
	// the test builds ./cmd/tracedb.
	envTracedbBin = "TRACEDB_BIN"

	readyTimeout   = 30 * time.Second // both processes listening and healthy
	ingestTimeout  = 20 * time.Second // a trace sent through Jaeger is readable
	settleTimeout  = 5 * time.Second  // after which each query check gets one try
	pollInterval   = 100 * time.Millisecond
	stopTimeout    = 10 * time.Second // SIGTERM to SIGQUIT
	quitTimeout    = 2 * time.Second  // SIGQUIT to SIGKILL
	logTailBytes   = 256 << 10        // of each process's log, on failure
	httpTimeout    = 5 * time.Second
	tracerName     = "tracedb-e2e"
	environmentKey = "deployment.environment"
	environment    = "e2e"
)

// Service names. Each test run has a fresh data directory, so they are fixed.
const (
	svcFrontend   = "e2e-frontend"
	svcAPI        = "e2e-api"
	svcDB         = "e2e-db"
	svcDirectGRPC = "e2e-direct-grpc"
	svcDirectHTTP = "e2e-direct-http"
	svcBig        = "e2e-big"
)

// bigTraceSpans is the size of the large trace: more than two of tracedb's
// streamed chunks (storagev2.DefaultMaxSpansPerChunk), which Jaeger must
// put back together.
const bigTraceSpans = 2500

// TestJaegerV2 runs tracedb serve as the remote storage of a real Jaeger v2,
// sends traces with the OpenTelemetry Go SDK through Jaeger's OTLP receiver
// (and straight to tracedb's OTLP listeners), and checks that Jaeger's
// query APIs (HTTP v1 "/api" used by the UI, and "/api/v3") return exactly
// what was sent.
func TestJaegerV2(t *testing.T) {
	jaegerBin := os.Getenv(envJaegerBin)
	if jaegerBin == "" {
		t.Skipf("skipping the Jaeger v2 end-to-end test: %s is not set; "+
			"build Jaeger with scripts/build-jaeger.sh and set %s to the path it prints (see e2e/README.md)",
			envJaegerBin, envJaegerBin)
	}
	if _, err := os.Stat(jaegerBin); err != nil {
		t.Fatalf("%s=%s: %v", envJaegerBin, jaegerBin, err)
	}
	dir := t.TempDir()
	tracedbBin := tracedbBinary(t, dir)

	ports := freePorts(t, 9)
	td := tracedbAddrs{
		storage:  ports[0],
		admin:    ports[1],
		otlpGRPC: ports[2],
		otlpHTTP: ports[3],
	}
	jg := jaegerAddrs{
		otlpGRPC:  ports[4],
		otlpHTTP:  ports[5],
		queryHTTP: ports[6],
		queryGRPC: ports[7],
		health:    ports[8],
	}

	tdArgs := []string{
		"serve",
		"--data-dir", filepath.Join(dir, "data"),
		"--listen.storage", td.storage,
		"--listen.admin", td.admin,
		"--listen.otlp-grpc", td.otlpGRPC,
		"--listen.otlp-http", td.otlpHTTP,
		// Jaeger serves remote sampling itself; tracedb's would take 5778/5779.
		"--listen.sampling-http", "off",
		"--listen.sampling-grpc", "off",
	}
	tdProc := startProcess(t, "tracedb", tracedbBin, tdArgs...)
	tdProc.cleanExit = true
	configPath := filepath.Join(dir, "jaeger.yaml")
	cfg := jaegerconf.Config{OTLPGRPC: jg.otlpGRPC, OTLPHTTP: jg.otlpHTTP, QueryHTTP: jg.queryHTTP, QueryGRPC: jg.queryGRPC,
		Health: jg.health, Remote: td.storage, BatchTimeout: 50 * time.Millisecond, LogLevel: "info"}
	if err := os.WriteFile(configPath, []byte(cfg.YAML()), 0o600); err != nil {
		t.Fatal(err)
	}
	jProc := startProcess(t, "jaeger", jaegerBin, "--config", configPath)

	hc := &http.Client{Timeout: httpTimeout}
	waitReady(t, hc, tdProc, "http://"+td.admin+"/readyz")
	waitReady(t, hc, jProc, "http://"+jg.health+"/status")
	// The query API answers only once Jaeger reaches tracedb's reader API.
	waitReady(t, hc, jProc, "http://"+jg.queryHTTP+"/api/services")
	t.Logf("tracedb and Jaeger are ready")

	ctx, cancel := context.WithTimeout(t.Context(), ingestTimeout)
	defer cancel()

	// The workload: traces with known shapes, times and attributes. Times
	// are whole microseconds (the v1 API's unit), recent enough to fall in
	// the default search window.
	now := time.Now().Truncate(time.Millisecond)
	checkout := &traceSpec{name: "checkout", base: now.Add(-2 * time.Minute), spans: checkoutSpans()}
	browse := &traceSpec{name: "browse", base: now.Add(-time.Minute), spans: browseSpans(checkout)}
	big := &traceSpec{name: "big", base: now.Add(-100 * time.Second), spans: bigSpans(bigTraceSpans)}
	directGRPC := &traceSpec{name: "direct-grpc", base: now.Add(-90 * time.Second), spans: directSpans(svcDirectGRPC)}
	directHTTP := &traceSpec{name: "direct-http", base: now.Add(-80 * time.Second), spans: directSpans(svcDirectHTTP)}

	viaJaeger := newSender(t, func(ctx context.Context) (sdktrace.SpanExporter, error) {
		return otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(jg.otlpGRPC), otlptracegrpc.WithInsecure())
	})
	viaJaeger.send(t, checkout)
	viaJaeger.send(t, browse)
	viaJaeger.send(t, big)
	viaJaeger.flush(ctx, t)

	direct := newSender(t, func(ctx context.Context) (sdktrace.SpanExporter, error) {
		return otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(td.otlpGRPC), otlptracegrpc.WithInsecure())
	})
	direct.send(t, directGRPC)
	direct.flush(ctx, t)
	directH := newSender(t, func(ctx context.Context) (sdktrace.SpanExporter, error) {
		return otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(td.otlpHTTP), otlptracehttp.WithInsecure())
	})
	directH.send(t, directHTTP)
	directH.flush(ctx, t)

	q := &jaegerQuery{base: "http://" + jg.queryHTTP, client: hc}

	// Ingest through Jaeger's pipeline is asynchronous: wait until every
	// trace is complete by ID before checking anything else.
	all := []*traceSpec{checkout, browse, directGRPC, directHTTP, big}
	ingestDeadline := time.Now().Add(ingestTimeout)
	for _, tr := range all {
		poll(t, ingestDeadline, "trace "+tr.name+" complete", func() error {
			got, err := q.traceV1(tr.id)
			if err != nil {
				return err
			}
			if len(got.Spans) != len(tr.spans) {
				return fmt.Errorf("%d spans, want %d", len(got.Spans), len(tr.spans))
			}
			return nil
		})
	}
	if t.Failed() {
		t.FailNow()
	}
	// Indexes may trail trace-by-ID a little: each check below retries
	// until settle, then gets a single try, which bounds the runtime when
	// many fail.
	settle := time.Now().Add(settleTimeout)

	searchFrom := now.Add(-10 * time.Minute)
	searchTo := now.Add(10 * time.Minute)

	t.Run("v1/services", func(t *testing.T) {
		want := []string{svcAPI, svcBig, svcDB, svcDirectGRPC, svcDirectHTTP, svcFrontend}
		poll(t, settle, "services", func() error {
			got, err := q.services()
			if err != nil {
				return err
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				return fmt.Errorf("got %q, want %q", got, want)
			}
			return nil
		})
	})

	t.Run("v1/operations", func(t *testing.T) {
		for _, svc := range []string{svcFrontend, svcAPI, svcDB, svcDirectGRPC} {
			want := operationsOf(svc, all)
			poll(t, settle, "operations of "+svc, func() error {
				got, err := q.operationsLegacy(svc)
				if err != nil {
					return err
				}
				slices.Sort(got)
				if !slices.Equal(got, want) {
					return fmt.Errorf("got %q, want %q", got, want)
				}
				return nil
			})
		}
	})

	t.Run("v1/operations-by-kind", func(t *testing.T) {
		// e2e-api has server, internal and client spans.
		for kind, want := range map[string][]string{
			"server":   {"GET /items", "POST /orders"},
			"client":   {"query db"},
			"internal": {"compute total"},
		} {
			poll(t, settle, "operations of "+svcAPI+" kind "+kind, func() error {
				got, err := q.operations(svcAPI, kind)
				if err != nil {
					return err
				}
				var names []string
				for _, op := range got {
					if op.SpanKind != kind {
						return fmt.Errorf("operation %q has kind %q, want %q", op.Name, op.SpanKind, kind)
					}
					names = append(names, op.Name)
				}
				slices.Sort(names)
				if !slices.Equal(names, want) {
					return fmt.Errorf("got %q, want %q", names, want)
				}
				return nil
			})
		}
	})

	t.Run("v1/trace-by-id", func(t *testing.T) {
		for _, tr := range all {
			poll(t, settle, "trace "+tr.name, func() error {
				got, err := q.traceV1(tr.id)
				if err != nil {
					return err
				}
				return tr.checkV1(got)
			})
		}
	})

	t.Run("v1/search", func(t *testing.T) {
		// Each case's conditions must hold on one span (Jaeger's semantics).
		cases := []struct {
			name      string
			service   string
			operation string
			tags      map[string]string
			minDur    string
			maxDur    string
			limit     int       // 0: 20
			from, to  time.Time // zero: searchFrom, searchTo
			want      []*traceSpec
		}{
			{name: "service", service: svcFrontend, want: []*traceSpec{checkout, browse}},
			{name: "service-db", service: svcDB, want: []*traceSpec{checkout}},
			{name: "operation", service: svcAPI, operation: "compute total", want: []*traceSpec{checkout}},
			{name: "tag+minDuration", service: svcDB, tags: map[string]string{"db.system": "postgresql"}, minDur: "80ms", want: []*traceSpec{checkout}},
			{name: "tag+minDuration-too-long", service: svcDB, tags: map[string]string{"db.system": "postgresql"}, minDur: "95ms"},
			{name: "same-span-match", service: svcFrontend, tags: map[string]string{"http.route": "/checkout"}, minDur: "290ms", want: []*traceSpec{checkout}},
			// "call api" has peer.service but lasts 250ms; "GET /checkout"
			// lasts 300ms but has no peer.service: no single span matches.
			{name: "same-span-no-match", service: svcFrontend, tags: map[string]string{"peer.service": svcAPI}, minDur: "260ms"},
			{name: "minDuration", service: svcAPI, minDur: "500ms", want: []*traceSpec{browse}},
			{name: "maxDuration", service: svcAPI, maxDur: "60ms", want: []*traceSpec{checkout}},
			{name: "duration-range", service: svcAPI, minDur: "200ms", maxDur: "240ms", want: []*traceSpec{checkout}},
			{name: "error", service: svcDB, tags: map[string]string{"error": "true"}, want: []*traceSpec{checkout}},
			{name: "error-none", service: svcAPI, tags: map[string]string{"error": "true"}},
			{name: "int-attribute", service: svcAPI, tags: map[string]string{"order.items": "3"}, want: []*traceSpec{checkout}},
			{name: "bool-attribute", service: svcAPI, tags: map[string]string{"order.express": "true"}, want: []*traceSpec{checkout}},
			{name: "double-attribute", service: svcAPI, tags: map[string]string{"order.total": "99.5"}, want: []*traceSpec{checkout}},
			{name: "resource-attribute", service: svcDB, tags: map[string]string{environmentKey: environment}, want: []*traceSpec{checkout}},
			{name: "two-tags", service: svcAPI, tags: map[string]string{"order.id": "o-1001", "order.express": "true"}, want: []*traceSpec{checkout}},
			{name: "two-tags-no-match", service: svcAPI, tags: map[string]string{"order.id": "o-1001", "cache.hit": "false"}},
			{name: "limit-newest-first", service: svcFrontend, limit: 1, want: []*traceSpec{browse}},
			{name: "window", service: svcFrontend, from: browse.base.Add(-time.Second), to: browse.base.Add(time.Second), want: []*traceSpec{browse}},
			{name: "window-empty", service: svcFrontend, from: searchFrom, to: checkout.base.Add(-time.Second)},
			{name: "big-trace", service: svcBig, operation: "item 7", want: []*traceSpec{big}},
			{name: "direct-grpc", service: svcDirectGRPC, want: []*traceSpec{directGRPC}},
			{name: "direct-http", service: svcDirectHTTP, want: []*traceSpec{directHTTP}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				v := url.Values{}
				v.Set("service", c.service)
				if c.operation != "" {
					v.Set("operation", c.operation)
				}
				if c.tags != nil {
					b, err := json.Marshal(c.tags)
					if err != nil {
						t.Fatal(err)
					}
					v.Set("tags", string(b))
				}
				if c.minDur != "" {
					v.Set("minDuration", c.minDur)
				}
				if c.maxDur != "" {
					v.Set("maxDuration", c.maxDur)
				}
				from, to, limit := searchFrom, searchTo, 20
				if !c.from.IsZero() {
					from, to = c.from, c.to
				}
				if c.limit > 0 {
					limit = c.limit
				}
				v.Set("start", strconv.FormatInt(from.UnixMicro(), 10))
				v.Set("end", strconv.FormatInt(to.UnixMicro(), 10))
				v.Set("limit", strconv.Itoa(limit))
				want := make(map[string]*traceSpec)
				for _, tr := range c.want {
					want[tr.id] = tr
				}
				poll(t, settle, "search "+v.Encode(), func() error {
					got, err := q.search(v)
					if err != nil {
						return err
					}
					var ids []string
					for _, tr := range got {
						ids = append(ids, tr.TraceID)
					}
					if len(got) != len(want) {
						return fmt.Errorf("got traces %q, want %q", ids, traceIDs(c.want))
					}
					for _, g := range got {
						w, ok := want[g.TraceID]
						if !ok {
							return fmt.Errorf("got traces %q, want %q", ids, traceIDs(c.want))
						}
						// A search result is the whole trace, not the
						// matching spans.
						if err := w.checkV1(g); err != nil {
							return fmt.Errorf("trace %s: %w", w.name, err)
						}
					}
					return nil
				})
			})
		}
	})

	t.Run("v1/dependencies", func(t *testing.T) {
		// A call is a span whose parent is in another service.
		want := map[[2]string]uint64{
			{svcFrontend, svcAPI}: 2, // checkout and browse
			{svcAPI, svcDB}:       1, // checkout
		}
		poll(t, settle, "dependencies", func() error {
			got, err := q.dependencies(searchTo, searchTo.Sub(searchFrom))
			if err != nil {
				return err
			}
			gotMap := make(map[[2]string]uint64)
			for _, d := range got {
				gotMap[[2]string{d.Parent, d.Child}] += d.CallCount
			}
			if len(gotMap) != len(want) {
				return fmt.Errorf("got %v, want %v", gotMap, want)
			}
			for k, n := range want {
				if gotMap[k] != n {
					return fmt.Errorf("got %v, want %v", gotMap, want)
				}
			}
			return nil
		})
		// A window that ends before the first trace has no calls. tracedb
		// counts calls by minute and widens the window to whole minutes, so
		// it ends a minute before the first trace's minute.
		got, err := q.dependencies(checkout.base.Truncate(time.Minute).Add(-time.Minute), time.Minute)
		if err != nil {
			t.Error(err)
		} else if len(got) != 0 {
			t.Errorf("dependencies before the traces: got %+v, want none", got)
		}
	})

	t.Run("v3/trace-by-id", func(t *testing.T) {
		for _, tr := range all {
			poll(t, settle, "v3 trace "+tr.name, func() error {
				got, err := q.traceV3(tr.id)
				if err != nil {
					return err
				}
				return tr.checkV3(got)
			})
		}
	})

	t.Run("v3/find-traces", func(t *testing.T) {
		for _, c := range []struct {
			service  string
			min, max time.Time
			want     []*traceSpec
		}{
			{svcFrontend, searchFrom, searchTo, []*traceSpec{checkout, browse}},
			{svcDB, searchFrom, searchTo, []*traceSpec{checkout}},
			{svcDirectGRPC, searchFrom, searchTo, []*traceSpec{directGRPC}},
			// Windows around one root span's start.
			{svcFrontend, browse.base.Add(-time.Second), browse.base.Add(time.Second), []*traceSpec{browse}},
			{svcFrontend, searchFrom, checkout.base.Add(time.Second), []*traceSpec{checkout}},
			{svcFrontend, searchFrom, checkout.base.Add(-time.Second), nil},
		} {
			v := url.Values{}
			v.Set("query.service_name", c.service)
			v.Set("query.start_time_min", c.min.UTC().Format(time.RFC3339Nano))
			v.Set("query.start_time_max", c.max.UTC().Format(time.RFC3339Nano))
			poll(t, settle, "v3 find "+v.Encode(), func() error {
				got, err := q.findV3(v)
				if len(c.want) == 0 {
					if !errors.Is(err, errNotFound) {
						return fmt.Errorf("got %v, want 404 (no traces)", err)
					}
					return nil
				}
				if err != nil {
					return err
				}
				byTrace := got.splitByTrace()
				if len(byTrace) != len(c.want) {
					return fmt.Errorf("got %d traces, want %q", len(byTrace), traceIDs(c.want))
				}
				for _, w := range c.want {
					g, ok := byTrace[w.id]
					if !ok {
						return fmt.Errorf("trace %s (%s) missing", w.name, w.id)
					}
					if err := w.checkV3(g); err != nil {
						return fmt.Errorf("trace %s: %w", w.name, err)
					}
				}
				return nil
			})
		}
	})

	t.Run("v3/services", func(t *testing.T) {
		want := []string{svcAPI, svcBig, svcDB, svcDirectGRPC, svcDirectHTTP, svcFrontend}
		poll(t, settle, "v3 services", func() error {
			var r struct {
				Services []string `json:"services"`
			}
			if err := q.getJSON("/api/v3/services", nil, &r); err != nil {
				return err
			}
			slices.Sort(r.Services)
			if !slices.Equal(r.Services, want) {
				return fmt.Errorf("got %q, want %q", r.Services, want)
			}
			return nil
		})
	})

	t.Run("v3/trace-not-found", func(t *testing.T) {
		code, body, err := q.get("/api/v3/traces/00000000000000000000000000abcdef", nil)
		if err != nil {
			t.Fatal(err)
		}
		if code != http.StatusNotFound {
			t.Errorf("status %d, want 404; body %s", code, body)
		}
	})

	// Last, as it adds a trace: kill tracedb as a crash would, restart it
	// on the same data directory and ports, and expect every acknowledged
	// span back through Jaeger, which reconnects by itself; then write
	// through Jaeger again.
	t.Run("tracedb-crash-restart", func(t *testing.T) {
		tdProc.kill()
		restarted := startProcess(t, "tracedb (restarted)", tracedbBin, tdArgs...)
		restarted.cleanExit = true
		waitReady(t, hc, restarted, "http://"+td.admin+"/readyz")
		deadline := time.Now().Add(ingestTimeout)
		for _, tr := range all {
			poll(t, deadline, "trace "+tr.name+" after the restart", func() error {
				got, err := q.traceV1(tr.id)
				if err != nil {
					return err
				}
				return tr.checkV1(got)
			})
		}
		late := &traceSpec{name: "after-restart", base: now.Add(-30 * time.Second), spans: lateSpans()}
		ctx, cancel := context.WithTimeout(t.Context(), ingestTimeout)
		defer cancel()
		viaJaeger.send(t, late)
		viaJaeger.flush(ctx, t)
		poll(t, deadline, "trace "+late.name, func() error {
			got, err := q.traceV1(late.id)
			if err != nil {
				return err
			}
			return late.checkV1(got)
		})
		poll(t, deadline, "operations of "+svcFrontend+" after the restart", func() error {
			got, err := q.operationsLegacy(svcFrontend)
			if err != nil {
				return err
			}
			slices.Sort(got)
			if want := operationsOf(svcFrontend, append(all, late)); !slices.Equal(got, want) {
				return fmt.Errorf("got %q, want %q", got, want)
			}
			return nil
		})
	})
}

// ---- the workload ----

// spanSpec is one span to send and then expect back. Start and duration are
// offsets from the trace's base time.
type spanSpec struct {
	service string
	name    string
	parent  int // index of the parent in the trace's spans; -1 for a root
	kind    trace.SpanKind
	start   time.Duration
	dur     time.Duration
	attrs   []attribute.KeyValue
	errMsg  string // non-empty: status ERROR with this message, and an exception event
	link    *linkSpec
}

// linkSpec is a span link to span of another trace, sent before.
type linkSpec struct {
	to   *traceSpec
	span int
	attr attribute.KeyValue
}

// traceSpec is a trace to send; send fills in the IDs.
type traceSpec struct {
	name  string
	base  time.Time
	spans []spanSpec

	id      string              // hex trace ID
	spanIDs []string            // hex span IDs, by index in spans
	ctxs    []trace.SpanContext // by index in spans
}

func checkoutSpans() []spanSpec {
	return []spanSpec{
		{service: svcFrontend, name: "GET /checkout", parent: -1, kind: trace.SpanKindServer, dur: 300 * time.Millisecond,
			attrs: []attribute.KeyValue{attribute.String("http.request.method", "GET"), attribute.String("http.route", "/checkout"), attribute.Int("http.response.status_code", 500)}},
		{service: svcFrontend, name: "call api", parent: 0, kind: trace.SpanKindClient, start: 10 * time.Millisecond, dur: 250 * time.Millisecond,
			attrs: []attribute.KeyValue{attribute.String("peer.service", svcAPI)}},
		{service: svcAPI, name: "POST /orders", parent: 1, kind: trace.SpanKindServer, start: 20 * time.Millisecond, dur: 230 * time.Millisecond,
			attrs: []attribute.KeyValue{attribute.String("order.id", "o-1001"), attribute.Int("order.items", 3), attribute.Float64("order.total", 99.5), attribute.Bool("order.express", true)}},
		{service: svcAPI, name: "compute total", parent: 2, kind: trace.SpanKindInternal, start: 30 * time.Millisecond, dur: 50 * time.Millisecond},
		{service: svcAPI, name: "query db", parent: 2, kind: trace.SpanKindClient, start: 90 * time.Millisecond, dur: 100 * time.Millisecond,
			attrs: []attribute.KeyValue{attribute.String("peer.service", svcDB)}},
		{service: svcDB, name: "SELECT orders", parent: 4, kind: trace.SpanKindServer, start: 95 * time.Millisecond, dur: 90 * time.Millisecond,
			attrs:  []attribute.KeyValue{attribute.String("db.system", "postgresql"), attribute.String("db.statement", "SELECT * FROM orders WHERE id = $1")},
			errMsg: "deadlock detected"},
	}
}

// browseSpans's root links to the root of linkTo.
func browseSpans(linkTo *traceSpec) []spanSpec {
	return []spanSpec{
		{service: svcFrontend, name: "GET /catalog", parent: -1, kind: trace.SpanKindServer, dur: 800 * time.Millisecond,
			attrs: []attribute.KeyValue{attribute.String("http.request.method", "GET"), attribute.String("http.route", "/catalog")},
			link:  &linkSpec{to: linkTo, span: 0, attr: attribute.String("link.reason", "same session")}},
		{service: svcFrontend, name: "call api", parent: 0, kind: trace.SpanKindClient, start: 5 * time.Millisecond, dur: 780 * time.Millisecond},
		{service: svcAPI, name: "GET /items", parent: 1, kind: trace.SpanKindServer, start: 10 * time.Millisecond, dur: 770 * time.Millisecond,
			attrs: []attribute.KeyValue{attribute.Bool("cache.hit", false), attribute.StringSlice("items", []string{"a", "b"})}},
	}
}

// bigSpans is a root with n-1 children, 1ms each, 10µs apart.
func bigSpans(n int) []spanSpec {
	spans := make([]spanSpec, n)
	spans[0] = spanSpec{service: svcBig, name: "batch", parent: -1, kind: trace.SpanKindServer, dur: time.Second}
	for i := 1; i < n; i++ {
		spans[i] = spanSpec{service: svcBig, name: fmt.Sprintf("item %d", i%10), parent: 0, kind: trace.SpanKindInternal,
			start: time.Duration(i) * 10 * time.Microsecond, dur: time.Millisecond,
			attrs: []attribute.KeyValue{attribute.Int("item", i)}}
	}
	return spans
}

func directSpans(service string) []spanSpec {
	return []spanSpec{
		{service: service, name: "ingest job", parent: -1, kind: trace.SpanKindConsumer, dur: 40 * time.Millisecond,
			attrs: []attribute.KeyValue{attribute.String("job.id", "j-7")}},
		{service: service, name: "parse", parent: 0, kind: trace.SpanKindInternal, start: 5 * time.Millisecond, dur: 20 * time.Millisecond},
	}
}

func lateSpans() []spanSpec {
	return []spanSpec{
		{service: svcFrontend, name: "GET /late", parent: -1, kind: trace.SpanKindServer, dur: 15 * time.Millisecond,
			attrs: []attribute.KeyValue{attribute.String("http.route", "/late")}},
	}
}

// operationsOf returns the sorted distinct span names of svc in traces.
func operationsOf(svc string, traces []*traceSpec) []string {
	var ops []string
	for _, tr := range traces {
		for _, s := range tr.spans {
			if s.service == svc && !slices.Contains(ops, s.name) {
				ops = append(ops, s.name)
			}
		}
	}
	slices.Sort(ops)
	return ops
}

func traceIDs(trs []*traceSpec) []string {
	var ids []string
	for _, tr := range trs {
		ids = append(ids, tr.id)
	}
	return ids
}

// sender sends spans with the OpenTelemetry Go SDK: one TracerProvider per
// service (the service is the provider's resource), all exporting to one
// endpoint.
type sender struct {
	newExporter func(context.Context) (sdktrace.SpanExporter, error)
	providers   map[string]*sdktrace.TracerProvider
}

func newSender(t *testing.T, newExporter func(context.Context) (sdktrace.SpanExporter, error)) *sender {
	s := &sender{newExporter: newExporter, providers: make(map[string]*sdktrace.TracerProvider)}
	t.Cleanup(func() {
		for svc, tp := range s.providers {
			sctx, cancel := context.WithTimeout(context.Background(), httpTimeout)
			if err := tp.Shutdown(sctx); err != nil {
				t.Logf("shut down the tracer provider of %s: %v", svc, err)
			}
			cancel()
		}
	})
	return s
}

func (s *sender) tracer(t *testing.T, svc string) trace.Tracer {
	tp, ok := s.providers[svc]
	if !ok {
		exp, err := s.newExporter(context.Background())
		if err != nil {
			t.Fatalf("exporter for %s: %v", svc, err)
		}
		tp = sdktrace.NewTracerProvider(
			// Blocking: a full queue waits instead of dropping spans.
			sdktrace.WithBatcher(exp, sdktrace.WithBlocking()),
			sdktrace.WithSampler(sdktrace.AlwaysSample()),
			sdktrace.WithResource(resource.NewSchemaless(
				attribute.String("service.name", svc),
				attribute.String(environmentKey, environment),
			)),
		)
		s.providers[svc] = tp
	}
	return tp.Tracer(tracerName)
}

// send emits tr's spans with their exact start and end times, parents
// first, and records the IDs the SDK gave them.
func (s *sender) send(t *testing.T, tr *traceSpec) {
	t.Helper()
	ctxs := make([]context.Context, len(tr.spans))
	tr.spanIDs = make([]string, len(tr.spans))
	tr.ctxs = make([]trace.SpanContext, len(tr.spans))
	for i, sp := range tr.spans {
		parent := context.Background()
		if sp.parent >= 0 {
			if sp.parent >= i {
				t.Fatalf("trace %s: span %d's parent %d comes after it", tr.name, i, sp.parent)
			}
			parent = ctxs[sp.parent]
		}
		start := tr.base.Add(sp.start)
		opts := []trace.SpanStartOption{
			trace.WithTimestamp(start),
			trace.WithSpanKind(sp.kind),
			trace.WithAttributes(sp.attrs...),
		}
		if l := sp.link; l != nil {
			if l.to.ctxs == nil {
				t.Fatalf("trace %s: span %d links to trace %s, not sent yet", tr.name, i, l.to.name)
			}
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: l.to.ctxs[l.span], Attributes: []attribute.KeyValue{l.attr}}))
		}
		ctx, span := s.tracer(t, sp.service).Start(parent, sp.name, opts...)
		if sp.errMsg != "" {
			span.AddEvent("exception", trace.WithTimestamp(start.Add(sp.dur/2)),
				trace.WithAttributes(attribute.String("exception.message", sp.errMsg)))
			span.SetStatus(codes.Error, sp.errMsg)
		}
		span.End(trace.WithTimestamp(start.Add(sp.dur)))
		ctxs[i] = ctx
		sc := span.SpanContext()
		tr.spanIDs[i] = sc.SpanID().String()
		tr.ctxs[i] = sc
		if i == 0 {
			tr.id = sc.TraceID().String()
		}
	}
	t.Logf("sent trace %s: %s (%d spans)", tr.name, tr.id, len(tr.spans))
}

func (s *sender) flush(ctx context.Context, t *testing.T) {
	t.Helper()
	for svc, tp := range s.providers {
		if err := tp.ForceFlush(ctx); err != nil {
			t.Fatalf("flush spans of %s: %v", svc, err)
		}
	}
}

// ---- the checks ----

// attrString renders an attribute value the way both query APIs' JSON
// values print with fmt after decoding: JSON numbers decode to float64.
func attrString(v attribute.Value) string {
	switch v.Type() {
	case attribute.INT64:
		return strconv.FormatInt(v.AsInt64(), 10)
	case attribute.FLOAT64:
		return strconv.FormatFloat(v.AsFloat64(), 'g', -1, 64)
	case attribute.BOOL:
		return strconv.FormatBool(v.AsBool())
	default:
		return v.Emit()
	}
}

// v1Type is the v1 API's tag type of an attribute.
func v1Type(v attribute.Value) string {
	switch v.Type() {
	case attribute.INT64:
		return "int64"
	case attribute.FLOAT64:
		return "float64"
	case attribute.BOOL:
		return "bool"
	default:
		return "string"
	}
}

func v1KindString(k trace.SpanKind) string {
	if k == trace.SpanKindUnspecified {
		return ""
	}
	return k.String()
}

// checkV1 compares a trace from the v1 API with tr.
func (tr *traceSpec) checkV1(got v1Trace) error {
	if got.TraceID != tr.id {
		return fmt.Errorf("trace ID %s, want %s", got.TraceID, tr.id)
	}
	if len(got.Spans) != len(tr.spans) {
		return fmt.Errorf("%d spans, want %d", len(got.Spans), len(tr.spans))
	}
	byID := make(map[string]v1Span, len(got.Spans))
	for _, s := range got.Spans {
		if _, dup := byID[s.SpanID]; dup {
			return fmt.Errorf("span %s twice", s.SpanID)
		}
		byID[s.SpanID] = s
	}
	var errs []error
	for i, want := range tr.spans {
		s, ok := byID[tr.spanIDs[i]]
		if !ok {
			errs = append(errs, fmt.Errorf("span %q (%s) missing", want.name, tr.spanIDs[i]))
			continue
		}
		where := fmt.Sprintf("span %q (%s)", want.name, s.SpanID)
		if s.OperationName != want.name {
			errs = append(errs, fmt.Errorf("%s: operation %q", where, s.OperationName))
		}
		if p, ok := got.Processes[s.ProcessID]; !ok || p.ServiceName != want.service {
			errs = append(errs, fmt.Errorf("%s: process %q is %+v, want service %q", where, s.ProcessID, p, want.service))
		}
		if start := tr.base.Add(want.start).UnixMicro(); s.StartTime != start {
			errs = append(errs, fmt.Errorf("%s: start %d µs, want %d", where, s.StartTime, start))
		}
		if s.Duration != want.dur.Microseconds() {
			errs = append(errs, fmt.Errorf("%s: duration %d µs, want %d", where, s.Duration, want.dur.Microseconds()))
		}
		var parents []string
		var follows []v1Ref
		for _, r := range s.References {
			switch r.RefType {
			case "CHILD_OF":
				parents = append(parents, r.SpanID)
				if r.TraceID != tr.id {
					errs = append(errs, fmt.Errorf("%s: parent reference to trace %s", where, r.TraceID))
				}
			case "FOLLOWS_FROM":
				follows = append(follows, r)
			}
		}
		// The v1 model has no link attributes; a link is a FOLLOWS_FROM.
		var wantFollows []v1Ref
		if l := want.link; l != nil {
			wantFollows = []v1Ref{{RefType: "FOLLOWS_FROM", TraceID: l.to.id, SpanID: l.to.spanIDs[l.span]}}
		}
		if !slices.Equal(follows, wantFollows) {
			errs = append(errs, fmt.Errorf("%s: links %+v, want %+v", where, follows, wantFollows))
		}
		var wantParents []string
		if want.parent >= 0 {
			wantParents = []string{tr.spanIDs[want.parent]}
		}
		if !slices.Equal(parents, wantParents) {
			errs = append(errs, fmt.Errorf("%s: parents %q, want %q", where, parents, wantParents))
		}
		tags := make(map[string]v1KV, len(s.Tags))
		for _, kv := range s.Tags {
			tags[kv.Key] = kv
		}
		for _, a := range want.attrs {
			kv, ok := tags[string(a.Key)]
			if a.Value.Type() == attribute.STRINGSLICE {
				// The v1 model has no arrays; Jaeger renders them as JSON.
				if !ok || kv.Type != "string" {
					errs = append(errs, fmt.Errorf("%s: tag %s is %+v, want a string", where, a.Key, kv))
				}
				continue
			}
			if !ok || kv.Type != v1Type(a.Value) || fmt.Sprint(kv.Value) != attrString(a.Value) {
				errs = append(errs, fmt.Errorf("%s: tag %s is %+v, want %s %s", where, a.Key, kv, v1Type(a.Value), attrString(a.Value)))
			}
		}
		if kind := v1KindString(want.kind); kind != "" && fmt.Sprint(tags["span.kind"].Value) != kind {
			errs = append(errs, fmt.Errorf("%s: span.kind tag %+v, want %s", where, tags["span.kind"], kind))
		}
		gotErr := fmt.Sprint(tags["error"].Value) == "true"
		if gotErr != (want.errMsg != "") {
			errs = append(errs, fmt.Errorf("%s: error tag %+v, want error=%v", where, tags["error"], want.errMsg != ""))
		}
		if want.errMsg != "" {
			if len(s.Logs) != 1 || !slices.ContainsFunc(s.Logs[0].Fields, func(kv v1KV) bool {
				return kv.Key == "exception.message" && kv.Value == want.errMsg
			}) {
				errs = append(errs, fmt.Errorf("%s: logs %+v, want the exception event", where, s.Logs))
			}
		}
	}
	return errors.Join(errs...)
}

// checkV3 compares a trace from the v3 API (OTLP JSON) with tr.
func (tr *traceSpec) checkV3(got v3Traces) error {
	type located struct {
		service string
		scope   string
		resAttr map[string]string
		span    v3Span
	}
	byID := make(map[string]located)
	n := 0
	for _, rs := range got.ResourceSpans {
		resAttrs := v3AttrMap(rs.Resource.Attributes)
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				n++
				if s.TraceID != tr.id {
					return fmt.Errorf("span %s of trace %s, want trace %s", s.SpanID, s.TraceID, tr.id)
				}
				byID[s.SpanID] = located{service: resAttrs["service.name"], scope: ss.Scope.Name, resAttr: resAttrs, span: s}
			}
		}
	}
	if n != len(tr.spans) {
		return fmt.Errorf("%d spans, want %d", n, len(tr.spans))
	}
	var errs []error
	for i, want := range tr.spans {
		l, ok := byID[tr.spanIDs[i]]
		if !ok {
			errs = append(errs, fmt.Errorf("span %q (%s) missing", want.name, tr.spanIDs[i]))
			continue
		}
		s := l.span
		where := fmt.Sprintf("span %q (%s)", want.name, s.SpanID)
		if s.Name != want.name {
			errs = append(errs, fmt.Errorf("%s: name %q", where, s.Name))
		}
		if l.service != want.service || l.resAttr[environmentKey] != environment {
			errs = append(errs, fmt.Errorf("%s: resource %v, want service.name %s and %s=%s", where, l.resAttr, want.service, environmentKey, environment))
		}
		if l.scope != tracerName {
			errs = append(errs, fmt.Errorf("%s: scope %q, want %q", where, l.scope, tracerName))
		}
		if s.Kind != int(want.kind) {
			errs = append(errs, fmt.Errorf("%s: kind %d, want %d", where, s.Kind, int(want.kind)))
		}
		start := tr.base.Add(want.start)
		if s.StartTimeUnixNano != strconv.FormatInt(start.UnixNano(), 10) ||
			s.EndTimeUnixNano != strconv.FormatInt(start.Add(want.dur).UnixNano(), 10) {
			errs = append(errs, fmt.Errorf("%s: times %s..%s, want %d..%d", where,
				s.StartTimeUnixNano, s.EndTimeUnixNano, start.UnixNano(), start.Add(want.dur).UnixNano()))
		}
		wantParent := ""
		if want.parent >= 0 {
			wantParent = tr.spanIDs[want.parent]
		}
		if s.ParentSpanID != wantParent {
			errs = append(errs, fmt.Errorf("%s: parent %q, want %q", where, s.ParentSpanID, wantParent))
		}
		attrs := v3AttrMap(s.Attributes)
		for _, a := range want.attrs {
			w := attrString(a.Value)
			if a.Value.Type() == attribute.STRINGSLICE {
				w = fmt.Sprint(a.Value.AsStringSlice())
			}
			if attrs[string(a.Key)] != w {
				errs = append(errs, fmt.Errorf("%s: attribute %s = %q, want %q (all: %v)", where, a.Key, attrs[string(a.Key)], w, attrs))
			}
		}
		if want.errMsg != "" {
			if s.Status.Code != 2 || s.Status.Message != want.errMsg {
				errs = append(errs, fmt.Errorf("%s: status %+v, want ERROR %q", where, s.Status, want.errMsg))
			}
			if len(s.Events) != 1 || s.Events[0].Name != "exception" ||
				v3AttrMap(s.Events[0].Attributes)["exception.message"] != want.errMsg {
				errs = append(errs, fmt.Errorf("%s: events %+v, want the exception event", where, s.Events))
			}
		} else if s.Status.Code == 2 {
			errs = append(errs, fmt.Errorf("%s: status %+v, want not ERROR", where, s.Status))
		}
		if l := want.link; l != nil {
			if len(s.Links) != 1 || s.Links[0].TraceID != l.to.id || s.Links[0].SpanID != l.to.spanIDs[l.span] ||
				v3AttrMap(s.Links[0].Attributes)[string(l.attr.Key)] != l.attr.Value.Emit() {
				errs = append(errs, fmt.Errorf("%s: links %+v, want one to %s/%s with %s=%s", where, s.Links,
					l.to.id, l.to.spanIDs[l.span], l.attr.Key, l.attr.Value.Emit()))
			}
		} else if len(s.Links) != 0 {
			errs = append(errs, fmt.Errorf("%s: links %+v, want none", where, s.Links))
		}
	}
	return errors.Join(errs...)
}

// ---- Jaeger's query APIs ----

type jaegerQuery struct {
	base   string
	client *http.Client
}

type v1Response[T any] struct {
	Data   T `json:"data"`
	Errors []struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
	} `json:"errors"`
}

type v1Trace struct {
	TraceID   string               `json:"traceID"`
	Spans     []v1Span             `json:"spans"`
	Processes map[string]v1Process `json:"processes"`
	Warnings  []string             `json:"warnings"`
}

type v1Span struct {
	TraceID       string   `json:"traceID"`
	SpanID        string   `json:"spanID"`
	OperationName string   `json:"operationName"`
	References    []v1Ref  `json:"references"`
	StartTime     int64    `json:"startTime"` // µs since the epoch
	Duration      int64    `json:"duration"`  // µs
	Tags          []v1KV   `json:"tags"`
	Logs          []v1Log  `json:"logs"`
	ProcessID     string   `json:"processID"`
	Warnings      []string `json:"warnings"`
}

type v1Ref struct {
	RefType string `json:"refType"`
	TraceID string `json:"traceID"`
	SpanID  string `json:"spanID"`
}

type v1KV struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Value any    `json:"value"`
}

type v1Log struct {
	Timestamp int64  `json:"timestamp"`
	Fields    []v1KV `json:"fields"`
}

type v1Process struct {
	ServiceName string `json:"serviceName"`
	Tags        []v1KV `json:"tags"`
}

type v1Operation struct {
	Name     string `json:"name"`
	SpanKind string `json:"spanKind"`
}

type v1Dependency struct {
	Parent    string `json:"parent"`
	Child     string `json:"child"`
	CallCount uint64 `json:"callCount"`
}

// v3Traces is OTLP JSON as Jaeger's /api/v3 writes it: IDs in hex, 64-bit
// integers as strings, enums as numbers.
type v3Traces struct {
	ResourceSpans []struct {
		Resource struct {
			Attributes []v3KV `json:"attributes"`
		} `json:"resource"`
		ScopeSpans []struct {
			Scope struct {
				Name string `json:"name"`
			} `json:"scope"`
			Spans []v3Span `json:"spans"`
		} `json:"scopeSpans"`
	} `json:"resourceSpans"`
}

// splitByTrace regroups the resource spans by trace ID.
func (v v3Traces) splitByTrace() map[string]v3Traces {
	out := make(map[string]v3Traces)
	for _, rs := range v.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				t := out[s.TraceID]
				r := rs
				r.ScopeSpans = append(r.ScopeSpans[:0:0], ss)
				r.ScopeSpans[0].Spans = []v3Span{s}
				t.ResourceSpans = append(t.ResourceSpans, r)
				out[s.TraceID] = t
			}
		}
	}
	return out
}

type v3Span struct {
	TraceID           string `json:"traceId"`
	SpanID            string `json:"spanId"`
	ParentSpanID      string `json:"parentSpanId"`
	Name              string `json:"name"`
	Kind              int    `json:"kind"`
	StartTimeUnixNano string `json:"startTimeUnixNano"`
	EndTimeUnixNano   string `json:"endTimeUnixNano"`
	Attributes        []v3KV `json:"attributes"`
	Events            []struct {
		Name       string `json:"name"`
		Attributes []v3KV `json:"attributes"`
	} `json:"events"`
	Links []struct {
		TraceID    string `json:"traceId"`
		SpanID     string `json:"spanId"`
		Attributes []v3KV `json:"attributes"`
	} `json:"links"`
	Status struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"status"`
}

type v3KV struct {
	Key   string  `json:"key"`
	Value v3Value `json:"value"`
}

type v3Value struct {
	StringValue *string  `json:"stringValue"`
	IntValue    *string  `json:"intValue"` // int64 as a JSON string
	DoubleValue *float64 `json:"doubleValue"`
	BoolValue   *bool    `json:"boolValue"`
	ArrayValue  *struct {
		Values []v3Value `json:"values"`
	} `json:"arrayValue"`
}

func (v v3Value) String() string {
	switch {
	case v.StringValue != nil:
		return *v.StringValue
	case v.IntValue != nil:
		return *v.IntValue
	case v.DoubleValue != nil:
		return strconv.FormatFloat(*v.DoubleValue, 'g', -1, 64)
	case v.BoolValue != nil:
		return strconv.FormatBool(*v.BoolValue)
	case v.ArrayValue != nil:
		s := make([]string, len(v.ArrayValue.Values))
		for i, e := range v.ArrayValue.Values {
			s[i] = e.String()
		}
		return fmt.Sprint(s)
	}
	return "<empty>"
}

func v3AttrMap(kvs []v3KV) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = kv.Value.String()
	}
	return m
}

// get fetches path with query v and returns the status and body.
func (q *jaegerQuery) get(path string, v url.Values) (int, []byte, error) {
	u := q.base + path
	if len(v) > 0 {
		u += "?" + v.Encode()
	}
	resp, err := q.client.Get(u)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// errNotFound is getJSON's error for a 404 response, which /api/v3 uses
// for "no traces".
var errNotFound = errors.New("404 not found")

// getJSON fetches path, demands 200 and decodes the body into out.
func (q *jaegerQuery) getJSON(path string, v url.Values, out any) error {
	code, body, err := q.get(path, v)
	if err != nil {
		return err
	}
	if code == http.StatusNotFound {
		return fmt.Errorf("GET %s?%s: %w: %s", path, v.Encode(), errNotFound, bytes.TrimSpace(body))
	}
	if code != http.StatusOK {
		return fmt.Errorf("GET %s?%s: status %d: %s", path, v.Encode(), code, bytes.TrimSpace(body))
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("GET %s?%s: decode: %w", path, v.Encode(), err)
	}
	return nil
}

func v1Get[T any](q *jaegerQuery, path string, v url.Values) (T, error) {
	var r v1Response[T]
	if err := q.getJSON(path, v, &r); err != nil {
		return r.Data, err
	}
	if len(r.Errors) > 0 {
		return r.Data, fmt.Errorf("GET %s: errors %+v", path, r.Errors)
	}
	return r.Data, nil
}

func (q *jaegerQuery) services() ([]string, error) {
	return v1Get[[]string](q, "/api/services", nil)
}

func (q *jaegerQuery) operationsLegacy(svc string) ([]string, error) {
	return v1Get[[]string](q, "/api/services/"+url.PathEscape(svc)+"/operations", nil)
}

func (q *jaegerQuery) operations(svc, kind string) ([]v1Operation, error) {
	return v1Get[[]v1Operation](q, "/api/operations", url.Values{"service": {svc}, "spanKind": {kind}})
}

func (q *jaegerQuery) traceV1(id string) (v1Trace, error) {
	trs, err := v1Get[[]v1Trace](q, "/api/traces/"+id, nil)
	if err != nil {
		return v1Trace{}, err
	}
	if len(trs) != 1 {
		return v1Trace{}, fmt.Errorf("%d traces for ID %s, want 1", len(trs), id)
	}
	return trs[0], nil
}

func (q *jaegerQuery) search(v url.Values) ([]v1Trace, error) {
	return v1Get[[]v1Trace](q, "/api/traces", v)
}

func (q *jaegerQuery) dependencies(end time.Time, lookback time.Duration) ([]v1Dependency, error) {
	return v1Get[[]v1Dependency](q, "/api/dependencies", url.Values{
		"endTs":    {strconv.FormatInt(end.UnixMilli(), 10)},
		"lookback": {strconv.FormatInt(lookback.Milliseconds(), 10)},
	})
}

func (q *jaegerQuery) traceV3(id string) (v3Traces, error) {
	var r struct {
		Result v3Traces `json:"result"`
	}
	err := q.getJSON("/api/v3/traces/"+id, nil, &r)
	return r.Result, err
}

func (q *jaegerQuery) findV3(v url.Values) (v3Traces, error) {
	var r struct {
		Result v3Traces `json:"result"`
	}
	err := q.getJSON("/api/v3/traces", v, &r)
	return r.Result, err
}

// ---- the processes ----

type tracedbAddrs struct{ storage, admin, otlpGRPC, otlpHTTP string }

type jaegerAddrs struct{ otlpGRPC, otlpHTTP, queryHTTP, queryGRPC, health string }

// tracedbBinary returns $TRACEDB_BIN, or builds ./cmd/tracedb into dir.
func tracedbBinary(t *testing.T, dir string) string {
	t.Helper()
	if bin := os.Getenv(envTracedbBin); bin != "" {
		return bin
	}
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	bin := filepath.Join(dir, "tracedb")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/tracedb")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/tracedb: %v\n%s", err, out)
	}
	return bin
}

// freePorts returns n distinct free loopback addresses. The listeners stay
// open until all are picked, so no two are alike; another process may take
// one before the test binds it, which fails the test loudly.
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		addrs[i] = l.Addr().String()
	}
	return addrs
}

// process is a child process in its own process group, whose output is
// kept for the failure report.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, valid once done is closed
	// cleanExit demands exit status 0 after SIGTERM.
	cleanExit bool
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// tail returns the last n bytes written.
func (b *syncBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.Bytes()
	if len(s) > n {
		return "…" + string(s[len(s)-n:])
	}
	return string(s)
}

// startProcess starts bin in a process group of its own; on cleanup it
// stops the group (SIGTERM, then SIGQUIT, then SIGKILL) and, if the test
// failed, logs the output.
func startProcess(t *testing.T, name, bin string, args ...string) *process {
	t.Helper()
	p := &process{name: name, out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Logf("started %s (pid %d): %s %s", name, p.cmd.Process.Pid, bin, strings.Join(args, " "))
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("---- %s output (last %d KiB) ----\n%s", name, logTailBytes>>10, p.out.tail(logTailBytes))
		}
	})
	return p
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill ends p's process group at once, as a crash would.
func (p *process) kill() {
	if !p.exited() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// stop asks p's process group to shut down and waits for it.
func (p *process) stop(t *testing.T) {
	if p.exited() {
		return
	}
	pgid := -p.cmd.Process.Pid
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	select {
	case <-p.done:
		switch {
		case p.err != nil && p.cleanExit:
			t.Errorf("%s exited with %v after SIGTERM, want status 0", p.name, p.err)
		case p.err != nil:
			t.Logf("%s exited after SIGTERM: %v", p.name, p.err)
		}
	case <-time.After(stopTimeout):
		// SIGQUIT makes a Go program print its goroutines and exit: the
		// output shows where shutdown hangs.
		t.Errorf("%s did not exit %v after SIGTERM; sending SIGQUIT, then SIGKILL", p.name, stopTimeout)
		_ = syscall.Kill(pgid, syscall.SIGQUIT)
		select {
		case <-p.done:
		case <-time.After(quitTimeout):
		}
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		<-p.done
	}
}

// waitReady polls url until it answers 200, failing fast if p exits.
func waitReady(t *testing.T, hc *http.Client, p *process, url string) {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	var last string
	for {
		if p.exited() {
			t.Fatalf("%s exited before it was ready (%v)", p.name, p.err)
		}
		resp, err := hc.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("status %d: %s", resp.StatusCode, bytes.TrimSpace(body))
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %v: GET %s: %s", p.name, readyTimeout, url, last)
		}
		time.Sleep(pollInterval)
	}
}

// poll calls check until it returns nil or the deadline passes (it calls
// it at least once); then it reports check's last error.
// A check that passes only after retries is logged: with ingest complete,
// it means an index trails the trace-by-ID path.
func poll(t *testing.T, deadline time.Time, what string, check func() error) {
	t.Helper()
	start := time.Now()
	for tries := 1; ; tries++ {
		err := check()
		if err == nil {
			if tries > 1 {
				t.Logf("%s: passed after %d tries (%v)", what, tries, time.Since(start).Round(time.Millisecond))
			}
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: %v", what, err)
			return
		}
		time.Sleep(pollInterval)
	}
}
