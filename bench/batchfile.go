package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracedb/tracedb/encoding"
)

// The batch file holds a generated workload as OTLP protobuf batches, so
// that generating it is not part of what the ingest benchmark measures.
// batchfile.md draws the format.
const (
	batchFileMagic   uint32 = 0x54444242 // "TDBB"
	batchFileVersion byte   = 1
	batchHeaderLen          = 5  // magic BE32 + version u8
	recordHeaderLen         = 8  // length BE32 + CRC32C BE32
	trailerBodyLen          = 16 // batches BE64 + spans BE64
	// MaxBatchBytes bounds one record's payload, so that a garbled length
	// is reported instead of allocated.
	MaxBatchBytes = 256 << 20
	// initialPayloadCap is the most a reader allocates for a payload before
	// its bytes have been read.
	initialPayloadCap = 4 << 20
)

// BatchWriter streams batches into a batch file. It is not safe for
// concurrent use.
type BatchWriter struct {
	w       *bufio.Writer
	m       ptrace.ProtoMarshaler
	enc     encoding.Encbuf
	batches uint64
	spans   uint64
	closed  bool
}

// NewBatchWriter writes the file header to w and returns a writer.
func NewBatchWriter(w io.Writer) (*BatchWriter, error) {
	bw := &BatchWriter{w: bufio.NewWriterSize(w, 1<<20)}
	bw.enc.PutBE32(batchFileMagic)
	bw.enc.PutByte(batchFileVersion)
	if _, err := bw.w.Write(bw.enc.B); err != nil {
		return nil, fmt.Errorf("write batch file header: %w", err)
	}
	return bw, nil
}

// Write appends td as one record.
func (bw *BatchWriter) Write(td ptrace.Traces) error {
	if bw.closed {
		return errors.New("batch writer: write after close")
	}
	body, err := bw.m.MarshalTraces(td)
	if err != nil {
		return fmt.Errorf("marshal batch %d: %w", bw.batches, err)
	}
	if len(body) == 0 || len(body) > MaxBatchBytes {
		return fmt.Errorf("batch %d: %d bytes, want 1 to %d", bw.batches, len(body), MaxBatchBytes)
	}
	bw.enc.Reset()
	bw.enc.PutBE32(uint32(len(body)))
	bw.enc.PutBE32(encoding.Checksum(body))
	if _, err := bw.w.Write(bw.enc.B); err != nil {
		return fmt.Errorf("write batch %d: %w", bw.batches, err)
	}
	if _, err := bw.w.Write(body); err != nil {
		return fmt.Errorf("write batch %d: %w", bw.batches, err)
	}
	bw.batches++
	bw.spans += uint64(td.SpanCount())
	return nil
}

// Close writes the trailer and flushes. It does not close the underlying
// writer.
func (bw *BatchWriter) Close() error {
	if bw.closed {
		return nil
	}
	bw.closed = true
	var body encoding.Encbuf
	body.PutBE64(bw.batches)
	body.PutBE64(bw.spans)
	bw.enc.Reset()
	bw.enc.PutBE32(0) // a zero length marks the trailer
	bw.enc.PutBE32(encoding.Checksum(body.B))
	bw.enc.PutBytes(body.B)
	if _, err := bw.w.Write(bw.enc.B); err != nil {
		return fmt.Errorf("write batch file trailer: %w", err)
	}
	if err := bw.w.Flush(); err != nil {
		return fmt.Errorf("write batch file: %w", err)
	}
	return nil
}

// Batches and Spans return what was written so far.
func (bw *BatchWriter) Batches() uint64 { return bw.batches }
func (bw *BatchWriter) Spans() uint64   { return bw.spans }

// BatchReader reads the records of a batch file in order. It is not safe
// for concurrent use.
type BatchReader struct {
	r       *bufio.Reader
	off     int64 // file offset of the next record, for errors
	batches uint64
	trailer struct {
		seen           bool
		batches, spans uint64
	}
}

