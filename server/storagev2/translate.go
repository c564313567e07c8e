package storagev2

// Translation of the wire's query messages into the engine's queries.

import (
	"fmt"
	"math"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/index"
	"github.com/tracedb/tracedb/query"
	"github.com/tracedb/tracedb/server/internal/rpcerr"
	exprpb "github.com/tracedb/tracedb/server/pb/expressionv1"
	pb "github.com/tracedb/tracedb/server/pb/storagev2"
)

// translateFilter turns a wire filter into a compiled query.Filter; nil
// gives nil. Every error is a *query.FilterError (it wraps
// query.ErrInvalidFilter).
func translateFilter(c *exprpb.Call) (*query.Filter, error) {
	if c == nil {
		return nil, nil
	}
	e, err := translateCall(c, 1)
	if err != nil {
		return nil, err
	}
	return query.Compile(e)
}

// translateCall converts one call at nesting depth depth (the root is 1).
// Depth is checked here, before the tree is built, so that a deeply nested
// message costs no more than MaxFilterDepth levels of work.
func translateCall(c *exprpb.Call, depth int) (*query.Call, error) {
	if depth > query.MaxFilterDepth {
		return nil, &query.FilterError{Msg: fmt.Sprintf("calls nest more than %d deep", query.MaxFilterDepth)}
	}
	out := &query.Call{Op: query.Op(c.GetOp()), Args: make([]query.Expr, len(c.GetArgs()))}
	for i, a := range c.GetArgs() {
		e, err := translateExpr(a, depth)
		if err != nil {
			return nil, err
		}
		out.Args[i] = e
	}
	return out, nil
}

// translateExpr converts an argument of a call at depth depth.
func translateExpr(e *exprpb.Expression, depth int) (query.Expr, error) {
	switch t := e.GetTerm().(type) {
	case *exprpb.Expression_Attr:
		return &query.AttrRef{Level: query.Level(t.Attr.GetLevel()), Key: t.Attr.GetKey()}, nil
	case *exprpb.Expression_Field:
		return &query.FieldRef{Level: query.Level(t.Field.GetLevel()), Name: t.Field.GetName()}, nil
	case *exprpb.Expression_Nested:
		return &query.NestedRef{Level: query.Level(t.Nested.GetLevel())}, nil
	case *exprpb.Expression_Scalar:
		return query.ConstFromWire(t.Scalar.GetValue(), t.Scalar.GetType())
	case *exprpb.Expression_List:
		return query.ListFromWire(t.List.GetValues(), t.List.GetType())
	case *exprpb.Expression_Call:
		if t.Call == nil {
			return nil, &query.FilterError{Msg: "an argument's call is empty"}
		}
		return translateCall(t.Call, depth+1)
	}
	return nil, &query.FilterError{Msg: "an argument is empty: it sets none of attr, field, nested, scalar, list, call"}
}

// timestampNanos converts an optional timestamp to Unix nanoseconds. An
// absent one, or one at or before the Unix epoch, gives 0, which the
// engine reads as "no bound": Jaeger's client sends Go's zero time (year 1)
// for an unset bound. One past 2262 is clamped to the largest int64. what
// names the field in errors.
func timestampNanos(ts *timestamppb.Timestamp, what string) (uint64, error) {
	if ts == nil {
		return 0, nil
	}
	if err := ts.CheckValid(); err != nil {
		return 0, rpcerr.Invalidf("%s: %v", what, err)
	}
	switch t := ts.AsTime(); {
	case !t.After(time.Unix(0, 0)):
		return 0, nil
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64, nil
	default:
		return uint64(t.UnixNano()), nil
	}
}

// timeRange converts an optional [start, end] pair, both ends inclusive
// (see timestampNanos for unset ends). An end before the start is refused.
func timeRange(start, end *timestamppb.Timestamp, startName, endName string) (db.TimeRange, error) {
	s, err := timestampNanos(start, startName)
	if err != nil {
		return db.TimeRange{}, err
	}
	e, err := timestampNanos(end, endName)
	if err != nil {
		return db.TimeRange{}, err
	}
	if e != 0 && e < s {
		return db.TimeRange{}, rpcerr.Invalidf("%s %s is before %s %s", endName, end.AsTime().Format(time.RFC3339Nano), startName, start.AsTime().Format(time.RFC3339Nano))
	}
	return db.TimeRange{Start: s, End: e}, nil
}

