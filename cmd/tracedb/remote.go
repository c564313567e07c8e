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
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.opentelemetry.io/collector/pdata/ptrace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/query"
	"github.com/tracedb/tracedb/server"
)

// --server mode: the read commands the Jaeger storage v2 API can answer
// (trace, search, services, operations, deps) ask a running tracedb serve
// over gRPC instead of opening a data directory. The other commands refuse
// it: storeFlags.open does.

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
	fs.StringVar(&r.addr, "server", "", "host:port of a running tracedb serve's gRPC storage API (e.g. 127.0.0.1:17271) to ask instead of --data-dir")
	fs.BoolVar(&r.tls, "tls", false, "with --server: connect with TLS, trusting the system's roots (implied by --tls-ca and --tls-insecure-skip-verify)")
	fs.StringVar(&r.tlsCA, "tls-ca", "", "with --server: PEM file of the CA that signed the server's certificate")
	fs.BoolVar(&r.skipCheck, "tls-insecure-skip-verify", false, "with --server: accept any server certificate (testing only)")
	fs.StringVar(&r.token, "token", "", "with --server: bearer token")
	fs.StringVar(&r.tokenFile, "token-file", "", "with --server: file holding the bearer token")
}

// set reports whether --server was given.
func (r *remoteFlags) set() bool { return r.addr != "" }

// errNoServerMode is returned by the commands the storage API cannot serve.
var errNoServerMode = errors.New("--server: this command needs the data directory (the Jaeger storage API does not serve it); run it where the store is, with --data-dir")

// remote is a connection to a tracedb serve.
//
// The generated stubs of the storage API live in server/internal, which Go
// does not let cmd/ import; their message types are registered with the
// protobuf registry all the same (the server package, linked into this
// binary, imports them), so the client builds and reads the messages by
// their full names through protoreflect and calls the methods by name.
type remote struct {
	conn *grpc.ClientConn
}

// The storage v2 API (jaeger-idl storage/v2), as the generated code names it.
const (
	storagePkg            = "jaeger.storage.v2."
	methodGetTraces       = "/jaeger.storage.v2.TraceReader/GetTraces"
	methodGetServices     = "/jaeger.storage.v2.TraceReader/GetServices"
	methodGetOperations   = "/jaeger.storage.v2.TraceReader/GetOperations"
	methodFindSummaries   = "/jaeger.storage.v2.TraceReader/FindTraceSummaries"
	methodGetDependencies = "/jaeger.storage.v2.DependencyReader/GetDependencies"
)

// newMsg returns a new message of the storage API's type name.
func newMsg(name string) (protoreflect.Message, error) {
	t, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(storagePkg + name))
	if err != nil {
		return nil, fmt.Errorf("storage API message %s: %w", name, err)
	}
	return t.New(), nil
}

// fd returns the descriptor of field name of m; the names are the API's,
// so a miss is a bug of this file.
func fd(m protoreflect.Message, name string) protoreflect.FieldDescriptor {
	f := m.Descriptor().Fields().ByName(protoreflect.Name(name))
	if f == nil {
		panic(fmt.Sprintf("storage API: %s has no field %s", m.Descriptor().FullName(), name))
	}
	return f
}

func get(m protoreflect.Message, name string) protoreflect.Value { return m.Get(fd(m, name)) }

func set(m protoreflect.Message, name string, v protoreflect.Value) { m.Set(fd(m, name), v) }

func setStr(m protoreflect.Message, name, v string) {
	if v != "" {
		set(m, name, protoreflect.ValueOfString(v))
	}
}

func setTime(m protoreflect.Message, name string, ns uint64) {
	if ts := timestamp(ns); ts != nil {
		set(m, name, protoreflect.ValueOfMessage(ts.ProtoReflect()))
	}
}

// unary calls method with req and returns the response message of type resp.
func (r *remote) unary(ctx context.Context, method string, req protoreflect.Message, resp string) (protoreflect.Message, error) {
	out, err := newMsg(resp)
	if err != nil {
		return nil, err
	}
	if err := r.conn.Invoke(ctx, method, req.Interface(), out.Interface()); err != nil {
		return nil, err
	}
	return out, nil
}

