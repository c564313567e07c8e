package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/server"
)

func TestServeConfigFileThenFlags(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tracedb.yaml")
	yaml := "data_dir: /from/file\nlisten: {admin: off, otlp_http: \"127.0.0.1:9999\"}\nlimits: {max_spans_per_request: 500, write_timeout: 3s}\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		args  []string
		check func(t *testing.T, c server.Config)
	}{
		{"defaults", nil, func(t *testing.T, c server.Config) {
			if c.Listen.Storage != server.DefaultStorageAddr || c.DataDir != server.DefaultDataDir {
				t.Errorf("got %+v", c)
			}
		}},
		{"file", []string{"--config", file}, func(t *testing.T, c server.Config) {
			if c.DataDir != "/from/file" || c.Listen.Admin != server.Off || c.Listen.OTLPHTTP != "127.0.0.1:9999" ||
				c.Limits.MaxSpansPerRequest != 500 || c.Limits.WriteTimeout != 3*time.Second || c.Listen.OTLPGRPC != server.DefaultOTLPGRPCAddr {
				t.Errorf("got %+v", c)
			}
		}},
		{"flags over file", []string{"--config", file, "--data-dir", "/from/flag", "--listen.otlp-http", "off",
			"--limits.max-spans-per-request", "7", "--tenancy.enabled", "--tenancy.tenants", "a,b", "--limits.write-timeout", "1s"},
			func(t *testing.T, c server.Config) {
				if c.DataDir != "/from/flag" || c.Listen.OTLPHTTP != server.Off || c.Listen.Admin != server.Off ||
					c.Limits.MaxSpansPerRequest != 7 || !c.Tenancy.Enabled || strings.Join(c.Tenancy.Tenants, ",") != "a,b" ||
					c.Limits.WriteTimeout != time.Second {
					t.Errorf("got %+v", c)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := serveCmd()
			if err := cmd.ParseFlags(tc.args); err != nil {
				t.Fatal(err)
			}
			path, _ := cmd.Flags().GetString("config")
			c, err := serveConfig(path, cmd.Flags())
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
	cmd := serveCmd()
	if err := cmd.ParseFlags([]string{"--listen.admin", "nowhere"}); err != nil {
		t.Fatal(err)
	}
	if _, err := serveConfig("", cmd.Flags()); err == nil || !strings.Contains(err.Error(), "listen.admin") {
		t.Errorf("bad address: err = %v", err)
	}
}

func loopback(dir string) server.Config {
	c := server.DefaultConfig()
	c.DataDir = dir
	c.Listen = server.Listen{Storage: "127.0.0.1:0", Admin: "127.0.0.1:0", OTLPGRPC: "127.0.0.1:0", OTLPHTTP: "127.0.0.1:0", SamplingHTTP: "127.0.0.1:0", SamplingGRPC: "127.0.0.1:0"}
	return c
}

// syncBuffer is a bytes.Buffer safe for the server's and the test's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestServeIngestsStopsAndFlushes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	cfg := loopback(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan *server.Server, 1)
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- runServe(ctx, &out, cfg, slog.New(slog.DiscardHandler), func(s *server.Server) { ready <- s })
	}()
	var srv *server.Server
	select {
	case srv = <-ready:
	case err := <-done:
		t.Fatalf("runServe: %v", err)
	}

	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "cli")
	s := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	tid := encoding.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	s.SetTraceID(pcommon.TraceID(tid))
	s.SetSpanID(pcommon.SpanID{1})
	s.SetName("GET /")
	now := time.Now()
	s.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
	s.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Millisecond)))
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+srv.Addr(server.ListenerOTLPHTTP).String()+"/v1/traces", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("export: %s", resp.Status)
	}

	cancel() // what SIGINT/SIGTERM does
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("runServe after cancel: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("runServe did not return within 20s")
	}
	got := out.String()
	for _, want := range []string{"tracedb serving " + dir, srv.Addr(server.ListenerStorage).String(), "--listen.otlp-http", "flushed and closed"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	store, err := db.Open(dir, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	n := 0
	for _, err := range store.TraceSpans(context.Background(), tid, db.TimeRange{}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 1 {
		t.Fatalf("after restart the store has %d spans of the trace, want 1", n)
	}
}

func TestServeTakenPortNamesTheFlag(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := loopback(filepath.Join(t.TempDir(), "data"))
	cfg.Listen.OTLPGRPC = taken.Addr().String()
	err = runServe(context.Background(), &bytes.Buffer{}, cfg, slog.New(slog.DiscardHandler), nil)
	if err == nil || !strings.Contains(err.Error(), "--listen.otlp-grpc") || !strings.Contains(err.Error(), taken.Addr().String()) {
		t.Fatalf("err = %v, want one naming --listen.otlp-grpc and %s", err, taken.Addr())
	}
	t.Log(err)
}
