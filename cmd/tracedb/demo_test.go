package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestDemoWritesAndReadsBack(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	for run := 1; run <= 2; run++ { // a second run reopens the same store
		var out bytes.Buffer
		if err := runDemo(context.Background(), &out, dir); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		got := out.String()
		for _, want := range []string{"6 spans accepted, 0 rejected", "GET /checkout", "INSERT orders", "ERROR card declined"} {
			if !strings.Contains(got, want) {
				t.Errorf("run %d: output lacks %q:\n%s", run, want, got)
			}
		}
		if n := strings.Count(got, "\n"); n != 2+len(demoTrace) {
			t.Errorf("run %d: %d lines, want %d (the trace read back is exactly the one written):\n%s", run, n, 2+len(demoTrace), got)
		}
	}
}
