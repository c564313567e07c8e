package sampling

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// simOp is a synthetic operation: its traffic (traces/s, all of them,
// sampled or not) and error ratio as functions of the interval number.
type simOp struct {
	tenant      string // "": simulate's tenant
	service, op string
	rate        func(i int) float64
	errRatio    func(i int) float64
}

func constant(v float64) func(int) float64 { return func(int) float64 { return v } }

func step(before, after float64, at int) func(int) float64 {
	return func(i int) float64 {
		if i < at {
			return before
		}
		return after
	}
}

// simulate runs intervals of the SDK/server loop: each operation's SDKs
// sample its traffic at the probability tracedb serves them (binomially,
// seeded), tracedb observes the sampled root spans, the clock moves one
// interval and tracedb recomputes. It returns each operation's served
// probability after every interval.
func simulate(t *testing.T, s *Service, clock *fakeClock, tenant string, ops []simOp, intervals int) map[string][]float64 {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	interval := s.opts.Adaptive.Interval
	got := map[string][]float64{}
	for i := range intervals {
		for _, o := range ops {
			rate := o.rate(i)
			if rate == 0 {
				continue
			}
			tn := tenant
			if o.tenant != "" {
				tn = o.tenant
			}
			r, _ := s.resolve(tn, o.service)
			p := opProbability(r, o.op)
			n := int(rate * interval.Seconds())
			sampled := 0
			for range n {
				if rng.Float64() < p {
					sampled++
				}
			}
			errs := int(math.Round(float64(sampled) * o.errRatio(i)))
			s.Observe(tn, traces(rng, rootSpan{service: o.service, op: o.op, n: sampled, p: p, errors: errs, dur: 50 * time.Millisecond}))
		}
		clock.Add(interval)
		s.recompute()
		for _, o := range ops {
			tn := tenant
			if o.tenant != "" {
				tn = o.tenant
			}
			r, _ := s.resolve(tn, o.service)
			got[o.service+"/"+o.op] = append(got[o.service+"/"+o.op], opProbability(r, o.op))
		}
	}
	return got
}

// TestAdaptiveSimulation: the adaptive probabilities bring each
// operation's sampled traces per second to the target (1/s) within 25%,
// from the initial 0.001, within 8 intervals for steady traffic, within 2
// intervals after a 20× burst, within 8 intervals of a new operation's
// first traffic; and an error spike (1% → 30%) raises the probability at
// least 3× at the next recompute.
func TestAdaptiveSimulation(t *testing.T) {
	const (
		target    = 1.0
		tolerance = 0.25
		burstAt   = 15
		newAt     = 10
		spikeAt   = 20
		intervals = 30
	)
	clock := newFakeClock()
	s := newManual(t, Options{Clock: clock, Adaptive: AdaptiveOptions{Enabled: true, TargetTracesPerSecond: target}})
	ops := []simOp{
		{service: "web", op: "GET /", rate: constant(100), errRatio: constant(0)},
		{service: "search", op: "query", rate: step(50, 1000, burstAt), errRatio: constant(0)},
		{service: "web", op: "POST /new", rate: step(0, 20, newAt), errRatio: constant(0)},
		{service: "pay", op: "charge", rate: constant(200), errRatio: step(0.01, 0.3, spikeAt)},
	}
	got := simulate(t, s, clock, "acme", ops, intervals)

	within := func(name string, rate func(int) float64, from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			// got[i] is served during interval i+1.
			sampled := rate(i+1) * got[name][i]
			if math.Abs(sampled-target) > tolerance*target {
				t.Errorf("%s: after interval %d, p=%.5f gives %.3f sampled traces/s, want %.1f±%.0f%%", name, i, got[name][i], sampled, target, tolerance*100)
			}
		}
	}
	within("web/GET /", ops[0].rate, 8, intervals-1)
	within("search/query", ops[1].rate, 8, burstAt-1)
	within("search/query", ops[1].rate, burstAt+1, intervals-1)
	within("web/POST /new", ops[2].rate, newAt+8, intervals-1)
	within("pay/charge", ops[3].rate, 8, spikeAt-1)

	before, after := got["pay/charge"][spikeAt-1], got["pay/charge"][spikeAt]
	if after < 3*before {
		t.Errorf("error spike: p went %.5f → %.5f, want at least ×3", before, after)
	}
	t.Logf("web/GET / %.5f, search/query before/after the burst %.5f/%.5f, new op %.5f, pay/charge before/at the spike %.5f/%.5f",
		got["web/GET /"][intervals-1], got["search/query"][burstAt-1], got["search/query"][intervals-1], got["web/POST /new"][intervals-1], before, after)
}

