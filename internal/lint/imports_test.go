// Package lint holds tests that keep the code base's structure honest.
package lint

import (
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/tracedb/tracedb"

// layer gives each top-level package its place in the one-way import order
// of DESIGN.md: encoding ← index ← compaction, retention ← db ← query ←
// server, cmd, bench. A package may import only packages of a lower layer
// (and its own subpackages). internal/ packages that serve tests sit just
// above encoding.
var layer = map[string]int{
	"encoding":   0,
	"internal":   1,
	"index":      2,
	"compaction": 3,
	"retention":  3,
	"db":         4,
	"query":      5,
	"server":     6,
	"cmd":        7,
	"bench":      7,
	"e2e":        8, // tests that run the binaries; may use anything
	"deploy":     8, // alerting rules and dashboards, with their test
}

func TestImportDirection(t *testing.T) {
	for _, v := range violations(t, filepath.Join("..", "..")) {
		t.Error(v)
	}
}

// TestImportDirectionCatches proves the check fails on a forbidden import.
func TestImportDirectionCatches(t *testing.T) {
	root := t.TempDir()
	write := func(rel, src string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("encoding/x.go", "package encoding\nimport _ \""+module+"/db\"\n")
	write("db/x.go", "package db\nimport _ \""+module+"/encoding\"\n")
	got := violations(t, root)
	if len(got) != 1 || !strings.Contains(got[0], "encoding/x.go") {
		t.Fatalf("violations = %q, want exactly the encoding → db import", got)
	}
}

func violations(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); name == "testdata" || strings.HasPrefix(name, ".") && path != root {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		from := topLevel(filepath.ToSlash(filepath.Dir(rel)))
		fromLayer, known := layer[from]
		if !known {
			if from != "." {
				out = append(out, fmt.Sprintf("%s: top-level package %q has no layer; add it to lint.layer", rel, from))
			}
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		if strings.HasSuffix(f.Name.Name, "_test") {
			return nil // an external test package is a consumer, like any higher layer
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if !strings.HasPrefix(p, module+"/") {
				continue
			}
			to := topLevel(strings.TrimPrefix(p, module+"/"))
			if to == from {
				continue
			}
			toLayer, ok := layer[to]
			if !ok {
				out = append(out, fmt.Sprintf("%s imports %s, a package with no layer", rel, p))
				continue
			}
			if toLayer >= fromLayer {
				out = append(out, fmt.Sprintf("%s (%s, layer %d) imports %s (%s, layer %d): imports must flow one way, down",
					rel, from, fromLayer, p, to, toLayer))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func topLevel(rel string) string {
	if i := strings.IndexByte(rel, '/'); i >= 0 {
		return rel[:i]
	}
	return rel
}

func TestTopLevel(t *testing.T) {
	for in, want := range map[string]string{"db/internal/wal": "db", "encoding": "encoding", ".": "."} {
		if got := topLevel(in); got != want {
			t.Errorf("topLevel(%q) = %q, want %q", in, got, want)
		}
	}
}
