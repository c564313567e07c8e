// Package render draws the tracedb CLI's terminal pictures: a trace as a
// waterfall, a latency histogram as horizontal bars, a series as a
// sparkline. It knows nothing of the store: callers hand it plain rows and
// a width in columns, and get text back. Widths count runes, one column
// each (wide East Asian characters are not measured).
package render

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// FormatDuration formats ns nanoseconds with three significant digits and
// the largest unit that keeps the number at least 1: "850ns", "12.3µs",
// "1.23ms", "123ms", "4.56s"; a minute or more is left to time.Duration
// ("2m3.4s", to a tenth of a second).
func FormatDuration(ns uint64) string {
	const ( // units, in ns
		us  = 1e3
		ms  = 1e6
		sec = 1e9
	)
	// The bounds leave out values that three digits would round up to
	// 1000 of a unit: 999,999ns is "1ms", not "1000µs".
	f := float64(ns)
	switch {
	case ns < us:
		return fmt.Sprintf("%dns", ns)
	case ns < ms-ms/2000:
		return sig3(f/us) + "µs"
	case ns < sec-sec/2000:
		return sig3(f/ms) + "ms"
	case ns < 60*sec-sec/20:
		return sig3(f/sec) + "s"
	}
	d := time.Duration(min(ns, 1<<63-1))
	if d > 1<<62 {
		return d.Truncate(100 * time.Millisecond).String() // Round would overflow
	}
	return d.Round(100 * time.Millisecond).String()
}

// sig3 formats f, in [1, 1000), with three significant digits, dropping
// trailing zeros ("1.5", "12.3", "100").
func sig3(f float64) string {
	var s string
	switch {
	case f < 10:
		s = fmt.Sprintf("%.2f", f)
	case f < 100:
		s = fmt.Sprintf("%.1f", f)
	default:
		s = fmt.Sprintf("%.0f", f)
	}
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// fit returns s cut or padded with spaces to exactly w runes; a cut
// string ends in "…".
func fit(s string, w int) string {
	n := utf8.RuneCountInString(s)
	switch {
	case w <= 0:
		return ""
	case n == w:
		return s
	case n < w:
		return s + strings.Repeat(" ", w-n)
	}
	r := []rune(s)
	return string(r[:w-1]) + "…"
}

// padLeft right-aligns s in w runes (s is not cut).
func padLeft(s string, w int) string {
	if n := utf8.RuneCountInString(s); n < w {
		return strings.Repeat(" ", w-n) + s
	}
	return s
}

// ANSI escapes, used only when the caller asks for color.
const (
	ansiBold  = "\x1b[1m"
	ansiRed   = "\x1b[31m"
	ansiReset = "\x1b[0m"
)
