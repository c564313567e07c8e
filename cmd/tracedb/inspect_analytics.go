package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tracedb/tracedb/cmd/tracedb/internal/render"
	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/index"
	"github.com/tracedb/tracedb/query"
)

// defaultHistogramRows is how many rows a histogram is merged into at most.
const defaultHistogramRows = 30

// histogramQuantiles are the percentiles a histogram marks.
var histogramQuantiles = []struct {
	name string
	q    float64
}{{"p50", 0.50}, {"p90", 0.90}, {"p95", 0.95}, {"p99", 0.99}}

type histogramOpts struct {
	store storeFlags
	spans spanFlags
	width int
	rows  int
}

func histogramCmd() *cobra.Command {
	var o histogramOpts
	cmd := &cobra.Command{
		Use:   "histogram",
		Short: "Show the latency histogram of matching spans, with p50, p90, p95 and p99",
		Long: `Show the latency histogram of the spans that meet the conditions, as
horizontal bars from the shortest to the longest duration seen, with the
percentiles marked. Counts come from the duration-bucket indexes (buckets
within 1/64 of each other), merged to fit --rows rows. With --server, a
running tracedb serve counts them (its analytics API) for --tenant.`,
		Example: `  tracedb histogram --service payment --operation Charge --start 1h
  tracedb histogram --service frontend --tag http.route=/checkout --rows 20
  tracedb histogram --filter 'resource.service = "database" and span.kind = "client"'`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.Context(), cmd.OutOrStdout(), time.Now())
		}),
	}
	fs := cmd.Flags()
	o.store.bind(fs)
	o.spans.bind(fs, false)
	fs.IntVar(&o.width, "width", 0, "columns of the chart (default $COLUMNS, else 120)")
	fs.IntVar(&o.rows, "rows", defaultHistogramRows, "most rows; neighbouring buckets are merged to fit")
	return cmd
}

func (o *histogramOpts) run(ctx context.Context, out io.Writer, now time.Time) error {
	c, err := o.spans.conditions(now)
	if err != nil {
		return err
	}
	if o.rows < 1 {
		return fmt.Errorf("--rows %d: want at least 1", o.rows)
	}
	return o.store.withAnalytics(ctx, func(ctx context.Context, src analyticsSource) error {
		h, err := src.Histogram(ctx, c, o.spans.filter)
		if err != nil {
			return err
		}
		buckets, markers := histogramRows(h, o.rows)
		return render.Histogram(out, buckets, markers, outputWidth(o.width))
	})
}

// histogramRows turns h into rows over its non-empty bucket range, merged
// into at most maxRows, and its percentiles into markers.
func histogramRows(h query.Histogram, maxRows int) ([]render.Bucket, []render.Marker) {
	if h.Total == 0 {
		return nil, nil
	}
	buckets := make([]render.Bucket, 0, int(h.MaxBucket-h.MinBucket)+1)
	for b := h.MinBucket; b <= h.MaxBucket; b++ {
		lo, hi := index.BucketBounds(b)
		buckets = append(buckets, render.Bucket{Lo: lo, Hi: hi, Count: h.Counts[b]})
	}
	var markers []render.Marker
	for _, q := range histogramQuantiles {
		if v, ok := h.Quantile(q.q); ok {
			markers = append(markers, render.Marker{Name: q.name, Value: uint64(v)})
		}
	}
	return render.MergeBuckets(buckets, maxRows), markers
}

type rateOpts struct {
	store  storeFlags
	spans  spanFlags
	step   time.Duration
	width  int
	output string
}

