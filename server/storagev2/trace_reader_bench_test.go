package storagev2

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/internal/spangen"
	"github.com/tracedb/tracedb/query"
	pb "github.com/tracedb/tracedb/server/pb/storagev2"
)

// BenchmarkGetTraces reads one 10-span trace of a 100,000-span store
// (ClickHouse shape, flushed into a block, default options): "engine" in
// process (db.GetTrace), "grpc" through GetTraces on a loopback listener,
// every message received and decoded: what the API adds to the engine.
func BenchmarkGetTraces(b *testing.B) {
	d, err := db.Open(b.TempDir(), db.Options{Sync: db.SyncNone, CompactionInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	spans := spangen.Spans(spangen.NewClickHouseShape(rand.New(rand.NewPCG(1, 2)), false), 100_000)
	ids := map[encoding.TraceID]bool{}
	for lo := 0; lo < len(spans); lo += 1000 {
		chunk := spans[lo:min(lo+1000, len(spans))]
		for _, s := range chunk {
			ids[s.TraceID] = true
		}
		if _, err := d.Write(context.Background(), spansToTraces(chunk)); err != nil {
			b.Fatal(err)
		}
	}
	if err := d.Flush(); err != nil {
		b.Fatal(err)
	}
	var traces []encoding.TraceID
	for id := range ids {
		traces = append(traces, id)
	}
	eng, err := query.NewEngine(d, query.Options{})
	if err != nil {
		b.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer()
	Register(gs, eng, Options{})
	go gs.Serve(lis)
	defer gs.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewTraceReaderClient(conn)
	r := rand.New(rand.NewPCG(3, 4))

	b.Run("engine", func(b *testing.B) {
		for b.Loop() {
			n := 0
			for td, err := range d.GetTrace(context.Background(), traces[r.IntN(len(traces))], db.TimeRange{}) {
				if err != nil {
					b.Fatal(err)
				}
				n += td.SpanCount()
			}
			if n == 0 {
				b.Fatal("no spans")
			}
		}
	})
	b.Run("grpc", func(b *testing.B) {
		for b.Loop() {
			id := traces[r.IntN(len(traces))]
			stream, err := client.GetTraces(context.Background(), &pb.GetTracesRequest{Query: []*pb.GetTraceParams{{TraceId: id[:]}}})
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for {
				td, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
				n += len(td.ResourceSpans)
			}
			if n == 0 {
				b.Fatal("no spans")
			}
		}
	})
}
