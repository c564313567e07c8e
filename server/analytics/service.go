// Package analytics serves tracedb's own gRPC API, tracedb.analytics.v1
// (server/proto/tracedb/analytics/v1/analytics.proto): latency
// histograms, request and error rates, the tenant's data range and
// statistics, and bulk export as OTLP, which Jaeger's storage v2 API
// cannot express. The tracedb CLI asks it with --server (Client); the
// server registers it on the storage listener beside jaeger.storage.v2,
// so it gets the same TLS, bearer tokens, tenancy, size limits and
// metrics.
//
// The tenant of a call is whatever the context carries (db.WithTenant,
// set by the server's interceptors): every answer is of that tenant only.
//
// Errors map to gRPC codes as in package storagev2: a caller's mistake
// (a malformed request, a bad filter, query.ErrInvalidQuery) is
// InvalidArgument saying what is wrong; the context's end is Canceled or
// DeadlineExceeded; a closed store is Unavailable; anything else is
// Internal.
package analytics

import (
	"context"
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
