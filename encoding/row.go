package encoding

import (
	"encoding/binary"
	"fmt"
	"unsafe"
)

// A row is one span encoded compactly for the store's in-memory head: a
// few hundred bytes without a pointer, where the row model takes a couple of
// kilobytes in many small objects. It never reaches the disk, so it has no
// version or checksum; DecodeRow still checks every bound and never panics.
//
//	┌──────────────┬───────────────┬──────────────┬─────────────────────────┐
//	│ trace ID 16B │ start BE64 8B │ span ID 8B   │ the rest, varint-coded  │
//	└──────────────┴───────────────┴──────────────┴─────────────────────────┘
//
// The fixed prefix holds the sort key of a block, (trace ID, start, span
// ID), readable with RowKey without decoding the rest. Resource and scope
// are stored as indexes into tables the caller keeps.
const rowPrefixLen = 32

// maxRowDepth bounds the nesting of arrays and maps DecodeRow accepts.
const maxRowDepth = 64

// AppendRow appends the row of s to dst. resource and scope are the
// indexes of s.Resource and s.Scope in the caller's tables.
func AppendRow(dst []byte, s *Span, resource, scope uint32) []byte {
	e := Encbuf{B: dst}
	e.PutBytes(s.TraceID[:])
	e.PutBE64(s.StartUnixNano)
	e.PutBytes(s.SpanID[:])
	e.PutUvarint(uint64(resource))
	e.PutUvarint(uint64(scope))
	e.PutBytes(s.ParentSpanID[:])
	e.PutUvarint(s.EndUnixNano - s.StartUnixNano) // callers store only spans with End >= Start
	e.PutUvarintString(s.TraceState)
	e.PutUvarint(uint64(s.Flags))
	e.PutUvarintString(s.Name)
	e.PutVarint(int64(s.Kind))
	e.PutVarint(int64(s.StatusCode))
	e.PutUvarintString(s.StatusMessage)
	putRowKVs(&e, s.Attrs)
	e.PutUvarint(uint64(s.DroppedAttrs))
	e.PutUvarint(uint64(len(s.Events)))
	for i := range s.Events {
		ev := &s.Events[i]
		e.PutUvarint(ev.TimeUnixNano)
		e.PutUvarintString(ev.Name)
		putRowKVs(&e, ev.Attrs)
		e.PutUvarint(uint64(ev.DroppedAttrs))
	}
	e.PutUvarint(uint64(s.DroppedEvents))
	e.PutUvarint(uint64(len(s.Links)))
	for i := range s.Links {
		l := &s.Links[i]
		e.PutBytes(l.TraceID[:])
		e.PutBytes(l.SpanID[:])
		e.PutUvarintString(l.TraceState)
		e.PutUvarint(uint64(l.Flags))
		putRowKVs(&e, l.Attrs)
		e.PutUvarint(uint64(l.DroppedAttrs))
	}
	e.PutUvarint(uint64(s.DroppedLinks))
	return e.B
}

// A KeyValue list is written as its length + 1, so that 0 stands for a nil
// list and 1 for an empty one: the row keeps the difference.
func putRowKVs(e *Encbuf, kvs []KeyValue) {
	if kvs == nil {
		e.PutUvarint(0)
		return
	}
	e.PutUvarint(uint64(len(kvs)) + 1)
	for i := range kvs {
		e.PutUvarintString(kvs[i].Key)
		putRowValue(e, &kvs[i].Value)
	}
}

func putRowValue(e *Encbuf, v *Value) {
	e.PutByte(byte(v.Type))
	switch v.Type {
	case ValueStr, ValueBytes:
		e.PutUvarintString(v.Str)
	case ValueBool, ValueInt, ValueDouble:
		e.PutUvarint(v.Num)
	case ValueArray, ValueMap:
		putRowKVs(e, v.Kids)
	}
}

// RowKey returns the sort key of a row: trace ID, start and span ID.
func RowKey(row []byte) (TraceID, uint64, SpanID, error) {
	var (
		id   TraceID
		span SpanID
	)
	if len(row) < rowPrefixLen {
		return id, 0, span, Corruptf("row", 0, "%d bytes is shorter than the row prefix", len(row))
	}
	copy(id[:], row[:16])
	copy(span[:], row[24:32])
	return id, binary.BigEndian.Uint64(row[16:24]), span, nil
}

