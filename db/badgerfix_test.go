package db

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEmptyBadgerLogsAfterCrash leaves what a kill -9 between Badger's
// creation of a log file and its header leaves, an empty .vlog or .mem
// file after the others, and checks that the store opens with its data.
func TestEmptyBadgerLogsAfterCrash(t *testing.T) {
	for _, ext := range []string{".vlog", ".mem"} {
		t.Run(ext, func(t *testing.T) { testEmptyBadgerLog(t, ext) })
	}
}

func testEmptyBadgerLog(t *testing.T, ext string) {
	dir := t.TempDir()
	d := openTest(t, dir, testOptions())
	ctx := context.Background()
	mustWrite(t, d, ctx, makeTraces(spanSpec{trace: 1, span: 1, service: "a", name: "x", dur: 5}))
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	bdir := filepath.Join(dir, badgerDir)
	entries, err := os.ReadDir(bdir)
	if err != nil {
		t.Fatal(err)
	}
	last := 0
	for _, e := range entries {
		var n int
		if strings.HasSuffix(e.Name(), ext) {
			if _, err := fmt.Sscanf(strings.TrimSuffix(e.Name(), ext), "%d", &n); err == nil {
				last = max(last, n)
			}
		}
	}
	width := map[string]int{".vlog": 6, ".mem": 5}[ext] // Badger's file names
	empty := filepath.Join(bdir, fmt.Sprintf("%0*d%s", width, last+1, ext))
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	d, err = Open(dir, testOptions())
	if err != nil {
		t.Fatalf("open with an empty %s file: %v", ext, err)
	}
	defer d.Close()
	if got := collect(t, d, ctx, traceID(1)); len(got) != 1 {
		t.Fatalf("%d spans after reopen, want 1", len(got))
	}
	// Badger starts its new value log under the next number, which may
	// be the name of the file removed: it must not be empty any more.
	if info, err := os.Stat(empty); err == nil && info.Size() == 0 {
		t.Errorf("%s is still empty", empty)
	}
}

// TestEmptyLogOfOpenStoreKept: an empty log file in the directory of a
// store another open holds may be that open's newest file, not a crash's
// leftover; a second open must leave it alone (and fail on the lock).
func TestEmptyLogOfOpenStoreKept(t *testing.T) {
	dir := t.TempDir()
	d := openTest(t, dir, testOptions())
	defer d.Close()
	fresh := filepath.Join(dir, badgerDir, "999999.vlog")
	if err := os.WriteFile(fresh, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(fresh)
	if d2, err := Open(dir, testOptions()); err == nil {
		d2.Close()
		t.Fatal("a second open of a store in use succeeded")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("the second open removed the open store's file: %v", err)
	}
}
