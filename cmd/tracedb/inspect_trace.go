package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracedb/tracedb/cmd/tracedb/internal/render"
	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/index"
	"github.com/tracedb/tracedb/query"
)

// defaultMaxWaterfallSpans bounds the spans a waterfall holds in memory.
const defaultMaxWaterfallSpans = 10_000

type traceOpts struct {
	store    storeFlags
	output   string
	width    int
	color    string
	maxSpans int
}

func traceCmd() *cobra.Command {
	var o traceOpts
	cmd := &cobra.Command{
		Use:   "trace <trace-id>",
		Short: "Show one trace as a waterfall (or as JSON or OTLP JSON)",
		Long: `Show one trace as a waterfall: the span tree, each span's service and
operation, a bar on the trace's time line, its duration; '!' marks an error,
'*' and a solid bar the critical path (the spans the trace's end waited on).
--output json prints the spans as JSON; --output otlp-json prints OTLP JSON,
one TracesData per line, which tracedb import reads back.`,
		Example: `  tracedb trace 4bf92f3577b34da6a3ce929d0e0e4736
  tracedb trace 4bf92f3577b34da6a3ce929d0e0e4736 --width 160 --data-dir /var/lib/tracedb
  tracedb trace 4bf92f3577b34da6a3ce929d0e0e4736 --output otlp-json > trace.json`,
		Args: cobra.ExactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			id, err := encoding.ParseTraceID(args[0])
			if err != nil {
				return err
			}
			return o.run(cmd.Context(), cmd.OutOrStdout(), id)
		}),
	}
	fs := cmd.Flags()
	o.store.bind(fs)
	fs.StringVarP(&o.output, "output", "o", "text", "text (a waterfall), json or otlp-json")
	fs.IntVar(&o.width, "width", 0, "columns of the waterfall (default $COLUMNS, else 120)")
	fs.StringVar(&o.color, "color", "auto", "bold critical path and red errors: auto (on a terminal), always or never")
	fs.IntVar(&o.maxSpans, "max-spans", defaultMaxWaterfallSpans, "most spans drawn (text and json); the earliest are kept")
	return cmd
}

func (o *traceOpts) run(ctx context.Context, out io.Writer, id encoding.TraceID) error {
	switch o.output {
	case "text", "json", "otlp-json":
	default:
		return fmt.Errorf("--output %q: want text, json or otlp-json", o.output)
	}
	color, err := useColor(o.color, out)
	if err != nil {
		return err
	}
	if o.store.remote.set() {
		return o.store.withRemote(ctx, func(ctx context.Context, r *remote) error {
			var otlp io.Writer
			if o.output == "otlp-json" {
				otlp = out
			}
			spans, more, err := remoteTrace(ctx, r, id, o.maxSpans, otlp)
			if err != nil {
				return err
			}
			if otlp != nil {
				return nil
			}
			if len(spans) == 0 {
				return fmt.Errorf("trace %s not found on %s (tenant %s)", id, o.store.remote.addr, o.store.tenant)
			}
			if o.output == "json" {
				return writeTraceJSON(out, id, spans, more)
			}
			return writeWaterfall(out, id, spans, more, outputWidth(o.width), color)
		})
	}
	return o.store.withStore(ctx, false, func(ctx context.Context, store *db.DB) error {
		if o.output == "otlp-json" {
			return writeOTLPJSON(ctx, out, store, id)
		}
		spans, more, err := readTrace(ctx, store, id, o.maxSpans)
		if err != nil {
			return err
		}
		if len(spans) == 0 {
			return fmt.Errorf("trace %s not found in %s (tenant %s)", id, o.store.dataDir, o.store.tenant)
		}
		if o.output == "json" {
			return writeTraceJSON(out, id, spans, more)
		}
		return writeWaterfall(out, id, spans, more, outputWidth(o.width), color)
	})
}

// readTrace reads up to limit spans of trace id (limit <= 0: all), in the
// store's order (start time, span ID); more reports spans left out.
func readTrace(ctx context.Context, store *db.DB, id encoding.TraceID, limit int) (spans []*encoding.Span, more bool, err error) {
	for s, err := range store.TraceSpans(ctx, id, db.TimeRange{}) {
		if err != nil {
			return nil, false, fmt.Errorf("read trace %s: %w", id, err)
		}
		if limit > 0 && len(spans) == limit {
			return spans, true, nil
		}
		spans = append(spans, s)
	}
	return spans, false, nil
}

// writeOTLPJSON writes the trace as OTLP JSON, one TracesData per chunk
// the store yields, one per line.
func writeOTLPJSON(ctx context.Context, out io.Writer, store *db.DB, id encoding.TraceID) error {
	var m ptrace.JSONMarshaler
	n := 0
	for td, err := range store.GetTrace(ctx, id, db.TimeRange{}) {
		if err != nil {
			return fmt.Errorf("read trace %s: %w", id, err)
		}
		b, err := m.MarshalTraces(td)
		if err != nil {
			return fmt.Errorf("encode trace %s: %w", id, err)
		}
		if _, err := out.Write(append(b, '\n')); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("trace %s not found", id)
	}
	return nil
}

