package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/internal/spangen"
	"github.com/tracedb/tracedb/query"
)

func demoCmd() *cobra.Command {
	var (
		dir    string
		traces int
		width  int
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Fill a store with a small online shop's traces and show what tracedb answers about them",
		Long: `demo generates the traces of an online shop of 8 services (frontend, cart,
checkout, payment, product catalog, recommendation, shipping, currency) over
the last 30 minutes: HTTP and gRPC calls, PostgreSQL, Redis and Kafka, with
errors carrying exception events, slow outliers and follows-from links. It
writes them into the store, flushes them into blocks, then runs the
inspecting commands on the store: services, a search for failed requests,
the slowest failed trace as a waterfall, the frontend's latency histogram
and the service graph.`,
		Example: `  tracedb demo
  tracedb demo --dir /tmp/tracedb-demo --traces 20000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), dir, traces, width)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "tracedb-data", "data directory")
	cmd.Flags().IntVar(&traces, "traces", 3000, "traces to generate")
	cmd.Flags().IntVar(&width, "width", 0, "columns of the charts (default $COLUMNS, else 120)")
	return cmd
}

// runDemo writes the shop's traces into the store in dir, then shows what
// the inspecting commands answer about them.
func runDemo(ctx context.Context, out io.Writer, dir string, traces, width int) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if traces < 1 {
		return fmt.Errorf("--traces %d: want at least 1", traces)
	}
	store, err := db.Open(dir, db.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	now := uint64(time.Now().UnixNano())
	window := uint64(30 * time.Minute)
	mix := spangen.NewMix(rand.New(rand.NewPCG(now, 1)))
	var batch []*encoding.Span
	var accepted, rejected int
	write := func() error {
		res, err := store.Write(ctx, encoding.ToTraces(batch))
		accepted += res.Accepted
		rejected += len(res.Rejected)
		batch = batch[:0]
		return err
	}
	for i := range traces {
		// Spread the traces evenly over the last 30 minutes.
		tr := mix.Trace()
		shift := now - window + window*uint64(i)/uint64(traces) - tr[0].StartUnixNano
		for _, s := range tr {
			s.StartUnixNano += shift
			s.EndUnixNano += shift
			for j := range s.Events {
				s.Events[j].TimeUnixNano += shift
			}
		}
		batch = append(batch, tr...)
		if len(batch) >= 2000 {
			if err := write(); err != nil {
				store.Close()
				return err
			}
		}
	}
	if len(batch) > 0 {
		if err := write(); err != nil {
			store.Close()
			return err
		}
	}
	if err := store.Flush(); err != nil {
		store.Close()
		return err
	}
	fmt.Fprintf(out, "wrote %d traces (%d spans accepted, %d rejected) of the last 30 minutes into %s, flushed into blocks\n",
		traces, accepted, rejected, dir)
	// The slowest failed request, to draw.
	slowest, err := slowestFailed(ctx, store)
	if cerr := store.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}

	widthArgs := []string{}
	if width > 0 {
		widthArgs = []string{"--width", fmt.Sprint(width)}
	}
	steps := []struct {
		title string
		args  []string
	}{
		{"Services", []string{"services"}},
		{"Failed requests at the frontend, newest first", []string{"search", "--service", "frontend", "--tag", "error=true", "--limit", "5"}},
		{"The slowest failed request", append([]string{"trace", slowest.String()}, widthArgs...)},
		{"Latency of the frontend", append([]string{"histogram", "--service", "frontend"}, widthArgs...)},
		{"Service graph", []string{"deps"}},
	}
	for _, st := range steps {
		if st.args[0] == "trace" && slowest.IsZero() {
			continue
		}
		fmt.Fprintf(out, "\n== %s: tracedb %s\n", st.title, joinArgs(st.args))
		root := rootCmd()
		root.SetOut(out)
		root.SetErr(out)
		root.SetArgs(append(st.args, "--data-dir", dir))
		if err := root.ExecuteContext(ctx); err != nil {
			return fmt.Errorf("tracedb %s: %w", joinArgs(st.args), err)
		}
	}
	return nil
}

// slowestFailed returns the failed frontend request of longest duration
// among the newest hundred, or a zero ID when there is none.
func slowestFailed(ctx context.Context, store *db.DB) (encoding.TraceID, error) {
	e, err := query.NewEngine(store, query.Options{})
	if err != nil {
		return encoding.TraceID{}, err
	}
	_, sums, err := e.FindTraceSummaries(ctx, query.TraceQuery{Service: "frontend",
		Attributes: map[string]string{query.ErrorAttribute: "true"}, Limit: 100})
	if err != nil {
		return encoding.TraceID{}, err
	}
	var best query.TraceSummary
	for s, err := range sums {
		if err != nil {
			return encoding.TraceID{}, err
		}
		if s.Duration > best.Duration {
			best = s
		}
	}
	return best.Hit.TraceID, nil
}

func joinArgs(args []string) string { return strings.Join(args, " ") }
