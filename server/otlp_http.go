package server

import (
	"bytes"
	"errors"
	"io"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/klauspost/compress/gzip"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// otlpTracesPath is the OTLP/HTTP traces route.
const otlpTracesPath = "/v1/traces"

// Media types of OTLP/HTTP bodies.
const (
	mediaProtobuf = "application/x-protobuf"
	mediaJSON     = "application/json"
)

// otlpHTTPHandler serves POST /v1/traces with protobuf or JSON bodies,
// optionally gzip-compressed, and answers in the request's encoding.
func (s *Server) otlpHTTPHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(otlpTracesPath, s.httpRoute(otlpTracesPath, true, true, http.HandlerFunc(s.handleTraces)))
	return mux
}

func (s *Server) handleTraces(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeHTTPError(w, r, refuse(codes.Unimplemented, http.StatusMethodNotAllowed, "%s %s: only POST is served", r.Method, otlpTracesPath))
		return
	}
	media, ok := bodyMedia(r)
	if !ok {
		writeHTTPError(w, r, refuse(codes.InvalidArgument, http.StatusUnsupportedMediaType,
			"Content-Type %q is not %s or %s", r.Header.Get("Content-Type"), mediaProtobuf, mediaJSON))
		return
	}
	limit := int64(s.cfg.Limits.MaxMessageBytes)
	if r.ContentLength > limit {
		writeHTTPError(w, r, errTooLarge(limit))
		return
	}
	// Charge what the body announces before reading it, so an overloaded
	// server refuses without buffering; export charges the rest once the
	// uncompressed size is known.
	var held int64
	if r.ContentLength > 0 {
		if !s.budget.tryAcquire(r.ContentLength) {
			s.m.requestsRefused.WithLabelValues(protoHTTP, reasonOverloaded).Inc()
			writeHTTPError(w, r, errOverloaded(s.budget.limit))
			return
		}
		held = r.ContentLength
	} else if s.budget.full() {
		s.m.requestsRefused.WithLabelValues(protoHTTP, reasonOverloaded).Inc()
		writeHTTPError(w, r, errOverloaded(s.budget.limit))
		return
	}
	data, ref := readBody(w, r, limit)
	if ref != nil {
		s.budget.release(held)
		if ref.code == codes.InvalidArgument {
			s.m.requestsRefused.WithLabelValues(protoHTTP, reasonMalformed).Inc()
		}
		writeHTTPError(w, r, ref)
		return
	}
	var wire []byte
	if media != mediaJSON {
		wire = data
	}
	resp, err := s.in.export(r.Context(), protoHTTP, int64(len(data)), held, wire, func(req ptraceotlp.ExportRequest) error {
		if media == mediaJSON {
			return req.UnmarshalJSON(data)
		}
		return req.UnmarshalProto(data)
	})
	if err != nil {
		writeHTTPError(w, r, err)
		return
	}
	var out []byte
	if media == mediaJSON {
		out, err = resp.MarshalJSON()
	} else {
		out, err = resp.MarshalProto()
	}
	if err != nil {
		writeHTTPError(w, r, refuse(codes.Internal, http.StatusInternalServerError, "encode response: %v", err))
		return
	}
	w.Header().Set("Content-Type", media)
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// bodyMedia returns the request body's media type when it is one OTLP
// serves.
func bodyMedia(r *http.Request) (string, bool) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return "", false
	}
	switch mt {
	case mediaProtobuf, mediaJSON:
		return mt, true
	}
	return "", false
}

func errTooLarge(limit int64) *refusal {
	return refuse(codes.InvalidArgument, http.StatusRequestEntityTooLarge, "request body is over the limit of %d bytes (uncompressed): send smaller batches", limit)
}

// readBody reads the request body, uncompressed, up to limit bytes.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, *refusal) {
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit)); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, errTooLarge(limit)
		}
		return nil, refuse(codes.InvalidArgument, http.StatusBadRequest, "read body: %v", err)
	}
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
		return buf.Bytes(), nil
	case "gzip":
		return gunzip(buf.Bytes(), limit)
	default:
		return nil, refuse(codes.InvalidArgument, http.StatusUnsupportedMediaType, "Content-Encoding %q is not gzip or identity", enc)
	}
}

// gunzip decompresses b, refusing output over limit bytes.
func gunzip(b []byte, limit int64) ([]byte, *refusal) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, refuse(codes.InvalidArgument, http.StatusBadRequest, "gzip body: %v", err)
	}
	defer zr.Close()
	var out bytes.Buffer
	n, err := out.ReadFrom(io.LimitReader(zr, limit+1))
	if err != nil {
		return nil, refuse(codes.InvalidArgument, http.StatusBadRequest, "gzip body: %v", err)
	}
	if n > limit {
		return nil, errTooLarge(limit)
	}
	return out.Bytes(), nil
}

// writeHTTPError answers with err's status: a google.rpc.Status body in the
// request's encoding (as OTLP/HTTP asks), plain text for other requests,
// and Retry-After when the client should retry.
func writeHTTPError(w http.ResponseWriter, r *http.Request, err error) {
	ref, ok := errors.AsType[*refusal](err)
	if !ok {
		st := status.Convert(err)
		ref = &refusal{code: st.Code(), httpStatus: httpStatusOf(st.Code()), msg: st.Message()}
	}
	if ref.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(ref.retryAfter.Seconds()))))
	}
	var body []byte
	media, _ := bodyMedia(r)
	switch media {
	case mediaJSON:
		body, err = protojson.Marshal(&spb.Status{Code: int32(ref.code), Message: ref.msg})
	case mediaProtobuf:
		body, err = proto.Marshal(&spb.Status{Code: int32(ref.code), Message: ref.msg})
	}
	if media == "" || err != nil {
		media, body = "text/plain; charset=utf-8", []byte(ref.msg+"\n")
	}
	w.Header().Set("Content-Type", media)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(ref.httpStatus)
	_, _ = w.Write(body)
}

// httpStatusOf maps the gRPC codes that reach the HTTP side without a
// refusal (a client that went away, an internal error) to HTTP statuses.
func httpStatusOf(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.InvalidArgument:
		return http.StatusBadRequest
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Canceled, codes.DeadlineExceeded, codes.Unavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}
