package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/index"
)

// File formats of export and import:
//
//   - json: OTLP JSON (ptrace.JSONMarshaler), one TracesData per line.
//     Import also reads any sequence of TracesData objects, so a whole
//     file holding one pretty-printed TracesData is fine.
//   - proto: OTLP protobuf TracesData messages, each preceded by its
//     length as a uvarint (the length-delimited framing of protobuf's
//     writeDelimitedTo).
//   - proto-file (import only): the whole file is one TracesData message,
//     read into memory at once.
const (
	formatJSON      = "json"
	formatProto     = "proto"
	formatProtoFile = "proto-file"
	formatAuto      = "auto"
)

// Limits of export and import.
const (
	defaultExportBatchSpans = 1000
	// maxDelimitedMessage bounds one length-delimited message on import,
	// so a corrupt length cannot ask for unbounded memory.
	maxDelimitedMessage = 256 << 20
	// progressEvery is how often the progress bar is redrawn at most.
	progressEvery = 200 * time.Millisecond
	// progressStep is how many spans export reads between two moves of
	// the progress bar.
	progressStep = 1024
)

type exportOpts struct {
	store  storeFlags
	rng    rangeFlags
	format string
	output string
	batch  int
}

func exportCmd() *cobra.Command {
	var o exportOpts
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write the spans of a time range as OTLP JSON lines or length-delimited OTLP protobuf",
		Long: `Write every span whose start is in the time range (all by default) as OTLP:
JSON, one TracesData per line, or with --format proto, TracesData protobuf
messages each preceded by its uvarint length. The store is read block by
block, so memory stays bounded; a trace's spans may be spread over several
TracesData. Exact duplicates stored twice (retried writes) are written twice;
reads of the imported store show them once, as they do here.`,
		Example: `  tracedb export > all.jsonl
  tracedb export --start 2024-05-01T00:00:00Z --end 2024-05-02T00:00:00Z -o may1.jsonl
  tracedb export --format proto -o backup.otlp`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		}),
	}
	fs := cmd.Flags()
	o.store.bind(fs)
	o.rng.bind(fs)
	fs.StringVar(&o.format, "format", formatJSON, "json or proto")
	fs.StringVarP(&o.output, "output", "o", "-", `file to write; "-" is stdout`)
	fs.IntVar(&o.batch, "batch-spans", defaultExportBatchSpans, "spans per TracesData")
	return cmd
}

func (o *exportOpts) run(ctx context.Context, stdout, stderr io.Writer) (err error) {
	if o.format != formatJSON && o.format != formatProto {
		return fmt.Errorf("--format %q: want json or proto", o.format)
	}
	if o.batch < 1 {
		return fmt.Errorf("--batch-spans %d: want at least 1", o.batch)
	}
	tr, err := o.rng.timeRange(time.Now())
	if err != nil {
		return err
	}
	out := stdout
	if o.output != "-" {
		f, err := os.Create(o.output)
		if err != nil {
			return err
		}
		defer func() {
			if cerr := f.Close(); cerr != nil && err == nil {
				err = cerr
			}
		}()
		out = f
	}
	return o.store.withStore(ctx, false, func(ctx context.Context, store *db.DB) error {
		bw := bufio.NewWriterSize(out, 1<<20)
		n, err := exportSpans(ctx, store, tr, bw, o.format, o.batch, stderr)
		if err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		if o.output != "-" {
			fmt.Fprintf(stderr, "exported %d spans to %s\n", n, o.output)
		}
		return nil
	})
}

// exportSpans writes the spans of the context's tenant that start in tr
// to w in format, batch spans per TracesData, and returns their number.
func exportSpans(ctx context.Context, store *db.DB, tr db.TimeRange, w io.Writer, format string, batch int, stderr io.Writer) (uint64, error) {
	snap, err := store.Snapshot(ctx)
	if err != nil {
		return 0, err
	}
	defer snap.Release()
	end := tr.End
	if end == 0 {
		end = ^uint64(0)
	}
	readers := slices.Clone(snap.Readers)
	slices.SortStableFunc(readers, func(a, b db.BlockReader) int {
		ai, bi := a.Info(), b.Info()
		return int(min(max(int64(ai.MinStart)-int64(bi.MinStart), -1), 1))
	})
	var todo uint64
	for _, r := range readers {
		todo += r.Info().Spans
	}
	prog := newProgress(stderr, "export", int64(min(todo, 1<<63-1)), false, "spans")
	defer prog.clear() // on an error, before it is printed
	var (
		done, written uint64
		buf           []byte
		b             = encoding.NewTracesBuilder()
	)
	emit := func() error {
		td := b.Take()
		var err error
		if buf, err = marshalTraces(buf[:0], td, format); err != nil {
			return err
		}
		_, err = w.Write(buf)
		return err
	}
	for _, r := range readers {
		info := r.Info()
		if info.Spans == 0 || info.MaxStart < tr.Start || info.MinStart > end {
			done += info.Spans
			prog.set(int64(done))
			continue
		}
		ords := index.NewRangePostings(0, uint32(min(info.Spans, 1<<32-1)))
		err := r.Spans(ctx, ords, func(_ uint32, s *encoding.Span) error {
			if done++; done%progressStep == 0 {
				prog.set(int64(done))
			}
			if s.StartUnixNano < tr.Start || s.StartUnixNano > end {
				return nil
			}
			b.Add(s)
			written++
			if b.Len() >= batch {
				return emit()
			}
			return nil
		})
		if err != nil {
			return written, fmt.Errorf("export: %s: %w", readerLabel(info), err)
		}
	}
	if b.Len() > 0 {
		if err := emit(); err != nil {
			return written, err
		}
	}
	prog.finish(fmt.Sprintf("%d spans written", written))
	return written, nil
}

