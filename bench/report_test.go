package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMarkdownRowMatchesHeader(t *testing.T) {
	r := &Result{Date: time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC), Workload: WorkloadMix, Sync: "group",
		Ingest: IngestStats{Accepted: 1000, Wall: time.Second, CPU: 2 * time.Second}}
	header := strings.SplitN(MarkdownHeader(), "\n", 2)[0]
	row := strings.TrimSuffix(r.MarkdownRow(), "\n")
	if h, c := strings.Count(header, "|"), strings.Count(row, "|"); h != c {
		t.Fatalf("header has %d bars, row %d:\n%s\n%s", h, c, header, row)
	}
	for _, want := range []string{"| 2025-01-02 | mix | 1000 |", "| group | 0 | 1000 |", "| 2000.00 |"} {
		if !strings.Contains(row, want) {
			t.Errorf("row %q lacks %q", row, want)
		}
	}
}

func TestAppendMarkdown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results.md")
	r := &Result{Ingest: IngestStats{Accepted: 1, Wall: time.Second}}
	for range 2 {
		if err := r.AppendMarkdown(path); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(b), "\n"); lines != 4 {
		t.Fatalf("file has %d lines, want a header of 2 and 2 rows:\n%s", lines, b)
	}
}
