// Package storagev2 serves Jaeger's remote storage v2 read API
// (jaeger.storage.v2 of jaeger-idl v0.14.0: TraceReader, DependencyReader
// and Capabilities) over a query.Engine, so that Jaeger v2's grpc storage
// backend can read from tracedb.
//
// The tenant of a call is whatever the context carries (db.WithTenant,
// set by the server's interceptors); this package passes the context
// through untouched.
//
// Errors map to gRPC codes one way for every tracedb gRPC service
// (package server/internal/rpcerr): a caller's mistake is InvalidArgument
// with a message that says what is wrong, a cancelled or expired context
// Canceled or DeadlineExceeded, anything else Internal.
package storagev2

import (
	"context"
	"fmt"
	"iter"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/query"
	pb "github.com/tracedb/tracedb/server/pb/storagev2"
)

// Options configure the services. The zero value of a field means its
// default.
type Options struct {
	// MaxSpansPerChunk bounds the spans of one streamed TracesData message
	// (GetTraces, FindTraces, FindSpans): a larger trace is sent as several
	// consecutive messages. Default 1,000.
	MaxSpansPerChunk int
	// MaxChunkBytes bounds the encoded size of one streamed message: a
	// chunk that encodes larger is split again, down to a single span
	// (which is sent whatever its size). Default 2 MiB, half of gRPC's
	// default 4 MiB receive limit.
	MaxChunkBytes int
	// MaxPageSize caps a request's Pagination.page_size (the page is
	// shortened, and its token continues from there, as the proto allows).
	// It must not exceed the engine's query.Options.MaxLimit, which refuses
	// larger pages. Default 1,000.
	MaxPageSize int
	// MaxTraceIDs bounds the trace IDs of one GetTraces request; more are
	// refused. Default 10,000.
	MaxTraceIDs int
}

// Defaults of Options.
const (
	DefaultMaxSpansPerChunk = 1000
	DefaultMaxChunkBytes    = 2 << 20
	DefaultMaxPageSize      = 1000
	DefaultMaxTraceIDs      = 10000
)

func (o *Options) fillDefaults() {
	if o.MaxSpansPerChunk <= 0 {
		o.MaxSpansPerChunk = DefaultMaxSpansPerChunk
	}
	if o.MaxChunkBytes <= 0 {
		o.MaxChunkBytes = DefaultMaxChunkBytes
	}
	if o.MaxPageSize <= 0 {
		o.MaxPageSize = DefaultMaxPageSize
	}
	if o.MaxTraceIDs <= 0 {
		o.MaxTraceIDs = DefaultMaxTraceIDs
	}
}

// Register registers TraceReader, DependencyReader and Capabilities on s,
// answering from eng with opts (defaults filled in).
func Register(s *grpc.Server, eng *query.Engine, opts Options) {
	srv := newServer(eng, opts)
	pb.RegisterTraceReaderServer(s, srv)
	pb.RegisterDependencyReaderServer(s, srv)
	pb.RegisterCapabilitiesServer(s, srv)
}

// traceGetter reads whole traces by ID: every span of the trace, exact
// duplicates once, in chunks of bounded size; a trace with no spans yields
// nothing. Only readers whose span times overlap r are read; the zero
// TimeRange reads all. query.Store's GetTrace has this contract.
type traceGetter interface {
	GetTrace(ctx context.Context, id encoding.TraceID, r db.TimeRange) iter.Seq2[ptrace.Traces, error]
}

// server implements the three services.
type server struct {
	pb.UnimplementedTraceReaderServer
	pb.UnimplementedDependencyReaderServer
	pb.UnimplementedCapabilitiesServer

	eng    *query.Engine
	traces traceGetter
	opts   Options
}

func newServer(eng *query.Engine, opts Options) *server {
	opts.fillDefaults()
	s := &server{eng: eng, opts: opts}
	s.traces = eng // by ID, through the store's trace-ID lookup
	return s
}

// wrapf adds context to an error that is not yet a status.
func wrapf(err error, format string, args ...any) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), err)
}
