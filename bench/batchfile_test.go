package bench

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/internal/spangen"
)

var update = flag.Bool("update", false, "rewrite the golden batch file in testdata/")

const goldenBatchFile = "testdata/v1.batches"

// smallBatchFile returns a batch file of spans ClickHouse-shape spans in
// batches of batch.
func smallBatchFile(t testing.TB, spans, batch int) []byte {
	t.Helper()
	g, err := NewGenerator(WorkloadClickHouse, 1)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := Generate(&buf, g, spans, batch); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readAll reads every record of a batch file and returns them unmarshalled.
func readAll(b []byte) ([]ptrace.Traces, *BatchReader, error) {
	br, err := NewBatchReader(bytes.NewReader(b))
	if err != nil {
		return nil, nil, err
	}
	var u ptrace.ProtoUnmarshaler
	var out []ptrace.Traces
	for {
		rec, err := br.Next()
		if err == io.EOF {
			return out, br, nil
		}
		if err != nil {
			return out, br, err
		}
		td, err := u.UnmarshalTraces(rec)
		if err != nil {
			return out, br, err
		}
		out = append(out, td)
	}
}

func TestBatchFileRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name         string
		spans, batch int
		wantBatches  int
	}{
		{"empty", 0, 10, 0},
		{"one short batch", 7, 10, 1},
		{"exact batches", 40, 10, 4},
		{"last batch short", 45, 10, 5},
		{"batch smaller than a trace", 25, 3, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := smallBatchFile(t, tc.spans, tc.batch)
			got, br, err := readAll(file)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.wantBatches {
				t.Fatalf("read %d batches, want %d", len(got), tc.wantBatches)
			}
			var spans []*encoding.Span
			for i, td := range got {
				if n := td.SpanCount(); n != tc.batch && i != len(got)-1 {
					t.Errorf("batch %d has %d spans, want %d", i, n, tc.batch)
				}
				spans, _ = encoding.FromTraces(spans, nil, td)
			}
			g, _ := NewGenerator(WorkloadClickHouse, 1)
			want := spangen.Spans(g, tc.spans)
			if len(spans) != len(want) {
				t.Fatalf("read %d spans, want %d", len(spans), len(want))
			}
			// A batch groups its spans by resource, so compare in block order.
			spangen.Sort(spans)
			spangen.Sort(want)
			for i := range want {
				if !spans[i].Equal(want[i]) {
					t.Fatalf("span %d differs from the generator's", i)
				}
			}
			batches, n, ok := br.Trailer()
			if !ok || batches != uint64(tc.wantBatches) || n != uint64(tc.spans) {
				t.Errorf("trailer = %d batches, %d spans, seen %v; want %d, %d, true", batches, n, ok, tc.wantBatches, tc.spans)
			}
		})
	}
}

func TestBatchFileGenerateIsDeterministic(t *testing.T) {
	for _, w := range []Workload{WorkloadClickHouse, WorkloadMix} {
		gen := func(seed uint64) []byte {
			g, err := NewGenerator(w, seed)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if _, err := Generate(&buf, g, 300, 64); err != nil {
				t.Fatal(err)
			}
			return buf.Bytes()
		}
		if a, b := gen(7), gen(7); !bytes.Equal(a, b) {
			t.Errorf("%s: two runs with seed 7 differ", w)
		}
		if a, b := gen(7), gen(8); bytes.Equal(a, b) {
			t.Errorf("%s: seeds 7 and 8 give the same file", w)
		}
	}
}

func TestBatchFileCorruption(t *testing.T) {
	file := smallBatchFile(t, 30, 10)
	firstLen := int(file[batchHeaderLen])<<24 | int(file[batchHeaderLen+1])<<16 | int(file[batchHeaderLen+2])<<8 | int(file[batchHeaderLen+3])
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(file)) }
	for _, tc := range []struct {
		name string
		file []byte
		want string
	}{
		{"empty", nil, "truncated: file ends inside the header"},
		{"bad magic", edit(func(b []byte) []byte { b[0] ^= 1; return b }), "magic"},
		{"unknown version", edit(func(b []byte) []byte { b[4] = 9; return b }), "version 9"},
		{"cut in a record header", file[:batchHeaderLen+3], "truncated: file ends inside the batch 0 header"},
		{"cut in a payload", file[:batchHeaderLen+recordHeaderLen+5], "truncated: file ends inside batch 0 (5 of"},
		{"cut before the trailer", file[:len(file)-recordHeaderLen-trailerBodyLen], "truncated: file ends inside the batch 3 header"},
		{"cut in the trailer", file[:len(file)-3], "truncated: file ends inside the trailer"},
		{"payload bit flip", edit(func(b []byte) []byte { b[batchHeaderLen+recordHeaderLen+firstLen/2] ^= 0x10; return b }), "batch 0: checksum"},
		{"huge length", edit(func(b []byte) []byte { b[batchHeaderLen] = 0xff; return b }), "exceeds"},
		{"trailer bit flip", edit(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), "trailer: corrupt"},
		{"bytes after the trailer", append(bytes.Clone(file), 0), "bytes after the trailer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := readAll(tc.file)
			if !errors.Is(err, encoding.ErrCorrupt) {
				t.Fatalf("err = %v, want one that wraps encoding.ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %q, want it to say %q", err, tc.want)
			}
		})
	}
}