func readerLabel(info db.BlockInfo) string {
	if info.Head {
		return "head"
	}
	return "block " + info.ID.String()
}

// marshalTraces appends td to dst in format: a JSON line, or a
// length-delimited protobuf message.
func marshalTraces(dst []byte, td ptrace.Traces, format string) ([]byte, error) {
	if format == formatJSON {
		var m ptrace.JSONMarshaler
		b, err := m.MarshalTraces(td)
		if err != nil {
			return dst, fmt.Errorf("encode OTLP JSON: %w", err)
		}
		return append(append(dst, b...), '\n'), nil
	}
	var m ptrace.ProtoMarshaler
	b, err := m.MarshalTraces(td)
	if err != nil {
		return dst, fmt.Errorf("encode OTLP protobuf: %w", err)
	}
	return append(binary.AppendUvarint(dst, uint64(len(b))), b...), nil
}

type importOpts struct {
	store  storeFlags
	format string
}

func importCmd() *cobra.Command {
	var o importOpts
	cmd := &cobra.Command{
		Use:   "import <file>",
		Short: "Write the spans of an OTLP JSON or protobuf file into the store",
		Long: `Write the spans of an OTLP file into the store (created if need be), one
TracesData at a time. Formats: json (TracesData objects, one per line or a
whole file of one), proto (TracesData messages each preceded by its uvarint
length, as export writes), proto-file (the whole file is one TracesData).
auto takes json when the file starts with '{', else proto. "-" reads stdin.
Spans the store rejects (zero IDs, end before start, over the size limits) are
reported, the rest are stored, and the exit code is non-zero.`,
		Example: `  tracedb import all.jsonl
  tracedb import --format proto backup.otlp --data-dir /tmp/restored
  tracedb trace 4bf92f3577b34da6a3ce929d0e0e4736 -o otlp-json | tracedb import - --tenant copy`,
		Args: cobra.ExactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			return o.run(cmd.Context(), cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr(), args[0])
		}),
	}
	o.store.bind(cmd.Flags())
	cmd.Flags().StringVar(&o.format, "format", formatAuto, "auto, json, proto or proto-file")
	return cmd
}

// maxRejectionsShown bounds the rejected spans import names one by one.
const maxRejectionsShown = 10