func rateCmd() *cobra.Command {
	var o rateOpts
	cmd := &cobra.Command{
		Use:   "rate",
		Short: "Show requests, errors and the error ratio over time",
		Long: `Show, per step of time, the number of matching spans (requests), those with
status Error, and their ratio, as sparklines; --output table lists every
step. Without --start and --end the range is the store's (the earliest to the
latest span start); without --step, the step fits the range to the width.
With --server, a running tracedb serve counts them (its analytics API) for
--tenant.`,
		Example: `  tracedb rate --service payment --start 6h --step 5m
  tracedb rate --service frontend --operation "GET /checkout" --output table`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.Context(), cmd.OutOrStdout(), time.Now())
		}),
	}
	fs := cmd.Flags()
	o.store.bind(fs)
	o.spans.bind(fs, true)
	fs.DurationVar(&o.step, "step", 0, "width of a step (default: fit the range to the width)")
	fs.IntVar(&o.width, "width", 0, "columns of the sparklines (default $COLUMNS, else 120)")
	fs.StringVarP(&o.output, "output", "o", "spark", "spark (sparklines) or table (one line per step)")
	return cmd
}

// Columns of a rate line: a label before the sparkline, figures after it.
const (
	rateLabelCols = 10
	rateStatsCols = 34
)

func (o *rateOpts) run(ctx context.Context, out io.Writer, now time.Time) error {
	if o.output != "spark" && o.output != "table" {
		return fmt.Errorf("--output %q: want spark or table", o.output)
	}
	if o.step < 0 {
		return fmt.Errorf("--step %s is negative", o.step)
	}
	c, err := o.spans.conditions(now)
	if err != nil {
		return err
	}
	width := outputWidth(o.width)
	sparkCols := max(width-rateLabelCols-rateStatsCols, 10)
	return o.store.withAnalytics(ctx, func(ctx context.Context, src analyticsSource) error {
		step := o.step
		if !o.spans.start.set() || !o.spans.end.set() {
			// The store's range, cut into whole steps from a multiple of
			// the step, so that no step is a sliver.
			data, ok, err := src.StartRange(ctx)
			if err != nil {
				return err
			}
			lo, hi := data.Start, data.End
			if !ok {
				_, err := fmt.Fprintln(out, "(no spans)")
				return err
			}
			if o.spans.start.set() {
				lo = c.StartTime.Start
			}
			if o.spans.end.set() {
				hi = c.StartTime.End
			}
			hi = max(hi, lo)
			if step == 0 {
				step = niceStep(time.Duration(hi-lo), sparkCols)
			}
			s := uint64(step)
			if !o.spans.start.set() {
				lo -= lo % s
			}
			if !o.spans.end.set() {
				hi = lo + ((hi-lo)/s+1)*s - 1
			}
			c.StartTime = db.TimeRange{Start: lo, End: hi}
		}
		if step == 0 {
			step = niceStep(time.Duration(c.StartTime.End-c.StartTime.Start), sparkCols)
		}
		points, err := src.Rate(ctx, query.RateQuery{SpanConditions: c, Step: step}, o.spans.filter)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%s to %s, step %s, %d steps\n", formatTime(c.StartTime.Start), formatTime(c.StartTime.End), step, len(points))
		if o.output == "table" {
			return writeRateTable(out, points)
		}
		return writeRateSpark(out, points, sparkCols)
	})
}

// analyticsSource is where histogram and rate read: the data directory
// (localAnalytics) or, with --server, a server's analytics API
// (*analytics.Client, which has these methods). Both answer in the query
// engine's types, so one rendering serves both. filter is the text of
// --filter, which a server parses itself (c.Filter is its local parse).
type analyticsSource interface {
	Histogram(ctx context.Context, c query.SpanConditions, filter string) (query.Histogram, error)
	Rate(ctx context.Context, q query.RateQuery, filter string) ([]query.RatePoint, error)
	// StartRange returns the earliest and latest span start of the
	// tenant; ok is false when it has no span.
	StartRange(ctx context.Context) (r db.TimeRange, ok bool, err error)
}

// localAnalytics answers from a store opened here.
type localAnalytics struct {
	store *db.DB
	eng   *query.Engine
}

func (l localAnalytics) Histogram(ctx context.Context, c query.SpanConditions, _ string) (query.Histogram, error) {
	return l.eng.LatencyHistogram(ctx, query.HistogramQuery{SpanConditions: c})
}

func (l localAnalytics) Rate(ctx context.Context, q query.RateQuery, _ string) ([]query.RatePoint, error) {
	return l.eng.Rate(ctx, q)
}

