package sampling

import (
	"math"
	"slices"
	"sort"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	pb "github.com/tracedb/tracedb/server/pb/samplingv2"
)

// The root-span attributes that say which sampler decided and with what
// parameter: the OpenTelemetry jaegerremote sampler writes the first pair,
// Jaeger's classic clients the second.
const (
	attrSamplerType      = "jaeger.sampler.type"
	attrSamplerParam     = "jaeger.sampler.param"
	attrSamplerTypeOld   = "sampler.type"
	attrSamplerParamOld  = "sampler.param"
	samplerProbabilistic = "probabilistic"
	samplerConst         = "const"
)

// The resource attribute naming the service, and the name of spans whose
// resource has none.
const (
	attrServiceName = "service.name"
	unknownService  = "unknown_service"
)

// Latency histogram of an interval: geometric buckets from latencyBase,
// each latencyGrowth times the last, the last one open-ended. 80 buckets
// reach about 1.2 h; a p99 read from them is within 12% of the truth, well
// inside AdaptiveOptions.LatencyRise.
const (
	latencyBuckets = 80
	latencyBase    = 100 * time.Microsecond
	latencyGrowth  = 1.25
)

type latencyHist [latencyBuckets]uint32

func (h *latencyHist) add(d time.Duration) {
	i := 0
	if d > latencyBase {
		i = min(int(math.Ceil(math.Log(float64(d)/float64(latencyBase))/math.Log(latencyGrowth))), latencyBuckets-1)
	}
	h[i]++
}

func (h *latencyHist) merge(o *latencyHist) {
	for i := range h {
		h[i] += o[i]
	}
}

// quantile returns the upper bound of the bucket holding quantile q, in
// seconds, or 0 for an empty histogram.
func (h *latencyHist) quantile(q float64) float64 {
	var n uint64
	for _, c := range h {
		n += uint64(c)
	}
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	var seen uint64
	for i, c := range h {
		seen += uint64(c)
		if seen >= rank {
			return latencyBase.Seconds() * math.Pow(latencyGrowth, float64(i))
		}
	}
	return latencyBase.Seconds() * math.Pow(latencyGrowth, latencyBuckets-1)
}

// bucket is what one recompute interval saw of one operation's root spans.
type bucket struct {
	dur    time.Duration // the interval's length
	roots  float64       // sampled root spans (sampled traces)
	weight float64       // estimated traces in total: Σ 1/p over the roots
	errors float64       // roots with status error
	lat    latencyHist
}

// opState is the adaptive state of one operation of one service.
type opState struct {
	probability float64   // served now
	lastSeen    time.Time // newest root span
	cur         bucket    // the open interval
	ring        []bucket  // closed intervals within the window, oldest first

	// Baselines: exponentially weighted averages of the error ratio and
	// the p99 (seconds) of the intervals with enough samples.
	baseSet   bool
	baseErr   float64
	baseP99   float64
	boost     float64 // the factor of the last recompute (1: none)
	estimated float64 // the last throughput estimate, traces/s
}

// serviceState holds a service's operations.
type serviceState struct {
	ops map[string]*opState
}

// tenantAdaptive is one tenant's adaptive state. Guarded by the Service's
// tenant lock (tenantEntry.mu).
type tenantAdaptive struct {
	services map[string]*serviceState
	opened   time.Time // when the open interval began
	dirty    bool      // changed since the last save
}

func newTenantAdaptive(now time.Time) *tenantAdaptive {
	return &tenantAdaptive{services: map[string]*serviceState{}, opened: now}
}

// op returns the state of service/operation, creating it at probability
// initial unless the caps are reached (then nil).
func (t *tenantAdaptive) op(service, operation string, o *AdaptiveOptions, now time.Time) *opState {
	ss := t.services[service]
	if ss == nil {
		if len(t.services) >= o.MaxServices {
			return nil
		}
		ss = &serviceState{ops: map[string]*opState{}}
		t.services[service] = ss
	}
	op := ss.ops[operation]
	if op == nil {
		if len(ss.ops) >= o.MaxOperationsPerService {
			return nil
		}
		op = &opState{probability: o.InitialProbability, boost: 1, lastSeen: now}
		ss.ops[operation] = op
		t.dirty = true
	}
	return op
}

// observe counts the root spans of td.
func (t *tenantAdaptive) observe(td ptrace.Traces, o *AdaptiveOptions, now time.Time) {
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		service := unknownService
		if v, ok := rs.Resource().Attributes().Get(attrServiceName); ok && v.Str() != "" {
			service = v.Str()
		}
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				sp := spans.At(k)
				if !sp.ParentSpanID().IsEmpty() {
					continue
				}
				op := t.op(service, sp.Name(), o, now)
				if op == nil {
					continue
				}
				b := &op.cur
				b.roots++
				b.weight += 1 / inForce(sp.Attributes(), op.probability)
				if sp.Status().Code() == ptrace.StatusCodeError {
					b.errors++
				}
				if end, start := sp.EndTimestamp(), sp.StartTimestamp(); end > start {
					b.lat.add(time.Duration(end - start))
				} else {
					b.lat.add(0)
				}
				op.lastSeen = now
			}
		}
	}
}

