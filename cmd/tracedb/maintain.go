package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/retention"
)

// The maintenance commands: verify, compact, retention. The work is the
// library's (db.VerifyDir, DB.Compact, retention.Plan, DB.DropPartitions;
// with --server, verify asks the server's analytics API, which runs
// DB.VerifyTenant); these print it.

// maintenanceCmds returns verify, compact and retention.
func maintenanceCmds() []*cobra.Command {
	return []*cobra.Command{verifyCmd(), compactCmd(), retentionCmd()}
}

type verifyOpts struct {
	store storeFlags
}

func verifyCmd() *cobra.Command {
	var o verifyOpts
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check every checksum of every block, postings list and WAL segment",
		Long: `Read the whole store and check it: the format record, the dependency state,
every block's meta, trace-ID filter, row groups (every column's CRC32C, every
span decoded), postings dictionary and every postings list of every term
(every section's CRC32C), term histograms, and every WAL segment (every
record's CRC32C, every payload decoded). Each problem is printed on a line
naming the tenant, partition and block (or the WAL segment and offset) and
what failed; the exit code is non-zero when anything is corrupt.

Benign findings (the keys of a block a crashed flush left without its meta, a
WAL segment already flushed) are printed too, and do not fail the check: the
next open for writing cleans them up.

With --data-dir, the store is opened read-only and need not be loadable:
verify checks stores that tracedb cannot open, and every tenant in them. It
refuses a store a running tracedb serve holds: give --server instead.

With --server, the running tracedb serve checks its live store (one
consistent state, read beside the writes; compaction and retention wait
for it) and sends what it finds, printed the same way. Tenants share
nothing, so the server checks as the caller's tenant (--tenant, sent as the
x-tenant header): its blocks, plus what all tenants share (the format
record, the WAL); the counts are that tenant's blocks and WAL records.`,
		Example: `  tracedb verify
  tracedb verify --data-dir /var/lib/tracedb
  tracedb verify --server 127.0.0.1:17271 --token-file token --tenant acme`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.Context(), cmd.OutOrStdout(), cmd.Flags().Changed("tenant"))
		}),
	}
	o.store.bind(cmd.Flags())
	return cmd
}

// run checks the store in the data directory, or with --server the
// server's, printing both the same way (printVerify).
func (o *verifyOpts) run(ctx context.Context, out io.Writer, tenantSet bool) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if o.store.remote.set() {
		what := fmt.Sprintf("the store of server %s (tenant %s)", o.store.remote.addr, o.store.tenant)
		return o.store.withRemote(ctx, func(ctx context.Context, r *remote) error {
			return printVerify(out, what, func(fn func(db.VerifyProblem)) (db.VerifyReport, error) {
				return r.analytics.Verify(ctx, fn)
			})
		})
	}
	if tenantSet {
		return errors.New("--tenant needs --server: verify checks every tenant of a data directory")
	}
	dir := o.store.dataDir
	if err := storeExists(dir); err != nil {
		return err
	}
	return printVerify(out, "the store in "+dir, func(fn func(db.VerifyProblem)) (db.VerifyReport, error) {
		rep, err := db.VerifyDir(ctx, dir, db.Options{Logger: slog.New(slog.DiscardHandler)}, fn)
		if err != nil && strings.Contains(err.Error(), badgerLockMessage) {
			return rep, fmt.Errorf("the store in %s is %w", dir, errStoreInUse)
		}
		return rep, err
	})
}

// printVerify runs check, printing a line per problem as check finds it
// and then the summary; the error says the store (what) is corrupt when a
// problem is not benign.
func printVerify(out io.Writer, what string, check func(fn func(db.VerifyProblem)) (db.VerifyReport, error)) error {
	rep, err := check(func(p db.VerifyProblem) {
		kind := "CORRUPT"
		if p.Benign {
			kind = "benign"
		}
		fmt.Fprintf(out, "%s: %s\n", kind, strings.ReplaceAll(p.String(), "\n", "; "))
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "checked %d tenants, %d blocks, %d row groups, %d spans, %d postings lists in %d sections, %d WAL segments with %d records in %s\n",
		rep.Tenants, rep.Blocks, rep.RowGroups, rep.Spans, rep.Terms, rep.Sections, rep.WALSegments, rep.WALRecords, rep.Elapsed.Round(time.Millisecond))
	if rep.Corrupt() {
		return fmt.Errorf("%s is corrupt: %d problems (listed above)", what, rep.Problems-rep.BenignProblems)
	}
	if rep.BenignProblems > 0 {
		fmt.Fprintf(out, "no corruption (%d benign findings, cleaned up by the next open for writing)\n", rep.BenignProblems)
		return nil
	}
	fmt.Fprintln(out, "no corruption")
	return nil
}

// storeExists refuses a data directory that does not exist, so that a
// mistyped path is not taken for an empty store.
func storeExists(dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no store in %s (give --data-dir, or fill one with tracedb import or tracedb demo)", dir)
	}
	return nil
}