func (l localAnalytics) StartRange(ctx context.Context) (db.TimeRange, bool, error) {
	return l.store.StartRange(ctx)
}

// withAnalytics calls fn with the server's analytics API when --server is
// given, else with the store in --data-dir.
func (f *storeFlags) withAnalytics(ctx context.Context, fn func(ctx context.Context, src analyticsSource) error) error {
	if f.remote.set() {
		return f.withRemote(ctx, func(ctx context.Context, r *remote) error { return fn(ctx, r.analytics) })
	}
	return f.withStore(ctx, false, func(ctx context.Context, store *db.DB) error {
		e, err := engine(store)
		if err != nil {
			return err
		}
		return fn(ctx, localAnalytics{store: store, eng: e})
	})
}

// niceSteps are the steps an automatic step is rounded up to.
var niceSteps = []time.Duration{
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour,
}

// niceStep returns the smallest nice step that cuts span into at most
// cols steps (whole days beyond the list).
func niceStep(span time.Duration, cols int) time.Duration {
	want := span/time.Duration(max(cols, 1)) + 1
	for _, s := range niceSteps {
		if s >= want {
			return s
		}
	}
	day := 24 * time.Hour
	return (want + day - 1) / day * day
}

func writeRateTable(out io.Writer, points []query.RatePoint) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "START\tREQUESTS\tREQ/S\tERRORS\tERR/S\tERROR RATIO\t")
	for _, p := range points {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%.1f%%\t\n", formatTime(p.Start), p.Requests, formatRate(p.RequestRate()),
			p.Errors, formatRate(p.ErrorRate()), 100*p.ErrorRatio())
	}
	return tw.Flush()
}

// writeRateSpark draws requests, errors and the error ratio as
// sparklines of at most cols runes: consecutive steps are added up when
// there are more.
func writeRateSpark(out io.Writer, points []query.RatePoint, cols int) error {
	per := (len(points) + cols - 1) / cols
	var merged []query.RatePoint
	for i := 0; i < len(points); i += per {
		g := points[i:min(i+per, len(points))]
		m := query.RatePoint{Start: g[0].Start, End: g[len(g)-1].End}
		for _, p := range g {
			m.Requests += p.Requests
			m.Errors += p.Errors
		}
		merged = append(merged, m)
	}
	reqs, errs, ratios := make([]float64, len(merged)), make([]float64, len(merged)), make([]float64, len(merged))
	var total query.RatePoint
	var peakReq, peakErr, peakRatio float64
	for i, p := range merged {
		reqs[i], errs[i], ratios[i] = p.RequestRate(), p.ErrorRate(), p.ErrorRatio()
		peakReq, peakErr, peakRatio = max(peakReq, reqs[i]), max(peakErr, errs[i]), max(peakRatio, ratios[i])
		total.Requests += p.Requests
		total.Errors += p.Errors
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-*s%s  total %d, peak %s/s\n", rateLabelCols, "requests", render.Sparkline(reqs), total.Requests, formatRate(peakReq))
	fmt.Fprintf(&b, "%-*s%s  total %d, peak %s/s\n", rateLabelCols, "errors", render.Sparkline(errs), total.Errors, formatRate(peakErr))
	fmt.Fprintf(&b, "%-*s%s  overall %.1f%%, peak %.1f%%\n", rateLabelCols, "err ratio", render.Sparkline(ratios),
		100*total.ErrorRatio(), 100*peakRatio)
	_, err := io.WriteString(out, b.String())
	return err
}

// formatRate prints a rate with three significant digits, without an
// exponent: "1500", "12.5", "0.0167".
func formatRate(r float64) string {
	return strconv.FormatFloat(roundSig(r, 3), 'f', -1, 64)
}

// roundSig rounds f to n significant digits.
func roundSig(f float64, n int) float64 {
	if f == 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return f
	}
	p := math.Pow(10, float64(n)-math.Ceil(math.Log10(math.Abs(f))))
	return math.Round(f*p) / p
}
