package server

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/tracedb/tracedb/db"
)

// countingWriter accepts everything without storing it.
type countingWriter struct{}

func (countingWriter) Write(_ context.Context, td ptrace.Traces) (db.WriteResult, error) {
	return db.WriteResult{Accepted: td.SpanCount()}, nil
}

// FuzzOTLPHTTPBody posts arbitrary bodies, as protobuf or JSON, plain or
// gzip-declared, to /v1/traces: the answer is always a clean status, never
// a panic, and the in-flight budget is always given back.
func FuzzOTLPHTTPBody(f *testing.F) {
	td, _ := pdataTrace(3, 1, 1)
	pb, _ := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	js, _ := ptraceotlp.NewExportRequestFromTraces(td).MarshalJSON()
	gz := gzipBytes(f, pb)
	f.Add(pb, false, false)
	f.Add(js, true, false)
	f.Add(gz, false, true)
	f.Add([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}`), true, false)
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}, false, false)

	store, err := db.Open(f.TempDir(), db.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })
	cfg := DefaultConfig()
	cfg.Listen = Listen{Storage: Off, Admin: Off, OTLPGRPC: Off, OTLPHTTP: Off, SamplingHTTP: Off, SamplingGRPC: Off}
	cfg.Limits.MaxMessageBytes = 1 << 20
	cfg.Limits.IngestQueueBytes = 1 << 20
	s, err := New(cfg, store, Options{Writer: countingWriter{}})
	if err != nil {
		f.Fatal(err)
	}
	h := s.otlpHTTPHandler()

	f.Fuzz(func(t *testing.T, body []byte, json, gzip bool) {
		req := httptest.NewRequest(http.MethodPost, otlpTracesPath, bytes.NewReader(body))
		req.Header.Set("Content-Type", map[bool]string{true: mediaJSON, false: mediaProtobuf}[json])
		if gzip {
			req.Header.Set("Content-Encoding", "gzip")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		if used := s.budget.used(); used != 0 {
			t.Fatalf("budget holds %d bytes after the request", used)
		}
	})
}