// inForce returns the probability under which a root span was sampled:
// the sampler.param of a probabilistic sampler, 1 for a const sampler or a
// rate limiter (the lower bound: such a trace stands for itself), else
// served, the probability last served for the operation.
func inForce(attrs pcommon.Map, served float64) float64 {
	typ, ok := attrs.Get(attrSamplerType)
	param, pok := attrs.Get(attrSamplerParam)
	if !ok {
		typ, ok = attrs.Get(attrSamplerTypeOld)
		param, pok = attrs.Get(attrSamplerParamOld)
	}
	if !ok {
		return served
	}
	switch typ.AsString() {
	case samplerProbabilistic:
		if p, ok := number(param, pok); ok && p > 0 && p <= 1 {
			return p
		}
		return served
	default: // const, ratelimiting, lowerbound, remote: the trace counts once
		return 1
	}
}

func number(v pcommon.Value, ok bool) (float64, bool) {
	if !ok {
		return 0, false
	}
	switch v.Type() {
	case pcommon.ValueTypeDouble:
		return v.Double(), true
	case pcommon.ValueTypeInt:
		return float64(v.Int()), true
	}
	return 0, false
}

// recompute closes the open interval at now and computes every
// operation's next probability (see the package comment for the rule).
// It returns the operations forgotten for idleness, as service/operation
// pairs.
func (t *tenantAdaptive) recompute(o *AdaptiveOptions, now time.Time) (forgotten [][2]string) {
	dur := now.Sub(t.opened)
	if dur <= 0 {
		return nil
	}
	t.opened = now
	keep := max(1, int(o.Window/o.Interval))
	for svc, ss := range t.services {
		for name, op := range ss.ops {
			op.cur.dur = dur
			op.ring = append(op.ring, op.cur)
			if len(op.ring) > keep {
				op.ring = slices.Delete(op.ring, 0, len(op.ring)-keep)
			}
			op.cur = bucket{}
			if op.step(o) {
				t.dirty = true
			}
			if now.Sub(op.lastSeen) > o.IdleExpiry {
				delete(ss.ops, name)
				forgotten = append(forgotten, [2]string{svc, name})
				t.dirty = true
			}
		}
		if len(ss.ops) == 0 {
			delete(t.services, svc)
		}
	}
	return forgotten
}

// step computes the next probability from the closed intervals; it
// reports whether anything persisted changed.
func (op *opState) step(o *AdaptiveOptions) bool {
	var roots, weight float64
	var dur time.Duration
	for _, b := range op.ring {
		roots += b.roots
		weight += b.weight
		dur += b.dur
	}
	if roots == 0 || dur <= 0 {
		return false // no traffic in the window: nothing to learn
	}
	est := weight / dur.Seconds()
	last := &op.ring[len(op.ring)-1]
	if last.roots >= float64(o.MinSamples) && last.dur > 0 {
		// A burst is answered within one interval; a lull is forgotten
		// over the window.
		est = max(est, last.weight/last.dur.Seconds())
	}
	op.estimated = est
	old := op.probability
	want := o.TargetTracesPerSecond / est
	p := min(max(want, old/o.MaxDecreaseFactor), old*o.MaxIncreaseFactor)
	floor := o.MinTracesPerSecond / est

	changed := false
	boost := 1.0
	if last.roots >= float64(o.MinSamples) {
		errRatio := last.errors / last.roots
		p99 := last.lat.quantile(0.99)
		if op.baseSet {
			if errRatio-op.baseErr >= o.ErrorRise {
				boost *= o.ErrorBoost
			}
			if op.baseP99 > 0 && p99 > op.baseP99*o.LatencyRise {
				boost *= o.LatencyBoost
			}
			op.baseErr += o.BaselineWeight * (errRatio - op.baseErr)
			op.baseP99 += o.BaselineWeight * (p99 - op.baseP99)
		} else {
			op.baseSet, op.baseErr, op.baseP99 = true, errRatio, p99
		}
		changed = true
	}
	op.boost = boost
	if boost > 1 {
		floor = max(floor, want*boost)
	}
	p = min(max(p, floor, o.MinProbability), o.MaxProbability)
	op.probability = p
	return changed || p != old
}

// strategy returns the tenant's adaptive strategy for service: its
// operations' probabilities, sorted by name, over the initial probability
// and the minimum rate.
func (t *tenantAdaptive) strategy(service string, o *AdaptiveOptions) *pb.SamplingStrategyResponse {
	r := probabilistic(o.InitialProbability)
	ps := &pb.PerOperationSamplingStrategies{
		DefaultSamplingProbability:       o.InitialProbability,
		DefaultLowerBoundTracesPerSecond: o.MinTracesPerSecond,
	}
	if ss := t.services[service]; ss != nil {
		names := make([]string, 0, len(ss.ops))
		for name := range ss.ops {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			ps.PerOperationStrategies = append(ps.PerOperationStrategies, &pb.OperationSamplingStrategy{
				Operation: name, ProbabilisticSampling: &pb.ProbabilisticSamplingStrategy{SamplingRate: ss.ops[name].probability}})
		}
	}
	r.OperationSampling = ps
	return r
}
