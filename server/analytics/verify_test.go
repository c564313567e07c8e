package analytics_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/internal/storetest"
)

// verifyRemote runs Verify over the RPC as tenant and returns the report
// and the problems.
func verifyRemote(t *testing.T, env *testEnv, tenant string) (db.VerifyReport, []db.VerifyProblem) {
	t.Helper()
	var probs []db.VerifyProblem
	rep, err := env.client.Verify(as(tenant), func(p db.VerifyProblem) { probs = append(probs, p) })
	if err != nil {
		t.Fatalf("Verify as %s: %v", tenant, err)
	}
	return rep, probs
}

// counts is a report without its time, for comparisons.
func counts(r db.VerifyReport) db.VerifyReport {
	r.Elapsed = 0
	return r
}

func TestVerifyCleanMatchesStore(t *testing.T) {
	env := startEnv(t)
	ctx := context.Background()
	all, err := env.store.Verify(ctx, nil)
	if err != nil || all.Problems != 0 {
		t.Fatalf("local Verify: %+v, %v", all, err)
	}
	var sum db.VerifyReport
	for _, tenant := range []string{"acme", "other", "nobody"} {
		rep, probs := verifyRemote(t, env, tenant)
		if len(probs) != 0 || rep.Problems != 0 || rep.Corrupt() {
			t.Errorf("%s: clean store has problems %v (%+v)", tenant, probs, rep)
		}
		local, err := env.store.VerifyTenant(ctx, tenant, nil)
		if err != nil {
			t.Fatal(err)
		}
		if counts(rep) != counts(local) {
			t.Errorf("%s: over the RPC %+v, VerifyTenant %+v", tenant, counts(rep), counts(local))
		}
		// The counts are the tenant's own: its blocks and their spans.
		ts, err := env.store.Stats(db.WithTenant(ctx, tenant))
		if err != nil {
			t.Fatal(err)
		}
		wantTenants := 0
		if ts.Blocks > 0 {
			wantTenants = 1
		}
		if rep.Blocks != ts.Blocks || rep.Spans != ts.Spans || rep.Tenants != wantTenants || rep.WALSegments != all.WALSegments {
			t.Errorf("%s: report %+v, the tenant holds %d blocks of %d spans, the WAL %d segments", tenant, rep, ts.Blocks, ts.Spans, all.WALSegments)
		}
		sum.Tenants += rep.Tenants
		sum.Blocks += rep.Blocks
		sum.RowGroups += rep.RowGroups
		sum.Spans += rep.Spans
		sum.Terms += rep.Terms
		sum.Sections += rep.Sections
		sum.WALRecords += rep.WALRecords
	}
	// Every block and WAL record is one tenant's: the tenants' counts add
	// up to the store's.
	if sum.Tenants != all.Tenants || sum.Blocks != all.Blocks || sum.RowGroups != all.RowGroups || sum.Spans != all.Spans ||
		sum.Terms != all.Terms || sum.Sections != all.Sections || sum.WALRecords != all.WALRecords {
		t.Errorf("tenants' counts add up to %+v, the store's are %+v", sum, all)
	}
	if all.Spans != 500 || all.Tenants != 2 {
		t.Errorf("store report %+v: want the 500 spans of 2 tenants in blocks", all)
	}

	ctx, cancel := context.WithCancel(as("acme"))
	cancel()
	if _, err := env.client.Verify(ctx, nil); status.Code(err) != codes.Canceled {
		t.Errorf("Verify with a cancelled context = %v, want Canceled", err)
	}
}

// flipRowGroup flips a byte in the middle of the first row group of

func TestVerifyNamesOnlyTheCallersDamage(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	// Open reads the spans of each tenant's newest blocks back (up to
	// MaxHeadSpans of them) and fails on a damaged one; acme's older block,
	// in an earlier partition, is the one damaged, and no compaction runs
	// to trip over it.
	opts := db.Options{Logger: slog.New(slog.DiscardHandler), MaxHeadSpans: 100, CompactionInterval: -1}
	store, err := db.Open(data, opts)
	if err != nil {
		t.Fatal(err)
	}
	write := func(tenant string, n int, offset time.Duration) {
		t.Helper()
		if res, err := store.Write(db.WithTenant(context.Background(), tenant), spans(n, tenant, offset)); err != nil || len(res.Rejected) > 0 {
			t.Fatalf("write: %v %v", err, res.Rejected)
		}
		if err := store.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	write("acme", 300, 0)
	write("other", 200, 0)
	write("acme", 150, 3*time.Hour)
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	bad := storetest.FlipOldestRowGroup(t, data, "acme")
	if store, err = db.Open(data, opts); err != nil {
		t.Fatal(err)
	}
	env := serveStore(t, dir, store)

	rep, probs := verifyRemote(t, env, "acme")
	if len(probs) != 1 || rep.Problems != 1 || !rep.Corrupt() {
		t.Fatalf("acme: %d problems %v, report %+v; want the one flipped row group", len(probs), probs, rep)
	}
	p := probs[0]
	if p.Tenant != "acme" || p.Partition != bad.Partition || p.Block != bad.Block || p.Where != "row group 0" || p.Benign ||
		!errors.Is(p.Err, encoding.ErrCorrupt) {
		t.Errorf("acme's problem %q (corrupt %v), want row group 0 of block %s partition %s", p, errors.Is(p.Err, encoding.ErrCorrupt), bad.Block, bad.Partition)
	}

	rep, probs = verifyRemote(t, env, "other")
	ts, err := store.Stats(db.WithTenant(context.Background(), "other"))
	if err != nil {
		t.Fatal(err)
	}
	if len(probs) != 0 || rep.Problems != 0 || rep.Corrupt() {
		t.Errorf("other sees acme's damage: %v (%+v)", probs, rep)
	}
	if rep.Tenants != 1 || rep.Blocks != ts.Blocks || rep.Spans != 200 || ts.Spans != 200 {
		t.Errorf("other's report %+v, want 1 tenant, its %d blocks and its 200 spans", rep, ts.Blocks)
	}

	// The store as a whole has that one problem, and more spans.
	all, err := store.Verify(context.Background(), nil)
	if err != nil || all.Problems != 1 || all.Tenants != 2 || all.Spans <= rep.Spans {
		t.Errorf("local Verify: %+v, %v", all, err)
	}
}
