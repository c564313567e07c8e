package db

import (
	"fmt"
	"unicode/utf8"

	"github.com/tracedb/tracedb/encoding"
)

// RejectReason says why a span was not stored.
type RejectReason string

// Reasons a span is rejected. They are stable: metrics and the server's
// partial-success messages use them.
const (
	RejectZeroTraceID     RejectReason = "zero_trace_id"
	RejectZeroSpanID      RejectReason = "zero_span_id"
	RejectEndBeforeStart  RejectReason = "end_before_start"
	RejectInvalidUTF8     RejectReason = "invalid_utf8"
	RejectAttributeTooBig RejectReason = "attribute_too_large"
	RejectTooManyAttrs    RejectReason = "too_many_attributes"
	RejectTooManyEvents   RejectReason = "too_many_events_or_links"
	RejectSpanTooBig      RejectReason = "span_too_large"
	RejectNestingTooDeep  RejectReason = "nesting_too_deep"
)

// maxValueDepth bounds how deeply arrays and maps nest in one value; the
// block encoder refuses deeper values, so they are rejected at the door.
const maxValueDepth = 32

// Rejection describes one span that was not stored.
type Rejection struct {
	Ref     encoding.SpanRef // where the span sits in the written ptrace.Traces
	TraceID encoding.TraceID
	SpanID  encoding.SpanID
	Reason  RejectReason
	Detail  string // human-readable, names the offending field
}

func (r Rejection) Error() string {
	return fmt.Sprintf("span %s of trace %s (resource %d, scope %d, span %d) rejected: %s: %s",
		r.SpanID, r.TraceID, r.Ref.Resource, r.Ref.Scope, r.Ref.Span, r.Reason, r.Detail)
}

// validateSpan returns "" when s may be stored, or why not.
func validateSpan(s *encoding.Span, lim *Limits) (RejectReason, string) {
	if s.TraceID.IsZero() {
		return RejectZeroTraceID, "trace ID is all zeros"
	}
	if s.SpanID.IsZero() {
		return RejectZeroSpanID, "span ID is all zeros"
	}
	if s.EndUnixNano < s.StartUnixNano {
		return RejectEndBeforeStart, fmt.Sprintf("end %d is before start %d", s.EndUnixNano, s.StartUnixNano)
	}
	if !utf8.ValidString(s.Name) {
		return RejectInvalidUTF8, "span name is not valid UTF-8"
	}
	if s.Scope != nil && !utf8.ValidString(s.Scope.Name) {
		return RejectInvalidUTF8, "scope name is not valid UTF-8"
	}
	v := spanValidator{lim: lim}
	v.kvs("attribute", s.Attrs, 0)
	if len(s.Events) > lim.MaxEventsOrLinks || len(s.Links) > lim.MaxEventsOrLinks {
		return RejectTooManyEvents, fmt.Sprintf("%d events and %d links, limit %d each", len(s.Events), len(s.Links), lim.MaxEventsOrLinks)
	}
	for i := range s.Events {
		e := &s.Events[i]
		if v.reason == "" && !utf8.ValidString(e.Name) {
			v.fail(RejectInvalidUTF8, fmt.Sprintf("event %d name is not valid UTF-8", i))
		}
		v.size += 16 + len(e.Name)
		v.kvs("event attribute", e.Attrs, 0)
	}
	for i := range s.Links {
		l := &s.Links[i]
		v.size += 32 + len(l.TraceState)
		v.kvs("link attribute", l.Attrs, 0)
	}
	if v.reason != "" {
		return v.reason, v.detail
	}
	if v.size += 64 + len(s.Name) + len(s.TraceState) + len(s.StatusMessage); v.size > lim.MaxSpanBytes {
		return RejectSpanTooBig, fmt.Sprintf("about %d bytes, limit %d", v.size, lim.MaxSpanBytes)
	}
	return "", ""
}

type spanValidator struct {
	lim    *Limits
	size   int
	reason RejectReason
	detail string
}

func (v *spanValidator) fail(r RejectReason, d string) {
	if v.reason == "" {
		v.reason, v.detail = r, d
	}
}

func (v *spanValidator) kvs(what string, kvs []encoding.KeyValue, depth int) {
	if depth == 0 && len(kvs) > v.lim.MaxAttributes {
		v.fail(RejectTooManyAttrs, fmt.Sprintf("%d %ss, limit %d", len(kvs), what, v.lim.MaxAttributes))
		return
	}
	for i := range kvs {
		kv := &kvs[i]
		if depth == 0 && !utf8.ValidString(kv.Key) {
			v.fail(RejectInvalidUTF8, fmt.Sprintf("%s key %q is not valid UTF-8", what, kv.Key))
		}
		before := v.size
		v.value(what, kv.Key, &kv.Value, depth)
		v.size += len(kv.Key) + 2
		if depth == 0 && v.size-before > v.lim.MaxAttributeValueBytes {
			v.fail(RejectAttributeTooBig, fmt.Sprintf("%s %q value is about %d bytes, limit %d", what, kv.Key, v.size-before, v.lim.MaxAttributeValueBytes))
		}
	}
}

func (v *spanValidator) value(what, key string, val *encoding.Value, depth int) {
	switch val.Type {
	case encoding.ValueStr, encoding.ValueBytes:
		v.size += len(val.Str) + 1
	case encoding.ValueArray, encoding.ValueMap:
		if depth+1 > maxValueDepth {
			v.fail(RejectNestingTooDeep, fmt.Sprintf("%s %q nests deeper than %d", what, key, maxValueDepth))
			return
		}
		v.kvs(what, val.Kids, depth+1)
	default:
		v.size += 9
	}
}
