package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
)

func demoCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Write a small shop's trace into a store, flush it to disk and read it back",
		Example: `  tracedb demo
  tracedb demo --dir /tmp/tracedb-demo`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), dir)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "tracedb-data", "data directory")
	return cmd
}

// demoSpan is one span of the demo trace: who calls whom, when, how long.
type demoSpan struct {
	service, op string
	kind        ptrace.SpanKind
	parent      int // index of the parent span; -1 for the root
	startMs     int
	durMs       int
	err         bool
	attrs       map[string]string
}

var demoTrace = []demoSpan{
	{"frontend", "GET /checkout", ptrace.SpanKindServer, -1, 0, 182, false, map[string]string{"http.method": "GET", "http.route": "/checkout"}},
	{"gateway", "POST /api/orders", ptrace.SpanKindClient, 0, 3, 170, false, nil},
	{"cart", "GetCart", ptrace.SpanKindServer, 1, 6, 21, false, map[string]string{"user.id": "u-4711"}},
	{"cache", "GET cart:u-4711", ptrace.SpanKindClient, 2, 7, 2, false, map[string]string{"db.system": "redis"}},
	{"payment", "Charge", ptrace.SpanKindServer, 1, 30, 140, true, map[string]string{"payment.provider": "acme-pay"}},
	{"database", "INSERT orders", ptrace.SpanKindClient, 4, 35, 95, false, map[string]string{"db.system": "postgresql"}},
}

func runDemo(ctx context.Context, out io.Writer, dir string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	store, err := db.Open(dir, db.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer store.Close()

	now := time.Now()
	var traceID encoding.TraceID
	if _, err := rand.Read(traceID[:]); err != nil {
		return err
	}
	td := ptrace.NewTraces()
	ids := make([]pcommon.SpanID, len(demoTrace))
	for i, d := range demoTrace {
		copy(ids[i][:], traceID[:7])
		ids[i][7] = byte(i + 1)
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", d.service)
		s := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
		s.SetTraceID(pcommon.TraceID(traceID))
		s.SetSpanID(ids[i])
		if d.parent >= 0 {
			s.SetParentSpanID(ids[d.parent])
		}
		s.SetName(d.op)
		s.SetKind(d.kind)
		start := now.Add(time.Duration(d.startMs) * time.Millisecond)
		s.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Duration(d.durMs) * time.Millisecond)))
		for k, v := range d.attrs {
			s.Attributes().PutStr(k, v)
		}
		if d.err {
			s.Status().SetCode(ptrace.StatusCodeError)
			s.Status().SetMessage("card declined")
		}
	}
	res, err := store.Write(ctx, td)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "wrote trace %s: %d spans accepted, %d rejected (store in %s)\n", traceID, res.Accepted, len(res.Rejected), dir)
	if err := store.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out, "flushed to a columnar block; reading it back:")
	var spans []*encoding.Span
	for s, err := range store.TraceSpans(ctx, traceID, db.TimeRange{}) {
		if err != nil {
			return err
		}
		spans = append(spans, s)
	}
	printTree(out, spans)
	return nil
}

// printTree prints spans as an indented tree under their parents.
func printTree(out io.Writer, spans []*encoding.Span) {
	children := map[encoding.SpanID][]*encoding.Span{}
	var roots []*encoding.Span
	byID := map[encoding.SpanID]bool{}
	for _, s := range spans {
		byID[s.SpanID] = true
	}
	for _, s := range spans {
		if s.ParentSpanID.IsZero() || !byID[s.ParentSpanID] {
			roots = append(roots, s)
		} else {
			children[s.ParentSpanID] = append(children[s.ParentSpanID], s)
		}
	}
	var walk func(s *encoding.Span, depth int)
	walk = func(s *encoding.Span, depth int) {
		mark := ""
		if s.StatusCode == encoding.StatusError {
			mark = "  ERROR " + s.StatusMessage
		}
		fmt.Fprintf(out, "  %s%-*s %-10s %8s%s\n", strings.Repeat("  ", depth), 24-2*depth, s.Name, s.ServiceName(),
			time.Duration(s.Duration()).Round(time.Millisecond), mark)
		for _, c := range children[s.SpanID] {
			walk(c, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
}
