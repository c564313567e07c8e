//go:build linux

// Command compare runs tracedb and Jaeger v2 + Badger side by side on one
// generated workload (issue 8): tracedb as a library, `tracedb serve`,
// Jaeger v2 with its Badger backend, and Jaeger v2 in front of tracedb
// over remote storage. It prints a table of ingest rate, bytes on disk,
// peak RSS and query latencies with the ratio tracedb / Jaeger+Badger
// and the target for each, and appends it to -out.
// bench/README.md explains every figure.
//
//	go run ./bench/compare -out bench/RESULTS.md
//	go run ./bench/compare -spans 10000000 -out bench/RESULTS.md
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"image/color"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/tracedb/tracedb/bench"
)

// Default workload sizes: a few minutes on 2 cores, Jaeger+Badger being
// the slowest by far; more than tracedb's default head (262,144 spans), so
// that the served stores answer from a block and the head.
var defaultSpans = map[bench.Workload]int{
	bench.WorkloadClickHouse: 300_000,
	bench.WorkloadMix:        150_000,
}

const (
	tracedbPackage = "github.com/tracedb/tracedb/cmd/tracedb"
	envJaegerBin   = "TRACEDB_JAEGER_BIN"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

func run() (err error) {
	var (
		workloadFlag = flag.String("workload", "clickhouse", "workload: clickhouse or mix")
		spans        = flag.Int("spans", 0, "spans to send (default 300,000 for clickhouse, 150,000 for mix: more than one head of tracedb, so queries read a block and the head; the issue's full run: 10,000,000)")
		seed         = flag.Uint64("seed", 1, "seed of the workload and of the query parameters")
		batch        = flag.Int("batch", 1000, "spans per Write and per OTLP Export request")
		concurrency  = flag.Int("concurrency", 4, "writers (a) and OTLP clients (b, c, d), each with one request in flight")
		clientFlag   = flag.String("client", "raw", "how the OTLP clients (b, c, d) build requests: raw sends the batch file's protobuf bytes as they are; pdata decodes each batch and marshals it again, as a collector relaying OTLP does")
		iterations   = flag.Int("iterations", 100, "runs of each query kind per contender (dependencies: at most 20)")
		jaegerBin    = flag.String("jaeger", os.Getenv(envJaegerBin), "Jaeger v2 binary (scripts/build-jaeger.sh prints its path); default $"+envJaegerBin)
		tracedbBin   = flag.String("tracedb", "", "tracedb binary (default: go build "+tracedbPackage+")")
		skip         = flag.String("skip", "", "contenders to leave out, comma-separated letters: a (library), b (serve), c (Jaeger+Badger), d (Jaeger+tracedb)")
		out          = flag.String("out", "", "append the table as a markdown section to this file")
		plot         = flag.String("plot", "", "write a PNG of the ingest rates and query latencies (default with -out: compare.png beside it)")
		keep         = flag.Bool("keep", false, "keep the work directory (batch file, stores, configs)")
		cpuprofile   = flag.String("cpuprofile", "", "write a CPU profile of the query engine while (a)'s queries run")
		timeout      = flag.Duration("timeout", 0, "bound on the whole run; past it every child is stopped (default 20 min + 400 µs per span)")
	)
	flag.Parse()
	client, err := bench.ParseClientKind(*clientFlag)
	if err != nil {
		return err
	}
	workload, err := bench.ParseWorkload(*workloadFlag)
	if err != nil {
		return err
	}
	if *spans == 0 {
		*spans = defaultSpans[workload]
	}
	if *spans <= 0 || *batch <= 0 || *concurrency <= 0 || *iterations <= 0 {
		return fmt.Errorf("-spans %d, -batch %d, -concurrency %d, -iterations %d: want positive numbers", *spans, *batch, *concurrency, *iterations)
	}
	skipSet := map[bench.Contender]bool{}
	for _, s := range strings.Split(*skip, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if len(s) != 1 || s[0] < 'a' || s[0] > 'd' {
			return fmt.Errorf("-skip %q: want letters a to d", *skip)
		}
		skipSet[bench.Contender(s[0]-'a')] = true
	}
	if *jaegerBin != "" {
		if _, err := os.Stat(*jaegerBin); err != nil {
			return fmt.Errorf("-jaeger: %w", err)
		}
	} else {
		fmt.Printf("no Jaeger binary: set %s or -jaeger (scripts/build-jaeger.sh prints its path); (c) and (d) are skipped\n", envJaegerBin)
	}
	if *plot == "" && *out != "" {
		*plot = filepath.Join(filepath.Dir(*out), "compare.png")
	}

	// Children run in process groups of their own, which a terminal's
	// ^C does not reach: RunCompare stops them when ctx ends.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *timeout <= 0 {
		*timeout = 20*time.Minute + time.Duration(*spans)*400*time.Microsecond
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	work, err := os.MkdirTemp("", "tracedb-compare-")
	if err != nil {
		return err
	}
	defer func() {
		if *keep {
			fmt.Println("kept the work directory", work)
		} else {
			err = errors.Join(err, os.RemoveAll(work))
		}
	}()
	if *keep {
		os.Setenv("TRACEDB_COMPARE_KEEP", "1")
	}

	needTracedb := !skipSet[bench.ContenderServe] || !skipSet[bench.ContenderJaegerTracedb] && *jaegerBin != ""
	if needTracedb && *tracedbBin == "" {
		*tracedbBin = filepath.Join(work, "tracedb")
		fmt.Println("building", tracedbPackage)
		build := exec.CommandContext(ctx, "go", "build", "-o", *tracedbBin, tracedbPackage)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("go build %s: %w (or pass -tracedb)", tracedbPackage, err)
		}
	}

	batchFile := filepath.Join(work, "workload.batches")
	fmt.Printf("generating %d %s spans (seed %d)\n", *spans, workload, *seed)
	f, err := os.Create(batchFile)
	if err != nil {
		return err
	}
	start := time.Now()
	facts, err := bench.GenerateCompare(bench.ContextWriter(ctx, f), workload, *seed, *spans, *batch)
	if err = errors.Join(err, f.Close()); err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	fmt.Printf("generated %d spans in %d traces in %.1f s\n\n", facts.Spans, facts.Traces, time.Since(start).Seconds())

	cfg := bench.CompareConfig{
		BatchFile: batchFile, Facts: facts, WorkDir: work, TracedbBin: *tracedbBin, JaegerBin: *jaegerBin,
		Load: bench.LoadConfig{Concurrency: *concurrency, Client: client}, Iterations: *iterations, Skip: skipSet, Log: os.Stdout,
		Workload: workload, Seed: *seed, Batch: *batch,
		Command: "go run ./bench/compare " + strings.Join(os.Args[1:], " "),
	}
	if *cpuprofile != "" {
		pf, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, pf.Close()) }()
		cfg.QueryProfile = pf
	}
	res, err := bench.RunCompare(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Println()
	if err := res.WriteText(os.Stdout); err != nil {
		return err
	}
	if *out != "" {
		if err := res.AppendMarkdown(*out); err != nil {
			return err
		}
		fmt.Println("\nappended to", *out)
	}
	if *plot != "" {
		if err := writePlot(res, *plot); err != nil {
			return err
		}
		fmt.Println("plot written to", *plot)
	}
	return nil
}

