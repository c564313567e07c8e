package encoding_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/tracedb/tracedb/encoding"
)

// FuzzDecodeRowGroup feeds arbitrary bytes to DecodeRowGroup, and the same
// bytes with their checksums repaired so that mutations reach the column
// decoders. Decoding must never panic, every error must wrap ErrCorrupt, and
// whatever decodes must survive another round trip unchanged. Rows decoded
// alone (a few ranges chosen from the input's checksum) must also never
// panic, decode whenever the whole group does, and then equal it.
//
// The seed corpus (testdata/fuzz/FuzzDecodeRowGroup) holds real encodings,
// compressed and with every column raw; TestRowGroupFuzzCorpus -update
// rewrites it.
func FuzzDecodeRowGroup(f *testing.F) {
	c := newCodec(f)
	for _, b := range smallGroups(f, c) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzDecode(t, c, b)
		seed := uint64(encoding.Checksum(b))
		checkPartialFuzz(t, c, b, seed)
		if fixed := encoding.FixRowGroupChecksums(b); fixed != nil {
			fuzzDecode(t, c, fixed)
			checkPartialFuzz(t, c, fixed, seed)
		}
	})
}

func fuzzDecode(t *testing.T, c *encoding.Codec, b []byte) {
	// The time columns alone: never a panic, and when the whole group
	// decodes, the same times as its spans.
	var starts, ends []uint64
	if tg, err := c.DecodeRowGroup(b); err == nil {
		var terr error
		if starts, ends, terr = tg.Times(); terr != nil {
			if !errors.Is(terr, encoding.ErrCorrupt) {
				t.Fatalf("times: error %v does not wrap ErrCorrupt", terr)
			}
			starts, ends = nil, nil
		}
	}
	spans, g, err := decodeGroup(c, b)
	if err != nil {
		if !errors.Is(err, encoding.ErrCorrupt) {
			t.Fatalf("error %v does not wrap ErrCorrupt", err)
		}
		return
	}
	if starts == nil {
		t.Fatalf("the group decodes but its time columns alone do not")
	}
	for i, s := range spans {
		if starts[i] != s.StartUnixNano || ends[i] != s.EndUnixNano {
			t.Fatalf("times of row %d: [%d, %d], span has [%d, %d]", i, starts[i], ends[i], s.StartUnixNano, s.EndUnixNano)
		}
	}
	for i := range spans {
		if lo, hi := g.TraceRange(spans[i].TraceID); i < lo || i >= hi {
			t.Fatalf("TraceRange(%s) = [%d,%d) misses row %d", spans[i].TraceID, lo, hi, i)
		}
	}
	// What decodes is a valid row group's content: it must encode and
	// decode back to itself.
	again, err := c.NewRowGroupEncoder().Encode(nil, spans)
	if err != nil {
		t.Fatalf("re-encode decoded spans: %v", err)
	}
	got, _, err := decodeGroup(c, again)
	if err != nil {
		t.Fatalf("decode re-encoded spans: %v", err)
	}
	for i := range spans {
		if !got[i].Equal(spans[i]) {
			t.Fatalf("span %d changed in a second round trip", i)
		}
	}
}

func TestRowGroupFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeRowGroup")
	if !*update {
		if _, err := os.Stat(dir); err != nil {
			t.Fatalf("seed corpus missing (run with -update): %v", err)
		}
		return
	}
	c := newCodec(t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, b := range smallGroups(t, c) {
		data := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
