package encoding

import (
	"encoding/binary"
	"hash/crc32"
	"math"
)

// CastagnoliTable is the CRC32C table every checksum in tracedb uses.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum returns the CRC32C of b.
func Checksum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// Encbuf appends encoded values to a byte slice. It never fails.
type Encbuf struct {
	B []byte
}

// Reset empties the buffer, keeping its capacity.
func (e *Encbuf) Reset() { e.B = e.B[:0] }

// Len returns the number of bytes written.
func (e *Encbuf) Len() int { return len(e.B) }

func (e *Encbuf) PutByte(c byte)       { e.B = append(e.B, c) }
func (e *Encbuf) PutBytes(b []byte)    { e.B = append(e.B, b...) }
func (e *Encbuf) PutString(s string)   { e.B = append(e.B, s...) }
func (e *Encbuf) PutUvarint(v uint64)  { e.B = binary.AppendUvarint(e.B, v) }
func (e *Encbuf) PutVarint(v int64)    { e.B = binary.AppendVarint(e.B, v) }
func (e *Encbuf) PutBE32(v uint32)     { e.B = binary.BigEndian.AppendUint32(e.B, v) }
func (e *Encbuf) PutBE64(v uint64)     { e.B = binary.BigEndian.AppendUint64(e.B, v) }
func (e *Encbuf) PutFloat64(v float64) { e.PutBE64(math.Float64bits(v)) }

// PutUvarintBytes writes len(b) as a uvarint, then b.
func (e *Encbuf) PutUvarintBytes(b []byte) { e.PutUvarint(uint64(len(b))); e.PutBytes(b) }

// PutUvarintString writes len(s) as a uvarint, then s.
func (e *Encbuf) PutUvarintString(s string) { e.PutUvarint(uint64(len(s))); e.PutString(s) }

// Decbuf reads encoded values from a byte slice with bounds checks. The first
// error sticks: every later read returns a zero value, and Err reports that
// first error, which wraps ErrCorrupt. Decoders read a whole structure and
// check Err once at the end, so a short or garbled input can never panic.
type Decbuf struct {
	B    []byte
	What string // what is being decoded, for error messages
	off  int    // bytes consumed, for error messages
	err  error
}

// NewDecbuf returns a Decbuf over b that names what in its errors.
func NewDecbuf(b []byte, what string) Decbuf { return Decbuf{B: b, What: what} }

// Err returns the first error met, or nil.
func (d *Decbuf) Err() error { return d.err }

// Len returns the number of unread bytes.
func (d *Decbuf) Len() int { return len(d.B) }

// Offset returns how many bytes were consumed.
func (d *Decbuf) Offset() int { return d.off }

// Fail records err as the decoder's error unless one is already recorded.
func (d *Decbuf) Fail(reason string) {
	if d.err == nil {
		d.err = &CorruptionError{What: d.What, Offset: d.off, Reason: reason}
	}
	d.B = nil
}

func (d *Decbuf) advance(n int) {
	d.B = d.B[n:]
	d.off += n
}

// Byte reads one byte.
func (d *Decbuf) Byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.B) < 1 {
		d.Fail("unexpected end of data")
		return 0
	}
	c := d.B[0]
	d.advance(1)
	return c
}

// Bytes reads n bytes. The result aliases the input.
func (d *Decbuf) Bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || len(d.B) < n {
		d.Fail("unexpected end of data")
		return nil
	}
	b := d.B[:n:n]
	d.advance(n)
	return b
}

// Uvarint reads an unsigned varint.
func (d *Decbuf) Uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.B)
	if n <= 0 {
		d.Fail("bad uvarint")
		return 0
	}
	d.advance(n)
	return v
}

// Varint reads a signed (zig-zag) varint.
func (d *Decbuf) Varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.B)
	if n <= 0 {
		d.Fail("bad varint")
		return 0
	}
	d.advance(n)
	return v
}

// UvarintInt reads a uvarint that must be at most max, as an int. Use it for
// counts and lengths so that a garbled count cannot ask for huge allocations.
func (d *Decbuf) UvarintInt(max int) int {
	v := d.Uvarint()
	if d.err != nil {
		return 0
	}
	if v > uint64(max) {
		d.Fail("count or length out of range")
		return 0
	}
	return int(v)
}

// BE32 reads a big-endian uint32.
func (d *Decbuf) BE32() uint32 {
	b := d.Bytes(4)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

// BE64 reads a big-endian uint64.
func (d *Decbuf) BE64() uint64 {
	b := d.Bytes(8)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// Float64 reads a big-endian IEEE 754 double.
func (d *Decbuf) Float64() float64 { return math.Float64frombits(d.BE64()) }

// UvarintBytes reads a uvarint length and that many bytes (aliasing the input).
func (d *Decbuf) UvarintBytes() []byte {
	n := d.UvarintInt(len(d.B))
	return d.Bytes(n)
}

// UvarintString reads a uvarint length and that many bytes as a new string.
func (d *Decbuf) UvarintString() string { return string(d.UvarintBytes()) }

func float64bits(f float64) uint64     { return math.Float64bits(f) }
func float64frombits(b uint64) float64 { return math.Float64frombits(b) }

// OpenRecord checks a checksummed record: a BE32 magic, a version byte,
// the rest of the body, then the CRC32C of all that as BE32. It returns a
// Decbuf over the body after the version, and the version, which must be
// in [minVersion, maxVersion]. Errors wrap ErrCorrupt and name what.
func OpenRecord(b []byte, what string, magic uint32, minVersion, maxVersion byte) (Decbuf, byte, error) {
	if len(b) < 9 {
		return Decbuf{}, 0, Corruptf(what, 0, "%d bytes is too short", len(b))
	}
	body, sum := b[:len(b)-4], b[len(b)-4:]
	if got, want := Checksum(body), binary.BigEndian.Uint32(sum); got != want {
		return Decbuf{}, 0, Corruptf(what, len(body), "checksum %08x, want %08x", got, want)
	}
	d := NewDecbuf(body, what)
	if m := d.BE32(); m != magic {
		return Decbuf{}, 0, Corruptf(what, 0, "bad magic %08x", m)
	}
	v := d.Byte()
	if v < minVersion || v > maxVersion {
		return Decbuf{}, 0, Corruptf(what, 4, "unknown version %d (this build knows %d to %d)", v, minVersion, maxVersion)
	}
	return d, v, nil
}
