package wal

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/tracedb/tracedb/encoding"
)

// The constants of the segment format. wal.md draws them; the two must agree.
const (
	// SegmentMagic opens every segment file: "TWAL".
	SegmentMagic uint32 = 0x5457414c
	// FormatV1 is the first (and current) segment format version. Versions
	// only grow; a reader refuses a version it does not know.
	FormatV1 byte = 1
	// FormatVersion is the version this build writes.
	FormatVersion = FormatV1

	// SegmentHeaderSize is the size of the segment header: magic (4),
	// version (1), reserved zeros (3), segment number (8), CRC32C (4).
	SegmentHeaderSize = 20
	// RecordHeaderSize is the size of a record's frame header: payload
	// length (4) and CRC32C (4).
	RecordHeaderSize = 8
	// MaxRecordLen is the largest payload the format allows. A length field
	// above it is corruption, whatever Options.MaxRecordSize says.
	MaxRecordLen = 1 << 30

	// segmentSuffix ends every segment file name; the rest is the segment
	// number in segmentDigits decimal digits, zero-padded, so that names
	// sort like numbers.
	segmentSuffix = ".wal"
	segmentDigits = 20
	// tmpSuffix marks a segment being created; Replay ignores such files
	// and Open removes them.
	tmpSuffix = ".tmp"

	whatRecord  = "wal record"
	whatSegment = "wal segment header"
)

// ErrRecordTooLarge is wrapped by Append when a record is larger than
// Options.MaxRecordSize.
var ErrRecordTooLarge = errors.New("wal: record too large")

// ErrUnknownVersion is wrapped by the error for an intact segment header
// whose version this build does not know (a segment from a newer tracedb).
// It is not corruption: Replay returns it instead of cutting the segment.
var ErrUnknownVersion = errors.New("wal: unknown segment format version")

// crcFrame returns the CRC32C of a frame: the four length bytes, then the
// payload. Covering the length means a garbled length cannot pass.
func crcFrame(lenField []byte, payload []byte) uint32 {
	return crc32.Update(encoding.Checksum(lenField), crc32.MakeTable(crc32.Castagnoli), payload)
}

// putRecordHeader fills hdr (RecordHeaderSize bytes) with the frame header
// of payload.
func putRecordHeader(hdr []byte, payload []byte) {
	e := encoding.Encbuf{B: hdr[:0]}
	e.PutBE32(uint32(len(payload)))
	e.PutBE32(crcFrame(e.B[:4], payload))
}

// AppendRecord appends the framed record of payload to dst and returns the
// extended slice. It is the encoding Append writes; tools and tests use it
// to build segments by hand. len(payload) must be at most MaxRecordLen.
func AppendRecord(dst []byte, payload []byte) []byte {
	var hdr [RecordHeaderSize]byte
	putRecordHeader(hdr[:], payload)
	dst = append(dst, hdr[:]...)
	return append(dst, payload...)
}

// DecodeRecord decodes the framed record at the start of b. It returns the
// payload (aliasing b) and the frame's total size n, so that the next record
// starts at b[n:]. An error wraps encoding.ErrCorrupt; its reason tells a
// short header, a short payload, a bad length and a checksum mismatch apart.
// DecodeRecord never panics.
func DecodeRecord(b []byte) (payload []byte, n int, err error) {
	if len(b) < RecordHeaderSize {
		return nil, 0, encoding.Corruptf(whatRecord, 0, "short header: %d of %d bytes", len(b), RecordHeaderSize)
	}
	d := encoding.NewDecbuf(b, whatRecord)
	length := d.BE32()
	sum := d.BE32()
	if err := d.Err(); err != nil {
		return nil, 0, err
	}
	if length > MaxRecordLen {
		return nil, 0, encoding.Corruptf(whatRecord, 0, "bad length %d (max %d)", length, MaxRecordLen)
	}
	if d.Len() < int(length) {
		return nil, 0, encoding.Corruptf(whatRecord, RecordHeaderSize, "short payload: %d of %d bytes", d.Len(), length)
	}
	payload = d.Bytes(int(length))
	if err := d.Err(); err != nil {
		return nil, 0, err
	}
	if got := crcFrame(b[:4], payload); got != sum {
		return nil, 0, encoding.Corruptf(whatRecord, 4, "checksum %08x, want %08x", got, sum)
	}
	return payload, RecordHeaderSize + int(length), nil
}

