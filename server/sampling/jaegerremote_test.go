package sampling

import (
	"context"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/samplers/jaegerremote"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// decide asks sampler about n new root spans named op and returns how many
// it sampled and the jaeger.sampler.param of the last sampled one.
func decide(sampler sdktrace.Sampler, op string, n int) (sampled int, param float64) {
	rng := rand.New(rand.NewPCG(9, 10))
	for range n {
		var tid trace.TraceID
		for i := range tid {
			tid[i] = byte(rng.Uint32())
		}
		r := sampler.ShouldSample(sdktrace.SamplingParameters{ParentContext: context.Background(), TraceID: tid, Name: op})
		if r.Decision == sdktrace.RecordAndSample {
			sampled++
			for _, kv := range r.Attributes {
				if kv.Key == attribute.Key(attrSamplerParam) {
					param = kv.Value.AsFloat64()
				}
			}
		}
	}
	return sampled, param
}

// waitFor polls cond until it holds or 10s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestJaegerRemoteSamplerFile: the OpenTelemetry jaegerremote sampler,
// polling the HTTP endpoint, applies a file's per-operation probabilities,
// and follows the file when it changes.
func TestJaegerRemoteSamplerFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "strategies.json")
	write := func(s string, mt time.Time) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"service_strategies": [{"service": "shop", "type": "probabilistic", "param": 0,
		"operation_strategies": [{"operation": "pay", "type": "probabilistic", "param": 1},
		                         {"operation": "browse", "type": "probabilistic", "param": 0.5}]}]}`, time.Now().Add(-time.Hour))
	s, err := New(Options{StrategiesFile: path, ReloadInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hs := httptest.NewServer(s.HTTPHandler())
	defer hs.Close()

	sampler := jaegerremote.New("shop",
		jaegerremote.WithSamplingServerURL(hs.URL+PathSampling),
		jaegerremote.WithSamplingRefreshInterval(50*time.Millisecond),
		jaegerremote.WithInitialSampler(sdktrace.NeverSample()))
	defer sampler.Close()

	waitFor(t, "the file strategy", func() bool { n, _ := decide(sampler, "pay", 20); return n == 20 })
	if n, p := decide(sampler, "pay", 200); n != 200 || p != 1 {
		t.Errorf("pay: %d of 200 sampled with param %v, want all with 1", n, p)
	}
	if n, p := decide(sampler, "browse", 2000); n < 800 || n > 1200 || p != 0.5 {
		t.Errorf("browse: %d of 2000 sampled with param %v, want about 1000 with 0.5", n, p)
	}
	if n, _ := decide(sampler, "other", 2000); n != 0 {
		t.Errorf("an operation the file does not name: %d of 2000 sampled, want 0 (the service's 0)", n)
	}

	// The file changes: the sampler follows.
	write(`{"service_strategies": [{"service": "shop", "type": "probabilistic", "param": 0,
		"operation_strategies": [{"operation": "pay", "type": "probabilistic", "param": 0}]}]}`, time.Now())
	waitFor(t, "the changed file", func() bool { n, _ := decide(sampler, "pay", 200); return n == 0 })
}

// TestJaegerRemoteSamplerAdaptive: the sampler applies adaptive
// probabilities: a quiet operation climbs to 1, a busy one is cut down.
func TestJaegerRemoteSamplerAdaptive(t *testing.T) {
	clock := newFakeClock()
	s := newManual(t, Options{Clock: clock, Adaptive: AdaptiveOptions{Enabled: true, MinTracesPerSecond: 1e-9}})
	simulate(t, s, clock, "default", []simOp{
		{service: "shop", op: "quiet", rate: constant(0.5), errRatio: constant(0)},
		{service: "shop", op: "busy", rate: constant(200), errRatio: constant(0)},
	}, 25)
	hs := httptest.NewServer(s.HTTPHandler())
	defer hs.Close()
	r, _ := s.resolve("default", "shop")
	busy := opProbability(r, "busy")
	if quiet := opProbability(r, "quiet"); quiet != 1 || busy > 0.01 {
		t.Fatalf("adaptive: quiet %v, busy %v; want 1 and about 0.005", quiet, busy)
	}

	sampler := jaegerremote.New("shop",
		jaegerremote.WithSamplingServerURL(hs.URL+PathAPISampling),
		jaegerremote.WithSamplingRefreshInterval(50*time.Millisecond),
		jaegerremote.WithInitialSampler(sdktrace.NeverSample()))
	defer sampler.Close()
	waitFor(t, "the adaptive strategy", func() bool { n, _ := decide(sampler, "quiet", 20); return n == 20 })
	if n, p := decide(sampler, "quiet", 200); n != 200 || p != 1 {
		t.Errorf("quiet: %d of 200 sampled with param %v, want all with 1", n, p)
	}
	n, p := decide(sampler, "busy", 20000)
	if want := busy * 20000; float64(n) < want/2 || float64(n) > want*2 || p != busy {
		t.Errorf("busy: %d of 20000 sampled with param %v, want about %.0f with %v", n, p, want, busy)
	}
}
