package storagev2

import (
	"context"
	"strconv"
	"strings"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/query"
	"github.com/tracedb/tracedb/server/internal/rpcerr"
	pb "github.com/tracedb/tracedb/server/pb/storagev2"
)

// GetTraces streams each requested trace, in the request's order, in
// chunks of at most Options.MaxSpansPerChunk spans and MaxChunkBytes
// bytes; a chunk holds spans of one trace only, and a trace's chunks are
// consecutive. A trace ID that is not found, or repeats an earlier query's
// ID and time range, sends nothing. A query's start_time and end_time
// narrow the readers searched for the trace (spans of the trace that
// start outside them may be left out); without them every reader is
// probed through its trace-ID lookup.
func (s *server) GetTraces(req *pb.GetTracesRequest, stream pb.TraceReader_GetTracesServer) error {
	qs := req.GetQuery()
	if len(qs) > s.opts.MaxTraceIDs {
		return rpcerr.Invalidf("%d trace IDs requested, at most %d are allowed", len(qs), s.opts.MaxTraceIDs)
	}
	type target struct {
		id encoding.TraceID
		r  db.TimeRange
	}
	targets := make([]target, len(qs))
	for i, q := range qs {
		id, err := traceID(q.GetTraceId(), "query["+strconv.Itoa(i)+"].trace_id")
		if err != nil {
			return err
		}
		r, err := timeRange(q.GetStartTime(), q.GetEndTime(), "query["+strconv.Itoa(i)+"].start_time", "query["+strconv.Itoa(i)+"].end_time")
		if err != nil {
			return err
		}
		targets[i] = target{id, r}
	}
	ctx := stream.Context()
	done := make(map[target]bool, len(targets))
	for _, t := range targets {
		if done[t] {
			continue
		}
		done[t] = true
		if err := s.sendTrace(ctx, t.id, t.r, stream.Send); err != nil {
			return err
		}
	}
	return nil
}

// sendTrace streams one trace in bounded chunks.
func (s *server) sendTrace(ctx context.Context, id encoding.TraceID, r db.TimeRange, send func(*tracepb.TracesData) error) error {
	for td, err := range s.traces.GetTrace(ctx, id, r) {
		if err != nil {
			return rpcerr.Status(wrapf(err, "read trace %s", id))
		}
		if err := chunks(td, s.opts.MaxSpansPerChunk, s.opts.MaxChunkBytes, send); err != nil {
			return rpcerr.Status(err)
		}
	}
	return nil
}

// GetServices lists every service with spans in the store.
func (s *server) GetServices(ctx context.Context, _ *pb.GetServicesRequest) (*pb.GetServicesResponse, error) {
	svcs, err := s.eng.GetServices(ctx, db.TimeRange{})
	if err != nil {
		return nil, rpcerr.Status(err)
	}
	return &pb.GetServicesResponse{Services: svcs}, nil
}

// GetOperations lists a service's operations, each with a span kind it was
// seen with (an operation seen with two kinds is listed twice), sorted by
// name, then kind. span_kind, when set, keeps one kind; it is one of
// "unspecified", "internal", "server", "client", "producer", "consumer"
// (any case) or OTLP's enum name (SPAN_KIND_SERVER). The kind is answered
// in the lowercase word, and an unspecified kind as "", Jaeger's spelling
// of a span without a kind.
func (s *server) GetOperations(ctx context.Context, req *pb.GetOperationsRequest) (*pb.GetOperationsResponse, error) {
	if req.GetService() == "" {
		return nil, rpcerr.Invalidf("service is required")
	}
	q := query.OperationQuery{Service: req.GetService()}
	if k := req.GetSpanKind(); k != "" {
		n, ok := spanKindNumber(k)
		if !ok {
			return nil, rpcerr.Invalidf("span_kind %q is not one of %s", k, strings.Join(query.SpanKinds(), ", "))
		}
		q.ByKind, q.Kind = true, n
	}
	ops, err := s.eng.GetOperations(ctx, q)
	if err != nil {
		return nil, rpcerr.Status(err)
	}
	resp := &pb.GetOperationsResponse{Operations: make([]*pb.Operation, len(ops))}
	for i, op := range ops {
		resp.Operations[i] = &pb.Operation{Name: op.Name, SpanKind: spanKindWord(op.Kind)}
	}
	return resp, nil
}

