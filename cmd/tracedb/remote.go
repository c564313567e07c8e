package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/query"
	"github.com/tracedb/tracedb/server"
	"github.com/tracedb/tracedb/server/analytics"
	pb "github.com/tracedb/tracedb/server/pb/storagev2"
)

// --server mode: the commands ask a running tracedb serve over gRPC, on its
// storage listener, instead of opening a data directory: trace, search,
// services, operations and deps through the Jaeger storage v2 API;
// histogram, rate, stats, export and verify through tracedb's analytics API
// (package server/analytics); import sends OTLP to the listener's OTLP
// TraceService. compact and retention have no --server; storeFlags.open
// refuses it should a command reach it with one.

// remoteFlags are the flags of --server mode.
type remoteFlags struct {
	addr      string
	tls       bool
	tlsCA     string
	skipCheck bool
	token     string
	tokenFile string
}

func (r *remoteFlags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&r.addr, "server", "", "host:port of a running tracedb serve's gRPC storage listener (e.g. 127.0.0.1:17271) to ask instead of --data-dir")
	fs.BoolVar(&r.tls, "tls", false, "with --server: connect with TLS, trusting the system's roots (implied by --tls-ca and --tls-insecure-skip-verify)")
	fs.StringVar(&r.tlsCA, "tls-ca", "", "with --server: PEM file of the CA that signed the server's certificate")
	fs.BoolVar(&r.skipCheck, "tls-insecure-skip-verify", false, "with --server: accept any server certificate (testing only)")
	fs.StringVar(&r.token, "token", "", "with --server: bearer token")
	fs.StringVar(&r.tokenFile, "token-file", "", "with --server: file holding the bearer token")
}

// set reports whether --server was given.
func (r *remoteFlags) set() bool { return r.addr != "" }

// errNoServerMode is returned when a command that needs the data directory
// is given --server.
var errNoServerMode = errors.New("--server: this command needs the data directory (a server does not serve it); run it where the store is, with --data-dir")

// remote is a connection to a tracedb serve's storage listener.
type remote struct {
	conn      *grpc.ClientConn
	traces    pb.TraceReaderClient
	deps      pb.DependencyReaderClient
	analytics *analytics.Client
}

// dial connects to f.remote.addr and returns the client and a context
// carrying the token and the tenant.
func (f *storeFlags) dial(ctx context.Context) (*remote, context.Context, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	r := &f.remote
	if err := db.ValidateTenant(f.tenant); err != nil {
		return nil, nil, fmt.Errorf("--tenant: %w", err)
	}
	token := r.token
	if r.tokenFile != "" {
		if token != "" {
			return nil, nil, errors.New("give --token or --token-file, not both")
		}
		b, err := os.ReadFile(r.tokenFile)
		if err != nil {
			return nil, nil, fmt.Errorf("--token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	creds := insecure.NewCredentials()
	if r.tls || r.tlsCA != "" || r.skipCheck {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: r.skipCheck} //nolint:gosec // asked for by the flag
		if r.tlsCA != "" {
			pem, err := os.ReadFile(r.tlsCA)
			if err != nil {
				return nil, nil, fmt.Errorf("--tls-ca: %w", err)
			}
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				return nil, nil, fmt.Errorf("--tls-ca %s: no PEM certificate in it", r.tlsCA)
			}
		}
		creds = credentials.NewTLS(cfg)
	}
	conn, err := grpc.NewClient(r.addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, nil, fmt.Errorf("--server %s: %w", r.addr, err)
	}
	md := metadata.Pairs(server.DefaultTenantHeader, f.tenant)
	if token != "" {
		md.Append("authorization", "Bearer "+token)
	}
	return &remote{conn: conn, traces: pb.NewTraceReaderClient(conn), deps: pb.NewDependencyReaderClient(conn), analytics: analytics.NewClient(conn)},
		metadata.NewOutgoingContext(ctx, md), nil
}

// withRemote dials, calls fn and closes the connection; a gRPC error is
// made one readable line naming the server.
func (f *storeFlags) withRemote(ctx context.Context, fn func(ctx context.Context, r *remote) error) error {
	r, ctx, err := f.dial(ctx)
	if err != nil {
		return err
	}
	defer r.conn.Close()
	if err := fn(ctx, r); err != nil {
		if s, ok := status.FromError(err); ok {
			return fmt.Errorf("server %s: %s: %s", f.remote.addr, s.Code(), s.Message())
		}
		return err
	}
	return nil
}

// timestamp converts Unix ns to a protobuf timestamp; nil for 0.
func timestamp(ns uint64) *timestamppb.Timestamp {
	if ns == 0 {
		return nil
	}
	return timestamppb.New(time.Unix(0, int64(min(ns, 1<<63-1))))
}

// tracesOf turns a streamed OTLP TracesData into pdata.
func tracesOf(m proto.Message) (ptrace.Traces, error) {
	b, err := proto.Marshal(m)
	if err != nil {
		return ptrace.Traces{}, err
	}
	var u ptrace.ProtoUnmarshaler
	return u.UnmarshalTraces(b)
}

// remoteTrace reads trace id from the server: its spans (up to limit,
// limit <= 0 for all) in start-time order, or, with otlp set, each chunk
// written to out as an OTLP JSON line.
func remoteTrace(ctx context.Context, r *remote, id encoding.TraceID, limit int, otlp io.Writer) (spans []*encoding.Span, more bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := r.traces.GetTraces(ctx, &pb.GetTracesRequest{Query: []*pb.GetTraceParams{{TraceId: id[:]}}})
	if err != nil {
		return nil, false, err
	}
	chunks := 0
	for {
		m, err := st.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, false, err
		}
		td, err := tracesOf(m)
		if err != nil {
			return nil, false, fmt.Errorf("decode trace %s: %w", id, err)
		}
		if td.SpanCount() == 0 {
			continue
		}
		chunks++
		if otlp != nil {
			var jm ptrace.JSONMarshaler
			b, err := jm.MarshalTraces(td)
			if err != nil {
				return nil, false, fmt.Errorf("encode trace %s: %w", id, err)
			}
			if _, err := otlp.Write(append(b, '\n')); err != nil {
				return nil, false, err
			}
			continue
		}
		spans, _ = encoding.FromTraces(spans, nil, td)
	}
	if chunks == 0 {
		return nil, false, nil
	}
	slices.SortStableFunc(spans, func(a, b *encoding.Span) int {
		return cmp.Or(cmp.Compare(a.StartUnixNano, b.StartUnixNano), bytes.Compare(a.SpanID[:], b.SpanID[:]))
	})
	if limit > 0 && len(spans) > limit {
		return spans[:limit], true, nil
	}
	return spans, false, nil
}

