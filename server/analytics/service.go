// Package analytics serves tracedb's own gRPC API, tracedb.analytics.v1
// (server/proto/tracedb/analytics/v1/analytics.proto): latency
// histograms, request and error rates, the tenant's data range and
// statistics, bulk export as OTLP, and a check of the live store
// (Verify), which Jaeger's storage v2 API cannot express. The tracedb CLI
// asks it with --server (Client); the server registers it on the storage
// listener beside jaeger.storage.v2, so it gets the same TLS, bearer
// tokens, tenancy, size limits and metrics.
//
// The tenant of a call is whatever the context carries (db.WithTenant,
// set by the server's interceptors): every answer is of that tenant only.
//
// Errors map to gRPC codes as for every tracedb gRPC service
// (server/internal/rpcerr): a caller's mistake
// (a malformed request, a bad filter, query.ErrInvalidQuery) is
// InvalidArgument saying what is wrong; the context's end is Canceled or
// DeadlineExceeded; a closed store is Unavailable; anything else is
// Internal.
package analytics

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/query"
	"github.com/tracedb/tracedb/server/internal/rpcerr"
	pb "github.com/tracedb/tracedb/server/pb/analyticsv1"
)

// Options configure the service. The zero value of a field means its
// default.
type Options struct {
	// DefaultChunkSpans is the spans per Export chunk when the request
	// does not say. Default 1,000.
	DefaultChunkSpans int
	// MaxChunkSpans is the most spans per Export chunk a request may ask
	// for; more is refused (InvalidArgument), so a chunk's memory stays
	// bounded. Default 10,000.
	MaxChunkSpans int
}

// Defaults of Options.
const (
	DefaultChunkSpans = 1000
	DefaultMaxChunk   = 10000
)

func (o *Options) fillDefaults() {
	if o.MaxChunkSpans <= 0 {
		o.MaxChunkSpans = DefaultMaxChunk
	}
	if o.DefaultChunkSpans <= 0 {
		o.DefaultChunkSpans = DefaultChunkSpans
	}
	o.DefaultChunkSpans = min(o.DefaultChunkSpans, o.MaxChunkSpans)
}

// Register registers the Analytics service on s, answering from eng (the
// queries) and store (statistics and export), with opts (defaults filled
// in). eng must read store.
func Register(s *grpc.Server, store *db.DB, eng *query.Engine, opts Options) {
	opts.fillDefaults()
	pb.RegisterAnalyticsServer(s, &service{store: store, eng: eng, opts: opts})
}

// service implements pb.AnalyticsServer.
type service struct {
	pb.UnimplementedAnalyticsServer

	store *db.DB
	eng   *query.Engine
	opts  Options
}

func (s *service) Histogram(ctx context.Context, req *pb.HistogramRequest) (*pb.HistogramResponse, error) {
	c, err := conditionsFromProto(req.GetConditions())
	if err != nil {
		return nil, err
	}
	h, err := s.eng.LatencyHistogram(ctx, query.HistogramQuery{SpanConditions: c})
	if err != nil {
		return nil, rpcerr.Status(err)
	}
	return histogramToProto(h), nil
}

func (s *service) Rate(ctx context.Context, req *pb.RateRequest) (*pb.RateResponse, error) {
	c, err := conditionsFromProto(req.GetConditions())
	if err != nil {
		return nil, err
	}
	points, err := s.eng.Rate(ctx, query.RateQuery{SpanConditions: c, Step: time.Duration(req.GetStepNanos())})
	if err != nil {
		return nil, rpcerr.Status(err)
	}
	res := &pb.RateResponse{Points: make([]*pb.RatePoint, len(points))}
	for i, p := range points {
		res.Points[i] = &pb.RatePoint{StartUnixNano: p.Start, EndUnixNano: p.End, Requests: p.Requests, Errors: p.Errors}
	}
	return res, nil
}

func (s *service) DataRange(ctx context.Context, _ *pb.DataRangeRequest) (*pb.DataRangeResponse, error) {
	r, ok, err := s.store.StartRange(ctx)
	if err != nil {
		return nil, rpcerr.Status(err)
	}
	return &pb.DataRangeResponse{HasSpans: ok, EarliestStartUnixNano: r.Start, LatestStartUnixNano: r.End}, nil
}

func (s *service) Stats(ctx context.Context, _ *pb.StatsRequest) (*pb.StatsResponse, error) {
	ts, err := s.store.Stats(ctx)
	if err != nil {
		return nil, rpcerr.Status(err)
	}
	res := &pb.StatsResponse{
		Tenant: ts.Tenant, Blocks: uint32(ts.Blocks), Spans: ts.Spans, HeadSpans: ts.HeadSpans, Bytes: ts.Bytes,
		MinStartUnixNano: ts.MinStart, MaxEndUnixNano: ts.MaxEnd,
	}
	for _, p := range ts.Partitions {
		res.Partitions = append(res.Partitions, &pb.PartitionStats{
			Id: uint32(p.ID), Blocks: uint32(p.Blocks), Spans: p.Spans, Bytes: p.Bytes,
			MinStartUnixNano: p.MinStart, MaxEndUnixNano: p.MaxEnd,
		})
	}
	return res, nil
}

