package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/tracedb/tracedb/encoding"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// crcBE returns the big-endian CRC32C of b.
func crcBE(b []byte) []byte {
	return binary.BigEndian.AppendUint32(nil, encoding.Checksum(b))
}

func TestDecodeRecord(t *testing.T) {
	good := AppendRecord(nil, []byte("hello"))
	empty := AppendRecord(nil, nil)
	flip := func(b []byte, i int, mask byte) []byte {
		c := bytes.Clone(b)
		c[i] ^= mask
		return c
	}
	huge := bytes.Clone(good)
	binary.BigEndian.PutUint32(huge, MaxRecordLen+1)
	cases := []struct {
		name    string
		in      []byte
		payload string
		n       int
		reason  string // in the error; "" means no error
	}{
		{"good", good, "hello", 13, ""},
		{"good with trailing", append(bytes.Clone(good), 1, 2, 3), "hello", 13, ""},
		{"empty payload", empty, "", 8, ""},
		{"nil", nil, "", 0, "short header"},
		{"short header", good[:7], "", 0, "short header"},
		{"short payload", good[:12], "", 0, "short payload"},
		{"bad length", huge, "", 0, "bad length"},
		{"length up", flip(good, 3, 0x10), "", 0, "short payload"},
		{"length down", flip(good, 3, 1), "", 0, "checksum"},
		{"crc flipped", flip(good, 6, 1), "", 0, "checksum"},
		{"payload flipped", flip(good, 10, 1), "", 0, "checksum"},
		{"zeros", make([]byte, 16), "", 0, "checksum"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, n, err := DecodeRecord(tc.in)
			if tc.reason != "" {
				if !errors.Is(err, encoding.ErrCorrupt) || !strings.Contains(err.Error(), tc.reason) {
					t.Fatalf("err = %v, want ErrCorrupt with %q", err, tc.reason)
				}
				return
			}
			if err != nil || string(p) != tc.payload || n != tc.n {
				t.Fatalf("DecodeRecord = %q, %d, %v; want %q, %d", p, n, err, tc.payload, tc.n)
			}
		})
	}
}

func TestSegmentHeader(t *testing.T) {
	h := encodeSegmentHeader(12345)
	if len(h) != SegmentHeaderSize {
		t.Fatalf("header is %d bytes, want %d", len(h), SegmentHeaderSize)
	}
	got, err := DecodeSegmentHeader(h)
	if err != nil || got != (SegmentHeader{Version: FormatV1, Segment: 12345}) {
		t.Fatalf("DecodeSegmentHeader = %+v, %v", got, err)
	}
	for i := range h {
		c := bytes.Clone(h)
		c[i] ^= 0x10
		if _, err := DecodeSegmentHeader(c); !errors.Is(err, encoding.ErrCorrupt) {
			t.Errorf("flipping byte %d: err = %v, want ErrCorrupt", i, err)
		}
	}
	if _, err := DecodeSegmentHeader(h[:SegmentHeaderSize-1]); !errors.Is(err, encoding.ErrCorrupt) {
		t.Errorf("short header: %v", err)
	}
}

func TestSegmentNames(t *testing.T) {
	for _, n := range []uint64{0, 1, 42, 1<<64 - 1} {
		name := segmentName(n)
		if len(name) != segmentDigits+len(segmentSuffix) {
			t.Errorf("segmentName(%d) = %q", n, name)
		}
		if got, ok := parseSegmentName(name); !ok || got != n {
			t.Errorf("parseSegmentName(%q) = %d, %v", name, got, ok)
		}
	}
	for _, bad := range []string{"1.wal", "0000000000000000000a.wal", "00000000000000000001.wal.tmp", "00000000000000000001.log", "+0000000000000000001.wal"} {
		if _, ok := parseSegmentName(bad); ok {
			t.Errorf("parseSegmentName(%q) accepted", bad)
		}
	}
	if segmentName(2) <= segmentName(1) || segmentName(10) <= segmentName(9) {
		t.Error("segment names do not sort like numbers")
	}
}

