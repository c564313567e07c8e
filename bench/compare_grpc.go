package bench

import (
	"context"
	"errors"
	"io"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/tracedb/tracedb/server/pb/storagev2"
)

// grpcBackend queries `tracedb serve` through its own Jaeger storage v2
// gRPC API, the one Jaeger's remote storage calls: what a program that
// talks to tracedb directly sees, without Jaeger's query service (HTTP,
// adjusters, JSON) in front. The timing covers the call and receiving
// every message of its answer; turning it into spans for the check does
// not count.
type grpcBackend struct {
	traces pb.TraceReaderClient
	deps   pb.DependencyReaderClient
}

func newGRPCBackend(conn *grpc.ClientConn) *grpcBackend {
	return &grpcBackend{traces: pb.NewTraceReaderClient(conn), deps: pb.NewDependencyReaderClient(conn)}
}

// receive reads a stream of TracesData to its end.
func receive(stream grpc.ServerStreamingClient[tracepb.TracesData]) ([]*tracepb.TracesData, error) {
	var out []*tracepb.TracesData
	for {
		td, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, td)
	}
}

func (b *grpcBackend) traceByID(ctx context.Context, t traceFacts) (int, error) {
	stream, err := b.traces.GetTraces(ctx, &pb.GetTracesRequest{Query: []*pb.GetTraceParams{{TraceId: t.id[:]}}})
	if err != nil {
		return 0, err
	}
	tds, err := receive(stream)
	n := 0
	for _, td := range tds {
		eachOTLPSpan(td, func(string, []*commonpb.KeyValue, *tracepb.Span) { n++ })
	}
	return n, err
}

func (b *grpcBackend) search(ctx context.Context, q searchParams, p *queryPlan) (int, func() (int, error), error) {
	params := &pb.TraceQueryParameters{
		ServiceName:   q.service,
		OperationName: q.operation,
		StartTimeMin:  timestamppb.New(p.start),
		StartTimeMax:  timestamppb.New(p.end),
		SearchDepth:   compareSearchLimit,
	}
	for k, v := range q.attrs {
		params.Attributes = append(params.Attributes, &pb.KeyValue{Key: k, Value: &pb.AnyValue{Value: &pb.AnyValue_StringValue{StringValue: v}}})
	}
	if q.durMin > 0 {
		params.DurationMin = durationpb.New(q.durMin)
	}
	if q.durMax > 0 {
		params.DurationMax = durationpb.New(q.durMax)
	}
	stream, err := b.traces.FindTraces(ctx, &pb.FindTracesRequest{Query: params})
	if err != nil {
		return 0, nil, err
	}
	tds, err := receive(stream)
	if err != nil {
		return 0, nil, err
	}
	// A trace comes as one message or as several in a row.
	var order [][]byte
	spans := map[string][]checkSpan{}
	for _, td := range tds {
		eachOTLPSpan(td, func(service string, resAttrs []*commonpb.KeyValue, s *tracepb.Span) {
			id := string(s.TraceId)
			if _, ok := spans[id]; !ok {
				order = append(order, s.TraceId)
			}
			spans[id] = append(spans[id], otlpCheckSpan(service, resAttrs, s))
		})
	}
	check := func() (int, error) {
		bad := 0
		for _, id := range order {
			if !q.anyMeets(spans[string(id)], 0) {
				bad++
			}
		}
		return bad, nil
	}
	return len(order), check, nil
}

func (b *grpcBackend) services(ctx context.Context) (int, error) {
	r, err := b.traces.GetServices(ctx, &pb.GetServicesRequest{})
	if err != nil {
		return 0, err
	}
	return len(r.Services), nil
}

func (b *grpcBackend) dependencies(ctx context.Context, p *queryPlan) (uint64, error) {
	r, err := b.deps.GetDependencies(ctx, &pb.GetDependenciesRequest{
		StartTime: timestamppb.New(p.depsEnd.Add(-depsLookback)), EndTime: timestamppb.New(p.depsEnd)})
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, d := range r.Dependencies {
		n += d.CallCount
	}
	return n, nil
}

// eachOTLPSpan calls fn with every span of td, its resource's service
// name and attributes.
func eachOTLPSpan(td *tracepb.TracesData, fn func(service string, resAttrs []*commonpb.KeyValue, s *tracepb.Span)) {
	for _, rs := range td.ResourceSpans {
		var attrs []*commonpb.KeyValue
		if rs.Resource != nil {
			attrs = rs.Resource.Attributes
		}
		service := ""
		for _, kv := range attrs {
			if kv.Key == "service.name" {
				service = kv.Value.GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				fn(service, attrs, s)
			}
		}
	}
}

func otlpCheckSpan(service string, resAttrs []*commonpb.KeyValue, s *tracepb.Span) checkSpan {
	c := checkSpan{service: service, name: s.Name, duration: time.Duration(s.EndTimeUnixNano - s.StartTimeUnixNano),
		attrs: map[string][]string{}}
	add := func(kvs []*commonpb.KeyValue) {
		for _, kv := range kvs {
			if sv, ok := kv.Value.GetValue().(*commonpb.AnyValue_StringValue); ok {
				c.attrs[kv.Key] = append(c.attrs[kv.Key], sv.StringValue)
			}
		}
	}
	add(s.Attributes)
	add(resAttrs)
	return c
}
