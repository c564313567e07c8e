package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tracedb/tracedb/db"
)

// Writer is what the OTLP receivers write into: *db.DB satisfies it, and a
// Kafka consumer feeding a node would call the same method. The contract is
// db.DB.Write's: the tenant comes from ctx (db.WithTenant); rejected spans
// are listed in the result and their neighbours stored; a non-nil error
// means nothing of td is acknowledged; Write may block while the store
// makes room, until ctx ends.
type Writer interface {
	Write(ctx context.Context, td ptrace.Traces) (db.WriteResult, error)
}

// EncodedWriter is a Writer that also takes the protobuf bytes td was
// decoded from, to log them as they are (db.DB.WriteEncoded): the
// receivers hand them over for protobuf requests and so save encoding
// every request again.
type EncodedWriter interface {
	Writer
	WriteEncoded(ctx context.Context, td ptrace.Traces, wire []byte) (db.WriteResult, error)
}

// How long a refused client is asked to wait before retrying. Both are
// hints: the OTLP exporters back off exponentially from there.
const (
	retryAfterOverloaded  = time.Second
	retryAfterStorageBusy = 2 * time.Second
)

// maxListedRejections bounds the rejections spelled out in a partial
// success message; the rest are counted.
const maxListedRejections = 5

// refusal is an error that refuses a whole request. It carries both the
// gRPC code (GRPCStatus, so gRPC handlers can return it as is) and the
// HTTP status, and, when the client should retry, the delay.
type refusal struct {
	code       codes.Code
	httpStatus int
	msg        string
	retryAfter time.Duration // > 0: retryable; sent as RetryInfo / Retry-After
}

func (r *refusal) Error() string { return r.msg }

// GRPCStatus returns the status, with RetryInfo when retryable: OTLP
// clients retry RESOURCE_EXHAUSTED only when RetryInfo is present.
func (r *refusal) GRPCStatus() *status.Status {
	st := status.New(r.code, r.msg)
	if r.retryAfter > 0 {
		if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(r.retryAfter)}); err == nil {
			st = d
		}
	}
	return st
}

func refuse(code codes.Code, httpStatus int, format string, args ...any) *refusal {
	return &refusal{code: code, httpStatus: httpStatus, msg: fmt.Sprintf(format, args...)}
}

// errOverloaded is the answer when the in-flight budget is full.
func errOverloaded(limit int64) *refusal {
	return &refusal{code: codes.ResourceExhausted, httpStatus: http.StatusTooManyRequests, retryAfter: retryAfterOverloaded,
		msg: fmt.Sprintf("server overloaded: the ingest in-flight budget of %d bytes is full; retry later", limit)}
}

// ingester is the one path from a decoded-or-not OTLP request to the store,
// shared by the gRPC and HTTP receivers.
type ingester struct {
	w      Writer
	budget *budget
	m      *metrics
	lim    Limits
	log    *slog.Logger
	// observe, when set, is told of every write that stored spans, with
	// the tenant and the whole batch (adaptive sampling counts its root
	// spans); it must not keep td.
	observe func(tenant string, td ptrace.Traces)
}