// stream calls a server-streaming method with req and calls fn with each
// message received, a new msg() each time.
func (r *remote) stream(ctx context.Context, method string, req protoreflect.Message, msg func() (proto.Message, error), fn func(proto.Message) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := r.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, method)
	if err != nil {
		return err
	}
	if err := st.SendMsg(req.Interface()); err != nil {
		return err
	}
	if err := st.CloseSend(); err != nil {
		return err
	}
	for {
		m, err := msg()
		if err != nil {
			return err
		}
		if err := st.RecvMsg(m); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if err := fn(m); err != nil {
			return err
		}
	}
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
	return &remote{conn: conn}, metadata.NewOutgoingContext(ctx, md), nil
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
	req, err := newMsg("GetTracesRequest")
	if err != nil {
		return nil, false, err
	}
	list := req.Mutable(fd(req, "query")).List()
	q := list.NewElement().Message()
	set(q, "trace_id", protoreflect.ValueOfBytes(id[:]))
	list.Append(protoreflect.ValueOfMessage(q))
	chunks := 0
	err = r.stream(ctx, methodGetTraces, req, func() (proto.Message, error) { return &tracepb.TracesData{}, nil }, func(m proto.Message) error {
		td, err := tracesOf(m)
		if err != nil {
			return fmt.Errorf("decode trace %s: %w", id, err)
		}
		if td.SpanCount() == 0 {
			return nil
		}
		chunks++
		if otlp != nil {
			var jm ptrace.JSONMarshaler
			b, err := jm.MarshalTraces(td)
			if err != nil {
				return fmt.Errorf("encode trace %s: %w", id, err)
			}
			_, err = otlp.Write(append(b, '\n'))
			return err
		}
		spans, _ = encoding.FromTraces(spans, nil, td)
		return nil
	})
	if err != nil || chunks == 0 {
		return nil, false, err
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
	req, err := newMsg("FindTraceSummariesRequest")
	if err != nil {
		return "", err
	}
	q := req.Mutable(fd(req, "query")).Message()
	setStr(q, "service_name", c.Service)
	setStr(q, "operation_name", c.Operation)
	setTime(q, "start_time_min", c.StartTime.Start)
	setTime(q, "start_time_max", c.StartTime.End)
	if c.DurationMin > 0 {
		set(q, "duration_min", protoreflect.ValueOfMessage(durationpb.New(c.DurationMin).ProtoReflect()))
	}
	if c.DurationMax > 0 {
		set(q, "duration_max", protoreflect.ValueOfMessage(durationpb.New(c.DurationMax).ProtoReflect()))
	}
	keys := make([]string, 0, len(c.Attributes))
	for k := range c.Attributes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	attrs := q.Mutable(fd(q, "attributes")).List()
	for _, k := range keys {
		kv := attrs.NewElement().Message()
		setStr(kv, "key", k)
		set(kv.Mutable(fd(kv, "value")).Message(), "string_value", protoreflect.ValueOfString(c.Attributes[k]))
		attrs.Append(protoreflect.ValueOfMessage(kv))
	}
	pg := q.Mutable(fd(q, "pagination")).Message()
	set(pg, "page_size", protoreflect.ValueOfUint32(uint32(max(limit, 1))))
	setStr(pg, "page_token", pageToken)

	next := ""
	msg := func() (proto.Message, error) {
		m, err := newMsg("FindTraceSummariesResponse")
		if err != nil {
			return nil, err
		}
		return m.Interface(), nil
	}
	err = r.stream(ctx, methodFindSummaries, req, msg, func(pm proto.Message) error {
		m := pm.ProtoReflect()
		if t := get(m, "next_page_token").String(); t != "" {
			next = t
		}
		sums := get(m, "summaries").List()
		for i := range sums.Len() {
			s := sums.Get(i).Message()
			var rs remoteSummary
			copy(rs.id[:], get(s, "trace_id").Bytes())
			rs.start = get(s, "min_start_time_unix_nano").Uint()
			if end := get(s, "max_end_time_unix_nano").Uint(); end > rs.start {
				rs.duration = end - rs.start
			}
			rs.spans, rs.errors = int(get(s, "span_count").Int()), int(get(s, "error_span_count").Int())
			rs.rootSvc, rs.rootOp = get(s, "root_service_name").String(), get(s, "root_operation_name").String()
			svcs := get(s, "services").List()
			for j := range svcs.Len() {
				rs.services = append(rs.services, get(svcs.Get(j).Message(), "name").String())
			}
			if err := fn(rs); err != nil {
				return err
			}
		}
		return nil
	})
	return next, err
}

// remoteServices lists the services the server knows.
func remoteServices(ctx context.Context, r *remote) ([]string, error) {
	req, err := newMsg("GetServicesRequest")
	if err != nil {
		return nil, err
	}
	res, err := r.unary(ctx, methodGetServices, req, "GetServicesResponse")
	if err != nil {
		return nil, err
	}
	l := get(res, "services").List()
	out := make([]string, 0, l.Len())
	for i := range l.Len() {
		out = append(out, l.Get(i).String())
	}
	return out, nil
}

// remoteOp is an operation as the server lists it.
type remoteOp struct{ name, kind string }

// remoteOperations lists a service's operations, of one span kind when
// kind is not "".
func remoteOperations(ctx context.Context, r *remote, service, kind string) ([]remoteOp, error) {
	req, err := newMsg("GetOperationsRequest")
	if err != nil {
		return nil, err
	}
	setStr(req, "service", service)
	setStr(req, "span_kind", kind)
	res, err := r.unary(ctx, methodGetOperations, req, "GetOperationsResponse")
	if err != nil {
		return nil, err
	}
	l := get(res, "operations").List()
	out := make([]remoteOp, 0, l.Len())
	for i := range l.Len() {
		op := l.Get(i).Message()
		out = append(out, remoteOp{get(op, "name").String(), get(op, "span_kind").String()})
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
	req, err := newMsg("GetDependenciesRequest")
	if err != nil {
		return nil, err
	}
	set(req, "start_time", protoreflect.ValueOfMessage(timestamppb.New(time.Unix(0, int64(min(tr.Start, 1<<63-1)))).ProtoReflect()))
	setTime(req, "end_time", end)
	res, err := r.unary(ctx, methodGetDependencies, req, "GetDependenciesResponse")
	if err != nil {
		return nil, err
	}
	l := get(res, "dependencies").List()
	links := make([]query.DependencyLink, 0, l.Len())
	for i := range l.Len() {
		d := l.Get(i).Message()
		links = append(links, query.DependencyLink{Parent: get(d, "parent").String(), Child: get(d, "child").String(), CallCount: get(d, "call_count").Uint()})
	}
	slices.SortFunc(links, func(a, b query.DependencyLink) int {
		return cmp.Or(strings.Compare(a.Parent, b.Parent), strings.Compare(a.Child, b.Child))
	})
	return links, nil
}
