package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/retention"
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
--tenant, every tenant with blocks is listed, and the default tenant.`,
		Example: `  tracedb stats
  tracedb stats --partitions --tenant acme`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.Context(), cmd.OutOrStdout(), cmd.Flags().Changed("tenant"))
		}),
	}
	o.store.bind(cmd.Flags())
	cmd.Flags().BoolVar(&o.partitions, "partitions", false, "list every partition")
	return cmd
}

// tenantStats is what stats shows of one tenant.
type tenantStats struct {
	name                   string
	partitions, blocks     int
	spans, headSpans, size uint64
	minStart, maxEnd       uint64
	blocksOf               map[encoding.PartitionID]int
}

func (o *statsOpts) run(ctx context.Context, out io.Writer, oneTenant bool) error {
	return o.store.withStore(ctx, false, func(ctx context.Context, store *db.DB) error {
		parts := store.Partitions()
		names := []string{o.store.tenant}
		if !oneTenant {
			names = append(names, db.DefaultTenant)
			names = append(names, store.Tenants()...)
			slices.Sort(names)
			names = slices.Compact(names)
		}
		var all []tenantStats
		for _, name := range names {
			ts, err := statsOf(db.WithTenant(ctx, name), store, name, parts)
			if err != nil {
				return fmt.Errorf("tenant %s: %w", name, err)
			}
			all = append(all, ts)
		}
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TENANT\tPARTITIONS\tBLOCKS\tSPANS\tHEAD SPANS\tBYTES\tBYTES/SPAN\tFROM\tTO")
		for _, t := range all {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n", t.name, t.partitions, t.blocks, t.spans, t.headSpans,
				formatBytes(t.size), perSpan(t.size, t.spans), timeOrDash(t.minStart, t.spans+t.headSpans), timeOrDash(t.maxEnd, t.spans+t.headSpans))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if !o.partitions {
			return nil
		}
		fmt.Fprintln(out)
		fmt.Fprintln(tw, "TENANT\tPARTITION\tBLOCKS\tSPANS\tBYTES\tBYTES/SPAN\tFROM\tTO")
		for _, t := range all {
			for _, p := range parts {
				if p.Tenant != t.name {
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", p.Tenant, p.ID, t.blocksOf[p.ID], p.Spans,
					formatBytes(p.Bytes), perSpan(p.Bytes, p.Spans), formatTime(p.MinStart), formatTime(p.MaxEnd))
			}
		}
		return tw.Flush()
	})
}

// statsOf sums one tenant's partitions (blocks on disk) and its snapshot
// (for the block counts and the head's spans).
func statsOf(ctx context.Context, store *db.DB, name string, parts []retention.Partition) (tenantStats, error) {
	ts := tenantStats{name: name, blocksOf: map[encoding.PartitionID]int{}}
	snap, err := store.Snapshot(ctx)
	if err != nil {
		return ts, err
	}
	defer snap.Release()
	first := true
	widen := func(lo, hi uint64) {
		if first || lo < ts.minStart {
			ts.minStart = lo
		}
		ts.maxEnd, first = max(ts.maxEnd, hi), false
	}
	for _, r := range snap.Readers {
		info := r.Info()
		if info.Head {
			ts.headSpans += info.Spans
			if info.Spans > 0 {
				widen(info.MinStart, max(info.MaxEnd, info.MaxStart))
			}
			continue
		}
		ts.blocks++
		ts.blocksOf[info.Partition]++
	}
	for _, p := range parts {
		if p.Tenant != name {
			continue
		}
		ts.partitions++
		ts.spans += p.Spans
		ts.size += p.Bytes
		widen(p.MinStart, p.MaxEnd)
	}
	return ts, nil
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
