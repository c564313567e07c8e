// Command otlp measures tracedb's end-to-end OTLP/gRPC ingest: a load
// generator sends a generated workload as OTLP Export requests to a
// tracedb server, in this process or a `tracedb serve` child, as fast as
// the server acknowledges them, and prints spans/s (until everything is in
// blocks), export latency, retries, the server's CPU and peak RSS, and
// bytes on disk per span. bench/README.md explains the figures.
//
//	go run ./bench/otlp -spans 1000000
//	go run ./bench/otlp -spans 1000000 -server process
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/tracedb/tracedb/bench"
)

// Default workload sizes: the 1M spans for the ClickHouse shape.
var defaultSpans = map[bench.Workload]int{
	bench.WorkloadClickHouse: 1_000_000,
	bench.WorkloadMix:        500_000,
}

// tracedbPackage is built for -server process unless -tracedb names a
// binary.
const tracedbPackage = "github.com/tracedb/tracedb/cmd/tracedb"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "otlp:", err)
		os.Exit(1)
	}
}

func run() (err error) {
	var (
		workloadFlag = flag.String("workload", "clickhouse", "workload: clickhouse or mix")
		spans        = flag.Int("spans", 0, "spans to send (default 1,000,000 for clickhouse, 500,000 for mix)")
		seed         = flag.Uint64("seed", 1, "generator seed; the same seed gives the same spans")
		batch        = flag.Int("batch", 1000, "spans per Export request")
		concurrency  = flag.Int("concurrency", 4, "gRPC clients, each with one Export in flight")
		conns        = flag.Int("conns", 1, "gRPC connections the clients share")
		gzipFlag     = flag.Bool("gzip", false, "compress requests with gzip")
		clientFlag   = flag.String("client", "raw", "raw: send the batch file's protobuf bytes, pre-encoded as load tools send them; pdata: ptraceotlp.GRPCClient (decode each batch, then marshal it, as a collector relaying OTLP does)")
		serverFlag   = flag.String("server", "inprocess", "inprocess: db.Open + server.New in this process; process: a `tracedb serve` child")
		tracedbBin   = flag.String("tracedb", "", "tracedb binary for -server process (default: go build "+tracedbPackage+")")
		dir          = flag.String("dir", "", "store directory, absent or empty (default a new temporary directory)")
		keep         = flag.Bool("keep", false, "keep the store and the batch file after the run")
		out          = flag.String("out", "", "append a markdown section to this file")
		cpuprofile   = flag.String("cpuprofile", "", "write a CPU profile of this process over the measured window (with -server process: the client only)")
		verbose      = flag.Bool("v", false, "show the child server's logs")
	)
	flag.Parse()
	workload, err := bench.ParseWorkload(*workloadFlag)
	if err != nil {
		return err
	}
	mode, err := parseMode(*serverFlag)
	if err != nil {
		return err
	}
	client, err := bench.ParseClientKind(*clientFlag)
	if err != nil {
		return err
	}
	if *spans == 0 {
		*spans = defaultSpans[workload]
	}
	if *spans < 0 || *batch <= 0 || *concurrency <= 0 || *conns <= 0 {
		return fmt.Errorf("-spans %d, -batch %d, -concurrency %d, -conns %d: want positive numbers", *spans, *batch, *concurrency, *conns)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	work, err := os.MkdirTemp("", "tracedb-otlp-bench-")
	if err != nil {
		return err
	}
	defer func() {
		if *keep {
			fmt.Println("kept the batch file and the binary in", work)
		} else {
			err = errors.Join(err, os.RemoveAll(work))
		}
	}()
	storeDir, err := prepareDir(*dir, work)
	if err != nil {
		return err
	}
	if *keep {
		defer fmt.Println("kept the store in", storeDir)
	} else if *dir != "" {
		defer func() { err = errors.Join(err, os.RemoveAll(storeDir)) }()
	}

	binary := *tracedbBin
	if mode == bench.ServerProcess && binary == "" {
		binary = filepath.Join(work, "tracedb")
		fmt.Println("building", tracedbPackage)
		build := exec.CommandContext(ctx, "go", "build", "-o", binary, tracedbPackage)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("go build %s: %w (or pass -tracedb)", tracedbPackage, err)
		}
	}

	// Phase 1: generate, not measured.
	batchFile := filepath.Join(work, "workload.batches")
	fmt.Printf("generating %d %s spans (seed %d) into %s\n", *spans, workload, *seed, batchFile)
	gen, err := bench.NewGenerator(workload, *seed)
	if err != nil {
		return err
	}
	f, err := os.Create(batchFile)
	if err != nil {
		return err
	}
	start := time.Now()
	_, err = bench.Generate(bench.ContextWriter(ctx, f), gen, *spans, *batch)
	if err = errors.Join(err, f.Close()); err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	fmt.Printf("generated in %.1f s\n", time.Since(start).Seconds())

	// Phase 2: serve and send, measured.
	cfg := bench.OTLPConfig{
		BatchFile: batchFile,
		Dir:       storeDir,
		Mode:      mode,
		Binary:    binary,
		Load:      bench.LoadConfig{Concurrency: *concurrency, Conns: *conns, Gzip: *gzipFlag, Client: client},
		Workload:  workload,
		Seed:      *seed,
		Batch:     *batch,
		Command:   "go run ./bench/otlp " + strings.Join(os.Args[1:], " "),
	}
	if *verbose {
		cfg.Log = os.Stderr
	}
	if *cpuprofile != "" {
		pf, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, pf.Close()) }()
		cfg.CPUProfile = pf
	}
	fmt.Printf("sending to a server %s with %d clients\n\n", mode, *concurrency)
	res, err := bench.RunOTLP(ctx, cfg)
	if err != nil {
		return err
	}
	if err := res.WriteText(os.Stdout); err != nil {
		return err
	}
	if *out != "" {
		return res.AppendMarkdown(*out)
	}
	return nil
}

func parseMode(s string) (bench.ServerMode, error) {
	for _, m := range []bench.ServerMode{bench.ServerInProcess, bench.ServerProcess} {
		if s == m.String() {
			return m, nil
		}
	}
	return 0, fmt.Errorf("-server %q: want inprocess or process", s)
}

// prepareDir returns the store directory: "store" under work, or dir if
// it is absent or empty (a store already there would skew every figure).
func prepareDir(dir, work string) (string, error) {
	if dir == "" {
		return filepath.Join(work, "store"), nil
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
