package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
)

// testServer is a server on 127.0.0.1:0 listeners over a store in a temp
// dir, served until the test ends.
type testServer struct {
	t      *testing.T
	srv    *Server
	store  *db.DB
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
	client *tls.Config // client TLS config when the server serves TLS
}

type serverSetup struct {
	cfg    func(*Config)
	writer func(*db.DB) Writer
	client *tls.Config
}

func loopbackConfig() Config {
	c := DefaultConfig()
	c.Listen = Listen{Storage: "127.0.0.1:0", Admin: "127.0.0.1:0", OTLPGRPC: "127.0.0.1:0", OTLPHTTP: "127.0.0.1:0", SamplingHTTP: "127.0.0.1:0", SamplingGRPC: "127.0.0.1:0"}
	c.ShutdownTimeout = 10 * time.Second
	return c
}

func startServer(t *testing.T, setup serverSetup) *testServer {
	t.Helper()
	cfg := loopbackConfig()
	if setup.cfg != nil {
		setup.cfg(&cfg)
	}
	reg := prometheus.NewRegistry()
	store, err := db.Open(t.TempDir(), db.Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Registerer: reg}
	if setup.writer != nil {
		opts.Writer = setup.writer(store)
	}
	srv, err := New(cfg, store, opts)
	if err != nil {
		store.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{t: t, srv: srv, store: store, reg: reg, cancel: cancel, done: make(chan error, 1), client: setup.client}
	go func() { ts.done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		ts.stop()
		if err := store.Close(); err != nil && err != db.ErrClosed {
			t.Errorf("close store: %v", err)
		}
	})
	return ts
}

// stop ends Serve and checks it returns nil in bounded time.
func (ts *testServer) stop() {
	ts.t.Helper()
	ts.cancel()
	select {
	case err, ok := <-ts.done:
		if ok && err != nil {
			ts.t.Errorf("Serve: %v", err)
		}
		if ok {
			close(ts.done)
		}
	case <-time.After(20 * time.Second):
		ts.t.Fatal("Serve did not return within 20s of its context ending")
	}
}

func (ts *testServer) addr(id ListenerID) string { return ts.srv.Addr(id).String() }

func (ts *testServer) url(id ListenerID, path string) string {
	scheme := "http"
	if ts.client != nil {
		scheme = "https"
	}
	return scheme + "://" + ts.addr(id) + path
}

func (ts *testServer) httpClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: ts.client}}
}

func (ts *testServer) grpcConn(id ListenerID, opts ...grpc.DialOption) *grpc.ClientConn {
	ts.t.Helper()
	creds := insecure.NewCredentials()
	if ts.client != nil {
		creds = credentials.NewTLS(ts.client)
	}
	conn, err := grpc.NewClient(ts.addr(id), append([]grpc.DialOption{grpc.WithTransportCredentials(creds)}, opts...)...)
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.t.Cleanup(func() { conn.Close() })
	return conn
}

// header is a header (gRPC metadata) to send with each export.
type header map[string]string

// grpcExporter is the OpenTelemetry SDK's OTLP gRPC exporter, pointed at
// listener id, without retries so that tests see the server's answer.
func (ts *testServer) grpcExporter(id ListenerID, h header) *otlptrace.Exporter {
	ts.t.Helper()
	opts := []otlptracegrpc.Option{
		otlptracegrpc.WithEndpoint(ts.addr(id)),
		otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}),
		otlptracegrpc.WithCompressor("gzip"),
		otlptracegrpc.WithHeaders(h),
		otlptracegrpc.WithTimeout(10 * time.Second),
	}
	if ts.client != nil {
		opts = append(opts, otlptracegrpc.WithTLSCredentials(credentials.NewTLS(ts.client)))
	} else {
		opts = append(opts, otlptracegrpc.WithInsecure())
	}
	exp, err := otlptracegrpc.New(context.Background(), opts...)
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.t.Cleanup(func() { _ = exp.Shutdown(context.Background()) })
	return exp
}

// httpExporter is the SDK's OTLP HTTP exporter (protobuf, gzip).
func (ts *testServer) httpExporter(h header) *otlptrace.Exporter {
	ts.t.Helper()
	opts := []otlptracehttp.Option{
		otlptracehttp.WithEndpoint(ts.addr(ListenerOTLPHTTP)),
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}),
		otlptracehttp.WithCompression(otlptracehttp.GzipCompression),
		otlptracehttp.WithHeaders(h),
		otlptracehttp.WithTimeout(10 * time.Second),
	}
	if ts.client != nil {
		opts = append(opts, otlptracehttp.WithTLSClientConfig(ts.client))
	} else {
		opts = append(opts, otlptracehttp.WithInsecure())
	}
	exp, err := otlptracehttp.New(context.Background(), opts...)
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.t.Cleanup(func() { _ = exp.Shutdown(context.Background()) })
	return exp
}

// sdkSpans makes one trace of n spans (a root and n-1 children) with the
// real SDK and returns them ended, ready for an exporter.
func sdkSpans(n int, service string) ([]sdktrace.ReadOnlySpan, trace.TraceID) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", service))))
	tr := tp.Tracer("tracedb/server_test")
	ctx, root := tr.Start(context.Background(), "root", trace.WithSpanKind(trace.SpanKindServer))
	for i := 1; i < n; i++ {
		_, s := tr.Start(ctx, fmt.Sprintf("child-%d", i), trace.WithAttributes(attribute.Int("i", i), attribute.String("pad", strings.Repeat("x", 32))))
		s.End()
	}
	root.End()
	return rec.Ended(), root.SpanContext().TraceID()
}

// traceSpans reads trace id of tenant back from the store.
func traceSpans(t *testing.T, store *db.DB, tenant string, id trace.TraceID) []*encoding.Span {
	t.Helper()
	var out []*encoding.Span
	for s, err := range store.TraceSpans(db.WithTenant(context.Background(), tenant), encoding.TraceID(id), db.TimeRange{}) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// pdataTrace builds a ptrace batch of n spans of one new trace; the spans
// at indexes in zeroSpanID get an all-zero span ID (rejected by the store).
func pdataTrace(n int, seed byte, zeroSpanID ...int) (ptrace.Traces, encoding.TraceID) {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "pdata")
	ss := rs.ScopeSpans().AppendEmpty()
	var tid encoding.TraceID
	tid[0], tid[15] = 0xAB, seed
	now := time.Now()
	for i := range n {
		s := ss.Spans().AppendEmpty()
		s.SetTraceID(pcommon.TraceID(tid))
		s.SetSpanID(pcommon.SpanID{seed, 1, 2, 3, 4, 5, 6, byte(i + 1)})
		s.SetName(fmt.Sprintf("op-%d", i))
		s.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Millisecond)))
	}
	for _, i := range zeroSpanID {
		ss.Spans().At(i).SetSpanID(pcommon.SpanID{})
	}
	return td, tid
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// post sends body to the server's OTLP HTTP route with the given headers.
func (ts *testServer) post(body []byte, h header) *http.Response {
	ts.t.Helper()
	req, err := http.NewRequest(http.MethodPost, ts.url(ListenerOTLPHTTP, otlpTracesPath), bytes.NewReader(body))
	if err != nil {
		ts.t.Fatal(err)
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := ts.httpClient().Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func readAll(t *testing.T, r io.Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

func containsStr(s, sub string) bool { return strings.Contains(s, sub) }
