package sampling

import (
	"errors"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/tracedb/tracedb/encoding"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func TestParseStrategies(t *testing.T) {
	b, err := os.ReadFile("testdata/strategies.json")
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseStrategies(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		service string
		inFile  bool
		json    string
	}{
		{"foo", true, `{"probabilisticSampling":{"samplingRate":0.8},"operationSampling":{"defaultSamplingProbability":0.8,"perOperationStrategies":[{"operation":"op1","probabilisticSampling":{"samplingRate":0.2}},{"operation":"/health","probabilisticSampling":{"samplingRate":0.5}},{"operation":"/metrics","probabilisticSampling":{}}]}}`},
		{"bar", true, `{"strategyType":"RATE_LIMITING","rateLimitingSampling":{"maxTracesPerSecond":5},"operationSampling":{"defaultSamplingProbability":0.01,"perOperationStrategies":[{"operation":"/health","probabilisticSampling":{}},{"operation":"/metrics","probabilisticSampling":{}}]}}`},
		{"other", false, `{"probabilisticSampling":{"samplingRate":0.5},"operationSampling":{"defaultSamplingProbability":0.5,"perOperationStrategies":[{"operation":"/health","probabilisticSampling":{}},{"operation":"/metrics","probabilisticSampling":{}}]}}`},
	} {
		t.Run(tc.service, func(t *testing.T) {
			r, ok := s.ForService(tc.service)
			if ok != tc.inFile {
				t.Errorf("in file = %v", ok)
			}
			got, _ := protojson.MarshalOptions{}.Marshal(r)
			if compact(string(got)) != tc.json {
				t.Errorf("got  %s\nwant %s", compact(string(got)), tc.json)
			}
		})
	}
}

func compact(s string) string { return strings.Join(strings.Fields(s), "") }

func TestParseStrategiesErrors(t *testing.T) {
	for _, tc := range []struct{ name, json, want string }{
		{"not json", `{`, "unexpected EOF"},
		{"unknown key", `{"service_strategy": []}`, "unknown field"},
		{"trailing data", `{} {}`, "data after"},
		{"bad type", `{"default_strategy": {"type": "const", "param": 1}}`, `type "const"`},
		{"probability above 1", `{"service_strategies": [{"service": "a", "type": "probabilistic", "param": 1.5}]}`, "not in [0, 1]"},
		{"fractional rate", `{"service_strategies": [{"service": "a", "type": "ratelimiting", "param": 1.5}]}`, "whole number"},
		{"no service", `{"service_strategies": [{"type": "probabilistic", "param": 1}]}`, "no service"},
		{"duplicate service", `{"service_strategies": [{"service": "a", "type": "probabilistic", "param": 1}, {"service": "a", "type": "probabilistic", "param": 1}]}`, "twice"},
		{"rate-limited operation", `{"service_strategies": [{"service": "a", "type": "probabilistic", "param": 1, "operation_strategies": [{"operation": "x", "type": "ratelimiting", "param": 1}]}]}`, "operations take"},
		{"duplicate operation", `{"default_strategy": {"type": "probabilistic", "param": 1, "operation_strategies": [{"operation": "x", "type": "probabilistic", "param": 1}, {"operation": "x", "type": "probabilistic", "param": 1}]}}`, "twice"},
		{"default names a service", `{"default_strategy": {"service": "a", "type": "probabilistic", "param": 1}}`, "names a service"},
		{"bad default probability", `{"default_sampling_probability": -1}`, "default_sampling_probability"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseStrategies([]byte(tc.json))
			if !errors.Is(err, ErrInvalidStrategies) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want ErrInvalidStrategies mentioning %q", err, tc.want)
			}
		})
	}
}

