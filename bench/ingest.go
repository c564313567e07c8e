package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracedb/tracedb/db"
)

// storeBadgerDir is the subdirectory of a store that holds its Badger
// database (db.Open's layout).
const storeBadgerDir = "badger"

// RunConfig is one run of the ingest benchmark over a generated batch file.
type RunConfig struct {
	BatchFile string // made by Generate
	Dir       string // the store's directory; should be empty
	Options   db.Options
	Ingest    IngestConfig
	// CPUProfile, when set, receives a pprof CPU profile of the ingest.
	CPUProfile io.Writer

	// Described in the Result only.
	Workload Workload
	Seed     uint64
	Batch    int
}

// Run opens a store in cfg.Dir, ingests cfg.BatchFile into it, closes it
// and measures the result. The peak RSS is reset when the store is opened,
// so that it covers the ingest and not whatever the process did before.
func Run(ctx context.Context, cfg RunConfig) (*Result, error) {
	r := &Result{
		Date: time.Now().UTC(), Workload: cfg.Workload, Seed: cfg.Seed, Batch: cfg.Batch,
		Concurrency: cmp.Or(cfg.Ingest.Concurrency, defaultConcurrency), Sync: cfg.Options.Sync.String(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		HeadSpans: cmp.Or(cfg.Options.MaxHeadSpans, db.DefaultMaxHeadSpans),
	}
	f, err := os.Open(cfg.BatchFile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil {
		r.InputBytes = fi.Size()
	}
	br, err := NewBatchReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.BatchFile, err)
	}

	runtime.GC()
	debug.FreeOSMemory()
	if err := ResetPeakRSS(); err != nil {
		return nil, err
	}
	if r.RSSBefore, err = ReadMemory(); err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	opts := cfg.Options
	opts.Registerer = reg
	store, err := db.Open(cfg.Dir, opts)
	if err != nil {
		return nil, err
	}
	if cfg.CPUProfile != nil {
		if err := pprof.StartCPUProfile(cfg.CPUProfile); err != nil {
			return nil, errors.Join(err, store.Close())
		}
	}
	r.Ingest, err = Ingest(ctx, store, br, cfg.Ingest)
	if cfg.CPUProfile != nil {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return nil, errors.Join(err, store.Close())
	}
	if _, spans, _ := br.Trailer(); uint64(r.Ingest.Accepted+r.Ingest.Rejected) != spans {
		return nil, errors.Join(fmt.Errorf("ingest: %d spans accepted and %d rejected, the batch file holds %d",
			r.Ingest.Accepted, r.Ingest.Rejected, spans), store.Close())
	}
	mem, err := ReadMemory()
	if err != nil {
		return nil, errors.Join(err, store.Close())
	}
	r.RSSPeak = mem.Peak
	if r.Flushes, err = countFlushes(reg); err != nil {
		return nil, errors.Join(err, store.Close())
	}
	if err := store.Close(); err != nil {
		return nil, fmt.Errorf("close store: %w", err)
	}

	if r.Disk, r.Subdirs, err = MeasureDiskBySubdir(cfg.Dir); err != nil {
		return nil, err
	}
	if r.Keys, err = ReadStoreKeys(filepath.Join(cfg.Dir, storeBadgerDir)); err != nil {
		return nil, err
	}
	r.Blocks = r.Keys.BlockMeta.Keys
	return r, nil
}

const defaultConcurrency = 4

// IngestConfig says how to write a batch file into a store.
type IngestConfig struct {
	// Concurrency is the number of goroutines calling Write. Default 4.
	Concurrency int
	// ReadAhead is the number of raw batches read from the file ahead of
	// the writers; it bounds the memory the reader holds. Default
	// 2×Concurrency.
	ReadAhead int
}

// IngestStats is what Ingest measured. Wall and CPU cover the same
// window: from the first Write until every Write has returned and a final
// Flush has put every span in a block.
type IngestStats struct {
	Batches  int64
	Accepted int64 // spans Write accepted
	Rejected int64 // spans Write rejected (validation)
	Wall     time.Duration
	CPU      time.Duration // user+system time of the whole process
	Flush    time.Duration // of it, the final Flush
}

// feedBatches sends every batch of br to raw, in order, and closes raw at
// the end, on a read error (which it passes to cancel) or once ctx is done.
func feedBatches(ctx context.Context, br *BatchReader, raw chan<- []byte, cancel context.CancelCauseFunc) {
	defer close(raw)
	for {
		b, err := br.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			cancel(err)
			return
		}
		select {
		case raw <- b:
		case <-ctx.Done():
			return
		}
	}
}

// Ingest reads every batch of br and writes it into store from
// cfg.Concurrency goroutines, each unmarshalling its batch (a server pays
// that too) and calling Write; then it calls Flush. The first error stops
// the run and is returned.
func Ingest(ctx context.Context, store *db.DB, br *BatchReader, cfg IngestConfig) (IngestStats, error) {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = defaultConcurrency
	}
	if cfg.ReadAhead <= 0 {
		cfg.ReadAhead = 2 * cfg.Concurrency
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	var (
		st        IngestStats
		startOnce sync.Once
		start     time.Time
		cpu0      time.Duration
		cpuErr    error
	)
	var accepted, rejected, batches atomic.Int64
	raw := make(chan []byte, cfg.ReadAhead)

	var wg sync.WaitGroup
	wg.Go(func() { feedBatches(ctx, br, raw, cancel) })
	for range cfg.Concurrency {
		wg.Go(func() {
			var u ptrace.ProtoUnmarshaler
			for b := range raw {
				if ctx.Err() != nil {
					return
				}
				td, err := u.UnmarshalTraces(b)
				if err != nil {
					cancel(fmt.Errorf("unmarshal batch: %w", err))
					return
				}
				startOnce.Do(func() {
					start = time.Now()
					cpu0, cpuErr = CPUTime()
				})
				res, err := store.Write(ctx, td)
				if err != nil {
					cancel(fmt.Errorf("write: %w", err))
					return
				}
				accepted.Add(int64(res.Accepted))
				rejected.Add(int64(len(res.Rejected)))
				batches.Add(1)
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return st, err
	}
	if start.IsZero() {
		return st, errors.New("ingest: the batch file holds no batches")
	}
	flushStart := time.Now()
	if err := store.Flush(); err != nil {
		return st, fmt.Errorf("final flush: %w", err)
	}
	end := time.Now()
	cpu1, err := CPUTime()
	if err = errors.Join(cpuErr, err); err != nil {
		return st, fmt.Errorf("measure cpu time: %w", err)
	}
	st.Batches, st.Accepted, st.Rejected = batches.Load(), accepted.Load(), rejected.Load()
	st.Wall, st.Flush, st.CPU = end.Sub(start), end.Sub(flushStart), cpu1-cpu0
	return st, nil
}