// writeWaterfall writes a header line and the trace's waterfall.
func writeWaterfall(out io.Writer, id encoding.TraceID, spans []*encoding.Span, more bool, width int, color bool) error {
	sum := summarize(spans)
	fmt.Fprintf(out, "trace %s\nstart %s  duration %s  %s  %s", id, formatTime(sum.start),
		render.FormatDuration(sum.end-sum.start), plural(len(spans), "span"), plural(sum.services, "service"))
	if sum.errors > 0 {
		fmt.Fprintf(out, "  %s", plural(sum.errors, "error"))
	}
	fmt.Fprintln(out)
	rows := make([]render.Span, len(spans))
	for i, s := range spans {
		rows[i] = render.Span{
			ID: s.SpanID.String(), Service: s.ServiceName(), Name: s.Name,
			Start: s.StartUnixNano, End: s.EndUnixNano, Error: s.StatusCode == encoding.StatusError,
		}
		if !s.ParentSpanID.IsZero() {
			rows[i].Parent = s.ParentSpanID.String()
		}
	}
	if err := render.Waterfall(out, rows, render.WaterfallOptions{Width: width, Color: color}); err != nil {
		return err
	}
	if more {
		_, err := fmt.Fprintf(out, "(only the first %d spans are shown; raise --max-spans to see more)\n", len(spans))
		return err
	}
	return nil
}

type traceSum struct {
	start, end       uint64
	services, errors int
}

func summarize(spans []*encoding.Span) traceSum {
	sum := traceSum{start: spans[0].StartUnixNano}
	svcs := map[string]bool{}
	for _, s := range spans {
		sum.start = min(sum.start, s.StartUnixNano)
		sum.end = max(sum.end, s.EndUnixNano, s.StartUnixNano)
		svcs[s.ServiceName()] = true
		if s.StatusCode == encoding.StatusError {
			sum.errors++
		}
	}
	sum.services = len(svcs)
	return sum
}

// jsonSpan is a span in `trace --output json`: the fields a reader of a
// trace wants, attribute values in their string form (index.ValueString).
type jsonSpan struct {
	SpanID        string            `json:"spanId"`
	ParentSpanID  string            `json:"parentSpanId,omitempty"`
	Service       string            `json:"service"`
	Operation     string            `json:"operation"`
	Kind          string            `json:"kind"`
	Start         string            `json:"start"`
	DurationNanos uint64            `json:"durationNanos"`
	Status        string            `json:"status"`
	StatusMessage string            `json:"statusMessage,omitempty"`
	Attributes    map[string]string `json:"attributes,omitempty"`
	Resource      map[string]string `json:"resource,omitempty"`
	Events        []jsonEvent       `json:"events,omitempty"`
	Links         []jsonLink        `json:"links,omitempty"`
}

type jsonEvent struct {
	Time       string            `json:"time"`
	Name       string            `json:"name"`
	Attributes map[string]string `json:"attributes,omitempty"`
}

type jsonLink struct {
	TraceID    string            `json:"traceId"`
	SpanID     string            `json:"spanId"`
	Attributes map[string]string `json:"attributes,omitempty"`
}

type jsonTrace struct {
	TraceID   string     `json:"traceId"`
	Truncated bool       `json:"truncated,omitempty"`
	Spans     []jsonSpan `json:"spans"`
}

func writeTraceJSON(out io.Writer, id encoding.TraceID, spans []*encoding.Span, more bool) error {
	t := jsonTrace{TraceID: id.String(), Truncated: more, Spans: make([]jsonSpan, len(spans))}
	for i, s := range spans {
		js := jsonSpan{
			SpanID: s.SpanID.String(), Service: s.ServiceName(), Operation: s.Name,
			Kind: kindName(s.Kind), Start: formatTimeNano(s.StartUnixNano), DurationNanos: s.Duration(),
			Status: statusName(s.StatusCode), StatusMessage: s.StatusMessage, Attributes: attrMap(s.Attrs),
		}
		if !s.ParentSpanID.IsZero() {
			js.ParentSpanID = s.ParentSpanID.String()
		}
		if s.Resource != nil {
			js.Resource = attrMap(s.Resource.Attrs)
		}
		for _, e := range s.Events {
			js.Events = append(js.Events, jsonEvent{Time: formatTimeNano(e.TimeUnixNano), Name: e.Name, Attributes: attrMap(e.Attrs)})
		}
		for _, l := range s.Links {
			js.Links = append(js.Links, jsonLink{TraceID: l.TraceID.String(), SpanID: l.SpanID.String(), Attributes: attrMap(l.Attrs)})
		}
		t.Spans[i] = js
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(t)
}

func attrMap(kvs []encoding.KeyValue) map[string]string {
	if len(kvs) == 0 {
		return nil
	}
	m := make(map[string]string, len(kvs))
	for i := range kvs {
		v, _ := index.ValueString(&kvs[i].Value)
		m[kvs[i].Key] = v
	}
	return m
}

// formatTimeNano prints a Unix ns time in UTC, RFC 3339 to the nanosecond.
func formatTimeNano(ns uint64) string {
	return time.Unix(0, int64(min(ns, 1<<63-1))).UTC().Format(time.RFC3339Nano)
}

// kindName is a span kind's word as filters spell it ("server").
func kindName(k int32) string {
	if kinds := query.SpanKinds(); k >= 0 && int(k) < len(kinds) {
		return kinds[k]
	}
	return fmt.Sprint(k)
}

// statusName is a status code's word as filters spell it ("error").
func statusName(c int32) string {
	if st := query.SpanStatuses(); c >= 0 && int(c) < len(st) {
		return st[c]
	}
	return fmt.Sprint(c)
}

// kindByName parses a span kind's word (see kindName).
func kindByName(s string) (int32, bool) {
	i := slices.Index(query.SpanKinds(), strings.ToLower(s))
	return int32(i), i >= 0
}

// plural is "1 span", "2 spans".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
