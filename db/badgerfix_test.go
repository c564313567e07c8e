package db

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestEmptyValueLogAfterCrash leaves what a kill -9 between Badger's
// creation of a value-log file and its header leaves, an empty .vlog file
// after the others, and checks that the store opens with its data.
func TestEmptyValueLogAfterCrash(t *testing.T) {
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
	var vlogs []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".vlog") {
			vlogs = append(vlogs, e.Name())
		}
	}
	if len(vlogs) == 0 {
		t.Fatal("no value-log file")
	}
	slices.Sort(vlogs)
	var last int
	fmt.Sscanf(vlogs[len(vlogs)-1], "%d.vlog", &last)
	empty := filepath.Join(bdir, fmt.Sprintf("%06d.vlog", last+1))
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	d, err = Open(dir, testOptions())
	if err != nil {
		t.Fatalf("open with an empty value log: %v", err)
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