// duration converts an optional duration; nil gives 0.
func duration(d *durationpb.Duration, what string) (time.Duration, error) {
	if d == nil {
		return 0, nil
	}
	if err := d.CheckValid(); err != nil {
		return 0, rpcerr.Invalidf("%s: %v", what, err)
	}
	v := d.AsDuration()
	if v < 0 {
		return 0, rpcerr.Invalidf("%s %s is negative", what, v)
	}
	return v, nil
}

// Search kinds: what a TraceQueryParameters is for.
type searchKind int

const (
	searchTraces    searchKind = iota // FindTraces: no pagination
	searchPaginated                   // FindTraceIDs, FindTraceSummaries
)

// traceQuery translates the parameters of a trace search.
func (s *server) traceQuery(p *pb.TraceQueryParameters, kind searchKind) (query.TraceQuery, error) {
	var q query.TraceQuery
	if p == nil {
		return q, rpcerr.Invalidf("query is missing")
	}
	legacy := p.GetServiceName() != "" || p.GetOperationName() != "" || len(p.GetAttributes()) > 0 ||
		p.GetDurationMin() != nil || p.GetDurationMax() != nil
	if p.GetFilter() != nil && legacy {
		return q, rpcerr.Invalidf("filter is mutually exclusive with service_name, operation_name, attributes, duration_min and duration_max")
	}
	q.Service, q.Operation = p.GetServiceName(), p.GetOperationName()
	if len(p.GetAttributes()) > 0 {
		q.Attributes = make(map[string]string, len(p.GetAttributes()))
		for i, kv := range p.GetAttributes() {
			v, err := attrString(kv.GetValue())
			if err != nil {
				return q, rpcerr.Invalidf("attributes[%d] %q: %v", i, kv.GetKey(), err)
			}
			if old, ok := q.Attributes[kv.GetKey()]; ok && old != v {
				return q, rpcerr.Invalidf("attributes[%d]: key %q is given twice with different values (%q and %q)", i, kv.GetKey(), old, v)
			}
			q.Attributes[kv.GetKey()] = v
		}
	}
	var err error
	if q.StartTime, err = timeRange(p.GetStartTimeMin(), p.GetStartTimeMax(), "start_time_min", "start_time_max"); err != nil {
		return q, err
	}
	if q.DurationMin, err = duration(p.GetDurationMin(), "duration_min"); err != nil {
		return q, err
	}
	if q.DurationMax, err = duration(p.GetDurationMax(), "duration_max"); err != nil {
		return q, err
	}
	if q.Filter, err = translateFilter(p.GetFilter()); err != nil {
		return q, rpcerr.Status(err)
	}
	if p.GetSearchDepth() < 0 {
		return q, rpcerr.Invalidf("search_depth %d is negative", p.GetSearchDepth())
	}
	q.Limit = int(p.GetSearchDepth())
	if pg := p.GetPagination(); pg != nil {
		if kind == searchTraces {
			return q, rpcerr.Invalidf("FindTraces does not paginate: use search_depth, or FindTraceIDs with pagination")
		}
		if p.GetSearchDepth() != 0 {
			return q, rpcerr.Invalidf("pagination and search_depth are mutually exclusive")
		}
		if q.Limit, q.PageToken, err = s.page(pg); err != nil {
			return q, err
		}
	}
	return q, nil
}

// page translates a Pagination into a limit and a token.
func (s *server) page(pg *pb.Pagination) (int, string, error) {
	if pg.GetPageSize() == 0 {
		return 0, "", rpcerr.Invalidf("pagination.page_size is 0: a page must hold at least one result")
	}
	return int(min(pg.GetPageSize(), uint32(s.opts.MaxPageSize))), pg.GetPageToken(), nil
}

// attrString returns the string form of a legacy attribute value that the
// engine matches against (index.ValueString's).
func attrString(v *pb.AnyValue) (string, error) {
	ev, err := anyValue(v, 0)
	if err != nil {
		return "", err
	}
	str, ok := index.ValueString(&ev)
	if !ok {
		return "", fmt.Errorf("the value cannot be searched for (empty, or a NaN or infinity inside an array or map)")
	}
	return str, nil
}

// maxValueDepth bounds the nesting of arrays and maps in a legacy
// attribute value.
const maxValueDepth = 32

