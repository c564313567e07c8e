package index

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports keeps imports one-way: index may use encoding and nothing
// else of tracedb; its tests may also use the span generators.
func TestImports(t *testing.T) {
	const module = "github.com/tracedb/tracedb/"
	allowed := map[string]bool{module + "encoding": true}
	allowedInTests := map[string]bool{module + "internal/spangen": true}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		af, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(path, module) && !allowed[path] &&
				!(strings.HasSuffix(f, "_test.go") && allowedInTests[path]) {
				t.Errorf("%s imports %s: index may import only encoding of tracedb", f, path)
			}
		}
	}
}
