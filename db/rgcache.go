package db

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tracedb/tracedb/encoding"
)

// rowGroupCache keeps row groups that trace reads decompressed
// (encoding.RowGroup.Inflated), up to Options.RowGroupCacheBytes of
// column bytes, keyed by block ID and row-group number. Reading a trace
// decompresses every column of its row group (the format has no finer
// unit), about 90% of a trace read's time; traces are read again and
// together with their neighbours (a search returns the newest matching
// traces, and the UI then opens one of them), so keeping the group pays.
//
// Block IDs are never reused, so an entry can never be stale: a dropped or
// compacted block's groups are simply no longer asked for and age out.
// Inflated groups are immutable; every reader gets its own Clone.
//
// The cache is ristretto (already in the build through Badger, whose own
// block cache it is): concurrent, cost-bounded, with an admission policy
// that keeps frequently read groups over a scan of groups read once.
type rowGroupCache struct {
	// mu makes get and put no-ops once close has begun: a read that
	// races Close (a server still answering as it shuts down) must not
	// reach ristretto after its Close, which panics on a Set.
	mu             sync.RWMutex
	closed         bool
	c              *ristretto.Cache[string, *encoding.RowGroup]
	hits, misses   prometheus.Counter
	inserts, bytes prometheus.Counter
}

// rowGroupBytesGuess is the expected inflated size of a row group, for
// sizing the cache's admission counters.
const rowGroupBytesGuess = 256 << 10

// newRowGroupCache returns a cache of budget bytes, or nil when budget is
// not positive (no cache: every read decompresses).
func newRowGroupCache(budget int64, reg prometheus.Registerer) (*rowGroupCache, error) {
	if budget <= 0 {
		return nil, nil
	}
	c, err := ristretto.NewCache(&ristretto.Config[string, *encoding.RowGroup]{
		NumCounters: max(1000, 10*budget/rowGroupBytesGuess),
		MaxCost:     budget,
		BufferItems: 64,
	})
	if err != nil {
		return nil, fmt.Errorf("row group cache: %w", err)
	}
	rc := &rowGroupCache{
		c: c,
		hits: prometheus.NewCounter(prometheus.CounterOpts{Name: "tracedb_row_group_cache_hits_total",
			Help: "Trace reads of a row group served from the cache of decompressed row groups."}),
		misses: prometheus.NewCounter(prometheus.CounterOpts{Name: "tracedb_row_group_cache_misses_total",
			Help: "Row-group reads that had to read and decompress the group."}),
		inserts: prometheus.NewCounter(prometheus.CounterOpts{Name: "tracedb_row_group_cache_offered_total",
			Help: "Decompressed row groups offered to the cache (its policy may refuse some)."}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "tracedb_row_group_cache_offered_bytes_total",
			Help: "Bytes of the decompressed row groups offered to the cache."}),
	}
	if reg != nil {
		for _, m := range []prometheus.Collector{rc.hits, rc.misses, rc.inserts, rc.bytes} {
			if err := reg.Register(m); err != nil {
				c.Close()
				return nil, fmt.Errorf("register metrics: %w", err)
			}
		}
	}
	return rc, nil
}

func rowGroupKey(id encoding.BlockID, n int) string {
	var k [12]byte
	binary.BigEndian.PutUint64(k[:8], uint64(id))
	binary.BigEndian.PutUint32(k[8:], uint32(n))
	return string(k[:])
}

// get returns a reader of row group n of block id, or nil. It counts a
// miss only when count is set (reads that go on to fill the cache).
func (c *rowGroupCache) get(id encoding.BlockID, n int, count bool) *encoding.RowGroup {
	if c == nil {
		return nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return nil
	}
	if g, ok := c.c.Get(rowGroupKey(id, n)); ok {
		c.hits.Inc()
		return g.Clone()
	}
	if count {
		c.misses.Inc()
	}
	return nil
}

// put offers g, inflated, as row group n of block id.
func (c *rowGroupCache) put(id encoding.BlockID, n int, g *encoding.RowGroup) {
	if c == nil {
		return
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return
	}
	c.inserts.Inc()
	c.bytes.Add(float64(g.Size()))
	c.c.Set(rowGroupKey(id, n), g, int64(g.Size()))
}

func (c *rowGroupCache) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		c.c.Close()
	}
}
