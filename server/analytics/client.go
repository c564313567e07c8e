package analytics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/index"
	"github.com/tracedb/tracedb/query"
	pb "github.com/tracedb/tracedb/server/pb/analyticsv1"
)

// maxExportMessage is the largest Export chunk the client accepts: a
// chunk holds up to MaxChunkSpans spans whatever their size, so gRPC's
// default 4 MiB receive limit would refuse chunks of large spans.
const maxExportMessage = 512 << 20

// errMalformed is wrapped by the client's errors about an answer that does
// not describe a possible result (a server bug or a different server).
var errMalformed = errors.New("malformed answer")

// Client asks a server's Analytics service and returns the answers as the
// query and db types the local calls return, so that a caller renders
// both the same way. The tenant, token and deadline travel in the context
// given to each call (outgoing metadata). Safe for concurrent use.
type Client struct {
	c pb.AnalyticsClient
}

// NewClient returns a client over conn.
func NewClient(conn grpc.ClientConnInterface) *Client {
	return &Client{c: pb.NewAnalyticsClient(conn)}
}

// Histogram asks for the latency histogram of the spans that meet c; c's
// Filter is not sent, filter (its text, as query.ParseFilter reads it) is.
// Decoded, which describes the server's work, is 0.
func (cl *Client) Histogram(ctx context.Context, c query.SpanConditions, filter string) (query.Histogram, error) {
	res, err := cl.c.Histogram(ctx, &pb.HistogramRequest{Conditions: ConditionsToProto(c, filter)})
	if err != nil {
		return query.Histogram{}, err
	}
	return histogramFromProto(res)
}

// Rate asks for the request and error counts per step; filter as in
// Histogram.
func (cl *Client) Rate(ctx context.Context, q query.RateQuery, filter string) ([]query.RatePoint, error) {
	res, err := cl.c.Rate(ctx, &pb.RateRequest{Conditions: ConditionsToProto(q.SpanConditions, filter), StepNanos: int64(q.Step)})
	if err != nil {
		return nil, err
	}
	points := make([]query.RatePoint, len(res.Points))
	for i, p := range res.Points {
		points[i] = query.RatePoint{Start: p.StartUnixNano, End: p.EndUnixNano, Requests: p.Requests, Errors: p.Errors}
	}
	return points, nil
}

// StartRange asks for the earliest and latest span start, as
// db.DB.StartRange returns them.
func (cl *Client) StartRange(ctx context.Context) (db.TimeRange, bool, error) {
	res, err := cl.c.DataRange(ctx, &pb.DataRangeRequest{})
	if err != nil {
		return db.TimeRange{}, false, err
	}
	return db.TimeRange{Start: res.EarliestStartUnixNano, End: res.LatestStartUnixNano}, res.HasSpans, nil
}

// Stats asks what the server holds for the caller's tenant, as
// db.DB.Stats returns it.
func (cl *Client) Stats(ctx context.Context) (db.TenantStats, error) {
	res, err := cl.c.Stats(ctx, &pb.StatsRequest{})
	if err != nil {
		return db.TenantStats{}, err
	}
	ts := db.TenantStats{
		Tenant: res.Tenant, Blocks: int(res.Blocks), Spans: res.Spans, HeadSpans: res.HeadSpans, Bytes: res.Bytes,
		MinStart: res.MinStartUnixNano, MaxEnd: res.MaxEndUnixNano,
	}
	for _, p := range res.Partitions {
		ts.Partitions = append(ts.Partitions, db.PartitionStats{
			ID: encoding.PartitionID(p.Id), Blocks: int(p.Blocks), Spans: p.Spans, Bytes: p.Bytes,
			MinStart: p.MinStartUnixNano, MaxEnd: p.MaxEndUnixNano,
		})
	}
	return ts, nil
}