func (o *importOpts) run(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, path string) (err error) {
	switch o.format {
	case formatAuto, formatJSON, formatProto, formatProtoFile:
	default:
		return fmt.Errorf("--format %q: want auto, json, proto or proto-file", o.format)
	}
	in, size := stdin, int64(-1)
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			size = st.Size()
		}
		in = f
	}
	cr := &countingReader{r: in}
	br := bufio.NewReaderSize(cr, 1<<20)
	format := o.format
	if format == formatAuto {
		if format, err = sniffFormat(br); err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
	}
	return o.store.withStore(ctx, true, func(ctx context.Context, store *db.DB) error {
		prog := newProgress(stderr, "import", size, size > 0, "spans")
		defer prog.clear() // on an error, before it is printed
		var accepted, rejected, messages int
		start := time.Now()
		err := readTraces(br, format, func(td ptrace.Traces) error {
			messages++
			res, err := store.Write(ctx, td)
			if err != nil {
				return fmt.Errorf("TracesData %d: %w", messages, err)
			}
			accepted += res.Accepted
			for _, r := range res.Rejected {
				if rejected < maxRejectionsShown {
					prog.clear()
					fmt.Fprintf(stderr, "TracesData %d: %v\n", messages, r)
				}
				rejected++
			}
			if size > 0 {
				prog.set(cr.n - int64(br.Buffered()))
			} else {
				prog.set(int64(accepted))
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("import %s: %w", path, err)
		}
		prog.finish("")
		fmt.Fprintf(stdout, "imported %d spans from %d TracesData in %s into %s (tenant %s)\n", accepted, messages,
			time.Since(start).Round(time.Millisecond), o.store.dataDir, o.store.tenant)
		if rejected > 0 {
			return fmt.Errorf("%d spans rejected (the first %d are listed above)", rejected, min(rejected, maxRejectionsShown))
		}
		return nil
	})
}

// sniffFormat tells OTLP JSON (the first byte that is not white space is
// '{') from length-delimited protobuf.
func sniffFormat(br *bufio.Reader) (string, error) {
	for n := 1; ; n++ {
		b, err := br.Peek(n)
		if len(b) < n {
			if err == io.EOF || errors.Is(err, bufio.ErrBufferFull) {
				return formatJSON, nil // empty or all white space: nothing to import either way
			}
			return "", err
		}
		switch b[n-1] {
		case ' ', '\t', '\r', '\n':
			continue
		case '{':
			return formatJSON, nil
		}
		return formatProto, nil
	}
}

// readTraces decodes r in format and calls fn with each TracesData, in
// order, stopping at fn's first error.
func readTraces(r *bufio.Reader, format string, fn func(ptrace.Traces) error) error {
	switch format {
	case formatJSON:
		var u ptrace.JSONUnmarshaler
		dec := json.NewDecoder(r)
		for n := 1; ; n++ {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err == io.EOF {
				return nil
			} else if err != nil {
				return fmt.Errorf("TracesData %d: %w", n, err)
			}
			td, err := u.UnmarshalTraces(raw)
			if err != nil {
				return fmt.Errorf("TracesData %d: %w", n, err)
			}
			if err := fn(td); err != nil {
				return err
			}
		}
	case formatProto:
		var (
			u   ptrace.ProtoUnmarshaler
			buf []byte
		)
		for n := 1; ; n++ {
			size, err := binary.ReadUvarint(r)
			if err == io.EOF {
				return nil
			} else if err != nil {
				return fmt.Errorf("TracesData %d: length: %w", n, err)
			}
			if size > maxDelimitedMessage {
				return fmt.Errorf("TracesData %d: length %d is over the limit of %d bytes (not length-delimited OTLP protobuf? try --format proto-file or json)", n, size, maxDelimitedMessage)
			}
			buf = slices.Grow(buf[:0], int(size))[:size]
			if _, err := io.ReadFull(r, buf); err != nil {
				return fmt.Errorf("TracesData %d: truncated: %w", n, err)
			}
			td, err := u.UnmarshalTraces(buf)
			if err != nil {
				return fmt.Errorf("TracesData %d: %w", n, err)
			}
			if err := fn(td); err != nil {
				return err
			}
		}
	default: // formatProtoFile
		b, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		var u ptrace.ProtoUnmarshaler
		td, err := u.UnmarshalTraces(b)
		if err != nil {
			return fmt.Errorf("TracesData: %w", err)
		}
		return fn(td)
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// progress draws a progress bar (github.com/schollz/progressbar) on w,
// only when w is a terminal: piped or redirected stderr, and the tests,
// stay clean and deterministic.
type progress struct {
	w    io.Writer
	what string
	bar  *progressbar.ProgressBar // nil when w is not a terminal
}

// newProgress returns a bar counting up to total (-1: unknown) units,
// bytes when bytes is set, else unit.
func newProgress(w io.Writer, what string, total int64, bytes bool, unit string) *progress {
	p := &progress{w: w, what: what}
	if !isTerminal(w) {
		return p
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(what),
		progressbar.OptionThrottle(progressEvery),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionSetPredictTime(total > 0),
		progressbar.OptionSetElapsedTime(true),
		// No spinner ticker: it would be a goroutine that only a finished
		// bar stops, and a failed import never finishes its bar.
		progressbar.OptionSetSpinnerChangeInterval(0),
	}
	if bytes {
		opts = append(opts, progressbar.OptionShowBytes(true), progressbar.OptionUseIECUnits(true))
	} else {
		opts = append(opts, progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString(unit))
	}
	p.bar = progressbar.NewOptions64(total, opts...)
	return p
}

// set moves the bar to n units done.
func (p *progress) set(n int64) {
	if p.bar != nil {
		_ = p.bar.Set64(n)
	}
}

// clear removes the bar, so that another message can be printed; the next
// set draws it again.
func (p *progress) clear() {
	if p.bar != nil {
		_ = p.bar.Clear()
	}
}

// finish removes the bar and prints a last line (none when line is ""),
// ended by a newline.
func (p *progress) finish(line string) {
	if p.bar == nil {
		return
	}
	_ = p.bar.Exit()
	_ = p.bar.Clear()
	if line != "" {
		_, _ = fmt.Fprintf(p.w, "%s: %s\n", p.what, line)
	}
}