// remoteSummary is a trace summary as the server sends it, in the fields
// search prints.
type remoteSummary struct {
	id              encoding.TraceID
	start, duration uint64
	spans, errors   int
	rootSvc, rootOp string
	services        []string
}

// remoteSearch runs a trace search on the server and calls fn with each
// summary, newest first as the server sends them; it returns the token of
// the next page.
func remoteSearch(ctx context.Context, r *remote, c query.SpanConditions, limit int, pageToken string, fn func(remoteSummary) error) (string, error) {
	if c.Filter != nil {
		return "", errors.New("--filter is not supported with --server; use --service, --operation, --tag and the duration flags, or run on the data directory")
	}
	q := &pb.TraceQueryParameters{
		ServiceName: c.Service, OperationName: c.Operation,
		StartTimeMin: timestamp(c.StartTime.Start), StartTimeMax: timestamp(c.StartTime.End),
		Pagination: &pb.Pagination{PageSize: uint32(max(limit, 1)), PageToken: pageToken},
	}
	if c.DurationMin > 0 {
		q.DurationMin = durationpb.New(c.DurationMin)
	}
	if c.DurationMax > 0 {
		q.DurationMax = durationpb.New(c.DurationMax)
	}
	for _, k := range slices.Sorted(maps.Keys(c.Attributes)) {
		q.Attributes = append(q.Attributes, &pb.KeyValue{Key: k, Value: &pb.AnyValue{Value: &pb.AnyValue_StringValue{StringValue: c.Attributes[k]}}})
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := r.traces.FindTraceSummaries(ctx, &pb.FindTraceSummariesRequest{Query: q})
	if err != nil {
		return "", err
	}
	next := ""
	for {
		m, err := st.Recv()
		if err == io.EOF {
			return next, nil
		}
		if err != nil {
			return "", err
		}
		if m.NextPageToken != "" {
			next = m.NextPageToken
		}
		for _, s := range m.Summaries {
			rs := remoteSummary{start: s.MinStartTimeUnixNano, spans: int(s.SpanCount), errors: int(s.ErrorSpanCount),
				rootSvc: s.RootServiceName, rootOp: s.RootOperationName}
			copy(rs.id[:], s.TraceId)
			if s.MaxEndTimeUnixNano > rs.start {
				rs.duration = s.MaxEndTimeUnixNano - rs.start
			}
			for _, sv := range s.Services {
				rs.services = append(rs.services, sv.Name)
			}
			if err := fn(rs); err != nil {
				return "", err
			}
		}
	}
}

// remoteServices lists the services the server knows.
func remoteServices(ctx context.Context, r *remote) ([]string, error) {
	res, err := r.traces.GetServices(ctx, &pb.GetServicesRequest{})
	if err != nil {
		return nil, err
	}
	return res.Services, nil
}

// remoteOp is an operation as the server lists it.
type remoteOp struct{ name, kind string }

// remoteOperations lists a service's operations, of one span kind when
// kind is not "".
func remoteOperations(ctx context.Context, r *remote, service, kind string) ([]remoteOp, error) {
	res, err := r.traces.GetOperations(ctx, &pb.GetOperationsRequest{Service: service, SpanKind: kind})
	if err != nil {
		return nil, err
	}
	out := make([]remoteOp, 0, len(res.Operations))
	for _, op := range res.Operations {
		out = append(out, remoteOp{op.Name, op.SpanKind})
	}
	return out, nil
}

// remoteDeps reads the service graph of the calls in tr. The storage API
// wants both ends: an open end is the epoch or now.
func remoteDeps(ctx context.Context, r *remote, tr db.TimeRange, now time.Time) ([]query.DependencyLink, error) {
	end := tr.End
	if end == 0 {
		end = unixNanos(now)
	}
	res, err := r.deps.GetDependencies(ctx, &pb.GetDependenciesRequest{
		StartTime: timestamppb.New(time.Unix(0, int64(min(tr.Start, 1<<63-1)))), EndTime: timestamp(end)})
	if err != nil {
		return nil, err
	}
	links := make([]query.DependencyLink, 0, len(res.Dependencies))
	for _, d := range res.Dependencies {
		links = append(links, query.DependencyLink{Parent: d.Parent, Child: d.Child, CallCount: d.CallCount})
	}
	slices.SortFunc(links, func(a, b query.DependencyLink) int {
		return cmp.Or(strings.Compare(a.Parent, b.Parent), strings.Compare(a.Child, b.Child))
	})
	return links, nil
}
