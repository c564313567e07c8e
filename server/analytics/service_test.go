package analytics_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/query"
	"github.com/tracedb/tracedb/server/analytics"
	pb "github.com/tracedb/tracedb/server/pb/analyticsv1"
	"github.com/tracedb/tracedb/server/servertest"
)

const token = "t0ken"

var base = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// testEnv is a real server on a loopback listener over a store in a temp
// dir, with bearer tokens and tenancy on, and an engine over the same store
// for the local answers.
type testEnv struct {
	store  *db.DB
	eng    *query.Engine
	conn   *grpc.ClientConn
	client *analytics.Client
	raw    pb.AnalyticsClient
}

// spans writes n spans for tenant: services svc0..svc2 (and only-<tenant>,
// which no other tenant has), durations from 1 ms to about 2 s, every
// seventh an error, one every 10 s from base+offset.
func spans(n int, tenant string, offset time.Duration) ptrace.Traces {
	td := ptrace.NewTraces()
	for i := range n {
		rs := td.ResourceSpans().AppendEmpty()
		svc := fmt.Sprintf("svc%d", i%3)
		if i%5 == 4 {
			svc = "only-" + tenant
		}
		rs.Resource().Attributes().PutStr("service.name", svc)
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("lib")
		s := ss.Spans().AppendEmpty()
		var tid pcommon.TraceID
		tid[0], tid[1], tid[15] = byte(len(tenant)), byte(i>>8), byte(i)
		s.SetTraceID(tid)
		s.SetSpanID(pcommon.SpanID{1, byte(i >> 8), byte(i), 0, 0, 0, 0, 1})
		s.SetName(fmt.Sprintf("op%d", i%4))
		s.SetKind(ptrace.SpanKind(1 + i%5))
		start := base.Add(offset + time.Duration(i)*10*time.Second)
		s.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Duration(1+(i*7919)%2000) * time.Millisecond)))
		s.Attributes().PutStr("http.route", fmt.Sprintf("/r%d", i%2))
		if i%7 == 3 {
			s.Status().SetCode(ptrace.StatusCodeError)
		}
	}
	return td
}

