package server

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// budget is the ingest in-flight budget: the bytes of the OTLP requests
// being decoded and written at once. It never waits: a request that does
// not fit is refused at once with a retryable code, so that overload turns
// into client back-off instead of a queue that grows without bound.
//
// Safe for concurrent use.
type budget struct {
	limit int64
	gauge prometheus.Gauge // in-flight bytes, mirrored

	mu struct {
		sync.Mutex
		used int64
	}
}

func newBudget(limit int64, gauge prometheus.Gauge) *budget {
	return &budget{limit: limit, gauge: gauge}
}

// tryAcquire takes n bytes of the budget, or reports false when they do
// not fit. A request of n > limit never fits; Config.Validate keeps the
// largest request within the limit.
func (b *budget) tryAcquire(n int64) bool {
	if n < 0 {
		n = 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mu.used+n > b.limit {
		return false
	}
	b.mu.used += n
	b.gauge.Add(float64(n))
	return true
}

// release returns n bytes taken by tryAcquire.
func (b *budget) release(n int64) {
	if n <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mu.used -= n
	b.gauge.Sub(float64(n))
}

// full reports whether not even one more byte fits: new requests are
// refused before their bodies are read.
func (b *budget) full() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mu.used >= b.limit
}

// used returns the bytes taken now.
func (b *budget) used() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mu.used
}
