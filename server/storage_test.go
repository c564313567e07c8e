package server

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/tracedb/tracedb/server/pb/storagev2"
)

// TestStorageAPIReadsWhatOTLPWrote goes the whole way: the SDK exports
// into 4317 for one tenant, and Jaeger's storage API on 17271 reads it
// back for that tenant only.
func TestStorageAPIReadsWhatOTLPWrote(t *testing.T) {
	tokens := writeFile(t, "tokens", "tok\n")
	ts := startServer(t, serverSetup{cfg: func(c *Config) {
		c.Auth.TokenFile = tokens
		c.Tenancy = Tenancy{Enabled: true}
	}})
	spans, id := sdkSpans(6, "storage-api")
	if err := ts.grpcExporter(ListenerOTLPGRPC, header{"authorization": "Bearer tok", "x-tenant": "acme"}).ExportSpans(context.Background(), spans); err != nil {
		t.Fatal(err)
	}
	client := pb.NewTraceReaderClient(ts.grpcConn(ListenerStorage))
	as := func(tenant string) context.Context {
		return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer tok", "x-tenant", tenant)
	}
	getTrace := func(ctx context.Context) (int, error) {
		stream, err := client.GetTraces(ctx, &pb.GetTracesRequest{Query: []*pb.GetTraceParams{{TraceId: id[:]}}})
		if err != nil {
			return 0, err
		}
		n := 0
		for {
			td, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			if err != nil {
				return n, err
			}
			for _, rs := range td.ResourceSpans {
				for _, ss := range rs.ScopeSpans {
					n += len(ss.Spans)
				}
			}
		}
	}
	if n, err := getTrace(as("acme")); err != nil || n != 6 {
		t.Fatalf("GetTraces as acme: %d spans, %v; want 6", n, err)
	}
	if n, err := getTrace(as("other")); err != nil || n != 0 {
		t.Fatalf("GetTraces as another tenant: %d spans, %v; want none", n, err)
	}
	if _, err := getTrace(metadata.AppendToOutgoingContext(context.Background(), "x-tenant", "acme")); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("GetTraces without a token: %v, want Unauthenticated", err)
	}
	svcs, err := client.GetServices(as("acme"), &pb.GetServicesRequest{})
	if err != nil || !slices.Contains(svcs.Services, "storage-api") {
		t.Fatalf("GetServices as acme = %v, %v", svcs, err)
	}
}
