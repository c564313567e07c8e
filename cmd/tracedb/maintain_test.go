package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/internal/storetest"
)

func TestVerifyCommand(t *testing.T) {
	dir := fixtureStore(t)
	out := mustRun(t, "verify", "--data-dir", dir)
	if !strings.HasSuffix(out, "no corruption\n") || !strings.Contains(out, "checked 2 tenants") {
		t.Errorf("clean store:\n%s", out)
	}

	// Flip a byte in the middle of a row group of the acme tenant.
	bad := storetest.FlipOldestRowGroup(t, dir, "acme")
	out, _, err := run(t, "verify", "--data-dir", dir)
	if err == nil || !strings.Contains(err.Error(), "corrupt: 1 problems") {
		t.Errorf("verify of a flipped byte: err = %v", err)
	}
	want := "CORRUPT: tenant \"acme\" partition " + bad.Partition.String() + " block " + bad.Block.String() + ": row group 0: "
	if !strings.HasPrefix(out, want) || !strings.Contains(out, "checksum") {
		t.Errorf("verify output lacks %q:\n%s", want, out)
	}
}

// verifySummary is the counts of verify's summary line, its time left
// out, and the other lines of its output.
type verifySummary struct {
	tenants, blocks, rowGroups, spans, terms, sections, walSegments, walRecords int
	lines                                                                       []string
}

func parseVerify(t *testing.T, out string) verifySummary {
	t.Helper()
	var v verifySummary
	found := false
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if strings.HasPrefix(line, "checked ") {
			var elapsed string
			if _, err := fmt.Sscanf(line, "checked %d tenants, %d blocks, %d row groups, %d spans, %d postings lists in %d sections, %d WAL segments with %d records in %s",
				&v.tenants, &v.blocks, &v.rowGroups, &v.spans, &v.terms, &v.sections, &v.walSegments, &v.walRecords, &elapsed); err != nil {
				t.Fatalf("summary %q: %v", line, err)
			}
			found = true
			continue
		}
		v.lines = append(v.lines, line)
	}
	if !found {
		t.Fatalf("no summary line in:\n%s", out)
	}
	return v
}

// flipOldestRowGroup flips a byte in the middle of a row group of
// tenant's oldest block (the lowest block ID) in the closed store in dir,

