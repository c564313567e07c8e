package server

import (
	"context"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/gzip" // OTLP exporters may send gzip; the package registers it with gRPC
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
)

// The OTLP trace service, as named in opentelemetry/proto/collector/trace/v1.
const (
	otlpTraceService = "opentelemetry.proto.collector.trace.v1.TraceService"
	otlpExportMethod = "/" + otlpTraceService + "/Export"
)

// The OTLP gRPC receiver registers TraceService/Export itself instead of
// through ptraceotlp.RegisterGRPCServer, with a handler that receives the
// request's raw bytes (rawMessage, passed through by rawCodec) and decodes
// them with ptraceotlp.ExportRequest.UnmarshalProto. Two things need it:
//
//   - a malformed request is answered INVALID_ARGUMENT with the decoder's
//     reason; when gRPC decodes, it answers INTERNAL;
//   - the in-flight budget is charged with the exact size before the
//     request is decoded, so that decoded batches, which are several times
//     their wire size, never exceed it.
//
// The wire format is the same; pdata's UnmarshalProto also migrates
// deprecated fields, as RegisterGRPCServer does.
var otlpTraceServiceDesc = grpc.ServiceDesc{
	ServiceName: otlpTraceService,
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Export",
		Handler:    otlpExportHandler,
	}},
	Streams:  []grpc.StreamDesc{},
	Metadata: "opentelemetry/proto/collector/trace/v1/trace_service.proto",
}

// rawMessage is a request or response kept as its protobuf bytes.
type rawMessage struct{ b []byte }

// rawCodec is gRPC's proto codec, except that it passes rawMessage through
// as bytes. It is forced on the server, so it serves every service there.
type rawCodec struct{ proto encoding.CodecV2 }

func newRawCodec() rawCodec { return rawCodec{proto: encoding.GetCodecV2("proto")} }

func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(*rawMessage); ok {
		return mem.BufferSlice{mem.SliceBuffer(m.b)}, nil
	}
	return c.proto.Marshal(v)
}

func (c rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if m, ok := v.(*rawMessage); ok {
		// gRPC frees data's buffers when Unmarshal returns: copy.
		m.b = data.Materialize()
		return nil
	}
	return c.proto.Unmarshal(data, v)
}

func (rawCodec) Name() string { return "proto" }

// otlpGRPC is the receiver behind otlpTraceServiceDesc.
type otlpGRPC struct{ in *ingester }

func otlpExportHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	req := new(rawMessage)
	if err := dec(req); err != nil {
		return nil, err
	}
	h := srv.(*otlpGRPC)
	if interceptor == nil {
		return h.export(ctx, req)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: otlpExportMethod}
	return interceptor(ctx, req, info, func(ctx context.Context, req any) (any, error) {
		return h.export(ctx, req.(*rawMessage))
	})
}

func (h *otlpGRPC) export(ctx context.Context, req *rawMessage) (*rawMessage, error) {
	resp, err := h.in.export(ctx, protoGRPC, int64(len(req.b)), 0, req.b, func(r ptraceotlp.ExportRequest) error {
		return r.UnmarshalProto(req.b)
	})
	req.b = nil // the decoded request is all that is needed now
	if err != nil {
		return nil, err
	}
	b, err := resp.MarshalProto()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "encode response: %v", err)
	}
	return &rawMessage{b: b}, nil
}

// overloadTap refuses OTLP exports before their bodies are read while the
// in-flight budget is full, so refused requests cost no memory.
func overloadTap(b *budget, m *metrics) tap.ServerInHandle {
	return func(ctx context.Context, info *tap.Info) (context.Context, error) {
		if info.FullMethodName == otlpExportMethod && b.full() {
			m.requestsRefused.WithLabelValues(protoGRPC, reasonOverloaded).Inc()
			return ctx, errOverloaded(b.limit)
		}
		return ctx, nil
	}
}