// Plot colours, one per contender (a, b, c, d).
var contenderColors = [...]color.RGBA{
	{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	{R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
}

// Plot sizes.
const (
	plotWidth  = 30 * vg.Centimeter
	plotHeight = 28 * vg.Centimeter
	boxWidth   = 7 * vg.Millimeter
	rateWindow = 2 * time.Second
)

// writePlot draws two panels into a PNG at path: the acknowledged ingest
// rate over time of the OTLP contenders (b, c, d), and box plots of each
// query kind's latencies for (a), (c) and (d) on a log scale.
func writePlot(res *bench.CompareResult, path string) error {
	rate := plot.New()
	rate.Title.Text = fmt.Sprintf("OTLP/gRPC ingest, %s workload, %d spans: acknowledged spans/s", res.Workload, res.Facts.Spans)
	rate.X.Label.Text = "seconds since the first Export"
	rate.Y.Label.Text = "spans/s (trailing 2 s window)"
	rate.Legend.Top = true
	rate.Y.Min = 0
	for _, r := range res.Results {
		if r == nil || len(r.Rate) == 0 {
			continue
		}
		// Acknowledgements come in bursts (an Export of 1,000 spans at a
		// time, Jaeger's batches): smooth over a trailing window.
		var xys plotter.XYs
		j := 0
		for _, p := range r.Rate[1:] {
			for p.At-r.Rate[j+1].At >= rateWindow {
				j++
			}
			dt := (p.At - r.Rate[j].At).Seconds()
			if dt <= 0 {
				continue
			}
			xys = append(xys, plotter.XY{X: p.At.Seconds(), Y: float64(p.Spans-r.Rate[j].Spans) / dt})
		}
		if len(xys) == 0 {
			continue
		}
		l, pts, err := plotter.NewLinePoints(xys)
		if err != nil {
			return err
		}
		pts.Color, pts.Radius = contenderColors[r.Contender], vg.Points(1.5)
		rate.Add(pts)
		l.Color = contenderColors[r.Contender]
		l.Width = vg.Points(1.5)
		rate.Add(l)
		rate.Legend.Add(fmt.Sprintf("(%s) %s", r.Contender.Letter(), r.Contender), l)
	}
	rate.Add(plotter.NewGrid())

	lat := plot.New()
	lat.Title.Text = "query latency (box: quartiles; whiskers: 1.5 IQR), same parameters for every contender"
	lat.Y.Label.Text = "ms (log scale)"
	lat.Y.Scale = plot.LogScale{}
	lat.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	lat.Legend.Top = true
	var names []string
	for _, k := range bench.QueryKinds() {
		names = append(names, strings.Replace(k.String(), "search ", "", 1))
	}
	shown := []bench.Contender{bench.ContenderLibrary, bench.ContenderJaegerBadger, bench.ContenderJaegerTracedb}
	for i, c := range shown {
		r := res.Results[c]
		if r == nil {
			continue
		}
		drawn := false
		for k, st := range r.Queries {
			if st == nil || len(st.Samples) == 0 {
				continue
			}
			vals := make(plotter.Values, len(st.Samples))
			for j, d := range st.Samples {
				vals[j] = max(float64(d)/1e6, 1e-3) // a log scale needs > 0
			}
			b, err := plotter.NewBoxPlot(boxWidth, float64(k)+0.28*float64(i-1), vals)
			if err != nil {
				return err
			}
			b.FillColor = contenderColors[c]
			lat.Add(b)
			drawn = true
		}
		if drawn {
			lat.Legend.Add(fmt.Sprintf("(%s) %s", c.Letter(), c), swatch{contenderColors[c]})
		}
	}
	lat.NominalX(names...)
	lat.Add(plotter.NewGrid())

	img := vgimg.New(plotWidth, plotHeight)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Centimeter / 2, PadBottom: vg.Centimeter / 2,
		PadLeft: vg.Centimeter / 2, PadRight: vg.Centimeter, PadY: vg.Centimeter}
	canvases := plot.Align([][]*plot.Plot{{rate}, {lat}}, tiles, dc)
	rate.Draw(canvases[0][0])
	lat.Draw(canvases[1][0])
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		return errors.Join(err, f.Close())
	}
	return f.Close()
}

// swatch is a legend entry: a filled square of one colour.
type swatch struct{ c color.Color }

func (s swatch) Thumbnail(c *draw.Canvas) {
	pts := []vg.Point{{X: c.Min.X, Y: c.Min.Y}, {X: c.Min.X, Y: c.Max.Y}, {X: c.Max.X, Y: c.Max.Y}, {X: c.Max.X, Y: c.Min.Y}}
	c.FillPolygon(s.c, c.ClipPolygonY(pts))
}