// storeTotals sums the blocks, spans and bytes of every tenant.
type storeTotals struct {
	blocks, partitions int
	spans, bytes       uint64
}

func totalsOf(ctx context.Context, store *db.DB) (storeTotals, error) {
	var t storeTotals
	for _, p := range store.Partitions() {
		t.partitions++
		t.spans += p.Spans
		t.bytes += p.Bytes
	}
	for _, name := range store.Tenants() {
		ts, err := store.Stats(db.WithTenant(ctx, name))
		if err != nil {
			return t, fmt.Errorf("tenant %s: %w", name, err)
		}
		t.blocks += ts.Blocks
	}
	return t, nil
}

type compactOpts struct {
	dataDir string
}

func compactCmd() *cobra.Command {
	var o compactOpts
	cmd := &cobra.Command{
		Use:   "compact",
		Short: "Merge small blocks now, until nothing is left to merge",
		Long: `Run compaction on every tenant, pass after pass, until the planner finds
nothing more to merge, and print what changed: groups merged, blocks, spans
(exact duplicates are dropped) and encoded bytes before and after. The head
is flushed into a block first, when the store is closed. The store is
opened for writing: stop tracedb serve first (it compacts in the
background anyway).`,
		Example: `  tracedb compact
  tracedb compact --data-dir /var/lib/tracedb`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.Context(), cmd.OutOrStdout())
		}),
	}
	cmd.Flags().StringVar(&o.dataDir, "data-dir", defaultInspectDataDir, "data directory of the store")
	return cmd
}

func (o *compactOpts) run(ctx context.Context, out io.Writer) error {
	if err := storeExists(o.dataDir); err != nil {
		return err
	}
	sf := storeFlags{dataDir: o.dataDir, tenant: db.DefaultTenant}
	return sf.withStore(ctx, true, func(ctx context.Context, store *db.DB) error {
		before, err := totalsOf(ctx, store)
		if err != nil {
			return err
		}
		var sum db.CompactResult
		for pass := 1; ; pass++ {
			res, err := store.Compact(ctx)
			if err != nil {
				return fmt.Errorf("compaction pass %d: %w", pass, err)
			}
			if res.Groups == 0 {
				break
			}
			fmt.Fprintf(out, "pass %d: merged %d groups of %d blocks, %d spans into %d (%s to %s) in %s\n", pass, res.Groups, res.BlocksIn,
				res.SpansIn, res.SpansOut, formatBytes(res.BytesIn), formatBytes(res.BytesOut), res.Elapsed.Round(time.Millisecond))
			sum.Groups += res.Groups
			sum.BlocksIn += res.BlocksIn
			sum.SpansIn += res.SpansIn
			sum.SpansOut += res.SpansOut
			sum.BytesIn += res.BytesIn
			sum.BytesOut += res.BytesOut
		}
		after, err := totalsOf(ctx, store)
		if err != nil {
			return err
		}
		if sum.Groups == 0 {
			fmt.Fprintf(out, "nothing to merge: %d blocks, %d spans, %s\n", before.blocks, before.spans, formatBytes(before.bytes))
			return nil
		}
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "\tBLOCKS\tSPANS\tBYTES\tBYTES/SPAN\n")
		fmt.Fprintf(tw, "before\t%d\t%d\t%s\t%s\n", before.blocks, before.spans, formatBytes(before.bytes), perSpan(before.bytes, before.spans))
		fmt.Fprintf(tw, "after\t%d\t%d\t%s\t%s\n", after.blocks, after.spans, formatBytes(after.bytes), perSpan(after.bytes, after.spans))
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(out, "%d groups merged, %d exact duplicate spans dropped\n", sum.Groups, sum.SpansIn-sum.SpansOut)
		return nil
	})
}

type retentionOpts struct {
	dataDir    string
	dryRun     bool
	ttl        time.Duration
	tenantTTL  []string
	diskBudget uint64
	keepErrors bool
	keepSlow   time.Duration
	keepTTL    time.Duration
}

