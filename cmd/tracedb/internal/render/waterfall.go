package render

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Span is one span of a waterfall.
type Span struct {
	// ID names the span; Parent names its parent, "" for none. A parent
	// that is not among the spans makes the span a root. When several
	// spans share an ID (Zipkin-style shared spans), children hang under
	// the first of them in start order.
	ID, Parent string
	Service    string
	Name       string
	// Start and End are Unix nanoseconds; an End before Start is drawn as
	// an instant.
	Start, End uint64
	Error      bool
}

// WaterfallOptions shape a waterfall.
type WaterfallOptions struct {
	// Width is the number of columns of every line; below MinWidth,
	// MinWidth is used.
	Width int
	// Color marks the critical path in bold and errors in red with ANSI
	// escapes: only for a terminal.
	Color bool
}

// MinWidth is the narrowest waterfall drawn.
const MinWidth = 40

// Characters of a waterfall. A row is:
//
//	<critical mark><error mark> <indented service and name> <bar area> <duration>
const (
	markCritical = '*'
	markError    = '!'
	barCritical  = '█'
	barOther     = '▒'
	indentStep   = 2  // columns of indentation per tree level
	maxIndent    = 24 // deeper levels are not indented further
	durationCols = 8  // the duration column, right-aligned
	minLabelCols = 16
	minBarCols   = 10
)

// node is a span placed in the tree.
type node struct {
	span     *Span
	depth    int
	children []int // indexes into the spans, in start order
	critical bool
}

