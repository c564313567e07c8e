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
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/server/analytics"
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
reads of the imported store show them once, as they do here. With
--server, a running tracedb serve streams the spans (its analytics API) for
--tenant, in the same TracesData; --batch-spans is then at most 10000.`,
		Example: `  tracedb export > all.jsonl
  tracedb export --start 2024-05-01T00:00:00Z --end 2024-05-02T00:00:00Z -o may1.jsonl
  tracedb export --format proto -o backup.otlp
  tracedb export --server 127.0.0.1:17271 --tenant acme -o acme.jsonl`,
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
	bw := bufio.NewWriterSize(out, 1<<20)
	var buf []byte
	write := func(td ptrace.Traces) error {
		var err error
		if buf, err = marshalTraces(buf[:0], td, o.format); err != nil {
			return err
		}
		_, err = bw.Write(buf)
		return err
	}
	var n uint64
	if o.store.remote.set() {
		if o.batch > analytics.DefaultMaxChunk {
			return fmt.Errorf("--batch-spans %d: a server sends at most %d spans per TracesData", o.batch, analytics.DefaultMaxChunk)
		}
		err = o.store.withRemote(ctx, func(ctx context.Context, r *remote) error {
			prog := newProgress(stderr, "export", -1, false, "spans")
			defer prog.clear() // on an error, before it is printed
			err := r.analytics.Export(ctx, tr, o.batch, func(td ptrace.Traces) error {
				n += uint64(td.SpanCount())
				prog.set(int64(min(n, 1<<63-1)))
				return write(td)
			})
			if err == nil {
				prog.finish(fmt.Sprintf("%d spans written", n))
			}
			return err
		})
	} else {
		err = o.store.withStore(ctx, false, func(ctx context.Context, store *db.DB) error {
			var err error
			n, err = exportSpans(ctx, store, tr, o.batch, write, stderr)
			return err
		})
	}
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
}

// exportSpans passes the spans of the context's tenant that start in tr to
// write, batch spans per TracesData, and returns their number. The server's
// analytics API cuts its Export stream the same way (db.DB.ScanSpans and
// encoding.TracesBuilder), so that --server writes the same TracesData.
func exportSpans(ctx context.Context, store *db.DB, tr db.TimeRange, batch int, write func(ptrace.Traces) error, stderr io.Writer) (uint64, error) {
	var prog *progress
	defer func() {
		if prog != nil {
			prog.clear() // on an error, before it is printed
		}
	}()
	b := encoding.NewTracesBuilder()
	written, err := store.ScanSpans(ctx, tr, func(s *encoding.Span) error {
		b.Add(s)
		if b.Len() >= batch {
			return write(b.Take())
		}
		return nil
	}, func(done, total uint64) {
		if prog == nil {
			prog = newProgress(stderr, "export", int64(min(total, 1<<63-1)), false, "spans")
		}
		prog.set(int64(min(done, 1<<63-1)))
	})
	if err != nil {
		return written, fmt.Errorf("export: %w", err)
	}
	if b.Len() > 0 {
		if err := write(b.Take()); err != nil {
			return written, err
		}
	}
	if prog != nil {
		prog.finish(fmt.Sprintf("%d spans written", written))
	}
	return written, nil
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
reported, the rest are stored, and the exit code is non-zero. With --server,
each TracesData is sent to a running tracedb serve as an OTLP export on its
storage listener (the OTLP gRPC TraceService it serves beside the storage
API), for --tenant; a TracesData over the server's message limit
(limits.max_message_bytes) is refused whole.`,
		Example: `  tracedb import all.jsonl
  tracedb import backup.jsonl --server 127.0.0.1:17271 --tenant acme
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

// maxRejectionsShown bounds the rejections import prints one by one.
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
	if o.store.remote.set() {
		return o.store.withRemote(ctx, func(ctx context.Context, r *remote) error {
			client := ptraceotlp.NewGRPCClient(r.conn)
			return o.load(path, br, cr, size, format, stdout, stderr, "server "+o.store.remote.addr,
				func(td ptrace.Traces) (int, int, []string, error) {
					n := td.SpanCount()
					res, err := client.Export(ctx, ptraceotlp.NewExportRequestFromTraces(td))
					if err != nil {
						return 0, 0, nil, err
					}
					ps := res.PartialSuccess()
					rejected := int(min(max(ps.RejectedSpans(), 0), int64(n)))
					var why []string
					if rejected > 0 {
						why = append(why, fmt.Sprintf("%d spans rejected: %s", rejected, ps.ErrorMessage()))
					}
					return n - rejected, rejected, why, nil
				})
		})
	}
	return o.store.withStore(ctx, true, func(ctx context.Context, store *db.DB) error {
		return o.load(path, br, cr, size, format, stdout, stderr, o.store.dataDir, func(td ptrace.Traces) (int, int, []string, error) {
			res, err := store.Write(ctx, td)
			if err != nil {
				return 0, 0, nil, err
			}
			why := make([]string, len(res.Rejected))
			for i, r := range res.Rejected {
				why[i] = fmt.Sprint(r)
			}
			return res.Accepted, len(res.Rejected), why, nil
		})
	})
}

// load reads the TracesData of br (format, size bytes or -1 when not
// known, counted by cr) and hands each to write, which stores it and
// returns the spans accepted and rejected, and a line saying why for each
// rejected span (locally) or each TracesData with rejections (from a
// server, which says why in one message). It prints the first few lines,
// then a summary naming into, and fails when a span was rejected.
func (o *importOpts) load(path string, br *bufio.Reader, cr *countingReader, size int64, format string, stdout, stderr io.Writer,
	into string, write func(ptrace.Traces) (accepted, rejected int, why []string, err error)) error {
	prog := newProgress(stderr, "import", size, size > 0, "spans")
	defer prog.clear() // on an error, before it is printed
	var accepted, rejected, shown, messages int
	start := time.Now()
	err := readTraces(br, format, func(td ptrace.Traces) error {
		messages++
		n, bad, why, err := write(td)
		if err != nil {
			return fmt.Errorf("TracesData %d: %w", messages, err)
		}
		accepted += n
		rejected += bad
		for _, line := range why {
			if shown < maxRejectionsShown {
				prog.clear()
				fmt.Fprintf(stderr, "TracesData %d: %s\n", messages, line)
				shown++
			}
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
		time.Since(start).Round(time.Millisecond), into, o.store.tenant)
	if rejected > 0 {
		return fmt.Errorf("%d spans rejected (the first %d reasons are listed above)", rejected, shown)
	}
	return nil
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
