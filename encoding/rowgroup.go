package encoding

// This file holds the row-group format's constants, the Codec that owns the
// zstd encoder and decoder, and the RowGroup type with its cheap accessors.
// rowgroup_encode.go writes row groups, rowgroup_decode.go reads them, and
// rowgroup.md describes the bytes. Constants here must match rowgroup.md.

import (
	"encoding/binary"
	"fmt"
	"sort"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Row-group format constants (see rowgroup.md).
const (
	// RowGroupMagic opens every encoded row group: "TDRG" in ASCII.
	RowGroupMagic uint32 = 0x54445247
	// RowGroupVersion1 is the only version so far. Versions only grow.
	RowGroupVersion1 byte = 1

	// MaxRowGroupSpans is the most spans one row group may hold. Encode
	// refuses more; decoding treats a larger count as corruption.
	MaxRowGroupSpans = 1 << 16
	// MaxColumnBytes is the largest uncompressed size of one column. Encode
	// refuses a row group with a larger column (the block writer should cut
	// row groups by size as well as by span count); decoding treats a larger
	// size as corruption, so garbage can never ask for more memory than this.
	MaxColumnBytes = 256 << 20
	// MaxValueDepth bounds the nesting of array and map attribute values. A
	// top-level attribute's value is at depth 1, the elements of an array
	// value at depth 2, and so on; a value deeper than MaxValueDepth is
	// refused by Encode and is corruption when decoding.
	MaxValueDepth = 64

	// zstdMaxRatio bounds how much a zstd frame can expand: every block is at
	// least 4 bytes and holds at most 128 KiB. A directory entry claiming a
	// larger expansion is corrupt; the bound caps what garbage can allocate.
	zstdMaxRatio = (128 << 10) / 4
	// maxTimeExp bounds the exponent of the time unit (10^9 ns = 1 s).
	maxTimeExp = 9
)

// Column codecs, as stored in the column directory.
const (
	codecRaw  byte = 0 // stored as is
	codecZstd byte = 1 // one zstd frame with its content size, no zstd checksum
	codecMax       = codecZstd
)

// Columns of a version-1 row group, in the order their bodies are stored.
// The order of this list is part of the format.
const (
	colTraceIDs    = iota // distinct trace IDs, 16 bytes each, strictly ascending
	colTraceRuns          // uvarint rows per distinct trace ID
	colSpanIDs            // 8 bytes per row
	colParents            // uvarint per row: parentNone, parentLiteral, or parentRowBase+j
	colParentIDs          // 8 bytes per literal parent
	colTimeWidths         // bit length of every packed time value: starts, durations, event times
	colStarts             // packed per row: start - min start, or zig-zag start - previous start, in time units
	colDurations          // packed per row: end - start, in time units
	colNames              // span-name table references
	colKinds              // zig-zag varint per row
	colStatusCodes        // zig-zag varint per row
	colStatusMsgs         // status-message table references
	colTraceStates        // trace-state table references
	colFlags              // uvarint per row
	colDropped            // 3 uvarints per row: dropped attributes, events, links
	colResources          // uvarint per row: index into the resource list
	colScopes             // uvarint per row: index into the scope list
	colAttrCounts         // uvarint per row
	colEventCounts        // uvarint per row
	colLinkCounts         // uvarint per row
	colEventTimes         // packed per event: zig-zag time - span start, in time units
	colEventNames         // event-name table references
	colEvents             // 2 uvarints per event: dropped attributes, attribute count
	colLinks              // 4 uvarints per link: trace-ID ref, flags, dropped, attribute count
	colLinkIDs            // per link: 16-byte trace ID unless same trace, then 8-byte span ID
	colLinkStates         // link trace-state table references
	colSlots              // uvarint slot per attribute (pre-order over nested values)
	colValueIDs           // uvarint value id per scalar attribute whose table is in dict mode
	colKidCounts          // uvarint element count per array or map attribute
	colSchema             // totals, keys, slots with their tables, field tables, resources, scopes
	colStrLens            // uvarint length per pooled string
	colStrData            // pooled string bytes
	colNums               // numeric table entries
	colCount
)

var columnNames = [colCount]string{
	"traceIDs", "traceRuns", "spanIDs", "parents", "parentIDs", "timeWidths", "starts", "durations",
	"names", "kinds", "statusCodes", "statusMsgs", "traceStates", "flags", "dropped",
	"resources", "scopes", "attrCounts", "eventCounts", "linkCounts", "eventTimes",
	"eventNames", "events", "links", "linkIDs", "linkStates", "slots", "valueIDs",
	"kidCounts", "schema", "strLens", "strData", "nums",
}

// Parent references in colParents.
const (
	parentNone    = 0 // the all-zero span ID
	parentLiteral = 1 // the next 8 bytes of colParentIDs
	parentRowBase = 2 // parentRowBase+j: the span ID of row j of the same trace's run
)

// Link trace-ID references in colLinks.
const (
	linkSameTrace = 0 // the link's trace ID is the span's own
	linkLiteral   = 1 // 16 bytes in colLinkIDs
)

// Field tables: the string tables of span fields other than attributes, in
// the order their entries sit in the string pool (after the keys).
const (
	tabSpanName = iota
	tabStatusMsg
	tabTraceState
	tabEventName
	tabLinkState
	tabSchemaURL
	tabScopeName
	tabScopeVersion
	fieldTableCount
)

// Table modes: a string or numeric table's mode byte is modeDict or
// modeSeq, and a string table's may have modePrefixed set too.
const (
	modeDict     byte = 0 // entries are distinct; each use stores an id
	modeSeq      byte = 1 // one entry per use, in order of use; uses store nothing
	modePrefixed byte = 2 // a prefix common to every entry is pooled once, before the entries' suffixes
	modeMask          = modeSeq | modePrefixed
)

var pow10 = [maxTimeExp + 1]uint64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9}

