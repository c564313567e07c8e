package render

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update creates it)", err)
	}
	if string(want) != got {
		t.Errorf("differs from %s (go test -update rewrites it):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

const ms = 1_000_000

// waterfallCases cover the tree's corner cases: an orphan (its parent was
// never stored), a parent cycle, a shared span ID, a child running past
// its parent, an instant span, a label longer than its column.
var waterfallCases = map[string][]Span{
	"simple": {
		{ID: "a", Service: "frontend", Name: "GET /", Start: 0, End: 100 * ms},
		{ID: "b", Parent: "a", Service: "api", Name: "load", Start: 10 * ms, End: 60 * ms},
		{ID: "c", Parent: "a", Service: "api", Name: "render", Start: 20 * ms, End: 90 * ms, Error: true},
		{ID: "d", Parent: "b", Service: "db", Name: "query", Start: 15 * ms, End: 55 * ms},
	},
	"odd": {
		{ID: "r", Service: "svc", Name: "root", Start: 1000 * ms, End: 1200 * ms},
		{ID: "x", Parent: "r", Service: "svc", Name: "runs past its parent", Start: 1100 * ms, End: 1300 * ms},
		{ID: "i", Parent: "r", Service: "svc", Name: "instant", Start: 1050 * ms, End: 1050 * ms},
		{ID: "o", Parent: "missing", Service: "orphan", Name: "lost parent", Start: 1010 * ms, End: 1020 * ms},
		{ID: "p", Parent: "q", Service: "cycle", Name: "p", Start: 1030 * ms, End: 1040 * ms},
		{ID: "q", Parent: "p", Service: "cycle", Name: "q", Start: 1031 * ms, End: 1039 * ms},
		{ID: "s", Parent: "r", Service: "shared", Name: "client side", Start: 1005 * ms, End: 1090 * ms},
		{ID: "s", Parent: "r", Service: "shared", Name: "server side", Start: 1006 * ms, End: 1080 * ms},
		{ID: "t", Parent: "s", Service: "deep", Name: strings.Repeat("a very long operation name ", 4), Start: 1007 * ms, End: 1070 * ms},
	},
}

func TestWaterfallGolden(t *testing.T) {
	for name, spans := range waterfallCases {
		t.Run(name, func(t *testing.T) {
			var b strings.Builder
			if err := Waterfall(&b, spans, WaterfallOptions{Width: 100}); err != nil {
				t.Fatal(err)
			}
			golden(t, "waterfall_"+name+".golden", b.String())
			lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
			if len(lines) != len(spans)+1 {
				t.Errorf("%d lines for %d spans and the axis", len(lines), len(spans))
			}
			for _, l := range lines[1:] {
				if n := len([]rune(l)); n != 100 {
					t.Errorf("row of %d runes, want 100: %q", n, l)
				}
			}
		})
	}
}

func TestWaterfallNarrowAndColor(t *testing.T) {
	var b strings.Builder
	if err := Waterfall(&b, waterfallCases["simple"], WaterfallOptions{Width: 10, Color: true}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	for _, l := range lines[1:] {
		plain := strings.NewReplacer(ansiBold, "", ansiRed, "", ansiReset, "").Replace(l)
		if n := len([]rune(plain)); n != MinWidth {
			t.Errorf("row of %d runes, want MinWidth %d: %q", n, MinWidth, plain)
		}
	}
	if !strings.Contains(b.String(), ansiRed) || !strings.Contains(b.String(), ansiBold) {
		t.Errorf("no colors:\n%q", b.String())
	}
}

func TestCriticalPath(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spans []Span
		want  string // the critical spans' IDs, in input order
	}{
		{"sequential children all wait", []Span{
			{ID: "r", End: 100}, {ID: "a", Parent: "r", Start: 0, End: 40}, {ID: "b", Parent: "r", Start: 40, End: 90},
		}, "rab"},
		{"parallel child is off the path", []Span{
			{ID: "r", End: 100}, {ID: "a", Parent: "r", Start: 10, End: 50}, {ID: "b", Parent: "r", Start: 20, End: 90},
		}, "rb"},
		{"child past its parent counts", []Span{
			{ID: "r", End: 100}, {ID: "a", Parent: "r", Start: 10, End: 150}, {ID: "b", Parent: "r", Start: 0, End: 20},
		}, "ra"},
		{"grandchildren", []Span{
			{ID: "r", End: 100}, {ID: "a", Parent: "r", Start: 5, End: 95},
			{ID: "x", Parent: "a", Start: 10, End: 30}, {ID: "y", Parent: "a", Start: 20, End: 40}, {ID: "z", Parent: "a", Start: 50, End: 60},
		}, "rayz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nodes, order := layoutTree(tc.spans)
			markCriticalPath(tc.spans, nodes, order[0])
			got := ""
			for i, n := range nodes {
				if n.critical {
					got += tc.spans[i].ID
				}
			}
			if got != tc.want {
				t.Errorf("critical %q, want %q", got, tc.want)
			}
		})
	}
}

func TestHistogramGolden(t *testing.T) {
	var buckets []Bucket
	lo := uint64(ms)
	for i, n := range []uint64{3, 0, 9, 27, 81, 40, 12, 0, 0, 1} {
		hi := lo + lo/4
		buckets = append(buckets, Bucket{Lo: lo, Hi: hi, Count: n})
		if i == 5 {
			buckets[i].Count = 1000 // a tall bar scales the others
		}
		lo = hi
	}
	markers := []Marker{{"p50", 2 * ms}, {"p90", 2100 * 1000}, {"p99", buckets[9].Lo}}
	var b strings.Builder
	if err := Histogram(&b, buckets, markers, 100); err != nil {
		t.Fatal(err)
	}
	b.WriteString("-- merged into 4 rows --\n")
	if err := Histogram(&b, MergeBuckets(buckets, 4), markers, 100); err != nil {
		t.Fatal(err)
	}
	golden(t, "histogram.golden", b.String())
}

func TestMergeBuckets(t *testing.T) {
	in := []Bucket{{0, 1, 1}, {1, 2, 2}, {2, 3, 3}, {3, 4, 4}, {4, 5, 5}}
	for _, tc := range []struct {
		rows int
		want []Bucket
	}{
		{5, in},
		{10, in},
		{0, in},
		{2, []Bucket{{0, 3, 6}, {3, 5, 9}}},
		{3, []Bucket{{0, 2, 3}, {2, 4, 7}, {4, 5, 5}}},
		{1, []Bucket{{0, 5, 15}}},
	} {
		got := MergeBuckets(in, tc.rows)
		if len(got) != len(tc.want) {
			t.Fatalf("rows %d: %v, want %v", tc.rows, got, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("rows %d: %v, want %v", tc.rows, got, tc.want)
			}
		}
	}
}

func TestSparkline(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want string
	}{
		{nil, ""},
		{[]float64{0, 0}, "  "},
		{[]float64{1, 2, 3, 4, 5, 6, 7, 8}, "▁▂▃▄▅▆▇█"},
		{[]float64{0, 0.001, 100, -1}, " ▁█ "},
	} {
		if got := Sparkline(tc.in); got != tc.want {
			t.Errorf("Sparkline(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for _, tc := range []struct {
		ns   uint64
		want string
	}{
		{0, "0ns"}, {999, "999ns"}, {1000, "1µs"}, {1234, "1.23µs"}, {12_340, "12.3µs"}, {999_499, "999µs"},
		{1_500_000, "1.5ms"}, {100_000_000, "100ms"}, {4_560_000_000, "4.56s"}, {123_400_000_000, "2m3.4s"},
		{999_999, "1ms"}, {59_999_000_000, "1m0s"}, {^uint64(0), "2562047h47m16.8s"},
	} {
		if got := FormatDuration(tc.ns); got != tc.want {
			t.Errorf("FormatDuration(%d) = %q, want %q", tc.ns, got, tc.want)
		}
	}
}