// spanKindNumber reads a span kind word.
func spanKindNumber(w string) (int32, bool) {
	w = strings.ToLower(strings.TrimPrefix(strings.ToUpper(w), "SPAN_KIND_"))
	for i, k := range query.SpanKinds() {
		if k == w {
			return int32(i), true
		}
	}
	return 0, false
}

// spanKindWord is the word of a span kind on the wire.
func spanKindWord(k int32) string {
	kinds := query.SpanKinds()
	if k <= 0 || int(k) >= len(kinds) {
		return ""
	}
	return kinds[k]
}

// FindTraces streams the traces a search finds, newest first, each in
// full and in bounded chunks as GetTraces does. It is bounded by
// search_depth and refuses pagination (the proto's rule).
func (s *server) FindTraces(req *pb.FindTracesRequest, stream pb.TraceReader_FindTracesServer) error {
	q, err := s.traceQuery(req.GetQuery(), searchTraces)
	if err != nil {
		return err
	}
	for c, err := range s.eng.FindTraces(stream.Context(), q) {
		if err != nil {
			return rpcerr.Status(err)
		}
		if err := chunks(c.Traces, s.opts.MaxSpansPerChunk, s.opts.MaxChunkBytes, stream.Send); err != nil {
			return rpcerr.Status(err)
		}
	}
	return nil
}

// FindTraceIDs returns the IDs of the traces a search finds, newest first,
// one page of them when paginated. The start and end hints of each ID are
// left unset: a trace is ranked by its newest matching span, which says
// nothing of where its other spans lie, and a hint too narrow would make
// GetTraces miss them; without a hint GetTraces probes each reader's
// trace-ID lookup, which is cheap.
func (s *server) FindTraceIDs(ctx context.Context, req *pb.FindTraceIDsRequest) (*pb.FindTraceIDsResponse, error) {
	q, err := s.traceQuery(req.GetQuery(), searchPaginated)
	if err != nil {
		return nil, err
	}
	page, err := s.eng.FindTraceIDsPage(ctx, q)
	if err != nil {
		return nil, rpcerr.Status(err)
	}
	if req.GetQuery().GetPagination() == nil {
		page.NextPageToken = "" // one page bounded by search_depth, no continuation
	}
	resp := &pb.FindTraceIDsResponse{TraceIds: make([]*pb.FoundTraceID, len(page.Hits)), NextPageToken: page.NextPageToken}
	for i, h := range page.Hits {
		resp.TraceIds[i] = &pb.FoundTraceID{TraceId: append([]byte(nil), h.TraceID[:]...)}
	}
	return resp, nil
}

// FindSpans streams one page of the spans that match a filter on their
// own, in the requested order, in bounded chunks; next_page_token is set
// on the last chunk only. Both ends of the time range are required.
// Without pagination the page holds the engine's default number of spans.
func (s *server) FindSpans(req *pb.FindSpansRequest, stream pb.TraceReader_FindSpansServer) error {
	p := req.GetQuery()
	if p == nil {
		return rpcerr.Invalidf("query is missing")
	}
	if p.GetStartTimeMin() == nil || p.GetStartTimeMax() == nil {
		return rpcerr.Invalidf("start_time_min and start_time_max are required")
	}
	var (
		q   query.SpanQuery
		err error
	)
	if q.StartTime, err = timeRange(p.GetStartTimeMin(), p.GetStartTimeMax(), "start_time_min", "start_time_max"); err != nil {
		return err
	}
	if q.Filter, err = translateFilter(p.GetFilter()); err != nil {
		return rpcerr.Status(err)
	}
	if q.Order, err = spanOrder(p.GetOrderBy()); err != nil {
		return err
	}
	if pg := p.GetPagination(); pg != nil {
		if q.Limit, q.PageToken, err = s.page(pg); err != nil {
			return err
		}
	}
	page, err := s.eng.FindSpans(stream.Context(), q)
	if err != nil {
		return rpcerr.Status(err)
	}
	// Chunks are sent one behind, so that the last carries the token.
	var pending *tracepb.TracesData
	send := func(td *tracepb.TracesData) error {
		if pending != nil {
			if err := stream.Send(&pb.FindSpansResponse{Spans: pending}); err != nil {
				return err
			}
		}
		pending = td
		return nil
	}
	if err := chunks(spansToTraces(page.Spans), s.opts.MaxSpansPerChunk, s.opts.MaxChunkBytes, send); err != nil {
		return rpcerr.Status(err)
	}
	if pending == nil {
		return nil
	}
	return rpcerr.Status(stream.Send(&pb.FindSpansResponse{Spans: pending, NextPageToken: page.NextPageToken}))
}