// TestStrategiesReload: a changed file is picked up; a bad one is logged,
// counted and the last good one stays; a fixed one is picked up again.
func TestStrategiesReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "strategies.json")
	write := func(s string, age time.Duration) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		// Distinct mtimes even on coarse file systems.
		mt := time.Now().Add(age)
		if err := os.Chtimes(path, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	rate := func(s *Service) float64 {
		r, _ := s.resolve("t", "svc")
		return r.GetProbabilisticSampling().GetSamplingRate()
	}
	write(`{"service_strategies": [{"service": "svc", "type": "probabilistic", "param": 0.1}]}`, -3*time.Hour)
	reg := prometheus.NewRegistry()
	s := newManual(t, Options{StrategiesFile: path, Registerer: reg})
	if got := rate(s); got != 0.1 {
		t.Fatalf("initial rate %v", got)
	}
	write(`{"service_strategies": [{"service": "svc", "type": "probabilistic", "param": 0.2}]}`, -2*time.Hour)
	s.reload()
	if got := rate(s); got != 0.2 {
		t.Errorf("after a change: %v, want 0.2", got)
	}
	write(`{"service_strategies": [{"service": "svc", "type": "probabilistic", "param": 2}]}`, -time.Hour)
	s.reload()
	s.reload() // an unchanged bad file is not read again
	if got := rate(s); got != 0.2 {
		t.Errorf("after a bad file: %v, want the last good 0.2", got)
	}
	if n := testutil.ToFloat64(s.m.reloads.WithLabelValues("error")); n != 1 {
		t.Errorf("%v reload errors counted, want 1", n)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	s.reload()
	if got := rate(s); got != 0.2 {
		t.Errorf("after the file vanished: %v, want the last good 0.2", got)
	}
	write(`{"service_strategies": [{"service": "svc", "type": "probabilistic", "param": 0.3}]}`, 0)
	s.reload()
	if got := rate(s); got != 0.3 {
		t.Errorf("after a fix: %v, want 0.3", got)
	}

	// At New, a bad file is an error.
	write(`{"nope": 1}`, time.Hour)
	if _, err := New(Options{StrategiesFile: path}); !errors.Is(err, ErrInvalidStrategies) {
		t.Errorf("New over a bad file: %v", err)
	}
}

// FuzzParseStrategies: any bytes give strategies or an error wrapping
// ErrInvalidStrategies, never a panic; whatever parses serves valid
// probabilities.
func FuzzParseStrategies(f *testing.F) {
	b, err := os.ReadFile("testdata/strategies.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"default_strategy": {"type": "ratelimiting", "param": 2147483647}}`))
	f.Add([]byte(`{"service_strategies": [{"service": "a", "type": "probabilistic", "param": 1e-300}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseStrategies(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidStrategies) {
				t.Fatalf("error %v does not wrap ErrInvalidStrategies", err)
			}
			return
		}
		check := func(p float64) {
			if !(p >= 0 && p <= 1) {
				t.Fatalf("probability %v served", p)
			}
		}
		for name, r := range s.services {
			check(r.GetProbabilisticSampling().GetSamplingRate())
			for _, o := range r.GetOperationSampling().GetPerOperationStrategies() {
				check(o.GetProbabilisticSampling().GetSamplingRate())
			}
			if _, err := protojson.Marshal(r); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
	})
}

// TestStateGolden: the state file of version 1 reads back; -update
// rewrites testdata/state-v1.json from a fixed state.
func TestStateGolden(t *testing.T) {
	const path = "testdata/state-v1.json"
	o := Options{Adaptive: AdaptiveOptions{Enabled: true}}
	o.fillDefaults()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	if *update {
		st := newTenantAdaptive(now)
		st.observe(traces(rand.New(rand.NewPCG(7, 8)), rootSpan{service: "web", op: "GET /", n: 3}), &o.Adaptive, now)
		op := st.services["web"].ops["GET /"]
		op.probability, op.baseSet, op.baseErr, op.baseP99 = 0.25, true, 0.01, 0.2
		b, err := encodeState("acme", st, now)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := decodeState(b, "acme", &o.Adaptive, now)
	if err != nil {
		t.Fatal(err)
	}
	op := st.services["web"].ops["GET /"]
	if op.probability != 0.25 || !op.baseSet || op.baseErr != 0.01 || op.baseP99 != 0.2 || !op.lastSeen.Equal(now) {
		t.Errorf("golden state reads back as %+v", op)
	}
	if _, err := decodeState(b, "other", &o.Adaptive, now); !errors.Is(err, encoding.ErrCorrupt) {
		t.Errorf("another tenant's file: %v", err)
	}
	bad := []byte(strings.Replace(string(b), "0.25", "0.35", 1))
	if _, err := decodeState(bad, "acme", &o.Adaptive, now); !errors.Is(err, encoding.ErrCorrupt) {
		t.Errorf("a changed value: %v, want a CRC mismatch", err)
	}
}
