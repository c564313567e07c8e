package storagev2

import (
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// testTraces builds n spans spread over resources and scopes.
func testTraces(n int) ptrace.Traces {
	td := ptrace.NewTraces()
	for i := 0; i < n; {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", fmt.Sprintf("svc%d", i))
		for s := 0; s < 3 && i < n; s++ {
			ss := rs.ScopeSpans().AppendEmpty()
			ss.Scope().SetName(fmt.Sprintf("lib%d", s))
			for k := 0; k < 7 && i < n; k++ {
				sp := ss.Spans().AppendEmpty()
				sp.SetTraceID(tid(1))
				sp.SetSpanID(sid(i + 1))
				sp.SetName("op")
				sp.SetStartTimestamp(pcommon.NewTimestampFromTime(base.Add(time.Duration(i))))
				sp.Attributes().PutStr("k", "some value of moderate length")
				i++
			}
		}
	}
	return td
}

// TestChunksKeepEverything: the chunks, decoded as the peer does, hold
// every span once, in order, with its resource and scope, and respect the
// bounds.
func TestChunksKeepEverything(t *testing.T) {
	for _, tc := range []struct{ spans, maxSpans, maxBytes int }{
		{0, 10, 1 << 20}, {1, 10, 1 << 20}, {100, 10, 1 << 20}, {100, 1000, 1 << 20},
		{100, 1000, 1000}, {100, 7, 300}, {50, 1, 1},
	} {
		t.Run(fmt.Sprint(tc), func(t *testing.T) {
			var got []*tracepb.TracesData
			err := chunks(testTraces(tc.spans), tc.maxSpans, tc.maxBytes, func(m *tracepb.TracesData) error {
				b, err := proto.Marshal(m)
				if err != nil {
					return err
				}
				var d tracepb.TracesData
				if err := proto.Unmarshal(b, &d); err != nil {
					return err
				}
				if n := spanCount([]*tracepb.TracesData{&d}); n > tc.maxSpans || n == 0 || (n > 1 && len(b) > tc.maxBytes) {
					t.Errorf("chunk of %d spans, %d bytes", n, len(b))
				}
				got = append(got, &d)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			i := 0
			for _, c := range got {
				for _, rs := range c.ResourceSpans {
					for _, ss := range rs.ScopeSpans {
						for _, sp := range ss.Spans {
							i++
							if want := sid(i); string(sp.SpanId) != string(want[:]) {
								t.Fatalf("span %d is %x", i, sp.SpanId)
							}
							if len(rs.Resource.GetAttributes()) != 1 || ss.Scope.GetName() == "" {
								t.Fatalf("span %d lost its resource or scope", i)
							}
						}
					}
				}
			}
			if i != tc.spans {
				t.Errorf("%d spans, want %d", i, tc.spans)
			}
		})
	}
}

// BenchmarkEncodeChunk compares the ways of turning a chunk into the bytes
// gRPC sends: pdata's bytes handed over as unknown fields (what chunks
// does) against decoding them into the generated OTLP type and encoding
// that again.
func BenchmarkEncodeChunk(b *testing.B) {
	td := testTraces(1000)
	var m ptrace.ProtoMarshaler
	b.Run("raw", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf, err := m.MarshalTraces(td)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := proto.Marshal(rawTracesData(buf)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf, err := m.MarshalTraces(td)
			if err != nil {
				b.Fatal(err)
			}
			var d tracepb.TracesData
			if err := proto.Unmarshal(buf, &d); err != nil {
				b.Fatal(err)
			}
			if _, err := proto.Marshal(&d); err != nil {
				b.Fatal(err)
			}
		}
	})
}
