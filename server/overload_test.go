package server

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tracedb/tracedb/db"
)

// slowWriter delays each write and records how many run at once.
type slowWriter struct {
	w       Writer
	delay   time.Duration
	entered chan struct{} // when not nil, gets a value as each write starts

	running, peak atomic.Int64
}

func (s *slowWriter) Write(ctx context.Context, td ptrace.Traces) (db.WriteResult, error) {
	n := s.running.Add(1)
	defer s.running.Add(-1)
	for p := s.peak.Load(); n > p && !s.peak.CompareAndSwap(p, n); p = s.peak.Load() {
	}
	if s.entered != nil {
		s.entered <- struct{}{}
	}
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return db.WriteResult{}, ctx.Err()
	}
	return s.w.Write(ctx, td)
}

func retryInfo(err error) *errdetails.RetryInfo {
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri
		}
	}
	return nil
}

func TestOverloadIsRefusedRetryably(t *testing.T) {
	const budgetBytes = 12 << 10
	sw := &slowWriter{delay: 100 * time.Millisecond}
	ts := startServer(t, serverSetup{
		cfg: func(c *Config) {
			c.Limits.MaxMessageBytes = budgetBytes
			c.Limits.IngestQueueBytes = budgetBytes
		},
		writer: func(store *db.DB) Writer { sw.w = store; return sw },
	})
	td, _ := pdataTrace(60, 1)
	req := ptraceotlp.NewExportRequestFromTraces(td)
	body, err := req.MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	size := len(body)
	if size > budgetBytes/2 || size < budgetBytes/8 {
		t.Fatalf("request of %d bytes: the test wants 2 to 8 of them to fit the %d-byte budget", size, budgetBytes)
	}

	const clients = 24
	var (
		wg                                 sync.WaitGroup
		grpcOK, grpcBusy, httpOK, httpBusy atomic.Int64
	)
	client := ptraceotlp.NewGRPCClient(ts.grpcConn(ListenerOTLPGRPC))
	hc := ts.httpClient()
	for range clients {
		wg.Go(func() {
			_, err := client.Export(context.Background(), req)
			switch {
			case err == nil:
				grpcOK.Add(1)
			case status.Code(err) == codes.ResourceExhausted && retryInfo(err) != nil:
				grpcBusy.Add(1)
			default:
				t.Errorf("grpc: %v (want OK or RESOURCE_EXHAUSTED with RetryInfo)", err)
			}
		})
		wg.Go(func() {
			hreq, _ := http.NewRequest(http.MethodPost, ts.url(ListenerOTLPHTTP, otlpTracesPath), bytesReader(body))
			hreq.Header.Set("Content-Type", mediaProtobuf)
			resp, err := hc.Do(hreq)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			switch {
			case resp.StatusCode == 200:
				httpOK.Add(1)
			case resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") != "":
				httpBusy.Add(1)
			default:
				t.Errorf("http: status %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
			}
		})
	}
	wg.Wait()
	t.Logf("grpc ok %d busy %d; http ok %d busy %d; peak concurrent writes %d", grpcOK.Load(), grpcBusy.Load(), httpOK.Load(), httpBusy.Load(), sw.peak.Load())
	if grpcBusy.Load() == 0 || httpBusy.Load() == 0 {
		t.Error("no request was refused: the budget did not bind")
	}
	if grpcOK.Load()+httpOK.Load() == 0 {
		t.Error("no request got through")
	}
	if maxFit := int64(budgetBytes / size); sw.peak.Load() > maxFit {
		t.Errorf("%d writes at once, but only %d requests fit the budget", sw.peak.Load(), maxFit)
	}
	if used := ts.srv.budget.used(); used != 0 {
		t.Errorf("budget holds %d bytes after every request finished", used)
	}
}

func TestStorageBusyIsRefusedRetryably(t *testing.T) {
	sw := &slowWriter{delay: time.Hour}
	ts := startServer(t, serverSetup{
		cfg:    func(c *Config) { c.Limits.WriteTimeout = 100 * time.Millisecond },
		writer: func(store *db.DB) Writer { sw.w = store; return sw },
	})
	td, _ := pdataTrace(3, 2)
	req := ptraceotlp.NewExportRequestFromTraces(td)
	_, err := ptraceotlp.NewGRPCClient(ts.grpcConn(ListenerStorage)).Export(context.Background(), req)
	if status.Code(err) != codes.ResourceExhausted || retryInfo(err) == nil {
		t.Errorf("grpc: err = %v, want RESOURCE_EXHAUSTED with RetryInfo", err)
	}
	body, _ := req.MarshalProto()
	resp := ts.post(body, header{"Content-Type": mediaProtobuf})
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "2" {
		t.Errorf("http: status %d Retry-After %q, want 503 with Retry-After 2", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

func TestGracefulShutdownFinishesInFlight(t *testing.T) {
	sw := &slowWriter{delay: 300 * time.Millisecond, entered: make(chan struct{}, 2)}
	ts := startServer(t, serverSetup{writer: func(store *db.DB) Writer { sw.w = store; return sw }})
	spans, id := sdkSpans(5, "shutdown")
	exp := ts.grpcExporter(ListenerOTLPGRPC, nil)
	td, tid := pdataTrace(4, 3)
	body, _ := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	hc := ts.httpClient()
	errs := make(chan error, 2)
	go func() { errs <- exp.ExportSpans(context.Background(), spans) }()
	go func() {
		resp, err := hc.Post(ts.url(ListenerOTLPHTTP, otlpTracesPath), mediaProtobuf, bytesReader(body))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != 200 {
				err = errors.New(resp.Status)
			}
		}
		errs <- err
	}()
	<-sw.entered
	<-sw.entered
	start := time.Now()
	ts.stop() // Serve returns nil, within bounds
	t.Logf("shutdown took %s", time.Since(start))
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("in-flight export failed across shutdown: %v", err)
		}
	}
	if n := len(traceSpans(t, ts.store, db.DefaultTenant, id)); n != 5 {
		t.Errorf("read back %d spans of the grpc export, want 5", n)
	}
	if n := len(traceSpans(t, ts.store, db.DefaultTenant, [16]byte(tid))); n != 4 {
		t.Errorf("read back %d spans of the http export, want 4", n)
	}
	if c, err := net.DialTimeout("tcp", ts.addr(ListenerOTLPGRPC), time.Second); err == nil {
		c.Close()
		t.Error("the listener still accepts after shutdown")
	}
}

func TestShutdownIsBounded(t *testing.T) {
	sw := &slowWriter{delay: time.Hour, entered: make(chan struct{}, 2)}
	ts := startServer(t, serverSetup{
		cfg: func(c *Config) {
			c.ShutdownTimeout = 200 * time.Millisecond
			c.Limits.WriteTimeout = time.Hour
		},
		writer: func(store *db.DB) Writer { sw.w = store; return sw },
	})
	td, _ := pdataTrace(2, 4)
	req := ptraceotlp.NewExportRequestFromTraces(td)
	body, _ := req.MarshalProto()
	go func() {
		_, _ = ptraceotlp.NewGRPCClient(ts.grpcConn(ListenerStorage)).Export(context.Background(), req)
	}()
	go func() {
		resp, err := ts.httpClient().Post(ts.url(ListenerOTLPHTTP, otlpTracesPath), mediaProtobuf, bytesReader(body))
		if err == nil {
			resp.Body.Close()
		}
	}()
	<-sw.entered
	<-sw.entered
	start := time.Now()
	ts.stop()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("shutdown with stuck requests took %s, want about the 200ms timeout", d)
	}
	// The stuck writes were cut off through their contexts.
	deadline := time.Now().Add(3 * time.Second)
	for sw.running.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := sw.running.Load(); n != 0 {
		t.Errorf("%d writes still running after shutdown", n)
	}
}

func TestTakenPortNamesTheSetting(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	store, err := db.Open(t.TempDir(), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	cfg := loopbackConfig()
	cfg.Listen.OTLPHTTP = taken.Addr().String()
	_, err = New(cfg, store, Options{})
	le, ok := errors.AsType[*ListenError](err)
	if !ok || le.Listener != ListenerOTLPHTTP {
		t.Fatalf("err = %v, want a *ListenError for otlp_http", err)
	}
	for _, want := range []string{"listen.otlp_http", taken.Addr().String(), "OTLP HTTP"} {
		if !containsStr(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	// The listeners bound before the failure were released: a server
	// with every listener off but the taken one's neighbours starts.
	cfg.Listen.OTLPHTTP = Off
	s, err := New(cfg, store, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Addr(ListenerOTLPHTTP) != nil {
		t.Error("an Off listener has an address")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
