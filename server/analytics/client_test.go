package analytics

import (
	"errors"
	"testing"

	"github.com/tracedb/tracedb/index"
	"github.com/tracedb/tracedb/query"
	pb "github.com/tracedb/tracedb/server/pb/analyticsv1"
)

// TestHistogramRoundTrip: a histogram sent and rebuilt is the same, its
// bucket range included.
func TestHistogramRoundTrip(t *testing.T) {
	for _, buckets := range [][]uint16{nil, {0}, {5}, {7, 9, 300}, {index.NumBuckets - 1}, {0, index.NumBuckets - 1}} {
		h := query.Histogram{Counts: make([]uint64, index.NumBuckets)}
		for i, b := range buckets {
			h.Counts[b] += uint64(i + 1)
			h.Total += uint64(i + 1)
		}
		if len(buckets) > 0 {
			h.MinBucket, h.MaxBucket = buckets[0], buckets[len(buckets)-1]
		}
		got, err := histogramFromProto(histogramToProto(h))
		if err != nil {
			t.Fatalf("%v: %v", buckets, err)
		}
		if got.Total != h.Total || got.MinBucket != h.MinBucket || got.MaxBucket != h.MaxBucket || len(got.Counts) != len(h.Counts) {
			t.Fatalf("%v: got %+v", buckets, got)
		}
		for b := range h.Counts {
			if got.Counts[b] != h.Counts[b] {
				t.Fatalf("%v: bucket %d: %d, want %d", buckets, b, got.Counts[b], h.Counts[b])
			}
		}
	}
}

// TestHistogramAnswerChecked: an answer that no histogram has is an error,
// never a panic or a wrong chart.
func TestHistogramAnswerChecked(t *testing.T) {
	for _, res := range []*pb.HistogramResponse{
		{Total: 3},
		{MinBucket: 4},
		{MinBucket: index.NumBuckets, Counts: []uint64{1}, Total: 1},
		{MinBucket: index.NumBuckets - 1, Counts: []uint64{1, 1}, Total: 2},
		{MinBucket: 1 << 31, Counts: []uint64{1}, Total: 1},
		{Counts: []uint64{0, 1}, Total: 1},
		{Counts: []uint64{1, 0}, Total: 1},
		{Counts: []uint64{1, 2}, Total: 4},
		{Counts: []uint64{1 << 63, 1 << 63}, Total: 0},
	} {
		if _, err := histogramFromProto(res); !errors.Is(err, errMalformed) {
			t.Errorf("%v: err = %v, want errMalformed", res, err)
		}
	}
}
