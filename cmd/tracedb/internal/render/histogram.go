package render

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// Bucket is one row of a histogram: Count durations in [Lo, Hi) ns.
type Bucket struct {
	Lo, Hi uint64
	Count  uint64
}

// Marker names a value to point at in a histogram, such as a percentile.
type Marker struct {
	Name  string
	Value uint64 // ns
}

// MergeBuckets returns buckets merged, consecutive groups of the same
// size, into at most maxRows rows (buckets unchanged when they fit). The
// buckets must be consecutive and ascending.
func MergeBuckets(buckets []Bucket, maxRows int) []Bucket {
	if maxRows <= 0 || len(buckets) <= maxRows {
		return buckets
	}
	per := (len(buckets) + maxRows - 1) / maxRows
	out := make([]Bucket, 0, maxRows)
	for i := 0; i < len(buckets); i += per {
		g := buckets[i:min(i+per, len(buckets))]
		m := Bucket{Lo: g[0].Lo, Hi: g[len(g)-1].Hi}
		for _, b := range g {
			m.Count += b.Count
		}
		out = append(out, m)
	}
	return out
}

// Columns of a histogram row:
//
//	<range> <bar> <count> <percent> <markers>
const (
	histPercentCols = 6 // "100.0%"
	minHistBarCols  = 10
)

// eighths are the partial blocks that end a bar, 1/8 to 7/8 of a column.
var eighths = []rune{'▏', '▎', '▍', '▌', '▋', '▊', '▉'}

// Histogram writes buckets as horizontal bars, width columns wide, the
// longest bar for the fullest bucket, each row with its count and share;
// a marker is named at the end of the row whose range holds its value.
// A footer line gives the total and every marker's value.
func Histogram(w io.Writer, buckets []Bucket, markers []Marker, width int) error {
	var total, most uint64
	for _, b := range buckets {
		total += b.Count
		most = max(most, b.Count)
	}
	if total == 0 {
		_, err := fmt.Fprintln(w, "(no spans)")
		return err
	}
	ranges := make([]string, len(buckets))
	marks := make([]string, len(buckets))
	rangeCols, countCols, markCols := 0, len(fmt.Sprint(most)), 0
	for i, b := range buckets {
		ranges[i] = bucketRange(b)
		rangeCols = max(rangeCols, len([]rune(ranges[i])))
		for _, m := range markers {
			if m.Value >= b.Lo && (m.Value < b.Hi || i == len(buckets)-1 && m.Value == b.Hi) {
				marks[i] += " " + m.Name
			}
		}
		if marks[i] != "" {
			marks[i] = " ◀" + marks[i]
		}
		markCols = max(markCols, len([]rune(marks[i])))
	}
	barCols := max(width-rangeCols-countCols-histPercentCols-markCols-3, minHistBarCols)
	var sb strings.Builder
	for i, b := range buckets {
		pct := 100 * float64(b.Count) / float64(total)
		fmt.Fprintf(&sb, "%s %s %s %s%s\n", padLeft(ranges[i], rangeCols), hbar(b.Count, most, barCols),
			padLeft(fmt.Sprint(b.Count), countCols), padLeft(fmt.Sprintf("%.1f%%", pct), histPercentCols),
			strings.TrimRight(marks[i], " "))
	}
	fmt.Fprintf(&sb, "%d spans", total)
	for _, m := range markers {
		fmt.Fprintf(&sb, "  %s %s", m.Name, FormatDuration(m.Value))
	}
	sb.WriteByte('\n')
	// Rows end in spaces when they carry no marker: trim them, so that
	// output compares cleanly.
	lines := strings.Split(sb.String(), "\n")
	for i := range lines {
		lines[i] = strings.TrimRight(lines[i], " ")
	}
	_, err := io.WriteString(w, strings.Join(lines, "\n"))
	return err
}

// bucketRange labels a bucket "lo – hi" (the last nanosecond it holds);
// a one-nanosecond bucket by its one value.
func bucketRange(b Bucket) string {
	if b.Hi-b.Lo <= 1 {
		return FormatDuration(b.Lo)
	}
	return FormatDuration(b.Lo) + " – " + FormatDuration(b.Hi-1)
}

// hbar draws n of most as a bar of up to cols columns, in eighths of a
// column; any n above 0 shows at least an eighth.
func hbar(n, most uint64, cols int) string {
	e := int(math.Round(float64(n) / float64(most) * float64(cols*8)))
	if n > 0 && e == 0 {
		e = 1
	}
	s := strings.Repeat("█", e/8)
	if e%8 != 0 {
		s += string(eighths[e%8-1])
	}
	return fit(s, cols)
}

// sparks are the eight heights of a sparkline, lowest first.
var sparks = []rune("▁▂▃▄▅▆▇█")

// Sparkline draws values as one rune each, scaled from 0 to the largest:
// a zero is a space, any value above 0 at least the lowest block.
// Negative and NaN values count as 0.
func Sparkline(values []float64) string {
	most := 0.0
	for _, v := range values {
		if v > most {
			most = v
		}
	}
	r := make([]rune, len(values))
	for i, v := range values {
		if !(v > 0) || most == 0 {
			r[i] = ' '
			continue
		}
		k := int(math.Ceil(v/most*float64(len(sparks)))) - 1
		r[i] = sparks[min(max(k, 0), len(sparks)-1)]
	}
	return string(r)
}