// TestAdaptiveLatencyRise: a p99 that rises past LatencyRise × its
// baseline raises the floor by LatencyBoost.
func TestAdaptiveLatencyRise(t *testing.T) {
	clock := newFakeClock()
	s := newManual(t, Options{Clock: clock, Adaptive: AdaptiveOptions{Enabled: true}})
	rng := rand.New(rand.NewPCG(3, 4))
	feed := func(dur time.Duration) float64 {
		s.Observe("t", traces(rng, rootSpan{service: "svc", op: "op", n: 600, p: 0.1, dur: dur}))
		clock.Add(time.Minute)
		s.recompute()
		r, _ := s.resolve("t", "svc")
		return opProbability(r, "op")
	}
	var p float64
	for range 10 {
		p = feed(20 * time.Millisecond)
	}
	slow := feed(200 * time.Millisecond)
	if slow < 1.5*p {
		t.Errorf("latency rise: p went %.5f → %.5f, want about ×%v", p, slow, DefaultLatencyBoost)
	}
}

// TestAdaptiveStateSurvivesRestart: probabilities and baselines are saved
// on Close and after recomputes, and a new Service over the same
// directory serves the same probabilities.
func TestAdaptiveStateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock()
	opts := Options{Clock: clock, StateDir: dir, Adaptive: AdaptiveOptions{Enabled: true}}
	s := newManual(t, opts)
	ops := []simOp{
		{service: "web", op: "GET /", rate: constant(100), errRatio: constant(0.01)},
		{service: "web", op: "GET /x", rate: constant(5), errRatio: constant(0)},
	}
	got := simulate(t, s, clock, "acme", ops, 6)
	if _, err := os.Stat(filepath.Join(dir, "acme.json")); err != nil {
		t.Fatalf("no state file after recomputes: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := newManual(t, opts)
	r, src := s2.resolve("acme", "web")
	if src != sourceAdaptive {
		t.Fatalf("source %q", src)
	}
	for _, o := range ops {
		want := got[o.service+"/"+o.op][5]
		if p := opProbability(r, o.op); p != want || want == DefaultProbability {
			t.Errorf("%s after restart: %v, want %v (not the initial %v)", o.op, p, want, DefaultProbability)
		}
	}
	e := s2.entry("acme", false)
	if op := e.state.services["web"].ops["GET /"]; !op.baseSet || op.baseP99 == 0 {
		t.Errorf("baselines not restored: %+v", op)
	}

	// A damaged file is ignored: the tenant starts afresh.
	b, _ := os.ReadFile(filepath.Join(dir, "acme.json"))
	b[len(b)/2] ^= 0x20
	if err := os.WriteFile(filepath.Join(dir, "acme.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	_ = s2.Close()
	if err := os.WriteFile(filepath.Join(dir, "acme.json"), b, 0o644); err != nil { // Close saved it again
		t.Fatal(err)
	}
	s3 := newManual(t, opts)
	if e := s3.entry("acme", false); e != nil {
		t.Error("a damaged state file was loaded")
	}
}

// TestAdaptiveTenantIsolation: one tenant's traffic changes neither the
// other's probabilities nor its state file.
func TestAdaptiveTenantIsolation(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock()
	s := newManual(t, Options{Clock: clock, StateDir: dir, Adaptive: AdaptiveOptions{Enabled: true}})
	simulate(t, s, clock, "", []simOp{
		{tenant: "heavy", service: "web", op: "GET /", rate: constant(1000), errRatio: constant(0)},
		{tenant: "light", service: "web", op: "GET /", rate: constant(10), errRatio: constant(0)},
	}, 12)
	rh, _ := s.resolve("heavy", "web")
	rl, _ := s.resolve("light", "web")
	ph, pl := opProbability(rh, "GET /"), opProbability(rl, "GET /")
	if !(ph < 0.01 && pl > 0.01) {
		t.Errorf("heavy tenant p=%v, light tenant p=%v: want heavy ≪ light", ph, pl)
	}
	if r, _ := s.resolve("other", "web"); opProbability(r, "GET /") != DefaultProbability || len(r.GetOperationSampling().GetPerOperationStrategies()) != 0 {
		t.Errorf("a tenant without traffic got %v", r)
	}
	for _, tenant := range []string{"heavy", "light"} {
		if _, err := os.Stat(filepath.Join(dir, tenant+".json")); err != nil {
			t.Errorf("state file of %s: %v", tenant, err)
		}
	}
}

// TestAdaptiveCaps: operations beyond MaxOperationsPerService are not
// tracked and get the default.
func TestAdaptiveCaps(t *testing.T) {
	clock := newFakeClock()
	s := newManual(t, Options{Clock: clock, Adaptive: AdaptiveOptions{Enabled: true, MaxOperationsPerService: 2}})
	rng := rand.New(rand.NewPCG(5, 6))
	s.Observe("t", traces(rng, rootSpan{service: "svc", op: "a", n: 1}, rootSpan{service: "svc", op: "b", n: 1}, rootSpan{service: "svc", op: "c", n: 1}))
	r, _ := s.resolve("t", "svc")
	if n := len(r.GetOperationSampling().GetPerOperationStrategies()); n != 2 {
		t.Errorf("%d operations tracked, want 2", n)
	}
}

// TestCloseReturns: the background loop stops on Close.
func TestCloseReturns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.json")
	if err := os.WriteFile(path, []byte(`{}`), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{StrategiesFile: path, ReloadInterval: time.Millisecond, Adaptive: AdaptiveOptions{Enabled: true, Interval: time.Millisecond, Window: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	done := make(chan error)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