// SegmentHeader is the decoded header of a segment file.
type SegmentHeader struct {
	Version byte
	Segment uint64 // the segment's number; equals the one in its file name
}

// encodeSegmentHeader returns the SegmentHeaderSize bytes that open segment n.
func encodeSegmentHeader(n uint64) []byte {
	e := encoding.Encbuf{B: make([]byte, 0, SegmentHeaderSize)}
	e.PutBE32(SegmentMagic)
	e.PutByte(FormatVersion)
	e.PutBytes([]byte{0, 0, 0})
	e.PutBE64(n)
	e.PutBE32(encoding.Checksum(e.B))
	return e.B
}

// DecodeSegmentHeader decodes the first SegmentHeaderSize bytes of b as a
// segment header. A torn or garbled header gives an error that wraps
// encoding.ErrCorrupt; an intact header of an unknown version gives one that
// wraps ErrUnknownVersion. The layout of the first SegmentHeaderSize bytes
// (magic, version, CRC32C at the end) is the same in every version.
func DecodeSegmentHeader(b []byte) (SegmentHeader, error) {
	var h SegmentHeader
	if len(b) < SegmentHeaderSize {
		return h, encoding.Corruptf(whatSegment, 0, "short header: %d of %d bytes", len(b), SegmentHeaderSize)
	}
	d := encoding.NewDecbuf(b[:SegmentHeaderSize], whatSegment)
	magic := d.BE32()
	h.Version = d.Byte()
	reserved := d.Bytes(3)
	h.Segment = d.BE64()
	sum := d.BE32()
	if err := d.Err(); err != nil {
		return h, err
	}
	if magic != SegmentMagic {
		return h, encoding.Corruptf(whatSegment, 0, "bad magic %08x", magic)
	}
	if got := encoding.Checksum(b[:SegmentHeaderSize-4]); got != sum {
		return h, encoding.Corruptf(whatSegment, SegmentHeaderSize-4, "checksum %08x, want %08x", got, sum)
	}
	if h.Version != FormatV1 {
		// An intact header of a version this build does not know was written
		// by a newer tracedb: refuse it rather than call it corrupt and cut it.
		return h, fmt.Errorf("%w: segment %d is version %d, this build reads up to %d", ErrUnknownVersion, h.Segment, h.Version, FormatVersion)
	}
	if reserved[0]|reserved[1]|reserved[2] != 0 {
		return h, encoding.Corruptf(whatSegment, 5, "reserved bytes not zero")
	}
	return h, nil
}

// readChunk bounds how much SegmentReader allocates ahead of the bytes it
// has actually read, so a garbled length cannot make it allocate MaxRecordLen.
const readChunk = 1 << 20

// SegmentReader reads the records of one segment from an io.Reader: first
// the segment header, then framed records until the end of the data.
//
// Use it as an iterator: for r.Next() { use r.Record() }; then r.Err().
// Err is nil at a clean end (the data ends exactly after a record, or is
// empty). A torn or corrupt header or record stops the reader with an error
// that wraps encoding.ErrCorrupt; Good then says where the intact prefix of
// the segment ends. Any other error is the underlying reader's I/O error.
//
// A SegmentReader is not safe for concurrent use. The slice Record returns
// is reused by the next call to Next.
type SegmentReader struct {
	r      io.Reader
	header SegmentHeader
	began  bool // the header was read (or tried)
	// want is the segment number the header must name when checkWant is
	// set: Replay sets it from the file name.
	want      uint64
	checkWant bool
	off       int64 // bytes consumed from r
	good      int64 // offset just after the last intact record (or header)
	buf       []byte
	rec       []byte
	err       error
}

// NewSegmentReader returns a reader over the segment held in r.
func NewSegmentReader(r io.Reader) *SegmentReader {
	return &SegmentReader{r: r}
}

// Header returns the segment header once Next was called and the header was
// intact; the zero SegmentHeader otherwise.
func (r *SegmentReader) Header() SegmentHeader { return r.header }

// Record returns the payload of the current record. It is valid until the
// next call to Next.
func (r *SegmentReader) Record() []byte { return r.rec }

// Offset returns the offset in the segment just after the current record:
// the Pos.Offset Append returned for it.
func (r *SegmentReader) Offset() int64 { return r.good }

