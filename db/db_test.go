package db

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/index"
)

// testOptions are small enough that tests cross flushes and row groups.
func testOptions() Options {
	return Options{Sync: SyncNone, RowGroupSpans: 16}
}

func openTest(t testing.TB, dir string, opts Options) *DB {
	t.Helper()
	d, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return d
}

// spanSpec describes one span for makeTraces.
type spanSpec struct {
	trace, span, parent byte
	service, name       string
	start, dur          uint64
	attrs               map[string]string
}

func traceID(b byte) encoding.TraceID { return encoding.TraceID{15: b, 0: 0xab} }
func spanID(b byte) encoding.SpanID   { return encoding.SpanID{7: b, 0: 0xcd} }

const t0 = uint64(1_700_000_000_000_000_000)

func makeTraces(specs ...spanSpec) ptrace.Traces {
	td := ptrace.NewTraces()
	for _, sp := range specs {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", sp.service)
		s := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
		s.SetTraceID(pcommon.TraceID(traceID(sp.trace)))
		s.SetSpanID(pcommon.SpanID(spanID(sp.span)))
		if sp.parent != 0 {
			s.SetParentSpanID(pcommon.SpanID(spanID(sp.parent)))
		}
		s.SetName(sp.name)
		s.SetStartTimestamp(pcommon.Timestamp(t0 + sp.start))
		s.SetEndTimestamp(pcommon.Timestamp(t0 + sp.start + sp.dur))
		for k, v := range sp.attrs {
			s.Attributes().PutStr(k, v)
		}
	}
	return td
}

func collect(t testing.TB, d *DB, ctx context.Context, id encoding.TraceID) []*encoding.Span {
	t.Helper()
	var out []*encoding.Span
	for s, err := range d.TraceSpans(ctx, id, TimeRange{}) {
		if err != nil {
			t.Fatalf("trace %s: %v", id, err)
		}
		out = append(out, s)
	}
	return out
}

func mustWrite(t testing.TB, d *DB, ctx context.Context, td ptrace.Traces) WriteResult {
	t.Helper()
	res, err := d.Write(ctx, td)
	if err != nil {
		t.Fatalf("write: %v", err)
	}
	return res
}

func TestWriteReadFlushReopen(t *testing.T) {
	dir := t.TempDir()
	d := openTest(t, dir, testOptions())
	ctx := context.Background()
	var specs []spanSpec
	for tr := byte(1); tr <= 20; tr++ {
		for sp := byte(1); sp <= 5; sp++ {
			specs = append(specs, spanSpec{trace: tr, span: sp, parent: sp - 1, service: fmt.Sprint("svc", sp%3),
				name: "op" + fmt.Sprint(sp), start: uint64(tr)*1e9 + uint64(sp)*1e6, dur: uint64(sp) * 1e5,
				attrs: map[string]string{"k": fmt.Sprint(tr)}})
		}
	}
	if res := mustWrite(t, d, ctx, makeTraces(specs...)); res.Accepted != 100 || len(res.Rejected) != 0 {
		t.Fatalf("write = %+v, want 100 accepted", res)
	}
	check := func(stage string) {
		t.Helper()
		for tr := byte(1); tr <= 20; tr++ {
			got := collect(t, d, ctx, traceID(tr))
			if len(got) != 5 {
				t.Fatalf("%s: trace %d has %d spans, want 5", stage, tr, len(got))
			}
			for i, s := range got {
				if s.SpanID != spanID(byte(i+1)) || s.ServiceName() != fmt.Sprint("svc", (i+1)%3) {
					t.Fatalf("%s: trace %d span %d = %s %s", stage, tr, i, s.SpanID, s.ServiceName())
				}
			}
		}
		if got := collect(t, d, ctx, traceID(99)); len(got) != 0 {
			t.Fatalf("%s: unknown trace has %d spans", stage, len(got))
		}
	}
	check("head")
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	check("blocks")
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = openTest(t, dir, testOptions())
	defer d.Close()
	check("reopened")
}

