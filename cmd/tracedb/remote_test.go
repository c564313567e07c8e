package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/server/servertest"
)

// TestServerMode runs the read commands on the fixture store's directory,
// then against a tracedb server holding the same store (with a bearer
// token and tenancy on): the outputs must be the same, for the commands of
// the Jaeger storage API and for those of tracedb's analytics API
// (histogram, rate, stats of one tenant, export).
func TestServerMode(t *testing.T) {
	dir := fixtureStore(t)
	id := fmtID(fixtureCheckoutID)
	cases := [][]string{
		{"trace", id, "--width", "100"},
		{"trace", id, "-o", "json"},
		{"trace", fmtID(fixtureAcmeID), "--tenant", "acme", "--width", "90"},
		{"search", "--service", "frontend", "--limit", "50"},
		{"search", "--service", "database", "--min-duration", "20ms", "-o", "json"},
		{"search", "--tag", "http.route=/checkout"},
		{"services"},
		{"services", "--tenant", "acme"},
		{"operations", "frontend"},
		{"deps"},
		{"deps", "-o", "dot"},
		{"histogram", "--width", "100"},
		{"histogram", "--service", "database", "--rows", "12", "--width", "100"},
		{"histogram", "--filter", `resource.service = "database" and span.kind = "client"`, "--width", "90"},
		{"histogram", "--service", "frontend", "--tag", "http.route=/checkout", "--start", "2024-05-01T11:00:00Z", "--end", "2024-05-01T13:00:00Z"},
		{"histogram", "--tenant", "acme", "--width", "80"},
		{"rate", "--width", "100"},
		{"rate", "--service", "database", "--min-duration", "50ms", "--output", "table", "--step", "5m"},
		{"rate", "--filter", `span.status = "error"`, "--start", "2024-05-01T12:00:00Z", "--end", "2024-05-01T12:30:00Z", "-o", "table"},
		{"rate", "--tenant", "acme", "--width", "80"},
		{"stats", "--tenant", db.DefaultTenant, "--partitions"},
		{"stats", "--tenant", "acme"},
		{"export"},
		{"export", "--batch-spans", "7"},
		{"export", "--format", "proto", "--start", "2024-05-01T12:10:00Z", "--end", "2024-05-01T12:20:00Z"},
		{"export", "--tenant", "acme"},
	}
	local := make([]string, len(cases))
	for i, args := range cases {
		local[i] = mustRun(t, append(args, "--data-dir", dir)...)
	}

	addr, stop := serveDir(t, dir, db.Options{}, "s3cret")
	defer stop()

	for i, args := range cases {
		remote := append(append([]string{}, args...), "--server", addr, "--token", "s3cret")
		if !strings.Contains(strings.Join(args, " "), "--tenant") {
			remote = append(remote, "--tenant", db.DefaultTenant)
		}
		got := mustRun(t, remote...)
		if got != local[i] {
			t.Errorf("tracedb %v:\nwith --server:\n%s\non the directory:\n%s", args, got, local[i])
		}
		if got == "" || strings.HasPrefix(got, "(no spans)") {
			t.Errorf("tracedb %v: empty output, a comparison that proves nothing", args)
		}
	}

	// Round trip through the server: export the default tenant, import
	// it into tenant copy, and the copy reads back the same.
	exported := filepath.Join(t.TempDir(), "all.jsonl")
	mustRun(t, "export", "-o", exported, "--server", addr, "--token", "s3cret", "--tenant", db.DefaultTenant)
	if out := mustRun(t, "import", exported, "--server", addr, "--token", "s3cret", "--tenant", "copy"); !strings.HasPrefix(out, fmt.Sprintf("imported %d spans ", len(checkoutTrace)+3*fixtureBrowseTraces)) {
		t.Errorf("import --server: %s", out)
	}
	for _, args := range [][]string{{"export"}, {"trace", id, "--width", "100"}, {"search", "--service", "frontend", "--limit", "50"}} {
		orig := mustRun(t, append(args, "--server", addr, "--token", "s3cret", "--tenant", db.DefaultTenant)...)
		copied := mustRun(t, append(args, "--server", addr, "--token", "s3cret", "--tenant", "copy")...)
		if orig != copied {
			t.Errorf("tracedb %v after the round trip:\ncopy:\n%s\noriginal:\n%s", args, copied, orig)
		}
	}

	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := mustRun(t, "services", "--server", addr, "--token-file", tokenFile); got != local[6] {
		t.Errorf("--token-file: %q", got)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"services", "--server", addr}, "Unauthenticated"},
		{[]string{"services", "--server", addr, "--token", "wrong"}, "Unauthenticated"},
		{[]string{"trace", fmtID(99), "--server", addr, "--token", "s3cret"}, "not found"},
		{[]string{"search", "--filter", "span.duration > 1ms", "--server", addr, "--token", "s3cret"}, "--filter is not supported with --server"},
		{[]string{"histogram", "--server", addr}, "Unauthenticated"},
		{[]string{"rate", "--server", addr, "--token", "wrong"}, "Unauthenticated"},
		{[]string{"stats", "--server", addr}, "Unauthenticated"},
		{[]string{"export", "--server", addr}, "Unauthenticated"},
		{[]string{"export", "--server", addr, "--token", "s3cret", "--batch-spans", "10001"}, "a server sends at most 10000 spans"},
		{[]string{"stats", "--server", addr, "--token", "s3cret", "--tenant", "no/such"}, "--tenant"},
		{[]string{"services", "--server", addr, "--tls-insecure-skip-verify", "--token", "s3cret"}, "server " + addr},
	} {
		_, _, err := run(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("tracedb %v: err = %v, want one line with %q", tc.args, err, tc.want)
		}
	}
}

// serveDir opens the store in dir with opts (logging discarded) and
// serves it on loopback with bearer token tok and tenancy on; it returns
// the storage listener's address and a func that stops the server and
// closes the store (also run when the test ends, if not called before).
func serveDir(t *testing.T, dir string, opts db.Options, tok string) (string, func()) {
	t.Helper()
	opts.Logger = slog.New(slog.DiscardHandler)
	store, err := db.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return servertest.Serve(t, dir, store, tok)
}
