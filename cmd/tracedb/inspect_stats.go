package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tracedb/tracedb/db"
)

type statsOpts struct {
	store      storeFlags
	partitions bool
}

func statsCmd() *cobra.Command {
	var o statsOpts
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Show partitions, blocks, spans and bytes per span, by tenant",
		Long: `Show what the store holds, by tenant: partitions, disk blocks, spans in
blocks and in the head (spans not yet flushed), encoded bytes and bytes per
span, and the time range. --partitions lists every partition. Without
--tenant, every tenant with blocks is listed, and the default tenant.
With --server, a running tracedb serve answers for the caller's tenant only
(--tenant, sent as the x-tenant header; tenants share nothing, so no other
tenant is listed).`,
		Example: `  tracedb stats
  tracedb stats --partitions --tenant acme
  tracedb stats --server 127.0.0.1:17271 --tenant acme`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.Context(), cmd.OutOrStdout(), cmd.Flags().Changed("tenant"))
		}),
	}
	o.store.bind(cmd.Flags())
	cmd.Flags().BoolVar(&o.partitions, "partitions", false, "list every partition")
	return cmd
}

func (o *statsOpts) run(ctx context.Context, out io.Writer, oneTenant bool) error {
	if o.store.remote.set() {
		return o.store.withRemote(ctx, func(ctx context.Context, r *remote) error {
			ts, err := r.analytics.Stats(ctx)
			if err != nil {
				return err
			}
			return writeStats(out, []db.TenantStats{ts}, o.partitions)
		})
	}
	return o.store.withStore(ctx, false, func(ctx context.Context, store *db.DB) error {
		names := []string{o.store.tenant}
		if !oneTenant {
			names = append(names, db.DefaultTenant)
			names = append(names, store.Tenants()...)
			slices.Sort(names)
			names = slices.Compact(names)
		}
		all := make([]db.TenantStats, 0, len(names))
		for _, name := range names {
			ts, err := store.Stats(db.WithTenant(ctx, name))
			if err != nil {
				return fmt.Errorf("tenant %s: %w", name, err)
			}
			all = append(all, ts)
		}
		return writeStats(out, all, o.partitions)
	})
}

// writeStats prints a line per tenant and, with partitions set, a line per
// partition.
func writeStats(out io.Writer, all []db.TenantStats, partitions bool) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tPARTITIONS\tBLOCKS\tSPANS\tHEAD SPANS\tBYTES\tBYTES/SPAN\tFROM\tTO")
	for _, t := range all {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n", t.Tenant, len(t.Partitions), t.Blocks, t.Spans, t.HeadSpans,
			formatBytes(t.Bytes), perSpan(t.Bytes, t.Spans), timeOrDash(t.MinStart, t.Spans+t.HeadSpans), timeOrDash(t.MaxEnd, t.Spans+t.HeadSpans))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if !partitions {
		return nil
	}
	fmt.Fprintln(out)
	fmt.Fprintln(tw, "TENANT\tPARTITION\tBLOCKS\tSPANS\tBYTES\tBYTES/SPAN\tFROM\tTO")
	for _, t := range all {
		for _, p := range t.Partitions {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", t.Tenant, p.ID, p.Blocks, p.Spans,
				formatBytes(p.Bytes), perSpan(p.Bytes, p.Spans), formatTime(p.MinStart), formatTime(p.MaxEnd))
		}
	}
	return tw.Flush()
}

func perSpan(bytes, spans uint64) string {
	if spans == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", float64(bytes)/float64(spans))
}

func timeOrDash(ns, spans uint64) string {
	if spans == 0 {
		return "-"
	}
	return formatTime(ns)
}

// formatBytes prints n in B, KiB, MiB, GiB or TiB, three significant
// digits.
func formatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	f, i := float64(n), -1
	for f >= unit && i < 3 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.3g%ciB", f, "KMGT"[i])
}
