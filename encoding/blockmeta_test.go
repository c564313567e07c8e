package encoding_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	. "github.com/tracedb/tracedb/encoding"
)

func sampleBlockMeta() *BlockMeta {
	return &BlockMeta{
		ID:        NewBlockID(time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC), 3),
		Partition: 493_000,
		MinStart:  1_700_000_000_000_000_000,
		MaxStart:  1_700_000_003_000_000_000,
		MaxEnd:    1_700_000_004_000_000_000,
		Spans:     8192,
		Traces:    820,
		Bytes:     123_456,
		RowGroups: []RowGroupRef{
			{FirstTrace: TraceID{1}, LastTrace: TraceID{7, 7}, Spans: 4096, Bytes: 60_000},
			{FirstTrace: TraceID{7, 7}, LastTrace: TraceID{0xff}, Spans: 4096, Bytes: 61_000},
		},
		PostingsSections: 2,
		TraceBloom:       []byte("bloom bytes"),
	}
}

// sampleBlockMetaV2 is sampleBlockMeta with dependency edges (version 2).
func sampleBlockMetaV2() *BlockMeta {
	m := sampleBlockMeta()
	m.Edges = []DependencyEdge{
		{Parent: "frontend", Child: "cart", Minute: 28_333_333, Calls: 17},
		{Parent: "frontend", Child: "payment", Minute: 28_333_333, Calls: 2},
		{Parent: "cart", Child: "db", Minute: 28_333_334, Calls: 1 << 40},
	}
	return m
}

func TestBlockMetaRoundTrip(t *testing.T) {
	for _, m := range []*BlockMeta{sampleBlockMeta(), sampleBlockMetaV2(), {}} {
		b := m.Encode([]byte("prefix"))
		got, err := DecodeBlockMeta(b[len("prefix"):])
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, m)
		}
	}
}

func TestBlockMetaRowGroupsFor(t *testing.T) {
	m := sampleBlockMeta()
	for _, c := range []struct {
		id   TraceID
		want []int
	}{{TraceID{1}, []int{0}}, {TraceID{7, 7}, []int{0, 1}}, {TraceID{9}, []int{1}}, {TraceID{0}, nil}} {
		if got := m.RowGroupsFor(c.id); !reflect.DeepEqual(got, c.want) {
			t.Errorf("RowGroupsFor(%s) = %v, want %v", c.id, got, c.want)
		}
	}
}

// TestBlockMetaCorruption: every flipped byte and every truncation is an
// error that wraps ErrCorrupt, never a panic or a wrong value.
func TestBlockMetaCorruption(t *testing.T) {
	b := sampleBlockMetaV2().Encode(nil)
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x5a
		if _, err := DecodeBlockMeta(c); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flip byte %d: err %v, want ErrCorrupt", i, err)
		}
	}
	for n := range len(b) {
		if _, err := DecodeBlockMeta(b[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncate to %d: err %v, want ErrCorrupt", n, err)
		}
	}
}

func TestFormatRecord(t *testing.T) {
	f := FormatRecord{Version: FormatVersion, PartitionWidth: time.Hour, MaxIndexedValueLen: 256}
	got, err := DecodeFormatRecord(f.Encode())
	if err != nil || got != f {
		t.Fatalf("round trip = %+v, %v", got, err)
	}
	newer := FormatRecord{Version: FormatVersion + 1, PartitionWidth: time.Hour}
	if _, err := DecodeFormatRecord(newer.Encode()); !errors.Is(err, ErrNewerFormat) {
		t.Errorf("newer version: %v, want ErrNewerFormat", err)
	}
	b := f.Encode()
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 1
		if _, err := DecodeFormatRecord(c); err == nil {
			t.Errorf("flip byte %d: accepted", i)
		}
	}
}