// zstdLevel is the level every column is compressed at. Chosen by
// measurement (see rowgroup.md, "Choices").
const zstdLevel = zstd.SpeedBetterCompression

// Codec compresses and decompresses row-group columns. It holds one zstd
// encoder and one zstd decoder and is safe for concurrent use; a store
// needs one. Close it after every RowGroupEncoder and every RowGroup that
// has not materialised its spans is done with it.
type Codec struct {
	enc  *zstd.Encoder
	dec  *zstd.Decoder
	bufs sync.Pool // *[]byte: scratch for decompressed columns
}

// getBuf returns an empty scratch buffer with room for n bytes.
func (c *Codec) getBuf(n int) []byte {
	if p, ok := c.bufs.Get().(*[]byte); ok && cap(*p) >= n {
		return (*p)[:0]
	}
	return make([]byte, 0, n)
}

// putBuf returns a buffer from getBuf for reuse; nothing may refer to it.
func (c *Codec) putBuf(b []byte) {
	if cap(b) <= maxPooledBuf {
		c.bufs.Put(&b)
	}
}

// maxPooledBuf is the largest scratch buffer kept for reuse.
const maxPooledBuf = 8 << 20

// NewCodec returns a Codec.
func NewCodec() (*Codec, error) { return newCodec(zstdLevel) }

func newCodec(level zstd.EncoderLevel) (*Codec, error) {
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(level),
		zstd.WithEncoderCRC(false), // the row group's CRC32C covers the frame
		zstd.WithEncoderConcurrency(0),
	)
	if err != nil {
		return nil, fmt.Errorf("new row-group codec: %w", err)
	}
	dec, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(0),
		zstd.WithDecoderMaxMemory(MaxColumnBytes),
		zstd.WithDecodeAllCapLimit(true), // never decode past the directory's raw length
		zstd.IgnoreChecksum(true),
	)
	if err != nil {
		enc.Close()
		return nil, fmt.Errorf("new row-group codec: %w", err)
	}
	return &Codec{enc: enc, dec: dec}, nil
}

