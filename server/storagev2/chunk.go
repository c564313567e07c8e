package storagev2

// Streaming traces: cutting ptrace.Traces into bounded chunks and sending
// them as OTLP TracesData messages.
//
// A chunk is encoded once, by pdata's marshaler, and the bytes are handed
// to gRPC as the unknown fields of an empty tracepb.TracesData: the proto
// codec writes unknown fields verbatim, and TracesData's only field is
// field 1 (resource_spans) in both, so the peer reads exactly the message
// pdata encoded. This spares decoding the bytes into the generated OTLP
// types only to encode them again (BenchmarkEncodeChunk measures both).

import (
	"go.opentelemetry.io/collector/pdata/ptrace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/tracedb/tracedb/encoding"
)

// chunks calls send with td cut into pieces of at most maxSpans spans that
// encode to at most maxBytes (a single span is sent whatever its size), in
// td's span order. td is consumed. An empty td sends nothing.
func chunks(td ptrace.Traces, maxSpans, maxBytes int, send func(*tracepb.TracesData) error) error {
	for _, part := range splitSpans(td, maxSpans) {
		if err := sendBounded(part, maxBytes, send); err != nil {
			return err
		}
	}
	return nil
}

// sendBounded encodes td and sends it, halving it first while it encodes
// larger than maxBytes.
func sendBounded(td ptrace.Traces, maxBytes int, send func(*tracepb.TracesData) error) error {
	n := td.SpanCount()
	if n == 0 {
		return nil
	}
	var m ptrace.ProtoMarshaler
	if n > 1 && m.TracesSize(td) > maxBytes {
		for _, half := range splitSpans(td, (n+1)/2) {
			if err := sendBounded(half, maxBytes, send); err != nil {
				return err
			}
		}
		return nil
	}
	b, err := m.MarshalTraces(td)
	if err != nil {
		return err
	}
	return send(rawTracesData(b))
}

// rawTracesData returns a TracesData whose encoding is b, an encoded
// TracesData (see the file comment). The message is only for sending: its
// fields read as empty.
func rawTracesData(b []byte) *tracepb.TracesData {
	msg := &tracepb.TracesData{}
	msg.ProtoReflect().SetUnknown(protoreflect.RawFields(b))
	return msg
}

// splitSpans cuts td into pieces of at most maxSpans spans each, keeping
// the span order and each span's resource and scope. td is consumed: its
// spans are moved, not copied. A td within the bound is returned as is.
func splitSpans(td ptrace.Traces, maxSpans int) []ptrace.Traces {
	if td.SpanCount() <= maxSpans {
		return []ptrace.Traces{td}
	}
	var (
		out []ptrace.Traces
		cur ptrace.Traces
		n   int // spans in cur
	)
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			ss := sss.At(j)
			spans := ss.Spans()
			var dst ptrace.SpanSlice
			open := false // dst is this scope's slice in cur
			for k := 0; k < spans.Len(); k++ {
				if len(out) == 0 || n == maxSpans {
					cur, n = ptrace.NewTraces(), 0
					out = append(out, cur)
					open = false
				}
				if !open {
					open = true
					crs := cur.ResourceSpans().AppendEmpty()
					rs.Resource().CopyTo(crs.Resource())
					crs.SetSchemaUrl(rs.SchemaUrl())
					css := crs.ScopeSpans().AppendEmpty()
					ss.Scope().CopyTo(css.Scope())
					css.SetSchemaUrl(ss.SchemaUrl())
					dst = css.Spans()
				}
				spans.At(k).MoveTo(dst.AppendEmpty())
				n++
			}
		}
	}
	return out
}

// spansToTraces converts spans to ptrace.Traces keeping their order: each
// run of consecutive spans that share a resource and a scope becomes one
// ResourceSpans holding one ScopeSpans.
func spansToTraces(spans []*encoding.Span) ptrace.Traces {
	td := ptrace.NewTraces()
	for lo := 0; lo < len(spans); {
		hi := lo + 1
		for hi < len(spans) && spans[hi].Resource == spans[lo].Resource && spans[hi].Scope == spans[lo].Scope {
			hi++
		}
		encoding.ToTraces(spans[lo:hi]).ResourceSpans().MoveAndAppendTo(td.ResourceSpans())
		lo = hi
	}
	return td
}