// TestGoldenBlockMeta pins versions 1 and 2 of the block meta, the
// dependency state and the format record: the files in testdata must decode
// the same forever. -update writes the files of the current versions only
// (a nil encode marks an older version, whose file is never rewritten).
func TestGoldenBlockMeta(t *testing.T) {
	for _, g := range []struct {
		file   string
		encode func() []byte
		check  func([]byte) error
	}{
		{"blockmeta/v1.bin", nil, func(b []byte) error {
			m, err := DecodeBlockMeta(b)
			if err == nil && !reflect.DeepEqual(m, sampleBlockMeta()) {
				err = errors.New("decoded meta differs from sampleBlockMeta")
			}
			return err
		}},
		{"blockmeta/v2.bin", func() []byte { return sampleBlockMetaV2().Encode(nil) }, func(b []byte) error {
			m, err := DecodeBlockMeta(b)
			if err == nil && !reflect.DeepEqual(m, sampleBlockMetaV2()) {
				err = errors.New("decoded meta differs from sampleBlockMetaV2")
			}
			return err
		}},
		{"depstate/v1.bin", func() []byte { return sampleDependencyState().Encode(nil) }, func(b []byte) error {
			s, err := DecodeDependencyState(b)
			if err == nil && !reflect.DeepEqual(s, sampleDependencyState()) {
				err = errors.New("decoded state differs from sampleDependencyState")
			}
			return err
		}},
		{"format/v1.bin", FormatRecord{Version: 1, PartitionWidth: time.Hour, MaxIndexedValueLen: 256}.Encode, func(b []byte) error {
			f, err := DecodeFormatRecord(b)
			if err == nil && f != (FormatRecord{Version: 1, PartitionWidth: time.Hour, MaxIndexedValueLen: 256}) {
				err = errors.New("decoded record differs")
			}
			return err
		}},
	} {
		path := filepath.Join("testdata", g.file)
		if *update && g.encode != nil {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, g.encode(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.check(b); err != nil {
			t.Errorf("%s: %v", g.file, err)
		}
	}
}

func FuzzDecodeBlockMeta(f *testing.F) {
	f.Add(sampleBlockMeta().Encode(nil))
	f.Add(sampleBlockMetaV2().Encode(nil))
	f.Add((&BlockMeta{}).Encode(nil))
	if v1, err := os.ReadFile(filepath.Join("testdata", "blockmeta", "v1.bin")); err == nil {
		f.Add(v1)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeBlockMeta(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		// A version-1 meta, or one whose string table is ordered
		// differently, re-encodes to other bytes; the value must survive.
		again, err := DecodeBlockMeta(m.Encode(nil))
		if err != nil {
			t.Fatalf("re-encoded meta does not decode: %v", err)
		}
		if !reflect.DeepEqual(again, m) {
			t.Fatalf("re-encoded meta decodes differently:\n got %+v\nwant %+v", again, m)
		}
	})
}

func FuzzDecodeFormatRecord(f *testing.F) {
	f.Add(FormatRecord{Version: 1, PartitionWidth: time.Hour, MaxIndexedValueLen: 256}.Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := DecodeFormatRecord(b); err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNewerFormat) {
			t.Fatalf("unexpected error kind: %v", err)
		}
	})
}

func FuzzParseBlockKey(f *testing.F) {
	f.Add(BlockKey("acme", 7, KindRowGroup, 42, 3))
	f.Add(BlockKey("default", 1, KindBlockMeta, 1, 0))
	f.Fuzz(func(t *testing.T, k []byte) {
		p, err := ParseBlockKey(k)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		if again := BlockKey(p.Tenant, p.Partition, p.Kind, p.Block, p.N); !bytes.Equal(again, k) {
			t.Fatalf("parsed %v re-encodes as %x, not %x", p, again, k)
		}
	})
}

func sampleDependencyState() *DependencyState {
	return &DependencyState{Waiting: []WaitingChild{
		{TraceID: TraceID{1, 2, 3}, Parent: SpanID{9}, Service: "cart", Minute: 28_333_333, Age: 0},
		{TraceID: TraceID{4}, Parent: SpanID{8, 8}, Service: "db", Minute: 28_333_334, Age: 3},
		{TraceID: TraceID{4}, Parent: SpanID{8, 9}, Service: "cart", Minute: 28_333_334, Age: 1},
	}}
}

func TestDependencyStateRoundTrip(t *testing.T) {
	for _, s := range []*DependencyState{sampleDependencyState(), {}} {
		got, err := DecodeDependencyState(s.Encode(nil))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, s) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, s)
		}
	}
	b := sampleDependencyState().Encode(nil)
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x21
		if _, err := DecodeDependencyState(c); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flip byte %d: err %v, want ErrCorrupt", i, err)
		}
	}
	for n := range len(b) {
		if _, err := DecodeDependencyState(b[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncate to %d: err %v, want ErrCorrupt", n, err)
		}
	}
}

// TestEdgesRejectDisorder: edges out of order or repeated are corrupt, so
// that a reader may binary-search them by minute.
func TestEdgesRejectDisorder(t *testing.T) {
	for _, es := range [][]DependencyEdge{
		{{Parent: "b", Child: "c", Minute: 5, Calls: 1}, {Parent: "a", Child: "c", Minute: 5, Calls: 1}},
		{{Parent: "a", Child: "c", Minute: 5, Calls: 1}, {Parent: "a", Child: "c", Minute: 5, Calls: 2}},
	} {
		m := sampleBlockMeta()
		m.Edges = es
		if _, err := DecodeBlockMeta(m.Encode(nil)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("edges %v: err %v, want ErrCorrupt", es, err)
		}
	}
}

func FuzzDecodeDependencyState(f *testing.F) {
	f.Add(sampleDependencyState().Encode(nil))
	f.Add((&DependencyState{}).Encode(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeDependencyState(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		again, err := DecodeDependencyState(s.Encode(nil))
		if err != nil || !reflect.DeepEqual(again, s) {
			t.Fatalf("re-encoded state decodes as %+v, %v; want %+v", again, err, s)
		}
	})
}