// Decoder returns the codec's zstd decoder, for other readers of the store
// to share (a zstd.Decoder is safe for concurrent use). It decodes with
// DecodeAll's capacity limit and without frame checksums (tracedb's own
// CRC32Cs cover the frames), and is closed by Close.
func (c *Codec) Decoder() *zstd.Decoder { return c.dec }

// Close releases the zstd encoder and decoder. The Codec must not be used
// afterwards.
func (c *Codec) Close() {
	c.enc.Close()
	c.dec.Close()
}

// RowGroup is one decoded row group: the spans of one Badger value of a
// block, sorted by trace ID (and, as block writers store them, start time).
//
// DecodeRowGroup checks every checksum and decodes the trace-ID columns; the
// remaining columns are decoded on the first call to Span, from a private
// copy, so a RowGroup never aliases the bytes it was decoded from.
//
// A RowGroup is not safe for concurrent use; different RowGroups may be
// used from different goroutines.
type RowGroup struct {
	n        int
	traceIDs []TraceID // distinct, strictly ascending
	runStart []int32   // runStart[k] is the first row of traceIDs[k]; len(traceIDs)+1 entries

	// Lazily decoded state.
	codec    *Codec
	minStart uint64
	unit     uint64
	dir      [colCount]colEntry
	body     []byte // private copy of the on-disk bytes of every column after the trace runs
	bodyOff  int    // offset of body within the row group's column area
	decoded  bool
	times    *rowTimes // the time columns, when decoded alone
	err      error     // sticky error of the lazy decode
	cols     *decodedColumns
}

// colEntry is one column's directory entry.
type colEntry struct {
	codec   byte
	rawLen  int
	diskLen int
	crc     uint32
	off     int // offset of the column's body from the start of the column area
}

// diskAt returns the column's on-disk bytes within area, a copy of the row
// group's column area from offset base on.
func (e *colEntry) diskAt(area []byte, base int) []byte {
	return area[e.off-base : e.off-base+e.diskLen]
}

// disk returns the column's on-disk bytes within the whole column area.
func (e *colEntry) disk(area []byte) []byte { return e.diskAt(area, 0) }

// Len returns the number of spans.
func (g *RowGroup) Len() int { return g.n }

// TraceID returns the trace ID of span i. It is cheap: the trace-ID column
// is decoded by DecodeRowGroup. It panics if i is out of range.
func (g *RowGroup) TraceID(i int) TraceID {
	if i < 0 || i >= g.n {
		panic(fmt.Sprintf("encoding: row group row %d out of range [0,%d)", i, g.n))
	}
	return g.traceIDs[g.runOf(i)]
}

// TraceIDFrom is TraceID for rows read in ascending order: *run is the
// index of the trace run the previous call ended in (0 before the first
// call), and is moved forward to row i's run. A row before *run's run is
// found by binary search, so any order of rows is still correct.
func (g *RowGroup) TraceIDFrom(i int, run *int) TraceID {
	if i < 0 || i >= g.n {
		panic(fmt.Sprintf("encoding: row group row %d out of range [0,%d)", i, g.n))
	}
	k := *run
	if k < 0 || k >= len(g.traceIDs) || int(g.runStart[k]) > i {
		k = g.runOf(i)
	}
	for int(g.runStart[k+1]) <= i {
		k++
	}
	*run = k
	return g.traceIDs[k]
}

// runOf returns the index of the trace run that holds row i.
func (g *RowGroup) runOf(i int) int {
	// The first run whose start is past i, minus one.
	return sort.Search(len(g.traceIDs), func(k int) bool { return int(g.runStart[k+1]) > i })
}

