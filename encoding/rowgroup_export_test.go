package encoding

// Hooks into the row-group internals for the external tests
// (rowgroup_test.go, rowgroup_fuzz_test.go). Compiled only into tests.

import (
	"encoding/binary"
	"fmt"

	"github.com/klauspost/compress/zstd"
)

// RowGroupColumnStats describes the columns of an encoded row group, one
// line each: name, codec, raw and on-disk size.
func RowGroupColumnStats(c *Codec, b []byte, rows int) ([]string, error) {
	g, err := c.DecodeRowGroup(b)
	if err != nil {
		return nil, err
	}
	out := []string{fmt.Sprintf("time unit %d ns", g.unit)}
	for i, d := range g.dir {
		if d.rawLen > 0 {
			out = append(out, fmt.Sprintf("%-12s codec=%d raw=%8d disk=%8d %6.2f bytes/span",
				columnNames[i], d.codec, d.rawLen, d.diskLen, float64(d.diskLen)/float64(rows)))
		}
	}
	return out, nil
}

// NewRawRowGroupEncoder returns an encoder that stores every column
// uncompressed, so that a fuzzer mutating its output reaches the column
// decoders.
func (c *Codec) NewRawRowGroupEncoder() *RowGroupEncoder {
	e := c.NewRowGroupEncoder()
	e.forceRaw = true
	return e
}

// NewCodecLevel returns a Codec that compresses at zstd level l (1 fastest
// to 4 best), to compare levels.
func NewCodecLevel(l int) (*Codec, error) { return newCodec(zstd.EncoderLevel(l)) }

// FixRowGroupChecksums returns a copy of b with the header's and every
// column's CRC32C recomputed, or nil if b's header cannot be parsed or its
// lengths do not add up. A fuzzer's mutations then reach past the checksum
// checks into the column decoders.
func FixRowGroupChecksums(b []byte) []byte {
	if len(b) < 5 {
		return nil
	}
	d := NewDecbuf(b[5:], "fix")
	d.Uvarint()
	d.Uvarint()
	d.Byte()
	n := d.UvarintInt(colCount)
	if d.Err() != nil || n != colCount {
		return nil
	}
	type col struct{ crcAt, disk int }
	var cols [colCount]col
	for i := range cols {
		d.Byte()
		d.Uvarint()
		cols[i].disk = d.UvarintInt(len(b))
		cols[i].crcAt = 5 + d.Offset()
		d.BE32()
	}
	hdr := 5 + d.Offset()
	if d.Err() != nil || hdr+4 > len(b) {
		return nil
	}
	out := append([]byte(nil), b...)
	at := hdr + 4
	for _, c := range cols {
		if c.disk > len(out)-at {
			return nil
		}
		binary.BigEndian.PutUint32(out[c.crcAt:], Checksum(out[at:at+c.disk]))
		at += c.disk
	}
	binary.BigEndian.PutUint32(out[hdr:], Checksum(out[:hdr]))
	return out
}

// PartialRows decodes rows [lo, hi) the way Rows does for a small range,
// whatever the range's size, so that tests compare it with Span.
func (g *RowGroup) PartialRows(lo, hi int) ([]*Span, error) {
	if lo == hi {
		return nil, nil
	}
	return g.rowsPartial(lo, hi)
}