// RowTimes returns the trace ID, start and end of a row made by
// AppendRow, reading only the row's first fields.
func RowTimes(row []byte) (id TraceID, start, end uint64, err error) {
	d := NewDecbuf(row, "row")
	copy(id[:], d.Bytes(16))
	start = d.BE64()
	d.Bytes(8) // span ID
	d.Uvarint()
	d.Uvarint()
	d.Bytes(8) // parent
	end = start + d.Uvarint()
	return id, start, end, d.Err()
}

// DecodeRow decodes a row made by AppendRow, taking its resource and
// scope from the caller's tables. The span's strings are copies: the row
// may be reused afterwards. (They all point into one private copy of the
// row, made by one allocation, rather than each being allocated apart: a
// string kept from the span keeps that copy alive.)
func DecodeRow(row []byte, resources []*Resource, scopes []*Scope) (*Span, error) {
	own := make([]byte, len(row))
	copy(own, row)
	d := NewDecbuf(own, "row")
	s := &Span{}
	copy(s.TraceID[:], d.Bytes(16))
	s.StartUnixNano = d.BE64()
	copy(s.SpanID[:], d.Bytes(8))
	ri, si := d.Uvarint(), d.Uvarint()
	if d.Err() == nil {
		if ri >= uint64(len(resources)) || si >= uint64(len(scopes)) {
			return nil, Corruptf("row", d.Offset(), "resource %d or scope %d out of range", ri, si)
		}
		s.Resource, s.Scope = resources[ri], scopes[si]
	}
	copy(s.ParentSpanID[:], d.Bytes(8))
	s.EndUnixNano = s.StartUnixNano + d.Uvarint()
	s.TraceState = rowString(&d)
	s.Flags = uint32(d.Uvarint())
	s.Name = rowString(&d)
	s.Kind = int32(d.Varint())
	s.StatusCode = int32(d.Varint())
	s.StatusMessage = rowString(&d)
	s.Attrs = rowKVs(&d, 0)
	s.DroppedAttrs = uint32(d.Uvarint())
	if n := d.UvarintInt(d.Len()); n > 0 {
		s.Events = make([]Event, n)
		for i := range s.Events {
			ev := &s.Events[i]
			ev.TimeUnixNano = d.Uvarint()
			ev.Name = rowString(&d)
			ev.Attrs = rowKVs(&d, 0)
			ev.DroppedAttrs = uint32(d.Uvarint())
		}
	}
	s.DroppedEvents = uint32(d.Uvarint())
	if n := d.UvarintInt(d.Len() / 24); n > 0 {
		s.Links = make([]Link, n)
		for i := range s.Links {
			l := &s.Links[i]
			copy(l.TraceID[:], d.Bytes(16))
			copy(l.SpanID[:], d.Bytes(8))
			l.TraceState = rowString(&d)
			l.Flags = uint32(d.Uvarint())
			l.Attrs = rowKVs(&d, 0)
			l.DroppedAttrs = uint32(d.Uvarint())
		}
	}
	s.DroppedLinks = uint32(d.Uvarint())
	if err := d.Err(); err != nil {
		return nil, err
	}
	if d.Len() != 0 {
		return nil, Corruptf("row", d.Offset(), "%d trailing bytes", d.Len())
	}
	return s, nil
}

// rowString reads a length-prefixed string from d without copying it: d
// decodes DecodeRow's private copy of a row, which nothing writes to.
func rowString(d *Decbuf) string {
	b := d.UvarintBytes()
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

func rowKVs(d *Decbuf, depth int) []KeyValue {
	n := d.UvarintInt(d.Len() + 1)
	if n == 0 || d.Err() != nil {
		return nil
	}
	if depth > maxRowDepth {
		d.Fail(fmt.Sprintf("values nest deeper than %d", maxRowDepth))
		return nil
	}
	kvs := make([]KeyValue, n-1)
	for i := range kvs {
		kvs[i].Key = rowString(d)
		v := &kvs[i].Value
		v.Type = ValueType(d.Byte())
		switch v.Type {
		case ValueEmpty:
		case ValueStr, ValueBytes:
			v.Str = rowString(d)
		case ValueBool, ValueInt, ValueDouble:
			v.Num = d.Uvarint()
		case ValueArray, ValueMap:
			v.Kids = rowKVs(d, depth+1)
		default:
			d.Fail(fmt.Sprintf("unknown value type %d", v.Type))
			return nil
		}
	}
	return kvs
}