// TraceRange returns the rows [lo, hi) that hold trace id, found by binary
// search; lo == hi when the group holds none of its spans.
func (g *RowGroup) TraceRange(id TraceID) (lo, hi int) {
	k := sort.Search(len(g.traceIDs), func(k int) bool { return g.traceIDs[k].Compare(id) >= 0 })
	if k == len(g.traceIDs) || g.traceIDs[k] != id {
		lo = g.n
		if k < len(g.traceIDs) {
			lo = int(g.runStart[k])
		}
		return lo, lo
	}
	return int(g.runStart[k]), int(g.runStart[k+1])
}

// rowTimes is the outcome of decoding the time columns alone.
type rowTimes struct {
	starts, ends []uint64
	err          error
}

// Times returns the start and end of every span of the group, by row. It
// decodes only the time columns (unless Span has decoded everything
// already), so a search whose other conditions the postings settled reads
// a fraction of the group. The slices are shared and must not be modified;
// an error wraps ErrCorrupt when the bytes are bad.
func (g *RowGroup) Times() (starts, ends []uint64, err error) {
	if g.cols != nil {
		return g.cols.starts, g.cols.ends, nil
	}
	if g.err != nil {
		return nil, nil, g.err
	}
	if g.times == nil {
		g.times = g.decodeTimes()
	}
	return g.times.starts, g.times.ends, g.times.err
}

func (g *RowGroup) decodeTimes() *rowTimes {
	var d [colCount]Decbuf
	for _, i := range []int{colTimeWidths, colStarts, colDurations} {
		e := &g.dir[i]
		raw, err := g.codec.column(e.diskAt(g.body, g.bodyOff), e, nil)
		if err != nil {
			return &rowTimes{err: err}
		}
		d[i] = NewDecbuf(raw, columnWhat[i])
	}
	t := &rowTimes{starts: make([]uint64, g.n), ends: make([]uint64, g.n)}
	getPacked(&d[colTimeWidths], &d[colStarts], t.starts)
	for k := range g.traceIDs {
		lo, hi := int(g.runStart[k]), int(g.runStart[k+1])
		prev := g.minStart + t.starts[lo]*g.unit
		t.starts[lo] = prev
		for i := lo + 1; i < hi; i++ {
			prev += uint64(unzigzag(t.starts[i]) * int64(g.unit))
			t.starts[i] = prev
		}
	}
	getPacked(&d[colTimeWidths], &d[colDurations], t.ends)
	for i := range t.ends {
		t.ends[i] = t.starts[i] + t.ends[i]*g.unit
	}
	for _, i := range []int{colTimeWidths, colStarts, colDurations} {
		if err := d[i].Err(); err != nil {
			return &rowTimes{err: err}
		}
	}
	if d[colStarts].Len() != 0 || d[colDurations].Len() != 0 {
		return &rowTimes{err: Corruptf("row group", -1, "time columns have bytes left over")}
	}
	return t
}

// Span returns span i. The first call decodes the remaining columns (with
// the Codec, which must still be open); an error, which wraps ErrCorrupt
// when the bytes are bad, is returned by it and by every later call. It
// panics if i is out of range.
//
// Each call builds a new *Span. Spans of the group that share a resource or
// scope by content share one *Resource / *Scope (never nil: a span stored
// without one gets an empty one). The span and everything it points to must
// not be modified. Its strings share memory with the group's other spans:
// a span kept long keeps the group's strings (their total size) alive.
func (g *RowGroup) Span(i int) (*Span, error) {
	if i < 0 || i >= g.n {
		panic(fmt.Sprintf("encoding: row group row %d out of range [0,%d)", i, g.n))
	}
	if !g.decoded {
		g.decodeColumns()
	}
	if g.err != nil {
		return nil, g.err
	}
	return g.cols.span(g.traceIDs[g.runOf(i)], i), nil
}