// export decodes a request with decode, writes its spans and returns the
// OTLP response, with partial success when spans were rejected. wire is
// the protobuf encoding decode reads, nil for JSON. size is the request's
// uncompressed size; the caller has already taken held bytes
// of the budget for it, export takes the rest before decoding and gives
// all of it back before returning. Errors are *refusal.
func (in *ingester) export(ctx context.Context, protocol string, size, held int64, wire []byte, decode func(ptraceotlp.ExportRequest) error) (ptraceotlp.ExportResponse, error) {
	charge := max(size, held)
	if extra := charge - held; extra > 0 && !in.budget.tryAcquire(extra) {
		in.budget.release(held)
		in.m.requestsRefused.WithLabelValues(protocol, reasonOverloaded).Inc()
		return ptraceotlp.ExportResponse{}, errOverloaded(in.budget.limit)
	}
	defer in.budget.release(charge)

	req := ptraceotlp.NewExportRequest()
	if err := decode(req); err != nil {
		in.m.requestsRefused.WithLabelValues(protocol, reasonMalformed).Inc()
		return ptraceotlp.ExportResponse{}, refuse(codes.InvalidArgument, http.StatusBadRequest, "malformed OTLP request: %v", err)
	}
	td := req.Traces()
	n := td.SpanCount()
	in.m.spansReceived.WithLabelValues(protocol).Add(float64(n))
	if n > in.lim.MaxSpansPerRequest {
		in.refuseSpans(protocol, reasonTooManySpans, n)
		return ptraceotlp.ExportResponse{}, refuse(codes.InvalidArgument, http.StatusRequestEntityTooLarge,
			"request has %d spans, the limit is %d: send smaller batches", n, in.lim.MaxSpansPerRequest)
	}
	resp := ptraceotlp.NewExportResponse()
	if n == 0 {
		return resp, nil
	}

	wctx, cancel := context.WithTimeout(ctx, in.lim.WriteTimeout)
	var (
		res db.WriteResult
		err error
	)
	if ew, ok := in.w.(EncodedWriter); ok && wire != nil {
		res, err = ew.WriteEncoded(wctx, td, wire)
	} else {
		res, err = in.w.Write(wctx, td)
	}
	cancel()
	if err != nil {
		return resp, in.writeError(ctx, protocol, n, err)
	}
	in.m.spansAccepted.WithLabelValues(protocol).Add(float64(res.Accepted))
	if in.observe != nil && res.Accepted > 0 {
		in.observe(db.TenantFromContext(ctx), td)
	}
	if len(res.Rejected) > 0 {
		for _, r := range res.Rejected {
			in.m.spansRejected.WithLabelValues(protocol, string(r.Reason)).Inc()
		}
		ps := resp.PartialSuccess()
		ps.SetRejectedSpans(int64(len(res.Rejected)))
		ps.SetErrorMessage(rejectionMessage(res.Rejected))
	}
	return resp, nil
}

// writeError maps a failed store write of n spans to a refusal.
func (in *ingester) writeError(ctx context.Context, protocol string, n int, err error) error {
	switch {
	case ctx.Err() != nil:
		// The client gave up; whatever we answer, it does not listen.
		return status.FromContextError(ctx.Err()).Err()
	case errors.Is(err, context.DeadlineExceeded):
		in.refuseSpans(protocol, reasonStorageBusy, n)
		return &refusal{code: codes.ResourceExhausted, httpStatus: http.StatusServiceUnavailable, retryAfter: retryAfterStorageBusy,
			msg: fmt.Sprintf("storage busy: the write did not finish within %s (the store is flushing a full head); retry later", in.lim.WriteTimeout)}
	case errors.Is(err, db.ErrInvalidTenant):
		in.m.requestsRefused.WithLabelValues(protocol, reasonBadTenant).Inc()
		return refuse(codes.InvalidArgument, http.StatusBadRequest, "%v", err)
	default:
		in.refuseSpans(protocol, reasonUnavailable, n)
		in.log.Warn("store write failed; the client is asked to retry", "err", err)
		r := refuse(codes.Unavailable, http.StatusServiceUnavailable, "store write failed: %v", err)
		r.retryAfter = retryAfterStorageBusy
		return r
	}
}

func (in *ingester) refuseSpans(protocol, reason string, n int) {
	in.m.requestsRefused.WithLabelValues(protocol, reason).Inc()
	in.m.spansRejected.WithLabelValues(protocol, reason).Add(float64(n))
}

// rejectionMessage summarises rejections for ExportPartialSuccess's
// error_message: counts by reason, then the first few spans in full.
func rejectionMessage(rs []db.Rejection) string {
	var reasons []db.RejectReason
	count := map[db.RejectReason]int{}
	for _, r := range rs {
		if count[r.Reason] == 0 {
			reasons = append(reasons, r.Reason)
		}
		count[r.Reason]++
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d spans rejected (", len(rs))
	for i, reason := range reasons {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s: %d", reason, count[reason])
	}
	b.WriteString(")")
	for i, r := range rs {
		if i == maxListedRejections {
			fmt.Fprintf(&b, "; and %d more", len(rs)-i)
			break
		}
		b.WriteString("; ")
		b.WriteString(r.Error())
	}
	return b.String()
}
