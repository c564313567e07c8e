// Command query measures tracedb's queries over a store of generated spans:
// trace by ID, Jaeger's searches, latency histograms, dependencies,
// services and operations, each many times with parameters drawn from the
// stored spans. It builds the store first (generate, then ingest through
// the library, as bench/ingest does) unless -dir already holds one.
// bench/README.md explains the figures.
//
//	go run ./bench/query -spans 10000000 -dir /tmp/tracedb-10m -keep
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/tracedb/tracedb/bench"
	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/retention"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "query:", err)
		os.Exit(1)
	}
}

func run() (err error) {
	var (
		workloadFlag = flag.String("workload", "clickhouse", "workload of a new store: clickhouse or mix")
		spans        = flag.Int("spans", 2_000_000, "spans in a new store (the issue's full run: 10,000,000)")
		seed         = flag.Uint64("seed", 1, "seed of the workload and of the query parameters")
		dir          = flag.String("dir", "", "store directory: used as is if it holds a store, else built there (default a new temporary directory)")
		keep         = flag.Bool("keep", false, "keep a store this run built")
		iterations   = flag.Int("iterations", 200, "runs of each query kind")
		out          = flag.String("out", "", "append the results as a markdown section to this file")
		compact      = flag.Bool("compact", true, "compact the store before querying, and report the compaction")
		headSpans    = flag.Int("head-spans", 0, "db.Options.MaxHeadSpans of a new store: smaller heads make more, smaller blocks for compaction to merge (default the store's, 262,144)")
		groupSpans   = flag.Int("row-group-spans", 0, "db.Options.RowGroupSpans of a new store and of the compaction (default the store's, "+strconv.Itoa(db.DefaultRowGroupSpans)+")")
		cpuprofile   = flag.String("cpuprofile", "", "write a CPU profile of the query phase (the queries and the drawing of their parameters; not the build or the compaction) to this file")
		drop         = flag.Bool("drop", false, "after the queries, drop every partition as a TTL would and report the time and the disk freed (destroys the store's data)")
	)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	storeDir := *dir
	built := false
	if storeDir == "" || !holdsStore(storeDir) {
		if storeDir == "" {
			if storeDir, err = os.MkdirTemp("", "tracedb-query-bench-"); err != nil {
				return err
			}
		}
		built = true
		defer func() {
			if *keep {
				fmt.Println("kept the store in", storeDir)
			} else {
				err = errors.Join(err, os.RemoveAll(storeDir))
			}
		}()
		if err := build(ctx, storeDir, *workloadFlag, *spans, *seed, *headSpans, *groupSpans); err != nil {
			return err
		}
	}
	// Background compaction is off: it would run during the queries.
	d, err := db.Open(storeDir, db.Options{Sync: db.SyncNone, RowGroupSpans: *groupSpans, CompactionInterval: -1})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, d.Close()) }()
	var extra strings.Builder
	if *compact {
		if err := compactStore(ctx, d, storeDir, &extra); err != nil {
			return err
		}
	}
	total, blocks := storeSize(ctx, d)
	fmt.Printf("querying %d spans in %d blocks in %s, %d runs per query\n\n", total, blocks, storeDir, *iterations)
	start := time.Now()
	stats, err := profiled(*cpuprofile, func() ([]bench.QueryStat, error) {
		return bench.RunQueries(ctx, d, bench.QueryConfig{Iterations: *iterations, Seed: *seed})
	})
	if err != nil {
		return err
	}
	if err := bench.WriteQueryText(os.Stdout, stats); err != nil {
		return err
	}
	fmt.Printf("\n(%.1f s)\n", time.Since(start).Seconds())
	if *drop {
		if err := dropAll(ctx, d, storeDir, &extra); err != nil {
			return err
		}
	}
	if *out == "" {
		return nil
	}
	f, err := os.OpenFile(*out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	origin := "an existing store"
	if built {
		origin = fmt.Sprintf("a store built by this run (%s workload, seed %d)", *workloadFlag, *seed)
	}
	_, err = fmt.Fprintf(f, "\n## Queries, %s, %d spans (%s, %s)\n\n`go run ./bench/query %s` over %s; %d runs per query, sequential.\n\n%s",
		time.Now().UTC().Format("2006-01-02"), total, host, fmt.Sprintf("GOMAXPROCS %d", runtime.GOMAXPROCS(0)), joinArgs(os.Args[1:]), origin, *iterations, bench.QueryMarkdown(stats)+extra.String())
	return errors.Join(err, f.Close())
}

// profiled runs fn, under a CPU profile written to path when path is set.
func profiled[T any](path string, fn func() (T, error)) (_ T, err error) {
	if path == "" {
		return fn()
	}
	f, err := os.Create(path)
	if err != nil {
		var zero T
		return zero, err
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	if err := pprof.StartCPUProfile(f); err != nil {
		var zero T
		return zero, err
	}
	defer pprof.StopCPUProfile()
	return fn()
}

// holdsStore reports whether dir holds a tracedb store.
func holdsStore(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "badger"))
	return err == nil
}