func startEnv(t *testing.T) *testEnv {
	t.Helper()
	dir := t.TempDir()
	store, err := db.Open(filepath.Join(dir, "data"), db.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	write := func(tenant string, td ptrace.Traces) {
		t.Helper()
		res, err := store.Write(db.WithTenant(ctx, tenant), td)
		if err != nil || len(res.Rejected) > 0 {
			t.Fatalf("write: %v %v", err, res.Rejected)
		}
	}
	// acme: a block and the head; other: a block, with the same services.
	write("acme", spans(300, "acme", 0))
	write("other", spans(200, "other", 5*time.Second))
	if err := store.Flush(); err != nil {
		t.Fatal(err)
	}
	write("acme", spans(150, "acme", time.Hour))
	return serveStore(t, dir, store)
}

// serveStore serves store, whose data directory is in dir, as startEnv
// does, and closes it when the test ends.
func serveStore(t *testing.T, dir string, store *db.DB) *testEnv {
	t.Helper()
	addr, _ := servertest.Serve(t, dir, store, token)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	eng, err := query.NewEngine(store, query.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{store: store, eng: eng, conn: conn, client: analytics.NewClient(conn), raw: pb.NewAnalyticsClient(conn)}
}

// as returns a context calling as tenant, with the token.
func as(tenant string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token, "x-tenant", tenant)
}

// filterOf parses and compiles a filter, as the CLI does before asking.
func filterOf(t *testing.T, text string) *query.Filter {
	t.Helper()
	if text == "" {
		return nil
	}
	e, err := query.ParseFilter(text)
	if err != nil {
		t.Fatal(err)
	}
	f, err := query.Compile(e)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

var end = uint64(base.Add(2 * time.Hour).UnixNano())

// conditionCases are the span conditions the tests ask about, each with
// its filter's text.
var conditionCases = []struct {
	name   string
	c      query.SpanConditions
	filter string
}{
	{"all", query.SpanConditions{}, ""},
	{"service", query.SpanConditions{Service: "svc1"}, ""},
	{"operation", query.SpanConditions{Service: "svc2", Operation: "op1"}, ""},
	{"tag and error", query.SpanConditions{Attributes: map[string]string{"http.route": "/r1", "error": "true"}}, ""},
	{"durations", query.SpanConditions{DurationMin: 100 * time.Millisecond, DurationMax: 900 * time.Millisecond}, ""},
	{"time range", query.SpanConditions{StartTime: db.TimeRange{Start: uint64(base.Add(10 * time.Minute).UnixNano()), End: uint64(base.Add(70 * time.Minute).UnixNano())}}, ""},
	{"filter", query.SpanConditions{}, `span.kind = "client" and span.duration > 300ms`},
	{"filter and service", query.SpanConditions{Service: "svc0"}, `span.attr["http.route"] = "/r0" or span.status = "error"`},
	{"only-acme", query.SpanConditions{Service: "only-acme"}, ""},
	{"only-other", query.SpanConditions{Service: "only-other"}, ""},
}

func TestHistogramMatchesEngine(t *testing.T) {
	env := startEnv(t)
	for _, tenant := range []string{"acme", "other", "nobody"} {
		for _, tc := range conditionCases {
			t.Run(tenant+"/"+tc.name, func(t *testing.T) {
				c := tc.c
				got, err := env.client.Histogram(as(tenant), c, tc.filter)
				if err != nil {
					t.Fatal(err)
				}
				c.Filter = filterOf(t, tc.filter)
				want, err := env.eng.LatencyHistogram(db.WithTenant(context.Background(), tenant), query.HistogramQuery{SpanConditions: c})
				if err != nil {
					t.Fatal(err)
				}
				want.Decoded = 0
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("over the server: total %d, buckets %d-%d; engine: total %d, buckets %d-%d",
						got.Total, got.MinBucket, got.MaxBucket, want.Total, want.MinBucket, want.MaxBucket)
				}
				for _, q := range []float64{0.5, 0.99} {
					g, gok := got.Quantile(q)
					w, wok := want.Quantile(q)
					if g != w || gok != wok {
						t.Errorf("quantile %v: %v %v, want %v %v", q, g, gok, w, wok)
					}
				}
				// Tenants share nothing: a service of one tenant alone
				// has no span in another's answer.
				wantSpans := tenant != "nobody" && !(tc.name == "only-acme" && tenant != "acme") && !(tc.name == "only-other" && tenant != "other")
				if (want.Total > 0) != wantSpans {
					t.Errorf("tenant %s: %d spans match %q", tenant, want.Total, tc.name)
				}
			})
		}
	}
}

func TestRateMatchesEngine(t *testing.T) {
	env := startEnv(t)
	for _, tenant := range []string{"acme", "other"} {
		for _, tc := range conditionCases {
			t.Run(tenant+"/"+tc.name, func(t *testing.T) {
				c := tc.c
				if c.StartTime.End == 0 {
					c.StartTime = db.TimeRange{Start: uint64(base.UnixNano()), End: end}
				}
				q := query.RateQuery{SpanConditions: c, Step: 7 * time.Minute}
				got, err := env.client.Rate(as(tenant), q, tc.filter)
				if err != nil {
					t.Fatal(err)
				}
				q.Filter = filterOf(t, tc.filter)
				want, err := env.eng.Rate(db.WithTenant(context.Background(), tenant), q)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("over the server:\n%v\nengine:\n%v", got, want)
				}
			})
		}
	}
}

func TestDataRangeAndStatsMatchStore(t *testing.T) {
	env := startEnv(t)
	for _, tenant := range []string{"acme", "other", "nobody"} {
		ctx := db.WithTenant(context.Background(), tenant)
		gotR, gotOK, err := env.client.StartRange(as(tenant))
		if err != nil {
			t.Fatal(err)
		}
		wantR, wantOK, err := env.store.StartRange(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if gotR != wantR || gotOK != wantOK || wantOK != (tenant != "nobody") {
			t.Errorf("%s: start range %v %v, want %v %v", tenant, gotR, gotOK, wantR, wantOK)
		}
		got, err := env.client.Stats(as(tenant))
		if err != nil {
			t.Fatal(err)
		}
		want, err := env.store.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: stats over the server %+v, store %+v", tenant, got, want)
		}
		// Tenants share nothing: the answer is the caller's alone.
		wantSpans := map[string]uint64{"acme": 450, "other": 200, "nobody": 0}[tenant]
		if got.Tenant != tenant || got.Spans+got.HeadSpans != wantSpans {
			t.Errorf("%s: stats of tenant %s with %d+%d spans, want %d", tenant, got.Tenant, got.Spans, got.HeadSpans, wantSpans)
		}
	}
}