// SpanOwner returns row i's span ID and resource (shared by the rows that
// have the same one; nil never): what identifies a span and its service,
// without building the span. The group is decoded as for Span.
func (g *RowGroup) SpanOwner(i int) (SpanID, *Resource, error) {
	if i < 0 || i >= g.n {
		panic(fmt.Sprintf("encoding: row group row %d out of range [0,%d)", i, g.n))
	}
	if !g.decoded {
		g.decodeColumns()
	}
	if g.err != nil {
		return SpanID{}, nil, g.err
	}
	return g.cols.spanIDs[i], g.cols.resources[g.cols.res[i]], nil
}

// DecodeRowGroup checks the magic, the version, the header's and every
// column's CRC32C, decodes the trace-ID columns and returns the row group.
// Its errors wrap ErrCorrupt when b is not a valid row group. The returned
// RowGroup does not alias b.
func (c *Codec) DecodeRowGroup(b []byte) (*RowGroup, error) {
	const what = "row group"
	if len(b) < 5 {
		return nil, Corruptf(what, 0, "%d bytes is too short", len(b))
	}
	if m := binary.BigEndian.Uint32(b); m != RowGroupMagic {
		return nil, Corruptf(what, 0, "bad magic %#08x", m)
	}
	if v := b[4]; v != RowGroupVersion1 {
		return nil, Corruptf(what, 4, "unsupported version %d", v)
	}
	d := NewDecbuf(b[5:], what)
	g := &RowGroup{codec: c}
	g.n = d.UvarintInt(MaxRowGroupSpans)
	g.minStart = d.Uvarint()
	exp := d.Byte()
	if d.Err() == nil && exp > maxTimeExp {
		d.Fail("time unit exponent out of range")
	}
	g.unit = pow10[min(exp, maxTimeExp)]
	if ncol := d.UvarintInt(colCount); d.Err() == nil && ncol != colCount {
		d.Fail(fmt.Sprintf("%d columns, want %d", ncol, colCount))
	}
	off := 0
	for i := range g.dir {
		e := &g.dir[i]
		e.codec = d.Byte()
		e.rawLen = d.UvarintInt(MaxColumnBytes)
		e.diskLen = d.UvarintInt(len(b))
		e.crc = d.BE32()
		e.off = off
		off += e.diskLen
		if d.Err() != nil {
			break
		}
		switch {
		case e.codec > codecMax:
			d.Fail(fmt.Sprintf("column %s: unknown codec %d", columnNames[i], e.codec))
		case e.codec == codecRaw && e.rawLen != e.diskLen:
			d.Fail(fmt.Sprintf("column %s: raw column of %d bytes claims %d", columnNames[i], e.diskLen, e.rawLen))
		case e.codec == codecZstd && (e.rawLen == 0 || e.rawLen > e.diskLen*zstdMaxRatio):
			d.Fail(fmt.Sprintf("column %s: %d compressed bytes cannot hold %d", columnNames[i], e.diskLen, e.rawLen))
		}
	}
	hdrLen := 5 + d.Offset()
	sum := d.BE32()
	if err := d.Err(); err != nil {
		return nil, err
	}
	if got := Checksum(b[:hdrLen]); got != sum {
		return nil, Corruptf(what, hdrLen, "header checksum %#08x, want %#08x", got, sum)
	}
	area := b[hdrLen+4:]
	if len(area) != off {
		return nil, Corruptf(what, hdrLen+4, "%d bytes of columns, directory says %d", len(area), off)
	}
	for i := range g.dir {
		e := &g.dir[i]
		if got := Checksum(e.disk(area)); got != e.crc {
			return nil, Corruptf(what, hdrLen+4+e.off, "column %s: checksum %#08x, want %#08x", columnNames[i], got, e.crc)
		}
	}
	if err := g.decodeTraceIDs(area); err != nil {
		return nil, err
	}
	// Keep a private copy of the rest for the lazy decode.
	g.bodyOff = g.dir[colSpanIDs].off
	g.body = append([]byte(nil), area[g.bodyOff:]...)
	return g, nil
}