func retentionCmd() *cobra.Command {
	var o retentionOpts
	cmd := &cobra.Command{
		Use:   "retention",
		Short: "Drop the partitions a retention policy expires (or, with --dry-run, list them)",
		Long: `Apply a retention policy now: drop whole partitions whose newest span is older
than the TTL (--ttl, or --tenant-ttl for one tenant), then, while the rest
hold more than --disk-budget-bytes, the oldest partitions; --keep-errors and
--keep-slower-than keep the matching traces of an expiring partition for
--keep-ttl. The partitions dropped are listed, then what was deleted and how
much disk the value-log GC gave back.

With --dry-run the store is opened read-only and only the list is printed.
Without it the store is opened for writing: stop tracedb serve first.`,
		Example: `  tracedb retention --dry-run --ttl 72h
  tracedb retention --ttl 72h --tenant-ttl audit=720h
  tracedb retention --disk-budget-bytes 50000000000 --dry-run`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.Context(), cmd.OutOrStdout())
		}),
	}
	fs := cmd.Flags()
	fs.StringVar(&o.dataDir, "data-dir", defaultInspectDataDir, "data directory of the store")
	fs.BoolVar(&o.dryRun, "dry-run", false, "list what would be dropped; change nothing")
	fs.DurationVar(&o.ttl, "ttl", 0, "drop partitions whose newest span is older than this (e.g. 72h); 0 keeps them")
	fs.StringArrayVar(&o.tenantTTL, "tenant-ttl", nil, "tenant=duration, the TTL of one tenant (0 keeps it forever); repeatable")
	fs.Uint64Var(&o.diskBudget, "disk-budget-bytes", 0, "drop the oldest partitions until the rest hold at most this many encoded bytes")
	fs.BoolVar(&o.keepErrors, "keep-errors", false, "keep traces with an error span past the TTL, for --keep-ttl")
	fs.DurationVar(&o.keepSlow, "keep-slower-than", 0, "keep traces with a span at least this long past the TTL, for --keep-ttl")
	fs.DurationVar(&o.keepTTL, "keep-ttl", 0, "how long kept traces live (longer than --ttl; 0 forever)")
	return cmd
}

// policy turns the flags into a retention policy.
func (o *retentionOpts) policy() (retention.Policy, error) {
	p := retention.Policy{TTL: o.ttl, DiskBudget: o.diskBudget,
		Keep: retention.KeepRule{Errors: o.keepErrors, SlowerThan: o.keepSlow, TTL: o.keepTTL}}
	for _, s := range o.tenantTTL {
		t, d, ok := strings.Cut(s, "=")
		if !ok || t == "" {
			return p, fmt.Errorf("--tenant-ttl %q: want tenant=duration", s)
		}
		if err := db.ValidateTenant(t); err != nil {
			return p, fmt.Errorf("--tenant-ttl %q: %w", s, err)
		}
		ttl, err := parseDuration(d)
		if err != nil {
			return p, fmt.Errorf("--tenant-ttl %q: %w", s, err)
		}
		if p.TenantTTL == nil {
			p.TenantTTL = map[string]time.Duration{}
		}
		if _, dup := p.TenantTTL[t]; dup {
			return p, fmt.Errorf("--tenant-ttl %q: tenant %q given twice", s, t)
		}
		p.TenantTTL[t] = ttl
	}
	if err := p.Validate(); err != nil {
		return p, err
	}
	if !p.Enabled() {
		return p, errors.New("no policy: give --ttl, --tenant-ttl or --disk-budget-bytes")
	}
	return p, nil
}

func (o *retentionOpts) run(ctx context.Context, out io.Writer) error {
	policy, err := o.policy()
	if err != nil {
		return err
	}
	if err := storeExists(o.dataDir); err != nil {
		return err
	}
	sf := storeFlags{dataDir: o.dataDir, tenant: db.DefaultTenant}
	return sf.withStore(ctx, !o.dryRun, func(ctx context.Context, store *db.DB) error {
		drops := retention.Plan(store.Partitions(), policy, time.Now())
		if len(drops) == 0 {
			fmt.Fprintln(out, "nothing to drop")
			return nil
		}
		slices.SortStableFunc(drops, func(a, b retention.Drop) int { return strings.Compare(a.Tenant, b.Tenant) })
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TENANT\tPARTITION\tFROM\tTO\tSPANS\tBYTES\tREASON\tKEEP MATCHING")
		var spans, bytes uint64
		for _, d := range drops {
			keep := "-"
			if d.Keep {
				keep = "yes"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", d.Tenant, d.ID, formatTime(d.MinStart), formatTime(d.MaxEnd),
				d.Spans, formatBytes(d.Bytes), d.Reason, keep)
			spans += d.Spans
			bytes += d.Bytes
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if o.dryRun {
			fmt.Fprintf(out, "would drop %d partitions: %d spans, %s (dry run: nothing changed)\n", len(drops), spans, formatBytes(bytes))
			return nil
		}
		res, err := store.DropPartitions(ctx, drops)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "dropped %d partitions: %d spans, %s; %d blocks deleted, %d held by readers; %d value-log files reclaimed in %s\n",
			len(res.Dropped), spans, formatBytes(res.BytesDropped), res.BlocksDeleted, res.BlocksHeld, res.ValueLogFreed,
			res.ReclaimElapsed.Round(time.Millisecond))
		return nil
	})
}