// Export streams the spans that start in tr, chunkSpans per TracesData (0:
// the server's default), and calls fn with each chunk in order; it stops
// at fn's first error and returns it.
func (cl *Client) Export(ctx context.Context, tr db.TimeRange, chunkSpans int, fn func(ptrace.Traces) error) error {
	if chunkSpans < 0 || chunkSpans > 1<<31 {
		return fmt.Errorf("chunk of %d spans: out of range", chunkSpans)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the stream when fn fails
	st, err := cl.c.Export(ctx, &pb.ExportRequest{
		StartTimeMinUnixNano: tr.Start, StartTimeMaxUnixNano: tr.End, MaxSpansPerChunk: uint32(chunkSpans),
	}, grpc.MaxCallRecvMsgSize(maxExportMessage))
	if err != nil {
		return err
	}
	var u ptrace.ProtoUnmarshaler
	for {
		chunk, err := st.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		b, err := proto.Marshal(chunk.GetTraces())
		if err != nil {
			return fmt.Errorf("export chunk: %w", err)
		}
		td, err := u.UnmarshalTraces(b)
		if err != nil {
			return fmt.Errorf("export chunk: %w", err)
		}
		if err := fn(td); err != nil {
			return err
		}
	}
}

// Verify asks the server to check its store as the caller's tenant sees
// it (the Verify RPC's comment in analytics.proto says what that is), and
// calls fn with each problem in the order the server found them; it
// returns the report, as db.DB.Verify does. A problem's Err carries the
// server's message, and wraps encoding.ErrCorrupt when the server said
// the bytes are damaged. fn may be nil.
func (cl *Client) Verify(ctx context.Context, fn func(db.VerifyProblem)) (db.VerifyReport, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := cl.c.Verify(ctx, &pb.VerifyRequest{})
	if err != nil {
		return db.VerifyReport{}, err
	}
	var (
		problems, benign uint64
		rep              *pb.VerifyReport
	)
	for {
		m, err := st.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return db.VerifyReport{}, err
		}
		if rep != nil {
			return db.VerifyReport{}, fmt.Errorf("verify: a message after the report: %w", errMalformed)
		}
		switch item := m.Item.(type) {
		case *pb.VerifyMessage_Problem:
			p := item.Problem
			problems++
			if p.Benign {
				benign++
			}
			if fn != nil {
				fn(db.VerifyProblem{
					Tenant: p.Tenant, Partition: encoding.PartitionID(p.Partition), Block: encoding.BlockID(p.Block),
					Where: p.Where, Segment: p.WalSegment, Offset: p.WalOffset, Benign: p.Benign,
					Err: &remoteError{msg: p.Error, corrupt: p.Corrupt},
				})
			}
		case *pb.VerifyMessage_Report:
			rep = item.Report
		default:
			return db.VerifyReport{}, fmt.Errorf("verify: an empty message: %w", errMalformed)
		}
	}
	switch {
	case rep == nil:
		return db.VerifyReport{}, fmt.Errorf("verify: the stream ended without a report: %w", errMalformed)
	case rep.Problems != problems || rep.BenignProblems != benign:
		return db.VerifyReport{}, fmt.Errorf("verify: the report counts %d problems (%d benign), the stream held %d (%d benign): %w",
			rep.Problems, rep.BenignProblems, problems, benign, errMalformed)
	}
	return db.VerifyReport{
		Tenants: int(rep.Tenants), Blocks: int(rep.Blocks), RowGroups: int(rep.RowGroups), Spans: rep.Spans, Terms: rep.Terms,
		Sections: int(rep.Sections), WALSegments: int(rep.WalSegments), WALRecords: int(rep.WalRecords),
		Problems: int(rep.Problems), BenignProblems: int(rep.BenignProblems), Elapsed: time.Duration(rep.ElapsedNanos),
	}, nil
}

// remoteError is a problem's error as the server sent it: its message,
// and whether it wrapped encoding.ErrCorrupt there.
type remoteError struct {
	msg     string
	corrupt bool
}

func (e *remoteError) Error() string { return e.msg }

// Is makes errors.Is(err, encoding.ErrCorrupt) hold as it did on the
// server.
func (e *remoteError) Is(target error) bool { return e.corrupt && target == encoding.ErrCorrupt }

// ConditionsToProto converts span conditions to the request's form, with
// filter the text of c.Filter ("" for none); c.Filter itself is not sent.
func ConditionsToProto(c query.SpanConditions, filter string) *pb.SpanConditions {
	return &pb.SpanConditions{
		ServiceName: c.Service, OperationName: c.Operation, Attributes: c.Attributes,
		StartTimeMinUnixNano: c.StartTime.Start, StartTimeMaxUnixNano: c.StartTime.End,
		DurationMinNanos: int64(c.DurationMin), DurationMaxNanos: int64(c.DurationMax),
		Filter: filter,
	}
}

// histogramToProto sends h's non-empty bucket range.
func histogramToProto(h query.Histogram) *pb.HistogramResponse {
	if h.Total == 0 {
		return &pb.HistogramResponse{}
	}
	return &pb.HistogramResponse{
		MinBucket: uint32(h.MinBucket), Counts: h.Counts[h.MinBucket : int(h.MaxBucket)+1], Total: h.Total,
	}
}

// histogramFromProto rebuilds the histogram, checking that the answer is
// one: its buckets exist, its first and last counts are not 0 and they add
// up to its total.
func histogramFromProto(res *pb.HistogramResponse) (query.Histogram, error) {
	h := query.Histogram{Counts: make([]uint64, index.NumBuckets)}
	n := len(res.Counts)
	if n == 0 {
		if res.Total != 0 || res.MinBucket != 0 {
			return query.Histogram{}, fmt.Errorf("histogram: total %d without counts: %w", res.Total, errMalformed)
		}
		return h, nil
	}
	if uint64(res.MinBucket)+uint64(n) > index.NumBuckets {
		return query.Histogram{}, fmt.Errorf("histogram: buckets %d to %d, beyond the last %d: %w",
			res.MinBucket, uint64(res.MinBucket)+uint64(n)-1, index.NumBuckets-1, errMalformed)
	}
	if res.Counts[0] == 0 || res.Counts[n-1] == 0 {
		return query.Histogram{}, fmt.Errorf("histogram: bucket range does not start and end with a count: %w", errMalformed)
	}
	var total uint64
	for i, c := range res.Counts {
		if total+c < total {
			return query.Histogram{}, fmt.Errorf("histogram: counts overflow: %w", errMalformed)
		}
		total += c
		h.Counts[int(res.MinBucket)+i] = c
	}
	if total != res.Total {
		return query.Histogram{}, fmt.Errorf("histogram: counts add up to %d, total says %d: %w", total, res.Total, errMalformed)
	}
	h.Total, h.MinBucket, h.MaxBucket = total, uint16(res.MinBucket), uint16(int(res.MinBucket)+n-1)
	return h, nil
}
