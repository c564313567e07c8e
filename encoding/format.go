package encoding

import (
	"fmt"
	"time"
)

// FormatRecord is stored once per store under KeyFormat. It fixes what
// cannot change for the life of a store: the format version, the partition
// width, and the longest attribute value that gets a posting (a reader
// must know which values it can look up and which it must verify on
// spans). Open refuses a store whose version is newer than this build, or
// whose fixed options differ from the caller's.
type FormatRecord struct {
	Version            uint32
	PartitionWidth     time.Duration
	MaxIndexedValueLen uint32
}

// Store format constants.
const (
	FormatMagic uint32 = 0x54444246 // "TDBF"
	// FormatVersion is the store format this build writes. Versions only grow.
	FormatVersion uint32 = 1

	formatRecordLen = 24
)

// ErrNewerFormat says the store was written by a newer tracedb.
var ErrNewerFormat = fmt.Errorf("store written by a newer tracedb format")

// Encode returns the record's encoding: magic, version, width, CRC32C.
func (f FormatRecord) Encode() []byte {
	e := Encbuf{}
	e.PutBE32(FormatMagic)
	e.PutBE32(f.Version)
	e.PutBE64(uint64(f.PartitionWidth))
	e.PutBE32(f.MaxIndexedValueLen)
	e.PutBE32(Checksum(e.B))
	return e.B
}

// DecodeFormatRecord decodes what Encode wrote. A version newer than
// FormatVersion yields an error wrapping ErrNewerFormat; bad bytes, ErrCorrupt.
func DecodeFormatRecord(b []byte) (FormatRecord, error) {
	const what = "format record"
	var f FormatRecord
	d := NewDecbuf(b, what)
	magic := d.BE32()
	f.Version = d.BE32()
	f.PartitionWidth = time.Duration(d.BE64())
	f.MaxIndexedValueLen = d.BE32()
	sum := d.BE32()
	if err := d.Err(); err != nil {
		return f, err
	}
	if d.Len() != 0 {
		return f, Corruptf(what, d.Offset(), "%d trailing bytes", d.Len())
	}
	if magic != FormatMagic {
		return f, Corruptf(what, 0, "bad magic %08x", magic)
	}
	if got := Checksum(b[:formatRecordLen-4]); got != sum {
		return f, Corruptf(what, formatRecordLen-4, "checksum %08x, want %08x", got, sum)
	}
	if f.Version > FormatVersion {
		return f, fmt.Errorf("%w: store format v%d, this build reads up to v%d", ErrNewerFormat, f.Version, FormatVersion)
	}
	return f, nil
}