// build generates the workload into a batch file and ingests it into dir.
func build(ctx context.Context, dir, workloadName string, spans int, seed uint64, headSpans, groupSpans int) (err error) {
	w, err := bench.ParseWorkload(workloadName)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp("", "tracedb-query-bench-*.batches")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, os.Remove(f.Name())) }()
	gen, err := bench.NewGenerator(w, seed)
	if err != nil {
		return err
	}
	fmt.Printf("generating %d %s spans\n", spans, w)
	if _, err := bench.Generate(bench.ContextWriter(ctx, f), gen, spans, 1000); errors.Join(err, f.Close()) != nil {
		return errors.Join(err, f.Close())
	}
	fmt.Printf("ingesting into %s\n", dir)
	res, err := bench.Run(ctx, bench.RunConfig{BatchFile: f.Name(), Dir: dir, Options: db.Options{Sync: db.SyncNone, MaxHeadSpans: headSpans, RowGroupSpans: groupSpans, CompactionInterval: -1},
		Ingest: bench.IngestConfig{Concurrency: 2}, Workload: w, Seed: seed, Batch: 1000})
	if err != nil {
		return err
	}
	fmt.Printf("ingested at %.0f spans/s\n", res.SpansPerSecond())
	return nil
}

func joinArgs(args []string) string { return strings.Join(args, " ") }

// storeSize returns the spans and blocks of the default tenant.
func storeSize(ctx context.Context, d *db.DB) (spans uint64, blocks int) {
	snap, err := d.Snapshot(ctx)
	if err != nil {
		return 0, 0
	}
	defer snap.Release()
	for _, r := range snap.Readers {
		info := r.Info()
		spans += info.Spans
		if !info.Head {
			blocks++
		}
	}
	return spans, blocks
}

// compactStore runs compaction passes until one merges nothing and
// reports their throughput and the store's size before and after.
func compactStore(ctx context.Context, d *db.DB, dir string, md *strings.Builder) error {
	spans, blocksBefore := storeSize(ctx, d)
	before, err := bench.MeasureDisk(dir)
	if err != nil {
		return err
	}
	var total db.CompactResult
	start := time.Now()
	for {
		res, err := d.Compact(ctx)
		if err != nil {
			return fmt.Errorf("compact: %w", err)
		}
		if res.Groups == 0 {
			break
		}
		total.Groups += res.Groups
		total.BlocksIn += res.BlocksIn
		total.SpansIn += res.SpansIn
		total.SpansOut += res.SpansOut
		total.BytesIn += res.BytesIn
		total.BytesOut += res.BytesOut
	}
	took := time.Since(start)
	after, err := bench.MeasureDisk(dir)
	if err != nil {
		return err
	}
	_, blocksAfter := storeSize(ctx, d)
	if total.Groups == 0 {
		fmt.Printf("compaction: nothing to merge (%d blocks)\n\n", blocksBefore)
		return nil
	}
	perSpan := func(b int64) float64 { return float64(b) / float64(max(spans, 1)) }
	line := fmt.Sprintf("compaction: %d blocks -> %d, %d spans merged in %.1f s (%.0f spans/s), %d exact duplicates dropped; "+
		"encoded %.1f -> %.1f B/span; on disk %.1f -> %.1f B/span\n",
		blocksBefore, blocksAfter, total.SpansIn, took.Seconds(), float64(total.SpansIn)/took.Seconds(), total.SpansIn-total.SpansOut,
		float64(total.BytesIn)/float64(max(total.SpansIn, 1)), float64(total.BytesOut)/float64(max(total.SpansOut, 1)),
		perSpan(before.Allocated), perSpan(after.Allocated))
	fmt.Print(line, "\n")
	fmt.Fprintf(md, "\n%s", line)
	return nil
}

// dropAll drops every partition of the store, as a TTL that has passed
// them all would, and reports the time and the disk given back.
func dropAll(ctx context.Context, d *db.DB, dir string, md *strings.Builder) error {
	before, err := bench.MeasureDisk(dir)
	if err != nil {
		return err
	}
	var drops []retention.Drop
	for _, p := range d.Partitions() {
		drops = append(drops, retention.Drop{Partition: p, Reason: retention.ReasonTTL})
	}
	start := time.Now()
	res, err := d.DropPartitions(ctx, drops)
	if err != nil {
		return err
	}
	took := time.Since(start)
	after, err := bench.MeasureDisk(dir)
	if err != nil {
		return err
	}
	line := fmt.Sprintf("TTL drop: %d partitions (%.1f MiB encoded) dropped in %.2f s (value-log files rewritten: %d); on disk %.1f -> %.1f MiB (%.0f%% of the encoded bytes given back)\n",
		len(res.Dropped), float64(res.BytesDropped)/(1<<20), took.Seconds(), res.ValueLogFreed,
		float64(before.Allocated)/(1<<20), float64(after.Allocated)/(1<<20),
		100*float64(before.Allocated-after.Allocated)/float64(max(res.BytesDropped, 1)))
	fmt.Print("\n", line)
	fmt.Fprintf(md, "\n%s", line)
	return nil
}