func (s *service) Export(req *pb.ExportRequest, stream grpc.ServerStreamingServer[pb.ExportChunk]) error {
	tr := db.TimeRange{Start: req.GetStartTimeMinUnixNano(), End: req.GetStartTimeMaxUnixNano()}
	if tr.End != 0 && tr.Start > tr.End {
		return rpcerr.Invalidf("start_time_min %d is after start_time_max %d", tr.Start, tr.End)
	}
	batch := s.opts.DefaultChunkSpans
	if n := req.GetMaxSpansPerChunk(); n > 0 {
		if n > uint32(s.opts.MaxChunkSpans) {
			return rpcerr.Invalidf("max_spans_per_chunk %d is over the server's limit of %d", n, s.opts.MaxChunkSpans)
		}
		batch = int(n)
	}
	ctx := stream.Context()
	b := encoding.NewTracesBuilder()
	var m ptrace.ProtoMarshaler
	send := func() error {
		raw, err := m.MarshalTraces(b.Take())
		if err != nil {
			return status.Errorf(codes.Internal, "encode chunk: %v", err)
		}
		return stream.Send(&pb.ExportChunk{Traces: rawTracesData(raw)})
	}
	_, err := s.store.ScanSpans(ctx, tr, func(sp *encoding.Span) error {
		b.Add(sp)
		if b.Len() >= batch {
			return send()
		}
		return nil
	}, nil)
	if err == nil && b.Len() > 0 {
		err = send()
	}
	return rpcerr.Status(err)
}

// Verify runs db.DB.VerifyTenant for the caller's tenant, then sends the
// problems it found and the report. The check holds off compaction and
// retention while it runs, so nothing is sent until it is done: a caller
// that stops reading holds nothing off. A store with more than
// maxVerifyProblems problems is answered with RESOURCE_EXHAUSTED (the
// full list is for tracedb verify on the data directory).
func (s *service) Verify(_ *pb.VerifyRequest, stream grpc.ServerStreamingServer[pb.VerifyMessage]) error {
	// The problems are gathered first and sent once the check is done, so
	// that a client that stops reading cannot hold the check (and the
	// compaction and retention it holds off) open; they are bounded.
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	var problems []*pb.VerifyProblem
	tooMany := false
	rep, err := s.store.VerifyTenant(ctx, db.TenantFromContext(ctx), func(p db.VerifyProblem) {
		if len(problems) == maxVerifyProblems {
			tooMany = true
			cancel()
			return
		}
		problems = append(problems, problemToProto(p))
	})
	if tooMany {
		return status.Errorf(codes.ResourceExhausted, "verify: more than %d problems; run tracedb verify on the data directory for the full list", maxVerifyProblems)
	}
	if err != nil {
		return rpcerr.Status(err)
	}
	for _, p := range problems {
		if err := stream.Send(&pb.VerifyMessage{Item: &pb.VerifyMessage_Problem{Problem: p}}); err != nil {
			return rpcerr.Status(err)
		}
	}
	return stream.Send(&pb.VerifyMessage{Item: &pb.VerifyMessage_Report{Report: &pb.VerifyReport{
		Tenants: uint32(rep.Tenants), Blocks: uint64(rep.Blocks), RowGroups: uint64(rep.RowGroups), Spans: rep.Spans,
		Terms: rep.Terms, Sections: uint64(rep.Sections), WalSegments: uint64(rep.WALSegments), WalRecords: uint64(rep.WALRecords),
		Problems: uint64(rep.Problems), BenignProblems: uint64(rep.BenignProblems), ElapsedNanos: int64(rep.Elapsed),
	}}})
}

// maxVerifyProblems bounds the problems one Verify call gathers.
const maxVerifyProblems = 100_000

func problemToProto(p db.VerifyProblem) *pb.VerifyProblem {
	msg := ""
	if p.Err != nil {
		msg = p.Err.Error()
	}
	return &pb.VerifyProblem{
		Tenant: p.Tenant, Partition: uint32(p.Partition), Block: uint64(p.Block), Where: p.Where,
		WalSegment: p.Segment, WalOffset: p.Offset, Error: msg, Corrupt: errors.Is(p.Err, encoding.ErrCorrupt), Benign: p.Benign,
	}
}

// rawTracesData returns a TracesData whose encoding is raw, an encoded
// TracesData: the bytes pdata's marshaler wrote are handed to the proto
// codec as the message's unknown fields, which it writes verbatim (the
// peer reads exactly the message pdata encoded), sparing a decode into the
// generated OTLP types only to encode them again. The message is only for
// sending: its fields read as empty.
func rawTracesData(raw []byte) *tracepb.TracesData {
	msg := &tracepb.TracesData{}
	msg.ProtoReflect().SetUnknown(protoreflect.RawFields(raw))
	return msg
}

// conditionsFromProto checks and converts a request's conditions; its
// error is an InvalidArgument status.
func conditionsFromProto(p *pb.SpanConditions) (query.SpanConditions, error) {
	c := query.SpanConditions{
		Service: p.GetServiceName(), Operation: p.GetOperationName(),
		StartTime:   db.TimeRange{Start: p.GetStartTimeMinUnixNano(), End: p.GetStartTimeMaxUnixNano()},
		DurationMin: time.Duration(p.GetDurationMinNanos()), DurationMax: time.Duration(p.GetDurationMaxNanos()),
	}
	if len(p.GetAttributes()) > 0 {
		c.Attributes = p.GetAttributes()
	}
	switch {
	case c.DurationMin < 0 || c.DurationMax < 0:
		return c, rpcerr.Invalidf("negative duration bound (min %d ns, max %d ns)", c.DurationMin, c.DurationMax)
	case c.StartTime.End != 0 && c.StartTime.Start > c.StartTime.End:
		return c, rpcerr.Invalidf("start_time_min %d is after start_time_max %d", c.StartTime.Start, c.StartTime.End)
	}
	if text := p.GetFilter(); text != "" {
		e, err := query.ParseFilter(text)
		if err != nil {
			return c, rpcerr.Invalidf("filter: %v", err)
		}
		if c.Filter, err = query.Compile(e); err != nil {
			return c, rpcerr.Invalidf("filter: %v", err)
		}
	}
	return c, nil
}