func TestBatchFileTrailerCountsMustMatch(t *testing.T) {
	// Drop the second record and leave the trailer saying 3 batches.
	file := smallBatchFile(t, 30, 10)
	br, err := NewBatchReader(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	first, _ := br.Next()
	second, _ := br.Next()
	start := batchHeaderLen + recordHeaderLen + len(first)
	cut := append(bytes.Clone(file[:start]), file[start+recordHeaderLen+len(second):]...)
	_, _, err = readAll(cut)
	if !errors.Is(err, encoding.ErrCorrupt) || !strings.Contains(err.Error(), "says 3 batches, the file holds 2") {
		t.Fatalf("err = %v, want a batch count mismatch", err)
	}
}

func TestBatchWriterAfterClose(t *testing.T) {
	bw, err := NewBatchWriter(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := bw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := bw.Write(ptrace.NewTraces()); err == nil {
		t.Fatal("Write after Close succeeded")
	}
}

// TestBatchFileGolden reads the version 1 golden file and checks that
// writing its batches again gives the same bytes. With -update it is made
// anew from the generator.
func TestBatchFileGolden(t *testing.T) {
	if *update {
		if err := os.MkdirAll(filepath.Dir(goldenBatchFile), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenBatchFile, smallBatchFile(t, 25, 10), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(goldenBatchFile)
	if err != nil {
		t.Fatal(err)
	}
	got, br, err := readAll(golden)
	if err != nil {
		t.Fatal(err)
	}
	if batches, spans, _ := br.Trailer(); batches != 3 || spans != 25 {
		t.Fatalf("golden trailer says %d batches, %d spans; want 3, 25", batches, spans)
	}
	var buf bytes.Buffer
	bw, err := NewBatchWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, td := range got {
		if err := bw.Write(td); err != nil {
			t.Fatal(err)
		}
	}
	if err := bw.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), golden) {
		t.Fatal("rewriting the golden file's batches gives different bytes")
	}
}

func FuzzBatchReader(f *testing.F) {
	f.Add([]byte{})
	f.Add(smallBatchFile(f, 3, 2))
	f.Fuzz(func(t *testing.T, b []byte) {
		br, err := NewBatchReader(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, encoding.ErrCorrupt) {
				t.Fatalf("header error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		for {
			_, err := br.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				if !errors.Is(err, encoding.ErrCorrupt) {
					t.Fatalf("error %v does not wrap ErrCorrupt", err)
				}
				return
			}
		}
	})
}

func BenchmarkBatchReader(b *testing.B) {
	file := smallBatchFile(b, 20_000, 1000)
	b.SetBytes(int64(len(file)))
	b.ReportAllocs()
	for b.Loop() {
		br, err := NewBatchReader(bytes.NewReader(file))
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := br.Next(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}

// A generation into a ContextWriter stops with the context's error once
// the context is done, and writes nothing more.
func TestGenerateStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	gen, err := NewGenerator(WorkloadClickHouse, 1)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	cancel()
	if _, err := Generate(ContextWriter(ctx, &buf), gen, 10_000, 100); !errors.Is(err, context.Canceled) {
		t.Fatalf("Generate after cancel: %v, want context.Canceled", err)
	}
	if buf.Len() != 0 {
		t.Errorf("%d bytes written after the context ended", buf.Len())
	}
	// A live context changes nothing.
	buf.Reset()
	if _, err := Generate(ContextWriter(t.Context(), &buf), gen, 1_000, 100); err != nil || buf.Len() == 0 {
		t.Fatalf("Generate: %v, %d bytes", err, buf.Len())
	}
}
