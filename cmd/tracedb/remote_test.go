package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/server"
)

// TestServerMode runs the read commands on the fixture store's directory,
// then against a tracedb server holding the same store (with a bearer
// token and tenancy on): the outputs must be the same.
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
	}
	local := make([]string, len(cases))
	for i, args := range cases {
		local[i] = mustRun(t, append(args, "--data-dir", dir)...)
	}

	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := loopback(dir)
	cfg.Auth.TokenFile = tokens
	cfg.Tenancy.Enabled = true
	store, err := db.Open(dir, db.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(cfg, store, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("server did not stop")
		}
		if err := store.Close(); err != nil {
			t.Error(err)
		}
	}()
	addr := srv.Addr(server.ListenerStorage).String()

	for i, args := range cases {
		remote := append(append([]string{}, args...), "--server", addr, "--token", "s3cret")
		if !strings.Contains(strings.Join(args, " "), "--tenant") {
			remote = append(remote, "--tenant", db.DefaultTenant)
		}
		got := mustRun(t, remote...)
		if got != local[i] {
			t.Errorf("tracedb %v:\nwith --server:\n%s\non the directory:\n%s", args, got, local[i])
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
		{[]string{"histogram", "--server", addr}, "--server: this command needs the data directory"},
		{[]string{"rate", "--server", addr}, "--server: this command needs the data directory"},
		{[]string{"stats", "--server", addr}, "--server: this command needs the data directory"},
		{[]string{"export", "--server", addr}, "--server: this command needs the data directory"},
		{[]string{"services", "--server", addr, "--tls-insecure-skip-verify", "--token", "s3cret"}, "server " + addr},
	} {
		_, _, err := run(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("tracedb %v: err = %v, want one line with %q", tc.args, err, tc.want)
		}
	}
}