// TestSegmentReaderIO checks that an I/O error of the underlying reader is
// returned as such, not as corruption, and that a one-byte-at-a-time reader
// reads the same records.
func TestSegmentReaderIO(t *testing.T) {
	seg := encodeSegmentHeader(1)
	for i := range 5 {
		seg = AppendRecord(seg, bytes.Repeat([]byte{byte(i)}, 100*i))
	}
	r := NewSegmentReader(iotest.OneByteReader(bytes.NewReader(seg)))
	n := 0
	for r.Next() {
		if len(r.Record()) != 100*n {
			t.Fatalf("record %d has %d bytes", n, len(r.Record()))
		}
		n++
	}
	if r.Err() != nil || n != 5 || r.Good() != int64(len(seg)) {
		t.Fatalf("read %d records, good %d, err %v", n, r.Good(), r.Err())
	}
	boom := errors.New("disk on fire")
	r = NewSegmentReader(io.MultiReader(bytes.NewReader(seg[:50]), iotest.ErrReader(boom)))
	for r.Next() {
	}
	if !errors.Is(r.Err(), boom) || errors.Is(r.Err(), encoding.ErrCorrupt) {
		t.Fatalf("err = %v, want the I/O error", r.Err())
	}
}

// goldenRecords are the records of the golden segment: an empty one, small
// ones, one with every byte value, and a large patterned one.
func goldenRecords() [][]byte {
	recs := [][]byte{
		{},
		[]byte("tracedb"),
		[]byte(strings.Repeat("span ", 100)),
	}
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	recs = append(recs, all)
	big := make([]byte, 5000)
	for i := range big {
		big[i] = byte(i * 7 % 251)
	}
	recs = append(recs, big)
	for i := range 5 {
		recs = append(recs, []byte(fmt.Sprintf("record %d", i)))
	}
	return recs
}

const goldenDir = "testdata/v1"

// TestGolden checks that the golden segment of format v1, written by the WAL
// when the format was made, replays to the same records forever, and that
// this build still writes the same bytes. Run with -update to rewrite it
// (only when adding a new format version: old golden files never change).
func TestGolden(t *testing.T) {
	recs := goldenRecords()
	fresh := t.TempDir()
	w := openWAL(t, Options{Dir: fresh, Sync: SyncNone})
	ps := writeRecords(t, w, recs)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	freshBytes, err := os.ReadFile(filepath.Join(fresh, segmentName(1)))
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join(goldenDir, segmentName(1))
	if *update {
		if err := os.MkdirAll(goldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, freshBytes, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	goldenBytes, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	dir := copyDir(t, goldenDir) // Replay may cut; never touch testdata
	got, rep := replayAll(t, dir, 0)
	checkReplayed(t, got, recs, ps)
	if len(rep.Cuts) != 0 {
		t.Fatalf("golden segment was cut: %+v", rep.Cuts)
	}
	if !bytes.Equal(freshBytes, goldenBytes) {
		t.Fatalf("this build writes %d bytes that differ from the %d golden ones: the v%d format changed", len(freshBytes), len(goldenBytes), FormatVersion)
	}
}

// TestFormatDoc checks that the constants table of wal.md matches the code.
func TestFormatDoc(t *testing.T) {
	doc, err := os.ReadFile("wal.md")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"SegmentMagic":      fmt.Sprintf("0x%08x", SegmentMagic),
		"FormatV1":          fmt.Sprint(FormatV1),
		"SegmentHeaderSize": fmt.Sprint(SegmentHeaderSize),
		"RecordHeaderSize":  fmt.Sprint(RecordHeaderSize),
		"MaxRecordLen":      "1 << 30",
	}
	if MaxRecordLen != 1<<30 {
		t.Fatalf("MaxRecordLen changed to %d: update wal.md", MaxRecordLen)
	}
	rows := map[string]string{}
	for line := range strings.Lines(string(doc)) {
		cells := strings.Split(line, "|")
		if len(cells) != 4 {
			continue
		}
		name := strings.Trim(strings.TrimSpace(cells[1]), "`")
		rows[name] = strings.Trim(strings.TrimSpace(cells[2]), "`")
	}
	for name, v := range want {
		if rows[name] != v {
			t.Errorf("wal.md says %s = %q, the code %q", name, rows[name], v)
		}
	}
}