func anyValue(v *pb.AnyValue, depth int) (encoding.Value, error) {
	if depth > maxValueDepth {
		return encoding.Value{}, fmt.Errorf("value nests more than %d deep", maxValueDepth)
	}
	switch x := v.GetValue().(type) {
	case *pb.AnyValue_StringValue:
		return encoding.Value{Type: encoding.ValueStr, Str: x.StringValue}, nil
	case *pb.AnyValue_BoolValue:
		var n uint64
		if x.BoolValue {
			n = 1
		}
		return encoding.Value{Type: encoding.ValueBool, Num: n}, nil
	case *pb.AnyValue_IntValue:
		return encoding.Value{Type: encoding.ValueInt, Num: uint64(x.IntValue)}, nil
	case *pb.AnyValue_DoubleValue:
		return encoding.Value{Type: encoding.ValueDouble, Num: math.Float64bits(x.DoubleValue)}, nil
	case *pb.AnyValue_BytesValue:
		return encoding.Value{Type: encoding.ValueBytes, Str: string(x.BytesValue)}, nil
	case *pb.AnyValue_ArrayValue:
		out := encoding.Value{Type: encoding.ValueArray}
		for _, e := range x.ArrayValue.GetValues() {
			k, err := anyValue(e, depth+1)
			if err != nil {
				return out, err
			}
			out.Kids = append(out.Kids, encoding.KeyValue{Value: k})
		}
		return out, nil
	case *pb.AnyValue_KvlistValue:
		out := encoding.Value{Type: encoding.ValueMap}
		for _, kv := range x.KvlistValue.GetValues() {
			k, err := anyValue(kv.GetValue(), depth+1)
			if err != nil {
				return out, err
			}
			out.Kids = append(out.Kids, encoding.KeyValue{Key: kv.GetKey(), Value: k})
		}
		return out, nil
	}
	return encoding.Value{}, fmt.Errorf("the value is empty")
}

// spanOrder translates a FindSpans order_by into one of the engine's
// orders. The effective order is the list with the default's missing
// terms (startTime desc, traceID asc, spanID asc) appended; the engine
// serves three effective orders exactly:
//
//	startTime desc, traceID asc, spanID asc   (the default)
//	startTime asc,  traceID asc, spanID asc
//	duration desc,  traceID asc, spanID asc, startTime desc
//
// The third one is what the engine's order by duration amounts to: ties
// on duration are broken by trace and span ID, which are (almost) unique,
// so a startTime term after them never decides. Any other order is
// refused.
func spanOrder(terms []*pb.SpanSortOrder) (query.SpanOrder, error) {
	const maxTerms = 4
	if len(terms) > maxTerms {
		return 0, rpcerr.Invalidf("order_by has %d terms, at most %d are allowed", len(terms), maxTerms)
	}
	type term struct {
		field string
		desc  bool
	}
	var eff []term
	seen := map[string]bool{}
	for i, t := range terms {
		f, ok := t.GetExpression().GetTerm().(*exprpb.Expression_Field)
		if !ok || f.Field.GetLevel() != string(query.LevelSpan) {
			return 0, rpcerr.Invalidf("order_by[%d]: the expression must be a span field: span.startTime, span.duration, span.traceID or span.spanID", i)
		}
		name := f.Field.GetName()
		switch name {
		case "startTime", "duration", "traceID", "spanID":
		default:
			return 0, rpcerr.Invalidf("order_by[%d]: span.%s cannot order spans: use span.startTime, span.duration, span.traceID or span.spanID", i, name)
		}
		if seen[name] {
			return 0, rpcerr.Invalidf("order_by[%d]: span.%s is repeated", i, name)
		}
		seen[name] = true
		var desc bool
		switch t.GetDirection() {
		case "", "asc":
		case "desc":
			desc = true
		default:
			return 0, rpcerr.Invalidf("order_by[%d]: direction %q is neither asc nor desc", i, t.GetDirection())
		}
		eff = append(eff, term{name, desc})
	}
	for _, d := range []term{{"startTime", true}, {"traceID", false}, {"spanID", false}} {
		if !seen[d.field] {
			eff = append(eff, d)
		}
	}
	var b strings.Builder
	for i, t := range eff {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(t.field)
		if t.desc {
			b.WriteString(" desc")
		}
	}
	switch got := b.String(); got {
	case "startTime desc,traceID,spanID":
		return query.SpanStartDesc, nil
	case "startTime,traceID,spanID":
		return query.SpanStartAsc, nil
	case "duration desc,traceID,spanID,startTime desc":
		return query.SpanDurationDesc, nil
	default:
		return 0, rpcerr.Invalidf("order_by: the order (%s) is not supported; supported: startTime desc, startTime asc, or duration desc followed by traceID asc and spanID asc", got)
	}
}

// traceID reads a 16-byte trace ID.
func traceID(b []byte, what string) (encoding.TraceID, error) {
	var id encoding.TraceID
	if len(b) != len(id) {
		return id, rpcerr.Invalidf("%s is %d bytes, want %d", what, len(b), len(id))
	}
	copy(id[:], b)
	return id, nil
}
