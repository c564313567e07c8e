package server

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/tracedb/tracedb/server/pb/samplingv2"
)

// TestSamplingEndpoints: the sampling listeners serve file strategies over
// HTTP (both routes) and gRPC, behind auth and tenancy, and adaptive
// strategies learn from spans ingested over OTLP, per tenant.
func TestSamplingEndpoints(t *testing.T) {
	strategies := writeFile(t, "strategies.json", `{"service_strategies": [{"service": "fixed", "type": "ratelimiting", "param": 7}]}`)
	tokens := writeFile(t, "tokens", "secret\n")
	ts := startServer(t, serverSetup{cfg: func(c *Config) {
		c.DataDir = t.TempDir()
		c.Auth.TokenFile = tokens
		c.Tenancy.Enabled = true
		c.Sampling.StrategiesFile = strategies
		c.Sampling.Adaptive.Enabled = true
	}})
	get := func(path string, h header) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, ts.url(ListenerSamplingHTTP, path), nil)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := ts.httpClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	authA := header{"authorization": "Bearer secret", "x-tenant": "team-a"}
	authB := header{"authorization": "Bearer secret", "x-tenant": "team-b"}

	for _, path := range []string{"/api/sampling?service=fixed", "/sampling?service=fixed"} {
		code, body := get(path, authA)
		if code != http.StatusOK || body["strategyType"] != "RATE_LIMITING" {
			t.Errorf("GET %s: %d %v", path, code, body)
		}
	}
	if code, _ := get("/api/sampling?service=fixed", header{"x-tenant": "team-a"}); code != http.StatusUnauthorized {
		t.Errorf("without a token: %d, want 401", code)
	}
	if code, _ := get("/api/sampling", authA); code != http.StatusBadRequest {
		t.Errorf("without a service: %d, want 400", code)
	}

	client := pb.NewSamplingManagerClient(ts.grpcConn(ListenerSamplingGRPC))
	ctxA := metadata.NewOutgoingContext(context.Background(), metadata.New(authA))
	r, err := client.GetSamplingStrategy(ctxA, &pb.SamplingStrategyParameters{ServiceName: "fixed"})
	if err != nil || r.GetRateLimitingSampling().GetMaxTracesPerSecond() != 7 {
		t.Errorf("gRPC: %v, %v", r, err)
	}
	if _, err := client.GetSamplingStrategy(context.Background(), &pb.SamplingStrategyParameters{ServiceName: "fixed"}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("gRPC without a token: %v", err)
	}

	// Ingest under team-a: its adaptive strategy lists the root operation,
	// team-b's does not.
	spans, _ := sdkSpans(3, "shop")
	if err := ts.grpcExporter(ListenerOTLPGRPC, authA).ExportSpans(context.Background(), spans); err != nil {
		t.Fatal(err)
	}
	ops := func(h header) []string {
		t.Helper()
		r, err := client.GetSamplingStrategy(metadata.NewOutgoingContext(context.Background(), metadata.New(h)), &pb.SamplingStrategyParameters{ServiceName: "shop"})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, o := range r.GetOperationSampling().GetPerOperationStrategies() {
			names = append(names, o.GetOperation())
		}
		return names
	}
	if got := ops(authA); len(got) != 1 || got[0] != "root" {
		t.Errorf("team-a's adaptive operations: %v, want [root]", got)
	}
	if got := ops(authB); len(got) != 0 {
		t.Errorf("team-b's adaptive operations: %v, want none", got)
	}
}
