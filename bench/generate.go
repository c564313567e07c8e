// Package bench is the ingest benchmark harness: it generates a workload
// into a batch file (generate.go, batchfile.go), writes it into a store
// from several goroutines (ingest.go), and measures what that cost
// (measure.go) and prints it (report.go). The program is bench/ingest;
// bench/README.md says how to run it and what each figure means.
package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/internal/spangen"
)

// Workload names a span generator.
type Workload int

const (
	// WorkloadClickHouse is the shape of Jaeger's ClickHouse storage
	// benchmark: traces of 10 spans, 11 attributes per span drawn from 97
	// keys and 1,000 values (spangen.ClickHouseShape).
	WorkloadClickHouse Workload = iota
	// WorkloadMix is a realistic microservice mix (spangen.Mix).
	WorkloadMix
)

func (w Workload) String() string {
	switch w {
	case WorkloadClickHouse:
		return "clickhouse"
	case WorkloadMix:
		return "mix"
	}
	return fmt.Sprintf("Workload(%d)", int(w))
}

// ParseWorkload returns the workload named s (its String), for the
// harnesses' -workload flags.
func ParseWorkload(s string) (Workload, error) {
	for _, w := range []Workload{WorkloadClickHouse, WorkloadMix} {
		if s == w.String() {
			return w, nil
		}
	}
	return 0, fmt.Errorf("-workload %q: want clickhouse or mix", s)
}

// NewGenerator returns w's generator. The same seed gives the same spans.
func NewGenerator(w Workload, seed uint64) (spangen.Generator, error) {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	switch w {
	case WorkloadClickHouse:
		return spangen.NewClickHouseShape(r, false), nil
	case WorkloadMix:
		return spangen.NewMix(r), nil
	}
	return nil, fmt.Errorf("unknown workload %s", w)
}

// ContextWriter returns a writer to w that fails with ctx's error once ctx
// is done, so that a long generation into it stops on ^C.
func ContextWriter(ctx context.Context, w io.Writer) io.Writer { return ctxWriter{ctx, w} }

type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// Generate writes the first spans spans of g's traces to w as a batch
// file of batches of batch spans (the last may be smaller). A trace may
// straddle two batches, as it does when an SDK exports on a timer. Only one
// batch is in memory at a time.
func Generate(w io.Writer, g spangen.Generator, spans, batch int) (batches uint64, err error) {
	if spans < 0 || batch <= 0 {
		return 0, fmt.Errorf("generate: spans %d, batch %d: want spans ≥ 0 and batch > 0", spans, batch)
	}
	bw, err := NewBatchWriter(w)
	if err != nil {
		return 0, err
	}
	b := encoding.NewTracesBuilder()
	var pending []*encoding.Span // the rest of the last trace
	for left := spans; left > 0; {
		if len(pending) == 0 {
			pending = g.Trace()
		}
		n := min(len(pending), left, batch-b.Len())
		for _, s := range pending[:n] {
			b.Add(s)
		}
		pending, left = pending[n:], left-n
		if b.Len() == batch || left == 0 {
			if err := bw.Write(b.Take()); err != nil {
				return bw.Batches(), err
			}
		}
	}
	return bw.Batches(), bw.Close()
}