// decodeTraceIDs decodes the trace-ID and trace-run columns from the
// column area.
func (g *RowGroup) decodeTraceIDs(area []byte) error {
	ids, err := g.codec.column(g.dir[colTraceIDs].disk(area), &g.dir[colTraceIDs], nil)
	if err != nil {
		return err
	}
	runs, err := g.codec.column(g.dir[colTraceRuns].disk(area), &g.dir[colTraceRuns], nil)
	if err != nil {
		return err
	}
	const what = "row group column traceIDs"
	if len(ids)%len(TraceID{}) != 0 || len(ids)/len(TraceID{}) > g.n {
		return Corruptf(what, 0, "%d bytes for %d rows", len(ids), g.n)
	}
	nt := len(ids) / len(TraceID{})
	g.traceIDs = make([]TraceID, nt)
	for k := range g.traceIDs {
		copy(g.traceIDs[k][:], ids[k*16:])
		if k > 0 && g.traceIDs[k-1].Compare(g.traceIDs[k]) >= 0 {
			return Corruptf(what, k*16, "trace IDs not strictly ascending")
		}
	}
	g.runStart = make([]int32, nt+1)
	d := NewDecbuf(runs, "row group column traceRuns")
	total := 0
	for k := range nt {
		r := d.UvarintInt(g.n - total)
		if d.Err() == nil && r == 0 {
			d.Fail("empty trace run")
		}
		total += r
		g.runStart[k+1] = int32(total)
	}
	if d.Err() == nil && (d.Len() != 0 || total != g.n) {
		d.Fail(fmt.Sprintf("runs cover %d rows of %d", total, g.n))
	}
	return d.Err()
}

// DecodeSlack is the room a zstd frame needs past its content in the
// buffer it is decoded into (klauspost/compress's DecodeAll). With it the
// decoder copies literals and matches in whole 16- and 32-byte moves,
// which may write up to 32 bytes past the content's end; with an exactly
// sized buffer it takes its bounds-exact copies instead: its sequence
// decoding about twice as slow (CPU profiles of searches over 10M spans),
// a cold trace read 4-7% (BenchmarkRowGroupInflatedRows). What lands in
// the slack is never read: a buffer that holds several frames' contents
// decodes them in order, so the next overwrites the slack of the one
// before.
const DecodeSlack = 32

// DecodeFrame decodes the zstd frame src, which must hold exactly n bytes,
// appends them to dst (grown when it has no room for n + DecodeSlack more
// bytes) and returns them. dec must cap what it decodes at dst's capacity
// (zstd.WithDecodeAllCapLimit), so a frame that claims more than n bytes
// fails without a large allocation. Errors are zstd's, or a length
// mismatch; the caller says what was being decoded.
func DecodeFrame(dec *zstd.Decoder, src, dst []byte, n int) ([]byte, error) {
	start := len(dst)
	need := n + DecodeSlack
	if cap(dst)-start < need {
		nd := make([]byte, start, start+need)
		copy(nd, dst)
		dst = nd
	}
	out, err := dec.DecodeAll(src, dst[:start:start+need])
	if err != nil {
		return nil, err
	}
	if len(out)-start != n {
		return nil, fmt.Errorf("decoded %d bytes, want %d", len(out)-start, n)
	}
	return out[start:], nil
}

// column returns the raw bytes of column e, whose on-disk bytes are disk.
// A raw column is disk itself; a zstd column is decoded and appended to dst
// (DecodeFrame).
func (c *Codec) column(disk []byte, e *colEntry, dst []byte) ([]byte, error) {
	if e.codec == codecRaw {
		return disk, nil
	}
	out, err := DecodeFrame(c.dec, disk, dst, e.rawLen)
	if err != nil {
		if err == zstd.ErrDecoderClosed {
			return nil, fmt.Errorf("decode row group: %w", err)
		}
		return nil, &CorruptionError{What: "row group", Offset: -1, Reason: "zstd column: " + err.Error()}
	}
	return out, nil
}
