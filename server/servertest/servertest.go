// Package servertest runs a tracedb server in process for the tests that
// talk to one over the network (the CLI's --server mode, the analytics
// API's client).
package servertest

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/server"
)

// Serve serves store, whose data directory is dir, on a loopback storage
// listener (every other listener off) that demands bearer token tok and
// has tenancy on. It returns the storage listener's address and a func
// that stops the server and closes the store; the func also runs when the
// test ends, if not called before. store is closed if the server cannot
// start.
func Serve(t testing.TB, dir string, store *db.DB, tok string) (string, func()) {
	t.Helper()
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte(tok+"\n"), 0o600); err != nil {
		store.Close()
		t.Fatal(err)
	}
	cfg := server.DefaultConfig()
	cfg.DataDir = dir
	cfg.Listen = server.Listen{Storage: "127.0.0.1:0", Admin: server.Off, OTLPGRPC: server.Off, OTLPHTTP: server.Off,
		SamplingHTTP: server.Off, SamplingGRPC: server.Off}
	cfg.Auth.TokenFile = tokens
	cfg.Tenancy.Enabled = true
	srv, err := server.New(cfg, store, server.Options{})
	if err != nil {
		store.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
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
				t.Errorf("close store: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return srv.Addr(server.ListenerStorage).String(), stop
}
