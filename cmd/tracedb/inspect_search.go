package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tracedb/tracedb/cmd/tracedb/internal/render"
	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/query"
)

type searchOpts struct {
	store     storeFlags
	spans     spanFlags
	limit     int
	pageToken string
	output    string
}

func searchCmd() *cobra.Command {
	var o searchOpts
	cmd := &cobra.Command{
		Use:   "search",
		Short: "Find traces by service, operation, tags, duration, time and a filter expression",
		Long: `Find traces as Jaeger's search does: a trace matches when one of its spans
meets every condition given. Traces are listed newest first, one line each:
trace ID, start, duration, span and error counts, root service and operation.`,
		Example: `  tracedb search --service payment --tag error=true --start 1h
  tracedb search --service frontend --operation "GET /checkout" --min-duration 150ms --limit 50
  tracedb search --filter 'resource.service = "cart" and span.duration > 100ms and span.attr["user.id"] = "u-4711"'`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), time.Now())
		}),
	}
	fs := cmd.Flags()
	o.store.bind(fs)
	o.spans.bind(fs, true)
	fs.IntVar(&o.limit, "limit", query.DefaultDefaultLimit, "most traces listed")
	fs.StringVar(&o.pageToken, "page-token", "", "continue a search where the previous page ended")
	fs.StringVarP(&o.output, "output", "o", "table", "table or json (one trace summary per line)")
	return cmd
}

// jsonSummary is one line of `search --output json`.
type jsonSummary struct {
	TraceID       string   `json:"traceId"`
	Start         string   `json:"start"`
	DurationNanos uint64   `json:"durationNanos"`
	Spans         int      `json:"spans"`
	Errors        int      `json:"errors"`
	RootService   string   `json:"rootService"`
	RootOperation string   `json:"rootOperation"`
	Services      []string `json:"services"`
}

func (o *searchOpts) run(ctx context.Context, out, errw io.Writer, now time.Time) error {
	if o.output != "table" && o.output != "json" {
		return fmt.Errorf("--output %q: want table or json", o.output)
	}
	c, err := o.spans.conditions(now)
	if err != nil {
		return err
	}
	q := query.TraceQuery{
		Service: c.Service, Operation: c.Operation, Attributes: c.Attributes, StartTime: c.StartTime,
		DurationMin: c.DurationMin, DurationMax: c.DurationMax, Filter: c.Filter,
		Limit: o.limit, PageToken: o.pageToken,
	}
	if o.store.remote.set() {
		return o.store.withRemote(ctx, func(ctx context.Context, r *remote) error {
			return o.print(out, errw, func(fn func(remoteSummary) error) (string, error) {
				return remoteSearch(ctx, r, c, o.limit, o.pageToken, fn)
			})
		})
	}
	return o.store.withStore(ctx, false, func(ctx context.Context, store *db.DB) error {
		e, err := engine(store)
		if err != nil {
			return err
		}
		return o.print(out, errw, func(fn func(remoteSummary) error) (string, error) {
			next, sums, err := e.FindTraceSummaries(ctx, q)
			if err != nil {
				return "", err
			}
			for s, err := range sums {
				if err != nil {
					return "", err
				}
				err := fn(remoteSummary{id: s.Hit.TraceID, start: s.Start, duration: s.Duration, spans: s.SpanCount,
					errors: s.ErrorCount, rootSvc: s.RootService, rootOp: s.RootOperation, services: s.Services})
				if err != nil {
					return "", err
				}
			}
			return next, nil
		})
	})
}

// print prints the summaries that each calls back with, as a table or
// JSON lines, and the hint of a next page.
func (o *searchOpts) print(out, errw io.Writer, each func(fn func(remoteSummary) error) (string, error)) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	enc := json.NewEncoder(out)
	if o.output == "table" {
		fmt.Fprintln(tw, "TRACE ID\tSTART\tDURATION\tSPANS\tERRORS\tROOT")
	}
	n := 0
	next, err := each(func(s remoteSummary) error {
		n++
		if o.output == "json" {
			return enc.Encode(jsonSummary{TraceID: s.id.String(), Start: formatTimeNano(s.start),
				DurationNanos: s.duration, Spans: s.spans, Errors: s.errors,
				RootService: s.rootSvc, RootOperation: s.rootOp, Services: s.services})
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s: %s\n", s.id, formatTime(s.start),
			render.FormatDuration(s.duration), s.spans, s.errors, s.rootSvc, s.rootOp)
		return nil
	})
	if err != nil {
		return err
	}
	if o.output == "table" {
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(out, "%d traces\n", n)
	}
	if next != "" {
		// A hint for a person: on stderr, out of the way of pipes.
		fmt.Fprintf(errw, "more traces match: raise --limit, or continue with --page-token %s\n", next)
	}
	return nil
}

