package server

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tracedb/tracedb/db"
)

func TestOTLPSDKExportersRoundTrip(t *testing.T) {
	ts := startServer(t, serverSetup{})
	type exporter interface {
		ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error
	}
	for _, tc := range []struct {
		name string
		exp  exporter
	}{
		{"grpc on 4317", ts.grpcExporter(ListenerOTLPGRPC, nil)},
		{"grpc on 17271", ts.grpcExporter(ListenerStorage, nil)},
		{"http protobuf gzip", ts.httpExporter(nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spans, id := sdkSpans(20, "svc-"+tc.name)
			if err := tc.exp.ExportSpans(context.Background(), spans); err != nil {
				t.Fatalf("export: %v", err)
			}
			got := traceSpans(t, ts.store, db.DefaultTenant, id)
			if len(got) != len(spans) {
				t.Fatalf("read back %d spans, want %d", len(got), len(spans))
			}
			names := map[string]bool{}
			for _, s := range got {
				names[s.Name] = true
				if s.ServiceName() != "svc-"+tc.name {
					t.Errorf("span %s: service %q", s.Name, s.ServiceName())
				}
			}
			for _, s := range spans {
				if !names[s.Name()] {
					t.Errorf("span %q not read back", s.Name())
				}
			}
		})
	}
}

