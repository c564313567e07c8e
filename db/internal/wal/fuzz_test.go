package wal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/tracedb/tracedb/encoding"
)

// FuzzDecodeRecord: DecodeRecord never panics; an error is corruption; a
// decoded record re-encodes to exactly the bytes it was read from.
func FuzzDecodeRecord(f *testing.F) {
	f.Add([]byte{})
	f.Add(AppendRecord(nil, nil))
	f.Add(AppendRecord(nil, []byte("a span batch")))
	f.Add(AppendRecord(AppendRecord(nil, []byte("x")), []byte("y")))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		payload, n, err := DecodeRecord(b)
		if err != nil {
			if !errors.Is(err, encoding.ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if n < RecordHeaderSize || n > len(b) || n != RecordHeaderSize+len(payload) {
			t.Fatalf("n = %d for %d input bytes and %d payload bytes", n, len(b), len(payload))
		}
		if re := AppendRecord(nil, payload); !bytes.Equal(re, b[:n]) {
			t.Fatalf("re-encoding differs: %x vs %x", re, b[:n])
		}
	})
}

// FuzzReplaySegment: any bytes as a segment file replay without a panic
// and without an error (corruption is cut and reported, not returned);
// the cut leaves a segment that replays to the same records with no cut.
func FuzzReplaySegment(f *testing.F) {
	seg := encodeSegmentHeader(1)
	f.Add([]byte{})
	f.Add(seg)
	f.Add(seg[:7])
	two := AppendRecord(AppendRecord(bytes.Clone(seg), []byte("one")), []byte("two"))
	f.Add(two)
	f.Add(two[:len(two)-2])
	f.Add(AppendRecord(bytes.Clone(seg), make([]byte, 300)))
	f.Add(append(bytes.Clone(seg), 0, 0, 0, 0, 0, 0, 0, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, segmentName(1))
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		var first [][]byte
		rep, err := Replay(dir, 0, func(p Pos, rec []byte) error {
			if p.Segment != 1 || p.Offset > int64(len(b)) {
				t.Fatalf("bad position %v for %d bytes", p, len(b))
			}
			first = append(first, bytes.Clone(rec))
			return nil
		}, nil)
		if errors.Is(err, ErrUnknownVersion) {
			return // an intact header of another version: refused, not cut
		}
		if err != nil {
			t.Fatalf("Replay error on a segment's bytes: %v", err)
		}
		if rep.Records != len(first) || len(rep.Cuts) > 1 {
			t.Fatalf("report %+v for %d records", rep, len(first))
		}
		after, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, after) {
			t.Fatal("the cut segment is not a prefix of the original")
		}
		var second [][]byte
		rep2, err := Replay(dir, 0, func(_ Pos, rec []byte) error {
			second = append(second, bytes.Clone(rec))
			return nil
		}, nil)
		if err != nil || len(rep2.Cuts) != 0 || len(second) != len(first) {
			t.Fatalf("second replay: %d records (first %d), cuts %+v, err %v", len(second), len(first), rep2.Cuts, err)
		}
		for i := range first {
			if !bytes.Equal(first[i], second[i]) {
				t.Fatalf("record %d differs on the second replay", i)
			}
		}
	})
}

// FuzzSegmentReader: the in-memory segment scanner over any bytes never
// panics, fails only with corruption, and the intact prefix it reports is
// exactly the header followed by the records it returned, re-encoded.
func FuzzSegmentReader(f *testing.F) {
	seg := encodeSegmentHeader(1)
	f.Add([]byte{})
	f.Add(seg)
	two := AppendRecord(AppendRecord(bytes.Clone(seg), []byte("one")), []byte("two"))
	f.Add(two)
	f.Add(two[:len(two)-1])
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewSegmentReader(bytes.NewReader(b))
		var re []byte
		for r.Next() {
			if re == nil {
				re = encodeSegmentHeader(r.Header().Segment)
			}
			re = AppendRecord(re, r.Record())
			if r.Offset() != int64(len(re)) {
				t.Fatalf("offset %d, re-encoded %d bytes", r.Offset(), len(re))
			}
		}
		err := r.Err()
		if err != nil && !errors.Is(err, encoding.ErrCorrupt) && !errors.Is(err, ErrUnknownVersion) {
			t.Fatalf("error %v is neither corruption nor an unknown version", err)
		}
		if err == nil && r.Good() != int64(len(b)) {
			t.Fatalf("clean end at %d of %d bytes", r.Good(), len(b))
		}
		if re == nil && r.Good() == SegmentHeaderSize {
			re = encodeSegmentHeader(r.Header().Segment)
		}
		if !bytes.Equal(re, b[:r.Good()]) {
			t.Fatalf("intact prefix of %d bytes does not re-encode to itself", r.Good())
		}
	})
}