func TestPartialSuccess(t *testing.T) {
	d := openTest(t, t.TempDir(), testOptions())
	defer d.Close()
	ctx := context.Background()
	td := makeTraces(
		spanSpec{trace: 1, span: 1, service: "a", name: "ok", dur: 10},
		spanSpec{trace: 0, span: 2, service: "a", name: "zero trace"},
		spanSpec{trace: 1, span: 0, service: "a", name: "zero span"},
		spanSpec{trace: 1, span: 4, service: "a", name: "\xff\xfe", dur: 1},
		spanSpec{trace: 1, span: 5, service: "a", name: "big", attrs: map[string]string{"x": strings.Repeat("x", 100<<10)}},
		spanSpec{trace: 1, span: 6, service: "a", name: "ok too", dur: 1},
	)
	// trace 0 must be all-zero: makeTraces sets byte 0; clear it.
	td.ResourceSpans().At(1).ScopeSpans().At(0).Spans().At(0).SetTraceID(pcommon.TraceID{})
	td.ResourceSpans().At(2).ScopeSpans().At(0).Spans().At(0).SetSpanID(pcommon.SpanID{})
	bad := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	bad.SetTraceID(pcommon.TraceID(traceID(1)))
	bad.SetSpanID(pcommon.SpanID(spanID(7)))
	bad.SetStartTimestamp(10)
	bad.SetEndTimestamp(5)

	res := mustWrite(t, d, ctx, td)
	if res.Accepted != 2 {
		t.Errorf("accepted %d, want 2", res.Accepted)
	}
	want := []struct {
		resource int
		reason   RejectReason
	}{{1, RejectZeroTraceID}, {2, RejectZeroSpanID}, {3, RejectInvalidUTF8}, {4, RejectAttributeTooBig}, {6, RejectEndBeforeStart}}
	if len(res.Rejected) != len(want) {
		t.Fatalf("rejected %v, want %d", res.Rejected, len(want))
	}
	for i, w := range want {
		r := res.Rejected[i]
		if r.Ref.Resource != w.resource || r.Reason != w.reason || r.Detail == "" || !strings.Contains(r.Error(), string(w.reason)) {
			t.Errorf("rejection %d = %+v (%v), want resource %d reason %s", i, r, r, w.resource, w.reason)
		}
	}
	got := collect(t, d, ctx, traceID(1))
	names := []string{}
	for _, s := range got {
		names = append(names, s.Name)
	}
	if !slices.Equal(names, []string{"ok", "ok too"}) {
		t.Errorf("stored %q, want the two valid spans", names)
	}
}

func TestTenantsAreApart(t *testing.T) {
	dir := t.TempDir()
	d := openTest(t, dir, testOptions())
	a, b := WithTenant(context.Background(), "acme"), WithTenant(context.Background(), "globex")
	mustWrite(t, d, a, makeTraces(spanSpec{trace: 1, span: 1, service: "acme-svc", name: "x", dur: 1}))
	mustWrite(t, d, b, makeTraces(spanSpec{trace: 1, span: 2, service: "globex-svc", name: "y", dur: 1}))
	check := func(stage string) {
		for _, c := range []struct {
			ctx  context.Context
			want string
		}{{a, "acme-svc"}, {b, "globex-svc"}} {
			got := collect(t, d, c.ctx, traceID(1))
			if len(got) != 1 || got[0].ServiceName() != c.want {
				t.Fatalf("%s: tenant %s sees %d spans (%v), want only its own", stage, TenantFromContext(c.ctx), len(got), got)
			}
		}
		if got := collect(t, d, context.Background(), traceID(1)); len(got) != 0 {
			t.Fatalf("%s: default tenant sees %d spans", stage, len(got))
		}
	}
	check("head")
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	check("blocks")
	d.Close()
	d = openTest(t, dir, testOptions())
	defer d.Close()
	check("reopened")

	if _, err := d.Write(WithTenant(context.Background(), "bad/tenant"), makeTraces()); !errors.Is(err, ErrInvalidTenant) {
		t.Errorf("write with tenant %q: err %v, want ErrInvalidTenant", "bad/tenant", err)
	}
}

func TestDuplicatesOnceDifferentContentKept(t *testing.T) {
	d := openTest(t, t.TempDir(), testOptions())
	defer d.Close()
	ctx := context.Background()
	span := spanSpec{trace: 1, span: 1, service: "a", name: "retry", start: 5, dur: 10}
	shared := spanSpec{trace: 1, span: 2, service: "client", name: "call", start: 7, dur: 3}
	sharedServer := shared
	sharedServer.service = "server" // Zipkin-style: same span ID, different span
	mustWrite(t, d, ctx, makeTraces(span, shared))
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, d, ctx, makeTraces(span, sharedServer)) // the retry lands in the head
	mustWrite(t, d, ctx, makeTraces(span))               // and once more
	got := collect(t, d, ctx, traceID(1))
	var desc []string
	for _, s := range got {
		desc = append(desc, s.Name+"@"+s.ServiceName())
	}
	want := []string{"retry@a", "call@client", "call@server"}
	slices.Sort(desc)
	slices.Sort(want)
	if !slices.Equal(desc, want) {
		t.Errorf("got %q, want %q", desc, want)
	}
}