func servicesCmd() *cobra.Command {
	var (
		store storeFlags
		rng   rangeFlags
	)
	cmd := &cobra.Command{
		Use:   "services",
		Short: "List the services that have spans",
		Example: `  tracedb services
  tracedb services --start 24h --tenant acme`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			tr, err := rng.timeRange(time.Now())
			if err != nil {
				return err
			}
			if store.remote.set() {
				if rng.start.set() || rng.end.set() {
					return errors.New("--start and --end are not supported with --server: the storage API lists every service")
				}
				return store.withRemote(cmd.Context(), func(ctx context.Context, r *remote) error {
					svcs, err := remoteServices(ctx, r)
					if err != nil {
						return err
					}
					for _, svc := range svcs {
						fmt.Fprintln(cmd.OutOrStdout(), svc)
					}
					return nil
				})
			}
			return store.withStore(cmd.Context(), false, func(ctx context.Context, s *db.DB) error {
				e, err := engine(s)
				if err != nil {
					return err
				}
				svcs, err := e.GetServices(ctx, tr)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				for _, svc := range svcs {
					fmt.Fprintln(out, svc)
				}
				return nil
			})
		}),
	}
	store.bind(cmd.Flags())
	rng.bind(cmd.Flags())
	return cmd
}

func operationsCmd() *cobra.Command {
	var (
		store storeFlags
		rng   rangeFlags
		kind  string
	)
	cmd := &cobra.Command{
		Use:   "operations <service>",
		Short: "List a service's operations (span names) with their span kinds",
		Example: `  tracedb operations payment
  tracedb operations frontend --kind server`,
		Args: cobra.ExactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			q := query.OperationQuery{Service: args[0]}
			if kind != "" {
				k, ok := kindByName(kind)
				if !ok {
					return fmt.Errorf("--kind %q: want one of %s", kind, strings.Join(query.SpanKinds(), ", "))
				}
				q.ByKind, q.Kind = true, k
			}
			var err error
			if q.StartTime, err = rng.timeRange(time.Now()); err != nil {
				return err
			}
			if store.remote.set() {
				if rng.start.set() || rng.end.set() {
					return errors.New("--start and --end are not supported with --server: the storage API lists every operation")
				}
				return store.withRemote(cmd.Context(), func(ctx context.Context, r *remote) error {
					wire := ""
					if q.ByKind {
						wire = kindName(q.Kind)
					}
					ops, err := remoteOperations(ctx, r, q.Service, wire)
					if err != nil {
						return err
					}
					tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
					fmt.Fprintln(tw, "OPERATION\tKIND")
					for _, op := range ops {
						fmt.Fprintf(tw, "%s\t%s\n", op.name, op.kind)
					}
					return tw.Flush()
				})
			}
			return store.withStore(cmd.Context(), false, func(ctx context.Context, s *db.DB) error {
				e, err := engine(s)
				if err != nil {
					return err
				}
				ops, err := e.GetOperations(ctx, q)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "OPERATION\tKIND")
				for _, op := range ops {
					fmt.Fprintf(tw, "%s\t%s\n", op.Name, kindName(op.Kind))
				}
				return tw.Flush()
			})
		}),
	}
	store.bind(cmd.Flags())
	rng.bind(cmd.Flags())
	cmd.Flags().StringVar(&kind, "kind", "", "only operations with spans of this kind: "+strings.Join(query.SpanKinds(), ", "))
	return cmd
}

func depsCmd() *cobra.Command {
	var (
		store  storeFlags
		rng    rangeFlags
		output string
	)
	cmd := &cobra.Command{
		Use:   "deps",
		Short: "Show the service graph: who calls whom, how often",
		Long: `Show the service graph: one edge per parent and child service with the number
of calls (child spans whose parent span is of another service). --output dot
writes Graphviz; render it with dot -Tsvg.`,
		Example: `  tracedb deps --start 1h
  tracedb deps --output dot | dot -Tsvg > deps.svg`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "dot" {
				return fmt.Errorf("--output %q: want table or dot", output)
			}
			tr, err := rng.timeRange(time.Now())
			if err != nil {
				return err
			}
			if store.remote.set() {
				return store.withRemote(cmd.Context(), func(ctx context.Context, r *remote) error {
					links, err := remoteDeps(ctx, r, tr, time.Now())
					if err != nil {
						return err
					}
					return writeDeps(cmd.OutOrStdout(), links, output)
				})
			}
			return store.withStore(cmd.Context(), false, func(ctx context.Context, s *db.DB) error {
				e, err := engine(s)
				if err != nil {
					return err
				}
				links, err := e.GetDependencies(ctx, tr)
				if err != nil {
					return err
				}
				return writeDeps(cmd.OutOrStdout(), links, output)
			})
		}),
	}
	store.bind(cmd.Flags())
	rng.bind(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or dot (Graphviz)")
	return cmd
}

func writeDeps(out io.Writer, links []query.DependencyLink, format string) error {
	if format == "dot" {
		var b strings.Builder
		b.WriteString("digraph tracedb {\n  rankdir=LR;\n  node [shape=box];\n")
		for _, l := range links {
			fmt.Fprintf(&b, "  %s -> %s [label=\"%d\"];\n", dotQuote(l.Parent), dotQuote(l.Child), l.CallCount)
		}
		b.WriteString("}\n")
		_, err := io.WriteString(out, b.String())
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PARENT\tCHILD\tCALLS")
	for _, l := range links {
		fmt.Fprintf(tw, "%s\t%s\t%d\n", l.Parent, l.Child, l.CallCount)
	}
	return tw.Flush()
}

// dotQuote quotes s as a Graphviz ID: in double quotes, with quotes,
// backslashes and line breaks escaped.
func dotQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", "").Replace(s) + `"`
}
