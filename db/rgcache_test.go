package db

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/internal/spangen"
)

// TestRowGroupCache reads every trace of a flushed store three times,
// from several goroutines, with the row-group cache on and off: every read
// must give the written spans, and with the cache on, reads after the
// first are served from it.
func TestRowGroupCache(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	want := storable(spangen.Random(r, 600))
	traces := byTrace(want)
	for _, budget := range []int64{-1, 1 << 20, DefaultRowGroupCacheBytes} {
		opts := testOptions()
		opts.RowGroupCacheBytes = budget
		d := openTest(t, t.TempDir(), opts)
		ctx := context.Background()
		mustWrite(t, d, ctx, encoding.ToTraces(want))
		if err := d.Flush(); err != nil {
			t.Fatal(err)
		}
		for round := range 3 {
			var wg sync.WaitGroup
			errs := make(chan string, len(traces))
			ids := make(chan encoding.TraceID, len(traces))
			for id := range traces {
				ids <- id
			}
			close(ids)
			for range 4 {
				wg.Go(func() {
					for id := range ids {
						if got := collect(t, d, ctx, id); !sameSpans(got, traces[id]) {
							errs <- id.String()
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for id := range errs {
				t.Fatalf("budget %d round %d: trace %s differs", budget, round, id)
			}
			if d.rgCache != nil {
				d.rgCache.c.Wait() // let the sets of this round land
			}
		}
		switch {
		case budget < 0:
			if d.rgCache != nil {
				t.Errorf("budget %d: a cache was made", budget)
			}
		default:
			hits := testutil.ToFloat64(d.rgCache.hits)
			misses := testutil.ToFloat64(d.rgCache.misses)
			// Each round reads every trace: the first misses some groups,
			// the later ones should find almost all of them.
			if hits == 0 || hits < 2*misses {
				t.Errorf("budget %d: %v hits, %v misses over 3 rounds", budget, hits, misses)
			}
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRowGroupCacheClosedUnderReaders: reads that race the store's Close
// (a server still answering while it shuts down) must not reach the cache
// after it closed; its get and put become no-ops.
func TestRowGroupCacheClosedUnderReaders(t *testing.T) {
	c, err := newRowGroupCache(1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	codec, err := encoding.NewCodec()
	if err != nil {
		t.Fatal(err)
	}
	defer codec.Close()
	spans := storable(spangen.Random(rand.New(rand.NewPCG(1, 2)), 20))
	spangen.Sort(spans)
	b, err := codec.NewRowGroupEncoder().Encode(nil, spans)
	if err != nil {
		t.Fatal(err)
	}
	g, err := codec.DecodeRowGroup(b)
	if err != nil {
		t.Fatal(err)
	}
	ig, err := g.Inflated()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				c.put(encoding.BlockID(w), i%50, ig)
				c.get(encoding.BlockID(w), i%50, true)
			}
		})
	}
	c.close()
	wg.Wait()
	c.close() // twice is fine
	if g := c.get(0, 0, true); g != nil {
		t.Error("a closed cache served a group")
	}
}