func TestOTLPPartialSuccess(t *testing.T) {
	ts := startServer(t, serverSetup{})
	t.Run("grpc", func(t *testing.T) {
		td, id := pdataTrace(5, 1, 2)
		resp, err := ptraceotlp.NewGRPCClient(ts.grpcConn(ListenerOTLPGRPC)).Export(context.Background(), ptraceotlp.NewExportRequestFromTraces(td))
		if err != nil {
			t.Fatal(err)
		}
		ps := resp.PartialSuccess()
		if ps.RejectedSpans() != 1 || !strings.Contains(ps.ErrorMessage(), string(db.RejectZeroSpanID)) {
			t.Fatalf("partial success = %d %q, want 1 rejected for %s", ps.RejectedSpans(), ps.ErrorMessage(), db.RejectZeroSpanID)
		}
		if n := len(traceSpans(t, ts.store, db.DefaultTenant, [16]byte(id))); n != 4 {
			t.Fatalf("stored %d spans, want the 4 valid ones", n)
		}
	})
	for _, tc := range []struct {
		media string
		gzip  bool
	}{{mediaJSON, false}, {mediaJSON, true}, {mediaProtobuf, false}} {
		t.Run("http "+tc.media, func(t *testing.T) {
			td, id := pdataTrace(4, byte(len(tc.media))+btoi(tc.gzip), 0, 3)
			req := ptraceotlp.NewExportRequestFromTraces(td)
			var body []byte
			var err error
			if tc.media == mediaJSON {
				body, err = req.MarshalJSON()
			} else {
				body, err = req.MarshalProto()
			}
			if err != nil {
				t.Fatal(err)
			}
			h := header{"Content-Type": tc.media}
			if tc.gzip {
				body = gzipBytes(t, body)
				h["Content-Encoding"] = "gzip"
			}
			resp := ts.post(body, h)
			b := readAll(t, resp.Body)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != tc.media {
				t.Fatalf("status %d, content type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
			}
			er := ptraceotlp.NewExportResponse()
			if tc.media == mediaJSON {
				err = er.UnmarshalJSON(b)
			} else {
				err = er.UnmarshalProto(b)
			}
			if err != nil {
				t.Fatal(err)
			}
			if ps := er.PartialSuccess(); ps.RejectedSpans() != 2 || !strings.Contains(ps.ErrorMessage(), "zero_span_id: 2") {
				t.Fatalf("partial success = %d %q, want 2 rejected", ps.RejectedSpans(), ps.ErrorMessage())
			}
			if n := len(traceSpans(t, ts.store, db.DefaultTenant, [16]byte(id))); n != 2 {
				t.Fatalf("stored %d spans, want 2", n)
			}
		})
	}
}

func btoi(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestOTLPMalformedRequests(t *testing.T) {
	ts := startServer(t, serverSetup{cfg: func(c *Config) {
		c.Limits.MaxMessageBytes = 1 << 16
		c.Limits.MaxSpansPerRequest = 10
	}})
	td, _ := pdataTrace(3, 9)
	good, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	many, _ := pdataTrace(11, 10)
	tooMany, err := ptraceotlp.NewExportRequestFromTraces(many).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	garbage := []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3} // field 1, length far past the end
	t.Run("grpc garbage protobuf", func(t *testing.T) {
		conn := ts.grpcConn(ListenerOTLPGRPC)
		err := conn.Invoke(context.Background(), otlpExportMethod, &rawMessage{b: garbage}, &rawMessage{}, grpc.ForceCodecV2(newRawCodec()))
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "malformed OTLP request") {
			t.Fatalf("err = %v, want InvalidArgument naming the malformed request", err)
		}
	})
	t.Run("grpc too many spans", func(t *testing.T) {
		_, err := ptraceotlp.NewGRPCClient(ts.grpcConn(ListenerStorage)).Export(context.Background(), ptraceotlp.NewExportRequestFromTraces(many))
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "11 spans") {
			t.Fatalf("err = %v, want InvalidArgument naming the span count", err)
		}
	})
	for _, tc := range []struct {
		name   string
		method string
		body   []byte
		h      header
		status int
		want   string
	}{
		{"garbage protobuf", "", garbage, header{"Content-Type": mediaProtobuf}, 400, "malformed OTLP request"},
		{"bad json", "", []byte(`{"resourceSpans": [{"scopeSpans": [`), header{"Content-Type": mediaJSON}, 400, "malformed OTLP request"},
		{"bad json type", "", []byte(`{"resourceSpans": 7}`), header{"Content-Type": mediaJSON}, 400, "malformed OTLP request"},
		{"bad gzip", "", []byte("not gzip at all"), header{"Content-Type": mediaProtobuf, "Content-Encoding": "gzip"}, 400, "gzip"},
		{"truncated gzip", "", gzipBytes(t, good)[:20], header{"Content-Type": mediaProtobuf, "Content-Encoding": "gzip"}, 400, "gzip"},
		{"unknown encoding", "", good, header{"Content-Type": mediaProtobuf, "Content-Encoding": "br"}, 415, "Content-Encoding"},
		{"unknown media type", "", good, header{"Content-Type": "text/plain"}, 415, "Content-Type"},
		{"GET", http.MethodGet, nil, nil, 405, "only POST"},
		{"body over limit", "", make([]byte, 1<<16+1), header{"Content-Type": mediaProtobuf}, 413, "over the limit"},
		{"gzip bomb over limit", "", gzipBytes(t, make([]byte, 1<<20)), header{"Content-Type": mediaProtobuf, "Content-Encoding": "gzip"}, 413, "over the limit"},
		{"too many spans", "", tooMany, header{"Content-Type": mediaJSON}, 413, "11 spans"},
		{"good", "", good, header{"Content-Type": mediaProtobuf}, 200, ""},
	} {
		t.Run("http "+tc.name, func(t *testing.T) {
			var resp *http.Response
			if tc.method == http.MethodGet {
				var err error
				resp, err = ts.httpClient().Get(ts.url(ListenerOTLPHTTP, otlpTracesPath))
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
			} else {
				resp = ts.post(tc.body, tc.h)
			}
			b := readAll(t, resp.Body)
			if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.want) {
				t.Fatalf("status %d body %q, want %d containing %q", resp.StatusCode, b, tc.status, tc.want)
			}
		})
	}
	// The server still works after all that.
	if resp := ts.post(good, header{"Content-Type": mediaProtobuf}); resp.StatusCode != 200 {
		t.Fatalf("status %d after malformed requests", resp.StatusCode)
	}
	if used := ts.srv.budget.used(); used != 0 {
		t.Fatalf("in-flight budget holds %d bytes after every request finished", used)
	}
}

func TestOTLPHTTPErrorBodyIsStatus(t *testing.T) {
	ts := startServer(t, serverSetup{})
	resp := ts.post([]byte(`{`), header{"Content-Type": mediaJSON})
	b := readAll(t, resp.Body)
	if resp.StatusCode != 400 || resp.Header.Get("Content-Type") != mediaJSON || !strings.Contains(string(b), `"code":3`) {
		t.Fatalf("status %d %q body %s, want a JSON google.rpc.Status with code 3", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
}
