package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemo: the demo fills a store and every step of its tour answers; a
// second run reopens the same store and adds to it.
func TestDemo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	for run := 1; run <= 2; run++ {
		var out bytes.Buffer
		if err := runDemo(context.Background(), &out, dir, 400, 100); err != nil {
			t.Fatalf("run %d: %v\n%s", run, err, out.String())
		}
		got := out.String()
		for _, want := range []string{
			"wrote 400 traces", "0 rejected",
			"== Services", "frontend", "checkout", "payment",
			"== Failed requests at the frontend",
			"== Latency of the frontend", "p99",
			"== Service graph", "frontend",
		} {
			if !strings.Contains(got, want) {
				t.Errorf("run %d: output lacks %q:\n%s", run, want, got)
			}
		}
		if strings.Contains(got, "== The slowest failed request") && !strings.Contains(got, "!") {
			t.Errorf("run %d: the failed trace's waterfall marks no error:\n%s", run, got)
		}
	}
}