// Good returns the length of the intact prefix read so far: the offset just
// after the last intact record, or just after the header, or 0 when the
// header itself is torn or corrupt. After a corruption error, truncating
// the segment to Good leaves only intact records.
func (r *SegmentReader) Good() int64 { return r.good }

// Err returns the error that stopped the reader, or nil at a clean end.
func (r *SegmentReader) Err() error { return r.err }

// Next advances to the next record and reports whether there is one.
func (r *SegmentReader) Next() bool {
	if r.err != nil {
		return false
	}
	if !r.began {
		r.began = true
		if !r.readHeader() {
			return false
		}
	}
	var hdr [RecordHeaderSize]byte
	n, err := io.ReadFull(r.r, hdr[:])
	r.off += int64(n)
	switch {
	case err == io.EOF:
		return false // clean end: the data stops between records
	case err == io.ErrUnexpectedEOF:
		r.err = encoding.Corruptf(whatRecord, int(r.good), "short header: %d of %d bytes", n, RecordHeaderSize)
		return false
	case err != nil:
		r.err = err
		return false
	}
	d := encoding.NewDecbuf(hdr[:], whatRecord)
	length := d.BE32()
	sum := d.BE32()
	if err := d.Err(); err != nil {
		r.err = err
		return false
	}
	if length > MaxRecordLen {
		r.err = encoding.Corruptf(whatRecord, int(r.good), "bad length %d (max %d)", length, MaxRecordLen)
		return false
	}
	payload, err := r.readPayload(int(length))
	if err != nil {
		r.err = err
		return false
	}
	if got := crcFrame(hdr[:4], payload); got != sum {
		r.err = encoding.Corruptf(whatRecord, int(r.good), "checksum %08x, want %08x", got, sum)
		return false
	}
	r.rec = payload
	r.good = r.off
	return true
}

func (r *SegmentReader) readHeader() bool {
	var b [SegmentHeaderSize]byte
	n, err := io.ReadFull(r.r, b[:])
	r.off += int64(n)
	switch {
	case err == io.EOF:
		return false // an empty file: nothing to read, nothing wrong
	case err == io.ErrUnexpectedEOF:
		r.err = encoding.Corruptf(whatSegment, 0, "short header: %d of %d bytes", n, SegmentHeaderSize)
		return false
	case err != nil:
		r.err = err
		return false
	}
	h, err := DecodeSegmentHeader(b[:])
	if err != nil {
		r.err = err
		return false
	}
	if r.checkWant && h.Segment != r.want {
		r.err = encoding.Corruptf(whatSegment, 8, "header names segment %d, file name %d", h.Segment, r.want)
		return false
	}
	r.header = h
	r.good = SegmentHeaderSize
	return true
}

// readPayload reads n bytes into the reused buffer. It grows the buffer at
// most readChunk bytes past what has arrived, so a length that promises more
// than the data holds costs no more memory than the data itself.
func (r *SegmentReader) readPayload(n int) ([]byte, error) {
	buf := r.buf[:0]
	for len(buf) < n {
		want := min(n-len(buf), readChunk)
		if cap(buf) >= n {
			want = n - len(buf) // room already there: read the rest at once
		}
		start := len(buf)
		buf = slices.Grow(buf, want)[:start+want]
		m, err := io.ReadFull(r.r, buf[start:])
		r.off += int64(m)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			r.buf = buf[:0]
			return nil, encoding.Corruptf(whatRecord, int(r.good), "short payload: %d of %d bytes", start+m, n)
		}
		if err != nil {
			r.buf = buf[:0]
			return nil, err
		}
	}
	r.buf = buf
	return buf[:n:n], nil
}

// segmentName returns the file name of segment n.
func segmentName(n uint64) string {
	s := strconv.FormatUint(n, 10)
	return strings.Repeat("0", segmentDigits-len(s)) + s + segmentSuffix
}

// parseSegmentName returns the number in a segment file name.
func parseSegmentName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, segmentSuffix)
	if !ok || len(digits) != segmentDigits {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	return n, err == nil
}

// ListSegments returns the numbers of the segment files in dir, ascending.
// A missing dir holds no segments. Other files are ignored.
func ListSegments(dir string) ([]uint64, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list wal segments: %w", err)
	}
	var segs []uint64
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if n, ok := parseSegmentName(e.Name()); ok {
			segs = append(segs, n)
		}
	}
	slices.Sort(segs)
	return segs, nil
}
