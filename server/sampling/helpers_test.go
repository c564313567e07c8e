package sampling

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	pb "github.com/tracedb/tracedb/server/pb/samplingv2"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// newManual returns a Service without its background loop, closed when
// the test ends.
func newManual(t *testing.T, opts Options) *Service {
	t.Helper()
	opts.manual = true
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// rootSpan describes root spans to generate.
type rootSpan struct {
	service, op string
	n           int           // how many
	p           float64       // sampler.param; <= 0: no sampler attributes
	errors      int           // the first errors of them have status error
	dur         time.Duration // each one's duration
}

func traces(rng *rand.Rand, specs ...rootSpan) ptrace.Traces {
	td := ptrace.NewTraces()
	start := pcommon.NewTimestampFromTime(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	for _, sp := range specs {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", sp.service)
		spans := rs.ScopeSpans().AppendEmpty().Spans()
		for i := 0; i < sp.n; i++ {
			s := spans.AppendEmpty()
			var tid [16]byte
			var sid [8]byte
			for j := range tid {
				tid[j] = byte(rng.Uint32())
			}
			for j := range sid {
				sid[j] = byte(rng.Uint32())
			}
			tid[0], sid[0] = 1, 1
			s.SetTraceID(tid)
			s.SetSpanID(sid)
			s.SetName(sp.op)
			s.SetStartTimestamp(start)
			s.SetEndTimestamp(start + pcommon.Timestamp(sp.dur))
			if i < sp.errors {
				s.Status().SetCode(ptrace.StatusCodeError)
			}
			if sp.p > 0 {
				s.Attributes().PutStr(attrSamplerType, samplerProbabilistic)
				s.Attributes().PutDouble(attrSamplerParam, sp.p)
			}
			// A child span, which must not count.
			c := spans.AppendEmpty()
			c.SetTraceID(tid)
			sid[1]++
			c.SetSpanID(sid)
			c.SetParentSpanID(s.SpanID())
			c.SetName(sp.op + "-child")
		}
	}
	return td
}

// opProbability returns the probability a strategy gives operation op.
func opProbability(r *pb.SamplingStrategyResponse, op string) float64 {
	if ps := r.GetOperationSampling(); ps != nil {
		for _, o := range ps.GetPerOperationStrategies() {
			if o.GetOperation() == op {
				return o.GetProbabilisticSampling().GetSamplingRate()
			}
		}
		return ps.GetDefaultSamplingProbability()
	}
	return r.GetProbabilisticSampling().GetSamplingRate()
}
