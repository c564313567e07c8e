package bench

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is one run of the ingest benchmark.
type Result struct {
	Date        time.Time
	Workload    Workload
	Seed        uint64
	Concurrency int
	Batch       int    // spans per Write
	Sync        string // the store's WAL sync mode
	HeadSpans   int    // the store's MaxHeadSpans
	GOMAXPROCS  int

	Ingest     IngestStats
	InputBytes int64 // the batch file: OTLP protobuf as a client sends it

	RSSBefore Memory // after generation, when the store is opened
	RSSPeak   int64  // VmHWM at the end of the ingest, reset before it

	Flushes int64 // flushes that completed during the ingest, the final one included
	Blocks  int64 // blocks in the store after Close

	Disk    DiskUsage     // the store's directory after Close
	Subdirs []SubdirUsage // its top-level entries: badger/, wal/
	Keys    StoreKeys
}

// SpansPerSecond is the sustained ingest rate.
func (r *Result) SpansPerSecond() float64 {
	return float64(r.Ingest.Accepted) / r.Ingest.Wall.Seconds()
}

// CPUMicrosPerSpan is the CPU time of the whole process per accepted span.
func (r *Result) CPUMicrosPerSpan() float64 {
	return float64(r.Ingest.CPU.Microseconds()) / float64(r.Ingest.Accepted)
}

// PerSpan divides a byte count by the accepted spans.
func (r *Result) PerSpan(bytes int64) float64 {
	return float64(bytes) / float64(r.Ingest.Accepted)
}

const mib = 1 << 20

// WriteText prints the result for a person.
func (r *Result) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	line := func(format string, args ...any) { fmt.Fprintf(tw, format+"\n", args...) }
	in := r.Ingest
	line("workload\t%s (seed %d)", r.Workload, r.Seed)
	line("spans\t%d accepted, %d rejected, in %d batches of %d", in.Accepted, in.Rejected, in.Batches, r.Batch)
	line("writers\t%d goroutines, GOMAXPROCS %d, WAL sync %s, head flushed at %d spans", r.Concurrency, r.GOMAXPROCS, r.Sync, r.HeadSpans)
	line("ingest rate\t%.0f spans/s\t(%.2f s from the first Write to the end of the final Flush, which took %.2f s)",
		r.SpansPerSecond(), in.Wall.Seconds(), in.Flush.Seconds())
	line("cpu\t%.2f µs/span\t(%.2f s user+sys, %.2f cores busy)",
		r.CPUMicrosPerSpan(), in.CPU.Seconds(), in.CPU.Seconds()/in.Wall.Seconds())
	line("peak RSS\t%.0f MiB\t(%.0f MiB when the store was opened)", float64(r.RSSPeak)/mib, float64(r.RSSBefore.Current)/mib)
	line("flushes, blocks\t%d, %d", r.Flushes, r.Blocks)
	line("")
	line("on disk after Close\tB/span allocated\tB/span apparent\tMiB allocated\tfiles")
	usage := func(name string, u DiskUsage) {
		line("%s\t%.1f\t%.1f\t%.1f\t%d", name, r.PerSpan(u.Allocated), r.PerSpan(u.Apparent), float64(u.Allocated)/mib, u.Files)
	}
	usage("store", r.Disk)
	for _, s := range r.Subdirs {
		usage("  "+s.Name, s.DiskUsage)
	}
	line("")
	line("badger entries\tB/span\tshare\tkeys\t(key + value bytes as written)")
	total := r.Keys.Total()
	for _, k := range []struct {
		name string
		b    KindBytes
	}{
		{"row groups", r.Keys.RowGroups},
		{"postings dictionaries", r.Keys.PostingsDict},
		{"postings", r.Keys.Postings},
		{"block metas", r.Keys.BlockMeta},
		{"store meta", r.Keys.StoreMeta},
	} {
		line("  %s\t%.2f\t%.1f%%\t%d", k.name, r.PerSpan(k.b.Bytes), 100*float64(k.b.Bytes)/float64(max(total, 1)), k.b.Keys)
	}
	line("  total\t%.2f", r.PerSpan(total))
	line("OTLP protobuf input\t%.1f\t(the batch file, for comparison)", r.PerSpan(r.InputBytes))
	return tw.Flush()
}

var markdownColumns = []string{
	"date", "workload", "spans", "writers", "batch", "sync", "head spans",
	"spans/s", "CPU-µs/span", "B/span alloc", "B/span apparent",
	"row groups B/span", "postings B/span", "meta B/span",
	"peak RSS MiB", "flushes", "blocks",
}

// MarkdownHeader returns the header and separator lines of the table that
// MarkdownRow's rows belong to.
func MarkdownHeader() string {
	return "| " + strings.Join(markdownColumns, " | ") + " |\n" +
		strings.Repeat("|---", len(markdownColumns)) + "|\n"
}

// MarkdownRow returns the result as one markdown table row.
func (r *Result) MarkdownRow() string {
	k := r.Keys
	cells := []string{
		r.Date.Format(time.DateOnly), r.Workload.String(), fmt.Sprint(r.Ingest.Accepted),
		fmt.Sprint(r.Concurrency), fmt.Sprint(r.Batch), r.Sync, fmt.Sprint(r.HeadSpans),
		fmt.Sprintf("%.0f", r.SpansPerSecond()), fmt.Sprintf("%.2f", r.CPUMicrosPerSpan()),
		fmt.Sprintf("%.1f", r.PerSpan(r.Disk.Allocated)), fmt.Sprintf("%.1f", r.PerSpan(r.Disk.Apparent)),
		fmt.Sprintf("%.1f", r.PerSpan(k.RowGroups.Bytes)),
		fmt.Sprintf("%.1f", r.PerSpan(k.PostingsDict.Bytes+k.Postings.Bytes)),
		fmt.Sprintf("%.2f", r.PerSpan(k.BlockMeta.Bytes+k.StoreMeta.Bytes)),
		fmt.Sprintf("%.0f", float64(r.RSSPeak)/mib), fmt.Sprint(r.Flushes), fmt.Sprint(r.Blocks),
	}
	return "| " + strings.Join(cells, " | ") + " |\n"
}

// AppendMarkdown appends the result's row to the file at path, starting
// the file with the table header when it is new or empty.
func (r *Result) AppendMarkdown(path string) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("append result: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("append result: %w", cerr)
		}
	}()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("append result: %w", err)
	}
	row := r.MarkdownRow()
	if fi.Size() == 0 {
		row = MarkdownHeader() + row
	}
	if _, err := f.WriteString(row); err != nil {
		return fmt.Errorf("append result: %w", err)
	}
	return nil
}

// appendFile appends text to the file at path, creating it if need be.
func appendFile(path, text string) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("append result: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("append result: %w", cerr)
		}
	}()
	if _, err := f.WriteString(text); err != nil {
		return fmt.Errorf("append result: %w", err)
	}
	return nil
}