// Waterfall writes spans as a tree, children under their parents ordered
// by start, each row with a bar placed and scaled on the trace's time line,
// its duration, '!' for an error and '*' on the critical path: the chain of
// spans, from the first root down, that the trace's end waited on (each
// span's last-finishing child, then the child that finished last before
// that one started, and so on). The first line is a time axis.
func Waterfall(w io.Writer, spans []Span, opts WaterfallOptions) error {
	if len(spans) == 0 {
		_, err := fmt.Fprintln(w, "(no spans)")
		return err
	}
	nodes, order := layoutTree(spans)
	markCriticalPath(spans, nodes, order[0])

	t0, t1 := spans[0].Start, spans[0].End
	labelCols := 0
	for i := range spans {
		s := &spans[i]
		t0 = min(t0, s.Start)
		t1 = max(t1, s.End, s.Start)
		labelCols = max(labelCols, len([]rune(label(s, nodes[i].depth))))
	}
	width := max(opts.Width, MinWidth)
	labelCols = min(max(labelCols, minLabelCols), width*2/5)
	barCols := width - labelCols - durationCols - 5 // two marks, three spaces
	if barCols < minBarCols {
		labelCols -= minBarCols - barCols
		barCols = minBarCols
	}
	total := t1 - t0

	var b strings.Builder
	b.WriteString(strings.TrimRight(strings.Repeat(" ", 4+labelCols)+axis(total, barCols), " "))
	b.WriteByte('\n')
	for _, i := range order {
		s, n := &spans[i], &nodes[i]
		crit, errMark := ' ', ' '
		if n.critical {
			crit = markCritical
		}
		if s.Error {
			errMark = markError
		}
		line := string(crit) + string(errMark) + " " + fit(label(s, n.depth), labelCols) + " " +
			bar(s, t0, total, barCols, n.critical) + " " + padLeft(FormatDuration(dur(s)), durationCols)
		switch {
		case opts.Color && s.Error:
			line = ansiRed + line + ansiReset
		case opts.Color && n.critical:
			line = ansiBold + line + ansiReset
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func dur(s *Span) uint64 {
	if s.End < s.Start {
		return 0
	}
	return s.End - s.Start
}

// label is a row's indented "service name".
func label(s *Span, depth int) string {
	return strings.Repeat(" ", min(depth*indentStep, maxIndent)) + s.Service + " " + s.Name
}

// layoutTree returns each span's node and the spans' display order: a
// depth-first walk of the tree, roots and siblings by start time (then ID,
// then input order). Spans on a parent cycle, which no root reaches, are
// shown as roots.
func layoutTree(spans []Span) ([]node, []int) {
	byStart := make([]int, len(spans))
	for i := range byStart {
		byStart[i] = i
	}
	slices.SortStableFunc(byStart, func(a, b int) int {
		return cmp.Or(cmp.Compare(spans[a].Start, spans[b].Start), cmp.Compare(spans[a].ID, spans[b].ID))
	})
	first := make(map[string]int, len(spans)) // span ID -> the earliest span with it
	for _, i := range byStart {
		if _, ok := first[spans[i].ID]; !ok {
			first[spans[i].ID] = i
		}
	}
	nodes := make([]node, len(spans))
	var roots []int
	for _, i := range byStart {
		nodes[i].span = &spans[i]
		p, ok := first[spans[i].Parent]
		if spans[i].Parent == "" || !ok || p == i {
			roots = append(roots, i)
			continue
		}
		nodes[p].children = append(nodes[p].children, i)
	}
	order := make([]int, 0, len(spans))
	seen := make([]bool, len(spans))
	// An explicit stack: a trace may be deeper than is wise to recurse.
	walk := func(root int) {
		type frame struct{ i, depth int }
		stack := []frame{{root, 0}}
		for len(stack) > 0 {
			f := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if seen[f.i] {
				continue
			}
			seen[f.i] = true
			nodes[f.i].depth = f.depth
			order = append(order, f.i)
			ch := nodes[f.i].children
			for k := len(ch) - 1; k >= 0; k-- {
				stack = append(stack, frame{ch[k], f.depth + 1})
			}
		}
	}
	for _, r := range roots {
		walk(r)
	}
	for _, i := range byStart {
		if !seen[i] {
			walk(i)
		}
	}
	return nodes, order
}

// markCriticalPath marks the critical path from root, as Jaeger's UI
// computes it: the root is on it; walking back from the root's end, the
// child that finished last (a child running past its parent counts as
// ending with it) is on it, and so is its own critical path; then the time
// left ends at that child's start, and the child that finished last by then
// is next, and so on. A child still running when the time left ends is
// parallel work the parent did not wait on, and is not on the path.
func markCriticalPath(spans []Span, nodes []node, root int) {
	type child struct {
		i   int
		end uint64 // clamped to the parent's end
	}
	stack := []int{root}
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if nodes[i].critical {
			continue
		}
		nodes[i].critical = true
		parentEnd := max(spans[i].End, spans[i].Start)
		ch := make([]child, len(nodes[i].children))
		for k, c := range nodes[i].children {
			ch[k] = child{c, min(max(spans[c].End, spans[c].Start), parentEnd)}
		}
		slices.SortStableFunc(ch, func(a, b child) int { return cmp.Compare(b.end, a.end) })
		cursor := parentEnd
		// Ends only fall along ch and the cursor only moves back, so a
		// child passed over never qualifies later: one pass does.
		for _, c := range ch {
			if c.end > cursor {
				continue
			}
			stack = append(stack, c.i)
			cursor = min(cursor, spans[c.i].Start)
		}
	}
}

// bar draws s on a time line of cols columns that spans total ns from t0.
// Every span gets at least one column.
func bar(s *Span, t0, total uint64, cols int, critical bool) string {
	from, to := 0, cols
	if total > 0 {
		scale := float64(cols) / float64(total)
		from = int(float64(s.Start-t0) * scale)
		to = int(float64(max(s.End, s.Start)-t0)*scale + 0.999999)
	}
	from = min(max(from, 0), cols-1)
	to = min(max(to, from+1), cols)
	ch := barOther
	if critical {
		ch = barCritical
	}
	return strings.Repeat(" ", from) + strings.Repeat(string(ch), to-from) + strings.Repeat(" ", cols-to)
}

// axis labels a time line of cols columns spanning total ns at its start,
// quarters and end, leaving out labels that would collide.
func axis(total uint64, cols int) string {
	line := []rune(strings.Repeat(" ", cols))
	free := 0 // the first column no label covers yet
	const ticks = 4
	for k := 0; k <= ticks; k++ {
		l := []rune(FormatDuration(total / ticks * uint64(k)))
		if k == 0 {
			l = []rune("0")
		}
		if k == ticks {
			l = []rune(FormatDuration(total))
		}
		pos := cols * k / ticks
		switch k {
		case 0:
		case ticks:
			pos = cols - len(l)
		default:
			pos -= len(l) / 2
		}
		if pos < free || pos+len(l) > cols {
			continue
		}
		copy(line[pos:], l)
		free = pos + len(l) + 1
	}
	return string(line)
}
