package encoding

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"
)

// TraceID is a 16-byte OpenTelemetry trace ID. The zero value is invalid as
// the ID of a stored span.
type TraceID [16]byte

// SpanID is an 8-byte OpenTelemetry span ID. The zero value means "none" as
// a parent and is invalid as the ID of a stored span.
type SpanID [8]byte

// IsZero reports whether every byte of id is zero.
func (id TraceID) IsZero() bool { return id == TraceID{} }

// IsZero reports whether every byte of id is zero.
func (id SpanID) IsZero() bool { return id == SpanID{} }

// String returns the lowercase hex form, 32 characters.
func (id TraceID) String() string { return hex.EncodeToString(id[:]) }

// String returns the lowercase hex form, 16 characters.
func (id SpanID) String() string { return hex.EncodeToString(id[:]) }

// Compare orders trace IDs bytewise: -1, 0 or +1.
func (id TraceID) Compare(o TraceID) int {
	a0, b0 := binary.BigEndian.Uint64(id[:8]), binary.BigEndian.Uint64(o[:8])
	if a0 != b0 {
		if a0 < b0 {
			return -1
		}
		return 1
	}
	a1, b1 := binary.BigEndian.Uint64(id[8:]), binary.BigEndian.Uint64(o[8:])
	switch {
	case a1 < b1:
		return -1
	case a1 > b1:
		return 1
	}
	return 0
}

// ParseTraceID parses a hex trace ID. Shorter IDs (Jaeger's 64-bit IDs, or
// hex with leading zeros dropped) are left-padded with zeros, as Jaeger does.
func ParseTraceID(s string) (TraceID, error) {
	var id TraceID
	if len(s) == 0 || len(s) > 32 {
		return id, fmt.Errorf("parse trace id %q: want 1 to 32 hex digits", s)
	}
	if len(s)%2 == 1 {
		s = "0" + s
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return id, fmt.Errorf("parse trace id %q: %w", s, err)
	}
	copy(id[16-len(b):], b)
	return id, nil
}

// ParseSpanID parses a hex span ID of 1 to 16 digits, left-padding with zeros.
func ParseSpanID(s string) (SpanID, error) {
	var id SpanID
	if len(s) == 0 || len(s) > 16 {
		return id, fmt.Errorf("parse span id %q: want 1 to 16 hex digits", s)
	}
	if len(s)%2 == 1 {
		s = "0" + s
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return id, fmt.Errorf("parse span id %q: %w", s, err)
	}
	copy(id[8-len(b):], b)
	return id, nil
}

// BlockID names an immutable block. It is unique within a store: the
// high 48 bits are the creation time in milliseconds, the low 16 a sequence,
// so IDs sort by creation.
type BlockID uint64

// NewBlockID makes the ID of a block created at t with sequence seq.
func NewBlockID(t time.Time, seq uint16) BlockID {
	return BlockID(uint64(t.UnixMilli())<<16 | uint64(seq))
}

// String returns the 16-digit hex form.
func (id BlockID) String() string { return fmt.Sprintf("%016x", uint64(id)) }

// ParseBlockID parses the form String returns.
func ParseBlockID(s string) (BlockID, error) {
	var v uint64
	if len(s) != 16 {
		return 0, fmt.Errorf("parse block id %q: want 16 hex digits", s)
	}
	if _, err := fmt.Sscanf(s, "%016x", &v); err != nil {
		return 0, fmt.Errorf("parse block id %q: %w", s, err)
	}
	return BlockID(v), nil
}

// PartitionID is the index of a fixed window of span start times: partition
// p covers [p*width, (p+1)*width) since the Unix epoch, where width is the
// store's partition duration (a format-fixing option).
type PartitionID uint32

// PartitionOf returns the partition holding a span that starts at
// startNanos (Unix nanoseconds) when partitions are width wide.
func PartitionOf(startNanos uint64, width time.Duration) PartitionID {
	return PartitionID(startNanos / uint64(width))
}

// keptBit marks a kept partition. Spans' own partitions never have it: with
// the smallest width (one minute) the last partition of 2^64 ns is below
// 2^29.
const keptBit PartitionID = 1 << 31

// Kept returns the partition that holds the traces retention keeps longer
// when p expires (see package retention): a partition of its own, so that
// it expires on its own TTL.
func (p PartitionID) Kept() PartitionID { return p | keptBit }

// IsKept reports whether p holds kept traces.
func (p PartitionID) IsKept() bool { return p&keptBit != 0 }

// Window returns the partition whose time window p covers: p itself, or
// for a kept partition the partition it was kept from.
func (p PartitionID) Window() PartitionID { return p &^ keptBit }

// Start returns the first instant of the partition's time window.
func (p PartitionID) Start(width time.Duration) time.Time {
	return time.Unix(0, int64(uint64(p.Window())*uint64(width))).UTC()
}

// String returns the decimal form, with a "kept:" prefix for a kept
// partition.
func (p PartitionID) String() string {
	if p.IsKept() {
		return fmt.Sprintf("kept:%d", uint32(p.Window()))
	}
	return fmt.Sprintf("%d", uint32(p))
}