// TestVerifyServerMode checks a served store with verify --server: on a
// clean store it prints what verify on the directory prints, tenant by
// tenant (the tenants' counts add up to the store's); on a damaged one it
// prints the same problem line and fails.
func TestVerifyServerMode(t *testing.T) {
	dir := fixtureStore(t)
	local := parseVerify(t, mustRun(t, "verify", "--data-dir", dir))
	if local.tenants != 2 || local.spans == 0 {
		t.Fatalf("local verify: %+v", local)
	}
	// Open reads the spans of each tenant's newest blocks back, up to
	// MaxHeadSpans, and fails on damage there: with 1, only the newest.
	// No compaction may merge the damaged block away.
	opts := db.Options{MaxHeadSpans: 1, CompactionInterval: -1}
	addr, stop := serveDir(t, dir, opts, "s3cret")
	var sum verifySummary
	for _, tenant := range []string{db.DefaultTenant, "acme"} {
		got := parseVerify(t, mustRun(t, "verify", "--server", addr, "--token", "s3cret", "--tenant", tenant))
		if got.tenants != 1 || !slices.Equal(got.lines, local.lines) {
			t.Errorf("verify --server --tenant %s: %+v, on the directory %+v", tenant, got, local)
		}
		sum.tenants += got.tenants
		sum.blocks += got.blocks
		sum.rowGroups += got.rowGroups
		sum.spans += got.spans
		sum.terms += got.terms
		sum.sections += got.sections
	}
	if sum.tenants != local.tenants || sum.blocks != local.blocks || sum.rowGroups != local.rowGroups || sum.spans != local.spans ||
		sum.terms != local.terms || sum.sections != local.sections {
		t.Errorf("verify --server, tenants added up: %+v; on the directory: %+v", sum, local)
	}
	if _, _, err := run(t, "verify", "--server", addr); err == nil || !strings.Contains(err.Error(), "Unauthenticated") {
		t.Errorf("verify --server without a token: %v", err)
	}
	stop()
	if _, _, err := run(t, "verify", "--data-dir", dir, "--tenant", "acme"); err == nil || !strings.Contains(err.Error(), "--tenant needs --server") {
		t.Errorf("verify --tenant on a directory: %v", err)
	}

	bad := storetest.FlipOldestRowGroup(t, dir, db.DefaultTenant)
	localOut, _, localErr := run(t, "verify", "--data-dir", dir)
	want := "CORRUPT: tenant \"default\" partition " + bad.Partition.String() + " block " + bad.Block.String() + ": row group "
	if localErr == nil || !strings.HasPrefix(localOut, want) {
		t.Fatalf("verify on the damaged directory: %v\n%s", localErr, localOut)
	}
	addr, _ = serveDir(t, dir, opts, "s3cret")
	out, _, err := run(t, "verify", "--server", addr, "--token", "s3cret")
	if err == nil || !strings.Contains(err.Error(), "is corrupt: 1 problems") {
		t.Errorf("verify --server of a damaged store: err = %v", err)
	}
	if got, lw := parseVerify(t, out).lines, parseVerify(t, localOut).lines; !slices.Equal(got, lw) || !strings.HasPrefix(out, want) {
		t.Errorf("verify --server of a damaged store printed:\n%s\non the directory:\n%s", out, localOut)
	}
	// acme's data is whole, and acme sees nothing of the default tenant's.
	if out := mustRun(t, "verify", "--server", addr, "--token", "s3cret", "--tenant", "acme"); !strings.HasSuffix(out, "no corruption\n") ||
		strings.Contains(out, "CORRUPT") {
		t.Errorf("verify --server --tenant acme:\n%s", out)
	}
}

func TestCompactAndRetentionCommands(t *testing.T) {
	dir := fixtureStore(t)
	out := mustRun(t, "compact", "--data-dir", dir)
	if !strings.Contains(out, "nothing to merge") && !strings.Contains(out, "groups merged") {
		t.Errorf("compact:\n%s", out)
	}
	stats := mustRun(t, "stats", "--data-dir", dir)

	out = mustRun(t, "retention", "--dry-run", "--ttl", "72h", "--data-dir", dir)
	// The fixture's spans are from 2024: all past any TTL.
	if !strings.Contains(out, "would drop") || !strings.Contains(out, "acme") || !strings.Contains(out, "ttl") {
		t.Errorf("dry run:\n%s", out)
	}
	if got := mustRun(t, "stats", "--data-dir", dir); got != stats {
		t.Errorf("a dry run changed the store:\n%s\nbefore:\n%s", got, stats)
	}
	out = mustRun(t, "retention", "--ttl", "72h", "--tenant-ttl", "acme=0", "--data-dir", dir)
	if !strings.Contains(out, "dropped") || strings.Contains(out, "\nacme") {
		t.Errorf("retention keeping acme:\n%s", out)
	}
	out = mustRun(t, "stats", "--data-dir", dir)
	if !strings.Contains(out, "acme") {
		t.Errorf("stats after retention:\n%s", out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"retention", "--dry-run", "--data-dir", dir}, "no policy"},
		{[]string{"retention", "--tenant-ttl", "acme", "--data-dir", dir}, "tenant=duration"},
		{[]string{"compact", "--data-dir", filepath.Join(dir, "nope")}, "no store in"},
		{[]string{"verify", "--data-dir", filepath.Join(dir, "nope")}, "no store in"},
	} {
		_, _, err := run(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("tracedb %v: err = %v, want %q", tc.args, err, tc.want)
		}
	}
}
