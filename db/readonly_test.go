package db

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestReadOnly: a read-only open serves what the store holds, changes no
// file, and refuses writes; a missing store is refused, not created. (The
// WAL's read-only replay is tested in db/internal/wal.)
func TestReadOnly(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions()
	opts.PartitionWidth = 2 * time.Hour
	d := openTest(t, dir, opts)
	ctx := context.Background()
	mustWrite(t, d, ctx, makeTraces(spanSpec{trace: 1, span: 1, service: "a", name: "x", dur: 5}))
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, d, WithTenant(ctx, "acme"), makeTraces(spanSpec{trace: 2, span: 1, service: "b", name: "y", dur: 5}))
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	crashed := dir

	before := dirState(t, crashed)
	// PartitionWidth left at 0: the store's (2 h) is taken.
	ro, err := Open(crashed, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := collect(t, ro, ctx, traceID(1)); len(got) != 1 {
		t.Errorf("trace 1 from a block: %d spans", len(got))
	}
	if got := collect(t, ro, WithTenant(ctx, "acme"), traceID(2)); len(got) != 1 {
		t.Errorf("trace 2 of tenant acme: %d spans", len(got))
	}
	if got := ro.Tenants(); !slices.Equal(got, []string{"acme", "default"}) {
		t.Errorf("tenants %v", got)
	}
	if _, err := ro.Write(ctx, makeTraces(spanSpec{trace: 3, span: 1, service: "c", name: "z", dur: 1})); !errors.Is(err, ErrReadOnly) {
		t.Errorf("write: %v, want ErrReadOnly", err)
	}
	if err := ro.Flush(); !errors.Is(err, ErrReadOnly) {
		t.Errorf("flush: %v, want ErrReadOnly", err)
	}
	if _, err := ro.Compact(ctx); !errors.Is(err, ErrReadOnly) {
		t.Errorf("compact: %v, want ErrReadOnly", err)
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	if after := dirState(t, crashed); !maps2Equal(before, after) {
		t.Errorf("a read-only open changed the files:\nbefore %v\nafter  %v", before, after)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "nothing"), Options{ReadOnly: true}); !errors.Is(err, ErrNotAStore) {
		t.Errorf("read-only open of nothing: %v, want ErrNotAStore", err)
	}
	// An explicit width that differs is still refused.
	if _, err := Open(crashed, Options{ReadOnly: true, PartitionWidth: time.Hour}); !errors.Is(err, ErrFormatMismatch) {
		t.Errorf("explicit width: %v, want ErrFormatMismatch", err)
	}
}

// dirState maps every file under dir to its size and modification time.
func dirState(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		out[p] = fi.ModTime().String() + " " + time.Duration(fi.Size()).String()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func maps2Equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