// FindTraceSummaries streams summaries of one page of the traces a search
// finds, newest first, one summary per message; next_page_token is set on
// the last message only.
func (s *server) FindTraceSummaries(req *pb.FindTraceSummariesRequest, stream pb.TraceReader_FindTraceSummariesServer) error {
	q, err := s.traceQuery(req.GetQuery(), searchPaginated)
	if err != nil {
		return err
	}
	ctx := stream.Context()
	page, err := s.eng.FindTraceIDsPage(ctx, q)
	if err != nil {
		return rpcerr.Status(err)
	}
	if req.GetQuery().GetPagination() == nil {
		page.NextPageToken = "" // one page bounded by search_depth, no continuation
	}
	var pending *pb.TraceSummary
	for _, h := range page.Hits {
		sum, err := s.summarize(ctx, h.TraceID)
		if err != nil {
			return rpcerr.Status(wrapf(err, "summarize trace %s", h.TraceID))
		}
		if sum == nil {
			continue // dropped since the search
		}
		if pending != nil {
			if err := stream.Send(&pb.FindTraceSummariesResponse{Summaries: []*pb.TraceSummary{pending}}); err != nil {
				return rpcerr.Status(err)
			}
		}
		pending = sum
	}
	if pending == nil && page.NextPageToken == "" {
		return nil
	}
	resp := &pb.FindTraceSummariesResponse{NextPageToken: page.NextPageToken}
	if pending != nil {
		resp.Summaries = []*pb.TraceSummary{pending}
	}
	return rpcerr.Status(stream.Send(resp))
}

// GetDependencies returns the service graph of the spans that start in the
// requested range.
func (s *server) GetDependencies(ctx context.Context, req *pb.GetDependenciesRequest) (*pb.GetDependenciesResponse, error) {
	r, err := timeRange(req.GetStartTime(), req.GetEndTime(), "start_time", "end_time")
	if err != nil {
		return nil, err
	}
	links, err := s.eng.GetDependencies(ctx, r)
	if err != nil {
		return nil, rpcerr.Status(err)
	}
	resp := &pb.GetDependenciesResponse{Dependencies: make([]*pb.Dependency, len(links))}
	for i, l := range links {
		resp.Dependencies[i] = &pb.Dependency{Parent: l.Parent, Child: l.Child, CallCount: l.CallCount}
	}
	return resp, nil
}

// GetCapabilities declares what the engine serves exactly: searches
// without a service, conjunctions on one span, every filter level and
// operator of the vocabulary, pagination, and span search. span_sorting is
// not declared: FindSpans serves three orders (see spanOrder), not every
// sequence of fields the capability promises.
func (s *server) GetCapabilities(context.Context, *pb.GetCapabilitiesRequest) (*pb.GetCapabilitiesResponse, error) {
	ops := query.Ops()
	opNames := make([]string, len(ops))
	for i, o := range ops {
		opNames[i] = string(o)
	}
	return &pb.GetCapabilitiesResponse{Search: &pb.SearchCapabilities{
		WithoutServiceName:  true,
		SameSpanConjunction: true,
		Filter: &pb.FilterCapabilities{
			Levels: []string{
				string(query.LevelSpan), string(query.LevelResource), string(query.LevelScope),
				string(query.LevelEvent), string(query.LevelLink),
			},
			Operators: opNames,
		},
		Paginated:   true,
		SpanSearch:  true,
		SpanSorting: false,
	}}, nil
}
