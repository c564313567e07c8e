package index

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// maxBucketError is the bound the bucket layout guarantees (1/64), and
// targetError the one the design asks for.
const (
	maxBucketError = 1.0 / 64
	targetError    = 0.02
)

func relErr(est, exact uint64) float64 {
	if exact == 0 {
		if est == 0 {
			return 0
		}
		return math.Inf(1)
	}
	return math.Abs(float64(est)-float64(exact)) / float64(exact)
}

func checkDuration(t *testing.T, ns uint64) float64 {
	t.Helper()
	b := DurationBucket(ns)
	if b >= NumBuckets {
		t.Fatalf("DurationBucket(%d) = %d, out of range", ns, b)
	}
	lo, hi := BucketBounds(b)
	if ns < lo || (ns >= hi && !(b == NumBuckets-1 && ns == math.MaxUint64)) {
		t.Fatalf("DurationBucket(%d) = %d with bounds [%d, %d)", ns, b, lo, hi)
	}
	e := relErr(BucketRepresentative(b), ns)
	if e > maxBucketError+1e-12 {
		t.Fatalf("duration %d: representative %d is %.4f%% off", ns, BucketRepresentative(b), 100*e)
	}
	return e
}

func TestDurationBucketRelativeError(t *testing.T) {
	worst := 0.0
	// Every duration up to 2^20 ns.
	for ns := uint64(0); ns < 1<<20; ns++ {
		worst = max(worst, checkDuration(t, ns))
	}
	// Log-uniform random durations from 1 ns to 10 hours, and over the
	// whole uint64 range.
	r := rand.New(rand.NewPCG(5, 5))
	hours := math.Log(float64(10 * time.Hour))
	for i := 0; i < 1_000_000; i++ {
		worst = max(worst, checkDuration(t, uint64(math.Exp(r.Float64()*hours))))
		worst = max(worst, checkDuration(t, r.Uint64()>>r.IntN(64)))
	}
	for _, ns := range []uint64{math.MaxUint64, math.MaxUint64 - 1, 1 << 63, 1<<63 - 1} {
		worst = max(worst, checkDuration(t, ns))
	}
	t.Logf("largest relative error of a representative: %.4f%%", 100*worst)
	if worst > targetError {
		t.Fatalf("largest relative error %.4f%% exceeds %v%%", 100*worst, 100*targetError)
	}
}

func TestBucketBoundsTile(t *testing.T) {
	var next uint64
	for b := uint16(0); b < NumBuckets; b++ {
		lo, hi := BucketBounds(b)
		if lo != next {
			t.Fatalf("bucket %d starts at %d, want %d", b, lo, next)
		}
		if hi <= lo {
			t.Fatalf("bucket %d: empty range [%d, %d)", b, lo, hi)
		}
		if DurationBucket(lo) != b || DurationBucket(hi-1) != b {
			t.Fatalf("bucket %d [%d, %d): ends map to %d and %d", b, lo, hi, DurationBucket(lo), DurationBucket(hi-1))
		}
		if rep := BucketRepresentative(b); rep < lo || rep > hi-1 && b != NumBuckets-1 {
			t.Fatalf("bucket %d [%d, %d): representative %d outside", b, lo, hi, rep)
		}
		if b < NumBuckets-1 && float64(hi-lo)/float64(lo) > 1.0/32+1e-12 && lo >= durationLinearLimit {
			t.Fatalf("bucket %d [%d, %d) wider than lo/32", b, lo, hi)
		}
		next = hi
	}
	if next != math.MaxUint64 {
		t.Fatalf("buckets end at %d, want MaxUint64", next)
	}
}

// TestQuantileFromCounts checks quantiles estimated from bucket counts
// against the exact nearest-rank quantiles of log-normal samples.
func TestQuantileFromCounts(t *testing.T) {
	qs := []float64{0, 0.01, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1}
	for _, tc := range []struct {
		name   string
		median time.Duration
		sigma  float64
		n      int
	}{
		{"fast rpc", 300 * time.Microsecond, 0.5, 10000},
		{"web request", 40 * time.Millisecond, 1.0, 50000},
		{"batch job", 20 * time.Second, 2.0, 20000},
		{"few spans", 5 * time.Millisecond, 1.5, 7},
		{"nanoseconds", 20, 1.0, 10000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(6, uint64(tc.n)))
			for trial := 0; trial < 20; trial++ {
				samples := make([]uint64, tc.n)
				counts := make([]uint64, NumBuckets)
				for i := range samples {
					ns := uint64(math.Exp(math.Log(float64(tc.median)) + tc.sigma*r.NormFloat64()))
					samples[i] = ns
					counts[DurationBucket(ns)]++
				}
				slices.Sort(samples)
				for _, q := range qs {
					rank := max(int(math.Ceil(q*float64(tc.n))), 1)
					exact := samples[rank-1]
					est, ok := QuantileFromCounts(counts, q)
					if !ok {
						t.Fatal("no quantile from non-empty counts")
					}
					if e := relErr(est, exact); e > targetError {
						t.Fatalf("q%v: estimate %d, exact %d: %.3f%% off", q, est, exact, 100*e)
					}
				}
			}
		})
	}
	if _, ok := QuantileFromCounts(make([]uint64, NumBuckets), 0.5); ok {
		t.Fatal("quantile of no spans")
	}
}

func BenchmarkDurationBucket(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 7))
	ds := make([]uint64, 1024)
	for i := range ds {
		ds[i] = uint64(math.Exp(r.Float64() * 30))
	}
	var sink uint16
	i := 0
	for b.Loop() {
		sink += DurationBucket(ds[i&1023])
		i++
	}
	_ = sink
}