// localExport is what the server should stream: the store's spans cut
// into TracesData of batch spans, encoded.
func localExport(t *testing.T, store *db.DB, tenant string, tr db.TimeRange, batch int) [][]byte {
	t.Helper()
	var out [][]byte
	b := encoding.NewTracesBuilder()
	emit := func() error {
		var m ptrace.ProtoMarshaler
		raw, err := m.MarshalTraces(b.Take())
		out = append(out, raw)
		return err
	}
	_, err := store.ScanSpans(db.WithTenant(context.Background(), tenant), tr, func(s *encoding.Span) error {
		if b.Add(s); b.Len() >= batch {
			return emit()
		}
		return nil
	}, nil)
	if err == nil && b.Len() > 0 {
		err = emit()
	}
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestExportMatchesStore(t *testing.T) {
	env := startEnv(t)
	for _, tc := range []struct {
		tenant string
		tr     db.TimeRange
		batch  int
		spans  int
	}{
		{"acme", db.TimeRange{}, 0, 450},
		{"acme", db.TimeRange{}, 64, 450},
		{"acme", db.TimeRange{}, 1, 450},
		{"acme", db.TimeRange{Start: uint64(base.Add(20 * time.Minute).UnixNano())}, 100, 150 + 300 - 120},
		{"acme", db.TimeRange{Start: uint64(base.Add(time.Minute).UnixNano()), End: uint64(base.Add(2 * time.Minute).UnixNano())}, 0, 7},
		{"other", db.TimeRange{}, 33, 200},
		{"nobody", db.TimeRange{}, 0, 0},
	} {
		t.Run(fmt.Sprintf("%s/%v/%d", tc.tenant, tc.tr, tc.batch), func(t *testing.T) {
			var got [][]byte
			n := 0
			err := env.client.Export(as(tc.tenant), tc.tr, tc.batch, func(td ptrace.Traces) error {
				n += td.SpanCount()
				rss := td.ResourceSpans()
				for i := range rss.Len() {
					svc, _ := rss.At(i).Resource().Attributes().Get("service.name")
					if svc.Str() == "only-other" && tc.tenant != "other" || svc.Str() == "only-acme" && tc.tenant != "acme" {
						t.Errorf("tenant %s got a span of service %s", tc.tenant, svc.Str())
					}
				}
				var m ptrace.ProtoMarshaler
				raw, err := m.MarshalTraces(td)
				got = append(got, raw)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			batch := tc.batch
			if batch == 0 {
				batch = analytics.DefaultChunkSpans
			}
			want := localExport(t, env.store, tc.tenant, tc.tr, batch)
			if n != tc.spans || len(got) != len(want) {
				t.Fatalf("%d spans in %d chunks, want %d spans in %d chunks", n, len(got), tc.spans, len(want))
			}
			for i := range got {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("chunk %d differs from the store's", i)
				}
			}
		})
	}
}

// TestExportStopsWhenTheCallerDoes: a caller that gives up after the first
// chunk gets its own error back, and the server's stream ends (Serve's
// graceful stop at cleanup would wait for it otherwise).
func TestExportStopsWhenTheCallerDoes(t *testing.T) {
	env := startEnv(t)
	stop := errors.New("enough")
	chunks := 0
	err := env.client.Export(as("acme"), db.TimeRange{}, 1, func(ptrace.Traces) error {
		chunks++
		return stop
	})
	if !errors.Is(err, stop) || chunks != 1 {
		t.Fatalf("Export = %v after %d chunks, want %v after 1", err, chunks, stop)
	}
	ctx, cancel := context.WithCancel(as("acme"))
	cancel()
	if err := env.client.Export(ctx, db.TimeRange{}, 1, func(ptrace.Traces) error { return nil }); status.Code(err) != codes.Canceled {
		t.Fatalf("Export with a cancelled context = %v, want Canceled", err)
	}
}

func TestRefusals(t *testing.T) {
	env := startEnv(t)
	ctx := as("acme")
	all := &pb.SpanConditions{StartTimeMinUnixNano: uint64(base.UnixNano()), StartTimeMaxUnixNano: end}
	for _, tc := range []struct {
		name string
		call func(ctx context.Context) error
		code codes.Code
		want string
	}{
		{"no token", func(context.Context) error {
			_, err := env.raw.Stats(metadata.AppendToOutgoingContext(context.Background(), "x-tenant", "acme"), &pb.StatsRequest{})
			return err
		}, codes.Unauthenticated, "bearer token"},
		{"wrong token", func(context.Context) error {
			_, err := env.raw.Histogram(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer nope", "x-tenant", "acme"), &pb.HistogramRequest{})
			return err
		}, codes.Unauthenticated, "invalid bearer token"},
		{"verify without token", func(context.Context) error {
			_, err := env.client.Verify(metadata.AppendToOutgoingContext(context.Background(), "x-tenant", "acme"), nil)
			return err
		}, codes.Unauthenticated, "bearer token"},
		{"verify with a wrong token", func(context.Context) error {
			_, err := env.client.Verify(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer nope", "x-tenant", "acme"), nil)
			return err
		}, codes.Unauthenticated, "invalid bearer token"},
		{"verify without a tenant", func(context.Context) error {
			_, err := env.client.Verify(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token), nil)
			return err
		}, codes.Unauthenticated, "tenant"},
		{"export without token", func(context.Context) error {
			return env.client.Export(metadata.AppendToOutgoingContext(context.Background(), "x-tenant", "acme"), db.TimeRange{}, 0, func(ptrace.Traces) error { return nil })
		}, codes.Unauthenticated, "bearer token"},
		{"no tenant", func(context.Context) error {
			_, err := env.raw.DataRange(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token), &pb.DataRangeRequest{})
			return err
		}, codes.Unauthenticated, "tenant"},
		{"bad filter", func(ctx context.Context) error {
			_, err := env.raw.Histogram(ctx, &pb.HistogramRequest{Conditions: &pb.SpanConditions{Filter: "span.duration >"}})
			return err
		}, codes.InvalidArgument, "filter"},
		{"filter that does not compile", func(ctx context.Context) error {
			_, err := env.raw.Rate(ctx, &pb.RateRequest{Conditions: &pb.SpanConditions{Filter: `span.duration > "x"`, StartTimeMaxUnixNano: end}, StepNanos: int64(time.Minute)})
			return err
		}, codes.InvalidArgument, "filter"},
		{"zero step", func(ctx context.Context) error {
			_, err := env.raw.Rate(ctx, &pb.RateRequest{Conditions: all})
			return err
		}, codes.InvalidArgument, "step"},
		{"negative step", func(ctx context.Context) error {
			_, err := env.raw.Rate(ctx, &pb.RateRequest{Conditions: all, StepNanos: -1})
			return err
		}, codes.InvalidArgument, "step"},
		{"too many steps", func(ctx context.Context) error {
			_, err := env.raw.Rate(ctx, &pb.RateRequest{Conditions: all, StepNanos: int64(time.Millisecond)})
			return err
		}, codes.InvalidArgument, "steps"},
		{"rate without an end", func(ctx context.Context) error {
			_, err := env.raw.Rate(ctx, &pb.RateRequest{Conditions: &pb.SpanConditions{}, StepNanos: int64(time.Minute)})
			return err
		}, codes.InvalidArgument, "end"},
		{"negative duration", func(ctx context.Context) error {
			_, err := env.raw.Histogram(ctx, &pb.HistogramRequest{Conditions: &pb.SpanConditions{DurationMinNanos: -5}})
			return err
		}, codes.InvalidArgument, "negative duration"},
		{"start after end", func(ctx context.Context) error {
			_, err := env.raw.Histogram(ctx, &pb.HistogramRequest{Conditions: &pb.SpanConditions{StartTimeMinUnixNano: 10, StartTimeMaxUnixNano: 5}})
			return err
		}, codes.InvalidArgument, "after"},
		{"operation without service", func(ctx context.Context) error {
			_, err := env.raw.Histogram(ctx, &pb.HistogramRequest{Conditions: &pb.SpanConditions{OperationName: "op1"}})
			return err
		}, codes.InvalidArgument, "operation"},
		{"export chunk over the limit", func(ctx context.Context) error {
			return env.client.Export(ctx, db.TimeRange{}, analytics.DefaultMaxChunk+1, func(ptrace.Traces) error { return nil })
		}, codes.InvalidArgument, "over the server's limit"},
		{"export start after end", func(ctx context.Context) error {
			return env.client.Export(ctx, db.TimeRange{Start: 10, End: 5}, 0, func(ptrace.Traces) error { return nil })
		}, codes.InvalidArgument, "after"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(ctx)
			s, _ := status.FromError(err)
			if s.Code() != tc.code || !bytes.Contains([]byte(s.Message()), []byte(tc.want)) {
				t.Fatalf("err = %v, want %s saying %q", err, tc.code, tc.want)
			}
		})
	}
}
