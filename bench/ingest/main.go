// Command ingest measures tracedb's library ingest path: db.Open, then
// Write from several goroutines. It first generates a workload into a
// batch file (not measured), then writes it into a new store and prints
// the ingest rate, CPU per span, bytes on disk per span and peak RSS.
// bench/README.md explains the figures.
//
//	go run ./bench/ingest -workload clickhouse -spans 2000000 -sync group
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/tracedb/tracedb/bench"
	"github.com/tracedb/tracedb/db"
)

// Default workload sizes: a couple of minutes each on two cores.
var defaultSpans = map[bench.Workload]int{
	bench.WorkloadClickHouse: 2_000_000,
	bench.WorkloadMix:        500_000,
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ingest:", err)
		os.Exit(1)
	}
}

func run() (err error) {
	var (
		workloadFlag = flag.String("workload", "clickhouse", "workload: clickhouse or mix")
		spans        = flag.Int("spans", 0, "spans to write (default 2,000,000 for clickhouse, 500,000 for mix)")
		seed         = flag.Uint64("seed", 1, "generator seed; the same seed gives the same spans")
		concurrency  = flag.Int("concurrency", 4, "goroutines calling Write")
		batch        = flag.Int("batch", 1000, "spans per Write")
		syncFlag     = flag.String("sync", "group", "WAL sync mode: none, group or every")
		dir          = flag.String("dir", "", "store directory, absent or empty (default a new temporary directory)")
		keep         = flag.Bool("keep", false, "keep the store and the batch file after the run")
		out          = flag.String("out", "", "append a markdown table row to this file")
		cpuprofile   = flag.String("cpuprofile", "", "write a CPU profile of the ingest to this file")
		headSpans    = flag.Int("head-spans", 0, "db.Options.MaxHeadSpans: spans in the head that trigger a flush (default the store's, 262,144)")
	)
	flag.Parse()
	workload, err := bench.ParseWorkload(*workloadFlag)
	if err != nil {
		return err
	}
	syncMode, err := parseSync(*syncFlag)
	if err != nil {
		return err
	}
	if *spans == 0 {
		*spans = defaultSpans[workload]
	}
	if *spans < 0 || *batch <= 0 || *concurrency <= 0 || *headSpans < 0 {
		return fmt.Errorf("-spans %d, -batch %d, -concurrency %d, -head-spans %d: want positive numbers",
			*spans, *batch, *concurrency, *headSpans)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	storeDir, err := prepareDir(*dir)
	if err != nil {
		return err
	}
	defer func() {
		if *keep {
			fmt.Println("kept the store in", storeDir)
		} else {
			err = errors.Join(err, os.RemoveAll(storeDir))
		}
	}()
	batchFile, err := os.CreateTemp("", "tracedb-bench-*.batches")
	if err != nil {
		return err
	}
	defer func() {
		if *keep {
			fmt.Println("kept the batch file", batchFile.Name())
		} else {
			err = errors.Join(err, os.Remove(batchFile.Name()))
		}
	}()

	// Phase 1: generate, not measured.
	fmt.Printf("generating %d %s spans (seed %d) into %s\n", *spans, workload, *seed, batchFile.Name())
	gen, err := bench.NewGenerator(workload, *seed)
	if err != nil {
		return err
	}
	start := time.Now()
	_, err = bench.Generate(bench.ContextWriter(ctx, batchFile), gen, *spans, *batch)
	if err = errors.Join(err, batchFile.Close()); err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	fmt.Printf("generated in %.1f s\n", time.Since(start).Seconds())

	// Phase 2: ingest, measured.
	cfg := bench.RunConfig{
		BatchFile: batchFile.Name(),
		Dir:       storeDir,
		Options:   db.Options{Sync: syncMode, MaxHeadSpans: *headSpans},
		Ingest:    bench.IngestConfig{Concurrency: *concurrency},
		Workload:  workload,
		Seed:      *seed,
		Batch:     *batch,
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, f.Close()) }()
		cfg.CPUProfile = f
	}
	fmt.Printf("ingesting into %s with %d writers\n\n", storeDir, *concurrency)
	res, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if err := res.WriteText(os.Stdout); err != nil {
		return err
	}
	fmt.Print("\n", bench.MarkdownHeader(), res.MarkdownRow())
	if *out != "" {
		return res.AppendMarkdown(*out)
	}
	return nil
}

func parseSync(s string) (db.SyncMode, error) {
	switch s {
	case "none":
		return db.SyncNone, nil
	case "group":
		return db.SyncGroup, nil
	case "every":
		return db.SyncEveryWrite, nil
	}
	return 0, fmt.Errorf("-sync %q: want none, group or every", s)
}

// prepareDir returns the store directory: a new temporary one, or dir if
// it is absent or empty (a store already there would skew every figure).
func prepareDir(dir string) (string, error) {
	if dir == "" {
		return os.MkdirTemp("", "tracedb-bench-store-")
	}
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return dir, os.MkdirAll(dir, 0o755)
	case err != nil:
		return "", err
	case len(entries) > 0:
		return "", fmt.Errorf("-dir %s is not empty", dir)
	}
	return dir, nil
}