// NewBatchReader reads and checks the file header. Errors about the bytes
// wrap encoding.ErrCorrupt.
func NewBatchReader(r io.Reader) (*BatchReader, error) {
	br := &BatchReader{r: bufio.NewReaderSize(r, 1<<20)}
	var hdr [batchHeaderLen]byte
	if err := br.readFull(hdr[:], "header"); err != nil {
		return nil, err
	}
	d := encoding.NewDecbuf(hdr[:], "batch file header")
	if m := d.BE32(); m != batchFileMagic {
		return nil, encoding.Corruptf("batch file header", 0, "magic %#08x, want %#08x", m, batchFileMagic)
	}
	if v := d.Byte(); v != batchFileVersion {
		return nil, encoding.Corruptf("batch file header", 4, "version %d, want %d", v, batchFileVersion)
	}
	br.off = batchHeaderLen
	return br, nil
}

// Next returns the next record's payload, an OTLP TracesData protobuf, in
// a new slice the caller owns. After the last record it checks the trailer
// and returns io.EOF. A file cut short or garbled gives an error that wraps
// encoding.ErrCorrupt and says where.
func (br *BatchReader) Next() ([]byte, error) {
	if br.trailer.seen {
		return nil, io.EOF
	}
	var hdr [recordHeaderLen]byte
	if err := br.readFull(hdr[:], fmt.Sprintf("batch %d header", br.batches)); err != nil {
		return nil, err
	}
	d := encoding.NewDecbuf(hdr[:], "batch record")
	n, sum := d.BE32(), d.BE32()
	if n == 0 {
		return nil, br.readTrailer(sum)
	}
	if n > MaxBatchBytes {
		return nil, encoding.Corruptf("batch file", int(br.off), "batch %d: length %d exceeds %d", br.batches, n, MaxBatchBytes)
	}
	// Grow the payload as its bytes arrive rather than trusting the length
	// with one allocation: a garbled length then costs what the file holds.
	buf := bytes.NewBuffer(make([]byte, 0, min(n, initialPayloadCap)))
	if _, err := io.CopyN(buf, br.r, int64(n)); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, encoding.Corruptf("batch file", int(br.off), "truncated: file ends inside batch %d (%d of %d bytes)", br.batches, buf.Len(), n)
		}
		return nil, fmt.Errorf("read batch file: %w", err)
	}
	body := buf.Bytes()
	if got := encoding.Checksum(body); got != sum {
		return nil, encoding.Corruptf("batch file", int(br.off), "batch %d: checksum %#08x, want %#08x", br.batches, got, sum)
	}
	br.off += recordHeaderLen + int64(n)
	br.batches++
	return body, nil
}

// readTrailer reads the trailer's body, after the zero length and the
// body's checksum sum.
func (br *BatchReader) readTrailer(sum uint32) error {
	var b [trailerBodyLen]byte
	if err := br.readFull(b[:], "trailer"); err != nil {
		return err
	}
	if got := encoding.Checksum(b[:]); got != sum {
		return encoding.Corruptf("batch file trailer", int(br.off), "checksum %#08x, want %#08x", got, sum)
	}
	d := encoding.NewDecbuf(b[:], "batch file trailer")
	batches, spans := d.BE64(), d.BE64()
	if batches != br.batches {
		return encoding.Corruptf("batch file trailer", int(br.off), "says %d batches, the file holds %d", batches, br.batches)
	}
	switch _, err := br.r.ReadByte(); {
	case err == nil:
		return encoding.Corruptf("batch file", int(br.off)+recordHeaderLen+trailerBodyLen, "bytes after the trailer")
	case err != io.EOF:
		return fmt.Errorf("read batch file: %w", err)
	}
	br.trailer.seen, br.trailer.batches, br.trailer.spans = true, batches, spans
	return io.EOF
}

// Trailer returns the batch and span counts the trailer holds; ok is false
// until Next has returned io.EOF.
func (br *BatchReader) Trailer() (batches, spans uint64, ok bool) {
	return br.trailer.batches, br.trailer.spans, br.trailer.seen
}

// readFull fills b; an end of file in the middle is corruption (a file cut
// short), any other error is passed on.
func (br *BatchReader) readFull(b []byte, what string) error {
	if _, err := io.ReadFull(br.r, b); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return encoding.Corruptf("batch file", int(br.off), "truncated: file ends inside the %s", what)
		}
		return fmt.Errorf("read batch file: %w", err)
	}
	return nil
}