func TestHeadAndBlockPostingsAgree(t *testing.T) {
	d := openTest(t, t.TempDir(), testOptions())
	defer d.Close()
	ctx := context.Background()
	var specs []spanSpec
	for i := byte(1); i <= 60; i++ {
		specs = append(specs, spanSpec{trace: i%7 + 1, span: i, service: fmt.Sprint("s", i%3), name: fmt.Sprint("op", i%4),
			start: uint64(i) * 1e6, dur: uint64(i) * 1e3, attrs: map[string]string{"color": fmt.Sprint(i % 5)}})
	}
	mustWrite(t, d, ctx, makeTraces(specs...))
	names := []string{index.NameService, index.NameOperation, index.NameKind, index.NameStatus, index.NameDuration,
		index.AttrTermName(index.LevelSpan, "color"), index.AttrTermName(index.LevelResource, "service.name")}
	query := func() map[string][]encoding.SpanID {
		snap, err := d.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string][]encoding.SpanID{}
		for _, r := range snap.Readers {
			for _, name := range names {
				values, err := r.Values(name)
				if err != nil {
					t.Fatal(err)
				}
				// PostingsRange walks the same values with the same postings.
				var walked []string
				err = r.PostingsRange(name, "", "", func(v string, p index.Postings) error {
					walked = append(walked, v)
					want, err := r.Postings(index.Term{Name: name, Value: v})
					if err != nil {
						return err
					}
					a, _ := index.Expand(p)
					b, _ := index.Expand(want)
					if !slices.Equal(a, b) {
						return fmt.Errorf("%s=%q: PostingsRange gives %v, Postings %v", name, v, a, b)
					}
					return nil
				})
				if err != nil || !slices.Equal(walked, values) {
					t.Fatalf("%s: PostingsRange walked %q (%v), Values says %q", name, walked, err, values)
				}
				if len(values) > 1 {
					var sub []string
					r.PostingsRange(name, values[1], values[len(values)-1], func(v string, _ index.Postings) error {
						sub = append(sub, v)
						return nil
					})
					if !slices.Equal(sub, values[1:len(values)-1]) {
						t.Fatalf("%s: PostingsRange [%q, %q) walked %q", name, values[1], values[len(values)-1], sub)
					}
				}
				for _, v := range values {
					term := index.Term{Name: name, Value: v}
					p, err := r.Postings(term)
					if err != nil {
						t.Fatal(err)
					}
					err = r.Spans(ctx, p, func(_ uint32, s *encoding.Span) error {
						if name == index.NameService && s.ServiceName() != v {
							return fmt.Errorf("postings of service %q gave a span of %q", v, s.ServiceName())
						}
						out[term.String()] = append(out[term.String()], s.SpanID)
						return nil
					})
					if err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		for k := range out {
			slices.SortFunc(out[k], func(a, b encoding.SpanID) int { return strings.Compare(a.String(), b.String()) })
		}
		return out
	}
	inHead := query()
	if svc := (index.Term{Name: index.NameService, Value: "s0"}).String(); len(inHead) < 3+4+1+1+5+3 || len(inHead[svc]) != 20 {
		t.Fatalf("head postings: %v", inHead)
	}
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	inBlocks := query()
	if len(inHead) != len(inBlocks) {
		t.Errorf("head has %d terms, blocks %d", len(inHead), len(inBlocks))
	}
	for k, v := range inHead {
		if !slices.Equal(v, inBlocks[k]) {
			t.Errorf("service %s: head %v, blocks %v", k, v, inBlocks[k])
		}
	}
}

func TestCloseStopsAndRefusesCalls(t *testing.T) {
	d := openTest(t, t.TempDir(), testOptions())
	mustWrite(t, d, context.Background(), makeTraces(spanSpec{trace: 1, span: 1, service: "a", name: "x", dur: 1}))
	done := make(chan error)
	go func() { done <- d.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	select {
	case <-d.loopDone:
	default:
		t.Error("background loop still running after Close")
	}
	if _, err := d.Write(context.Background(), makeTraces()); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close: %v, want ErrClosed", err)
	}
	if err := d.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v, want ErrClosed", err)
	}
}

func TestFormatChecks(t *testing.T) {
	dir := t.TempDir()
	d := openTest(t, dir, testOptions())
	d.Close()
	opts := testOptions()
	opts.PartitionWidth = 2 * time.Hour
	if _, err := Open(dir, opts); !errors.Is(err, ErrFormatMismatch) {
		t.Fatalf("reopen with another partition width: %v, want ErrFormatMismatch", err)
	}
	opts = testOptions()
	opts.MaxIndexedValueLen = 64
	if _, err := Open(dir, opts); !errors.Is(err, ErrFormatMismatch) {
		t.Fatalf("reopen with another MaxIndexedValueLen: %v, want ErrFormatMismatch", err)
	}
	// A store written by a newer format version is refused.
	d = openTest(t, dir, testOptions())
	newer := encoding.FormatRecord{Version: encoding.FormatVersion + 1, PartitionWidth: time.Hour, MaxIndexedValueLen: DefaultMaxIndexedValueLen}
	if err := d.bdb.Update(func(txn *badgerTxn) error { return txn.Set(encoding.KeyFormat, newer.Encode()) }); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if _, err := Open(dir, testOptions()); !errors.Is(err, encoding.ErrNewerFormat) {
		t.Fatalf("open newer store: %v, want ErrNewerFormat", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		mod  func(*Options)
	}{
		{"tiny partition", func(o *Options) { o.PartitionWidth = time.Second }},
		{"bad sync", func(o *Options) { o.Sync = 7 }},
		{"negative head", func(o *Options) { o.MaxHeadSpans = -1 }},
		{"tiny row group", func(o *Options) { o.RowGroupSpans = 2 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := DefaultOptions()
			c.mod(&o)
			if err := o.Validate(); err == nil {
				t.Error("Validate accepted it")
			}
			if _, err := Open(t.TempDir(), o); err == nil {
				t.Error("Open accepted it")
			}
		})
	}
	if err := DefaultOptions().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

type badgerTxn = badger.Txn
