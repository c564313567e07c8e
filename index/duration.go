package index

import (
	"math"
	"math/bits"
)

// Duration buckets are log-linear ("HDR") buckets over span durations in
// nanoseconds. Durations below 2^(durationSubBits+1) ns (64 ns) get one
// bucket each; above that, every power-of-two range [2^k, 2^(k+1)) is cut
// into 2^durationSubBits (32) equal buckets. A bucket [lo, hi) is therefore
// never wider than lo/32, and its representative (the geometric mean of its
// first and last nanosecond) is within 1/64 (1.5625%) of every duration in
// it. A quantile estimated from bucket counts, by taking the representative
// of the bucket that holds the wanted rank, is within the same bound of the
// exact nearest-rank quantile of the samples.
//
// Bucket numbers are part of the on-disk format (they are the values of the
// duration term, see terms.md): durationSubBits must never change.
const (
	durationSubBits    = 5
	durationSubBuckets = 1 << durationSubBits

	// durationLinearLimit is the first duration that shares its bucket
	// with another one.
	durationLinearLimit = 2 * durationSubBuckets

	// NumBuckets is the number of duration buckets: buckets are numbered
	// 0 to NumBuckets-1, in increasing order of duration.
	NumBuckets = (64 - durationSubBits + 1) * durationSubBuckets
)

// DurationBucket returns the bucket of a duration of ns nanoseconds.
func DurationBucket(ns uint64) uint16 {
	if ns < durationLinearLimit {
		return uint16(ns)
	}
	shift := uint(bits.Len64(ns)) - 1 - durationSubBits // >= 1
	// ns>>shift is in [32, 64): the leading 1 and the next 5 bits.
	return uint16(shift<<durationSubBits) + uint16(ns>>shift)
}

// BucketBounds returns the half-open range [lo, hi) of durations, in
// nanoseconds, that fall into bucket b. The last bucket ends at 2^64, which
// a uint64 cannot hold: its hi is math.MaxUint64 and, exceptionally, that
// value itself belongs to it. b must be below NumBuckets; larger values are
// treated as the last bucket.
func BucketBounds(b uint16) (lo, hi uint64) {
	if b >= NumBuckets {
		b = NumBuckets - 1
	}
	if b < durationLinearLimit {
		return uint64(b), uint64(b) + 1
	}
	shift := uint(b>>durationSubBits) - 1
	lo = uint64(durationSubBuckets|b&(durationSubBuckets-1)) << shift
	hi = lo + 1<<shift
	if hi < lo { // the last bucket: 2^64 wrapped to 0
		hi = math.MaxUint64
	}
	return lo, hi
}

// BucketRepresentative returns the duration, in nanoseconds, that stands
// for every duration of bucket b when estimating quantiles: the geometric
// mean of the bucket's first and last nanosecond, rounded, which minimises
// the largest relative error over the bucket.
func BucketRepresentative(b uint16) uint64 {
	lo, hi := BucketBounds(b)
	if hi-lo <= 1 {
		return lo
	}
	last := hi - 1
	if b == NumBuckets-1 {
		last = hi
	}
	r := math.Round(math.Sqrt(float64(lo)) * math.Sqrt(float64(last)))
	if r >= float64(last) {
		return last
	}
	if v := uint64(r); v > lo {
		return v
	}
	return lo
}

// QuantileFromCounts estimates the q-quantile (0 <= q <= 1) of the
// durations counted in counts, where counts[b] is the number of spans in
// bucket b: the representative of the bucket holding the nearest-rank
// quantile (the ceil(q*n)-th smallest duration, at least the first). It
// reports false when counts hold no span. Counts from several blocks or
// nodes add up bucket by bucket before calling it.
func QuantileFromCounts(counts []uint64, q float64) (uint64, bool) {
	var total uint64
	for _, c := range counts {
		total += c
	}
	if total == 0 {
		return 0, false
	}
	if !(q > 0) { // also catches NaN
		q = 0
	} else if q > 1 {
		q = 1
	}
	rank := uint64(math.Ceil(q * float64(total)))
	if rank < 1 {
		rank = 1
	} else if rank > total {
		rank = total
	}
	var seen uint64
	for b, c := range counts {
		seen += c
		if seen >= rank {
			return BucketRepresentative(uint16(b)), true
		}
	}
	return 0, false // unreachable: seen reaches total
}
