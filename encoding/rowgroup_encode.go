package encoding

// This file writes row groups. See rowgroup.md for the format.

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"

	"github.com/cespare/xxhash/v2"
)

// RowGroupEncoder encodes row groups. It keeps its scratch buffers between
// calls, so a block writer reuses one for all its row groups. It is not
// safe for concurrent use; use one per goroutine.
type RowGroupEncoder struct {
	c        *Codec
	forceRaw bool // store every column uncompressed (tests: fuzz seeds whose columns the fuzzer can mutate)

	cols [colCount]Encbuf
	comp [colCount][]byte // compressed column bodies
	code [colCount]byte   // codec chosen per column

	keys     table[string] // attribute keys, in order of first use
	keySlots [][valueTypeCount]int32
	fields   [fieldTableCount]table[string]
	slots    []*encSlot // slots[:nslots] are in use, in order of first use; the rest are kept for reuse
	nslots   int
	ranked   []*encSlot // the slots in use by descending use: their order in the schema
	slotRefs []int32    // slot of every attribute, in traversal order
	valRefs  []int32    // slot of every scalar attribute, in traversal order

	res       dedupTable[Resource]
	scopes    dedupTable[Scope]
	rowRes    []int32
	rowScope  []int32
	keyBuf    []byte
	parentMap map[SpanID]int32 // span ID -> row within the trace, for large traces
	parentLo  int              // first row of the trace parentMap describes, or -1

	startVals, durVals, evVals []uint64 // time values to pack

	nKVs, nEvents, nLinks int
	poolBytes             int // bytes restoring the prefixes adds to the string pool, at most
}

// encSlot is one (key, value type) pair used by attributes of the group,
// with the value table of its scalar values.
type encSlot struct {
	key   uint32
	typ   ValueType
	count int
	rank  int           // number in the schema
	str   table[string] // ValueStr, ValueBytes
	num   table[uint64] // ValueInt, ValueDouble, ValueBool
	cur   int           // next occurrence when writing value ids
}

// table collects the values of one string or numeric table: distinct
// values in order of first use, their use counts, and the sequence of uses.
type table[T string | uint64] struct {
	idx    valueIndex // distinct index of each value in vals
	vals   []T
	counts []uint32
	occ    []uint32 // distinct index of every use, in order of use
	seq    bool     // chosen mode
	prefix int      // string tables: length of the prefix common to every entry, stored once
	ids    []uint32 // dict mode: id of each distinct value
	order  []uint32 // dict mode: distinct indexes in id order
}

func (t *table[T]) reset() {
	t.idx.reset()
	clear(t.vals) // drop references to the caller's strings
	t.vals = t.vals[:0]
	t.counts = t.counts[:0]
	t.occ = t.occ[:0]
	t.ids = t.ids[:0]
	t.order = t.order[:0]
	t.seq = false
	t.prefix = 0
}

// add records a use of v and returns its distinct index.
func (t *table[T]) add(v T) uint32 {
	h := t.hash(v)
	i, ok := t.find(v, h)
	if !ok {
		i = uint32(len(t.vals))
		t.idx.insert(h, i)
		t.vals = append(t.vals, v)
		t.counts = append(t.counts, 0)
	}
	t.counts[i]++
	t.occ = append(t.occ, i)
	return i
}

// lookup returns the distinct index of v, if v is in the table.
func (t *table[T]) lookup(v T) (uint32, bool) { return t.find(v, t.hash(v)) }

// find is lookup for v, whose hash is h.
func (t *table[T]) find(v T, h uint32) (uint32, bool) {
	slots := t.idx.slots
	if len(slots) == 0 {
		return 0, false
	}
	mask := uint32(len(slots) - 1)
	for j := h & mask; ; j = (j + 1) & mask {
		s := slots[j]
		if s.i == 0 {
			return 0, false
		}
		if s.h == h && t.vals[s.i-1] == v {
			return s.i - 1, true
		}
	}
}

// hash returns 32 bits of a hash of v.
func (t *table[T]) hash(v T) uint32 {
	var h uint64
	switch x := any(v).(type) {
	case string:
		h = xxhash.Sum64String(x)
	default: // uint64, the only other type a table holds
		// A multiplicative mix (the 64-bit golden ratio): the top bits
		// depend on every bit of the value.
		h = any(v).(uint64) * 0x9e3779b97f4a7c15
	}
	return uint32(h >> 32)
}

// valueIndex is a table's index from values to distinct indexes: open
// addressing with linear probing over 8-byte slots holding 32 bits of the
// value's hash and its index, confirmed against the table's values on a
// hash match. It is smaller than a Go map of strings, so a row group's
// tables stay in cache, and it clears in one sweep.
type valueIndex struct {
	slots []valueSlot // a power of two of them, or none
	n     int
}

// valueSlot is a slot of a valueIndex: i is the distinct index + 1, 0 for
// an empty slot.
type valueSlot struct{ h, i uint32 }

// valueIndexMinSlots is the initial size of a valueIndex.
const valueIndexMinSlots = 16

// insert adds distinct index i with hash h, which must not be in the
// index yet, and keeps the index at most half full.
func (x *valueIndex) insert(h, i uint32) {
	if 2*(x.n+1) > len(x.slots) {
		old := x.slots
		x.slots = make([]valueSlot, max(valueIndexMinSlots, 2*len(old)))
		x.n = 0
		for _, s := range old {
			if s.i != 0 {
				x.put(valueSlot{s.h, s.i})
			}
		}
	}
	x.put(valueSlot{h, i + 1})
}

func (x *valueIndex) put(s valueSlot) {
	mask := uint32(len(x.slots) - 1)
	j := s.h & mask
	for x.slots[j].i != 0 {
		j = (j + 1) & mask
	}
	x.slots[j] = s
	x.n++
}

// reset empties the index, keeping its slots unless they are far more
// than its last use needed.
func (x *valueIndex) reset() {
	if x.n == 0 {
		return
	}
	if len(x.slots) > valueIndexMinSlots && 8*x.n < len(x.slots) {
		x.slots = nil
	} else {
		clear(x.slots)
	}
	x.n = 0
}

// finish chooses the table's mode by estimated size (size is the encoded
// size of one entry) and, in dict mode, numbers the distinct values by
// descending use count so that frequent values get short ids.
func (t *table[T]) finish(size func(T) int) {
	if len(t.occ) == 0 {
		return
	}
	seqCost, dictCost := 0, 0
	if len(t.vals) > 1 { // a single entry needs no ids
		dictCost = len(t.occ) * uvarintLen(uint64(len(t.vals)-1))
	}
	for i, v := range t.vals {
		s := size(v)
		seqCost += s * int(t.counts[i])
		dictCost += s
	}
	t.seq = seqCost <= dictCost
	if t.seq {
		return
	}
	for i := range t.vals {
		t.order = append(t.order, uint32(i))
	}
	slices.SortStableFunc(t.order, func(a, b uint32) int { return int(t.counts[b]) - int(t.counts[a]) })
	t.ids = slices.Grow(t.ids[:0], len(t.vals))[:len(t.vals)]
	for id, i := range t.order {
		t.ids[i] = uint32(id)
	}
}

// count is the number of entries the table stores.
func (t *table[T]) count() int {
	if t.seq {
		return len(t.occ)
	}
	return len(t.vals)
}

// entries calls f with each stored entry in order.
func (t *table[T]) entries(f func(T)) {
	if t.seq {
		for _, i := range t.occ {
			f(t.vals[i])
		}
		return
	}
	for _, i := range t.order {
		f(t.vals[i])
	}
}

// header writes the table's mode and entry count.
func (t *table[T]) header(e *Encbuf) {
	mode := modeDict
	if t.seq {
		mode = modeSeq
	}
	if t.prefix > 0 {
		mode |= modePrefixed
	}
	e.PutByte(mode)
	e.PutUvarint(uint64(t.count()))
}

// putRef writes the reference of use number u: its id in dict mode unless
// the table has a single entry, nothing in seq mode.
func (t *table[T]) putRef(e *Encbuf, u int) {
	if !t.seq && len(t.vals) > 1 {
		e.PutUvarint(uint64(t.ids[t.occ[u]]))
	}
}

// finishStrings finishes a string table: it finds the prefix common to its
// values, which is stored once, and chooses the mode by the suffixes' sizes.
func finishStrings(t *table[string]) {
	if len(t.vals) > 1 {
		t.prefix = commonPrefix(t.vals)
	}
	p := t.prefix
	t.finish(func(s string) int { return strSize(s[p:]) })
}

// commonPrefix returns the length of the longest prefix common to ss.
func commonPrefix(ss []string) int {
	p := ss[0]
	for _, s := range ss[1:] {
		n := min(len(p), len(s))
		i := 0
		for i < n && p[i] == s[i] {
			i++
		}
		p = p[:i]
		if len(p) == 0 {
			return 0
		}
	}
	return len(p)
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func strSize(s string) int { return len(s) + uvarintLen(uint64(len(s))) }

// NewRowGroupEncoder returns an encoder that compresses with c.
func (c *Codec) NewRowGroupEncoder() *RowGroupEncoder {
	return &RowGroupEncoder{c: c}
}

// fieldColumn is the column holding the references of each field table;
// -1 for the tables referenced from the schema column.
var fieldColumn = [fieldTableCount]int{
	tabSpanName:     colNames,
	tabStatusMsg:    colStatusMsgs,
	tabTraceState:   colTraceStates,
	tabEventName:    colEventNames,
	tabLinkState:    colLinkStates,
	tabSchemaURL:    -1,
	tabScopeName:    -1,
	tabScopeVersion: -1,
}

// Encode appends the encoded row group of spans to dst and returns the
// extended slice. Spans are stored in the given order, which must be sorted
// by trace ID (the caller sorts by trace ID, then start time); an unsorted
// input, more than MaxRowGroupSpans spans, a value nested deeper than
// MaxValueDepth, an invalid value type or a column over MaxColumnBytes is
// an error, and dst is then returned unchanged. An empty spans encodes an
// empty row group.
//
// Only the fields a Value's Type names are stored (see Value); nil Resource
// and Scope pointers are stored as empty ones.
func (e *RowGroupEncoder) Encode(dst []byte, spans []*Span) ([]byte, error) {
	defer e.reset()
	e.reset()
	if len(spans) > MaxRowGroupSpans {
		return dst, fmt.Errorf("encode row group: %d spans, at most %d", len(spans), MaxRowGroupSpans)
	}
	minStart, exp, err := e.prepare(spans)
	if err != nil {
		return dst, fmt.Errorf("encode row group: %w", err)
	}
	unit := pow10[exp]
	if err := e.putTablesFirst(); err != nil {
		return dst, fmt.Errorf("encode row group: %w", err)
	}
	if err := e.putRows(spans, minStart, unit); err != nil {
		return dst, fmt.Errorf("encode row group: %w", err)
	}
	e.finishTables()
	e.putReferences()
	e.putSchema()
	e.putPool()
	return e.assemble(dst, len(spans), minStart, exp)
}

func (e *RowGroupEncoder) reset() {
	for i := range e.cols {
		e.cols[i].Reset()
	}
	e.keys.reset()
	e.keySlots = e.keySlots[:0]
	for i := range e.fields {
		e.fields[i].reset()
	}
	for _, s := range e.slots[:e.nslots] {
		s.str.reset()
		s.num.reset()
	}
	e.nslots = 0
	e.slotRefs = e.slotRefs[:0]
	e.valRefs = e.valRefs[:0]
	e.res.reset()
	e.scopes.reset()
	e.rowRes = e.rowRes[:0]
	e.rowScope = e.rowScope[:0]
	e.parentLo = -1
	e.startVals, e.durVals, e.evVals = e.startVals[:0], e.durVals[:0], e.evVals[:0]
	e.nKVs, e.nEvents, e.nLinks = 0, 0, 0
}

// prepare checks the order of spans, finds the minimum start time and the
// time unit, and numbers the distinct resources and scopes.
func (e *RowGroupEncoder) prepare(spans []*Span) (minStart uint64, exp int, err error) {
	if e.res.byPtr == nil {
		e.res.init()
		e.scopes.init()
	}
	minStart = math.MaxUint64
	for i, s := range spans {
		if s == nil {
			return 0, 0, fmt.Errorf("span %d is nil", i)
		}
		if i > 0 && spans[i-1].TraceID.Compare(s.TraceID) > 0 {
			return 0, 0, fmt.Errorf("span %d: not sorted by trace ID", i)
		}
		minStart = min(minStart, s.StartUnixNano)
		r, err := e.resourceIndex(s.Resource)
		if err != nil {
			return 0, 0, fmt.Errorf("span %d: resource: %w", i, err)
		}
		sc, err := e.scopeIndex(s.Scope)
		if err != nil {
			return 0, 0, fmt.Errorf("span %d: scope: %w", i, err)
		}
		e.rowRes = append(e.rowRes, r)
		e.rowScope = append(e.rowScope, sc)
	}
	if len(spans) == 0 {
		minStart = 0
	}
	// The largest power of ten (up to a second) dividing every stored time
	// difference: timestamps from clocks coarser than a nanosecond then cost
	// fewer bits.
	exp = maxTimeExp
	fit := func(v uint64) {
		for exp > 0 && v%pow10[exp] != 0 {
			exp--
		}
	}
	for _, s := range spans {
		if exp == 0 {
			break
		}
		fit(s.StartUnixNano - minStart)
		fit(s.EndUnixNano - s.StartUnixNano)
		for j := range s.Events {
			fit(absDelta(s.Events[j].TimeUnixNano, s.StartUnixNano))
		}
	}
	return minStart, exp, nil
}

// absDelta returns |int64(a-b)| as a uint64 (2^63 for math.MinInt64).
func absDelta(a, b uint64) uint64 {
	v := int64(a - b)
	if v < 0 {
		return uint64(-v)
	}
	return uint64(v)
}

func (e *RowGroupEncoder) resourceIndex(r *Resource) (int32, error) {
	return e.res.index(r, func(c *Resource) ([]byte, error) {
		b := binary.AppendUvarint(e.keyBuf[:0], uint64(c.DroppedAttrs))
		b = appendStr(b, c.SchemaURL)
		b, err := appendKVsKey(b, c.Attrs, 1)
		e.keyBuf = b
		return b, err
	})
}

func (e *RowGroupEncoder) scopeIndex(s *Scope) (int32, error) {
	return e.scopes.index(s, func(c *Scope) ([]byte, error) {
		b := appendStr(e.keyBuf[:0], c.Name)
		b = appendStr(b, c.Version)
		b = binary.AppendUvarint(b, uint64(c.DroppedAttrs))
		b = appendStr(b, c.SchemaURL)
		b, err := appendKVsKey(b, c.Attrs, 1)
		e.keyBuf = b
		return b, err
	})
}

// dedupTable numbers the resources (or scopes) of a row group: the ones
// equal by content get one entry, whatever their pointers; a nil pointer
// stands for an empty one.
type dedupTable[T any] struct {
	byPtr map[*T]int32
	byKey map[string]int32
	list  []*T
}

func (t *dedupTable[T]) init() {
	t.byPtr, t.byKey = map[*T]int32{}, map[string]int32{}
}

func (t *dedupTable[T]) reset() {
	clear(t.byPtr)
	clear(t.byKey)
	clear(t.list)
	t.list = t.list[:0]
}

// index returns p's entry; key encodes an entry's content and is called
// only for a pointer not seen before.
func (t *dedupTable[T]) index(p *T, key func(*T) ([]byte, error)) (int32, error) {
	if i, ok := t.byPtr[p]; ok {
		return i, nil
	}
	c := p
	if c == nil {
		c = new(T)
	}
	k, err := key(c)
	if err != nil {
		return 0, err
	}
	i, ok := t.byKey[string(k)]
	if !ok {
		i = int32(len(t.list))
		t.byKey[string(k)] = i
		t.list = append(t.list, c)
	}
	t.byPtr[p] = i
	return i, nil
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendKVsKey appends an unambiguous form of the stored content of kvs,
// used to find resources and scopes equal by content.
func appendKVsKey(b []byte, kvs []KeyValue, depth int) ([]byte, error) {
	b = binary.AppendUvarint(b, uint64(len(kvs)))
	if len(kvs) > 0 && depth > MaxValueDepth {
		return b, fmt.Errorf("attribute values nested deeper than %d", MaxValueDepth)
	}
	for i := range kvs {
		kv := &kvs[i]
		b = appendStr(b, kv.Key)
		b = append(b, byte(kv.Value.Type))
		var err error
		switch kv.Value.Type {
		case ValueStr, ValueBytes:
			b = appendStr(b, kv.Value.Str)
		case ValueInt, ValueDouble, ValueBool:
			b = binary.AppendUvarint(b, kv.Value.Num)
		case ValueArray, ValueMap:
			b, err = appendKVsKey(b, kv.Value.Kids, depth+1)
		case ValueEmpty:
		default:
			err = fmt.Errorf("attribute %q: invalid value type %d", kv.Key, kv.Value.Type)
		}
		if err != nil {
			return b, err
		}
	}
	return b, nil
}

// putTablesFirst writes the attributes of the resources and then of the
// scopes, which come first in the attribute streams, and registers their
// field values in the order the decoder reads them.
func (e *RowGroupEncoder) putTablesFirst() error {
	for _, r := range e.res.list {
		e.fields[tabSchemaURL].add(r.SchemaURL)
		if err := e.putKVs(r.Attrs, 1); err != nil {
			return fmt.Errorf("resource: %w", err)
		}
	}
	for _, s := range e.scopes.list {
		e.fields[tabScopeName].add(s.Name)
		e.fields[tabScopeVersion].add(s.Version)
		e.fields[tabSchemaURL].add(s.SchemaURL)
		if err := e.putKVs(s.Attrs, 1); err != nil {
			return fmt.Errorf("scope: %w", err)
		}
	}
	return nil
}

// putKVs writes a list of attributes whose values are at depth.
func (e *RowGroupEncoder) putKVs(kvs []KeyValue, depth int) error {
	if len(kvs) > 0 && depth > MaxValueDepth {
		return fmt.Errorf("attribute values nested deeper than %d", MaxValueDepth)
	}
	for i := range kvs {
		kv := &kvs[i]
		t := kv.Value.Type
		if !t.Valid() {
			return fmt.Errorf("attribute %q: invalid value type %d", kv.Key, t)
		}
		si := e.slotFor(kv.Key, t)
		s := e.slots[si]
		s.count++
		e.slotRefs = append(e.slotRefs, si)
		e.nKVs++
		switch t {
		case ValueStr, ValueBytes:
			s.str.add(kv.Value.Str)
			e.valRefs = append(e.valRefs, si)
		case ValueInt, ValueDouble, ValueBool:
			s.num.add(kv.Value.Num)
			e.valRefs = append(e.valRefs, si)
		case ValueArray, ValueMap:
			e.cols[colKidCounts].PutUvarint(uint64(len(kv.Value.Kids)))
			if err := e.putKVs(kv.Value.Kids, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// slotFor returns the slot of (key, t), adding it if new.
func (e *RowGroupEncoder) slotFor(key string, t ValueType) int32 {
	ki, ok := e.keys.lookup(key)
	if !ok {
		ki = e.keys.add(key)
		e.keySlots = append(e.keySlots, [valueTypeCount]int32{})
	}
	if si := e.keySlots[ki][t]; si > 0 {
		return si - 1
	}
	if e.nslots == len(e.slots) {
		e.slots = append(e.slots, &encSlot{})
	}
	s := e.slots[e.nslots]
	s.key, s.typ, s.count, s.cur = ki, t, 0, 0
	e.nslots++
	e.keySlots[ki][t] = int32(e.nslots)
	return int32(e.nslots - 1)
}

// putRows writes the per-row, per-event and per-link columns.
func (e *RowGroupEncoder) putRows(spans []*Span, minStart, unit uint64) error {
	c := &e.cols
	lo, hi := 0, 0 // rows of the current trace
	var prevStart uint64
	for i, s := range spans {
		if i == hi {
			lo, hi = i, i+1
			for hi < len(spans) && spans[hi].TraceID == s.TraceID {
				hi++
			}
			c[colTraceRuns].PutUvarint(uint64(hi - lo))
			c[colTraceIDs].PutBytes(s.TraceID[:])
			e.startVals = append(e.startVals, (s.StartUnixNano-minStart)/unit)
		} else {
			e.startVals = append(e.startVals, zigzag(int64(s.StartUnixNano-prevStart)/int64(unit)))
		}
		prevStart = s.StartUnixNano
		c[colSpanIDs].PutBytes(s.SpanID[:])
		e.putParent(spans[lo:hi], lo, s.ParentSpanID)
		e.durVals = append(e.durVals, (s.EndUnixNano-s.StartUnixNano)/unit)
		e.fields[tabSpanName].add(s.Name)
		c[colKinds].PutVarint(int64(s.Kind))
		c[colStatusCodes].PutVarint(int64(s.StatusCode))
		e.fields[tabStatusMsg].add(s.StatusMessage)
		e.fields[tabTraceState].add(s.TraceState)
		c[colFlags].PutUvarint(uint64(s.Flags))
		c[colDropped].PutUvarint(uint64(s.DroppedAttrs))
		c[colDropped].PutUvarint(uint64(s.DroppedEvents))
		c[colDropped].PutUvarint(uint64(s.DroppedLinks))
		c[colResources].PutUvarint(uint64(e.rowRes[i]))
		c[colScopes].PutUvarint(uint64(e.rowScope[i]))

		c[colAttrCounts].PutUvarint(uint64(len(s.Attrs)))
		if err := e.putKVs(s.Attrs, 1); err != nil {
			return fmt.Errorf("span %d: %w", i, err)
		}
		c[colEventCounts].PutUvarint(uint64(len(s.Events)))
		for j := range s.Events {
			ev := &s.Events[j]
			e.evVals = append(e.evVals, zigzag(int64(ev.TimeUnixNano-s.StartUnixNano)/int64(unit)))
			e.fields[tabEventName].add(ev.Name)
			c[colEvents].PutUvarint(uint64(ev.DroppedAttrs))
			c[colEvents].PutUvarint(uint64(len(ev.Attrs)))
			if err := e.putKVs(ev.Attrs, 1); err != nil {
				return fmt.Errorf("span %d: event %d: %w", i, j, err)
			}
		}
		e.nEvents += len(s.Events)
		c[colLinkCounts].PutUvarint(uint64(len(s.Links)))
		for j := range s.Links {
			l := &s.Links[j]
			if l.TraceID == s.TraceID {
				c[colLinks].PutUvarint(linkSameTrace)
			} else {
				c[colLinks].PutUvarint(linkLiteral)
				c[colLinkIDs].PutBytes(l.TraceID[:])
			}
			c[colLinkIDs].PutBytes(l.SpanID[:])
			c[colLinks].PutUvarint(uint64(l.Flags))
			c[colLinks].PutUvarint(uint64(l.DroppedAttrs))
			c[colLinks].PutUvarint(uint64(len(l.Attrs)))
			e.fields[tabLinkState].add(l.TraceState)
			if err := e.putKVs(l.Attrs, 1); err != nil {
				return fmt.Errorf("span %d: link %d: %w", i, j, err)
			}
		}
		e.nLinks += len(s.Links)
	}
	putPacked(&c[colTimeWidths], &c[colStarts], e.startVals)
	putPacked(&c[colTimeWidths], &c[colDurations], e.durVals)
	putPacked(&c[colTimeWidths], &c[colEventTimes], e.evVals)
	return nil
}

// putPacked writes each value's bit length (one byte) to widths and its
// bits below the top one (which the length implies) to payload, packed
// least significant first, the last byte padded with zero bits. Time values
// are spread over many bits; this costs fewer bytes than varints, and the
// lengths, which vary little, compress well apart from the bits.
func putPacked(widths, payload *Encbuf, vals []uint64) {
	var cur byte // partial byte
	var nb uint  // bits in cur
	for _, v := range vals {
		w := bits.Len64(v)
		widths.PutByte(byte(w))
		if w <= 1 {
			continue
		}
		k := uint(w - 1)
		for k > 0 {
			n := min(k, 8-nb)
			cur |= byte(v&(1<<n-1)) << nb
			v >>= n
			k -= n
			nb += n
			if nb == 8 {
				payload.PutByte(cur)
				cur, nb = 0, 0
			}
		}
	}
	if nb > 0 {
		payload.PutByte(cur)
	}
}

// linearParentSearch is the trace size up to which a parent is looked up by
// scanning the trace's rows rather than through a map.
const linearParentSearch = 32

// putParent writes the reference to parent for a span of trace, the spans
// of one trace, which starts at row lo.
func (e *RowGroupEncoder) putParent(trace []*Span, lo int, parent SpanID) {
	c := &e.cols
	if parent.IsZero() {
		c[colParents].PutUvarint(parentNone)
		return
	}
	j := -1
	if len(trace) <= linearParentSearch {
		for k, s := range trace {
			if s.SpanID == parent {
				j = k
				break
			}
		}
	} else {
		if e.parentLo != lo { // build the map once per large trace
			if e.parentMap == nil {
				e.parentMap = make(map[SpanID]int32)
			}
			clear(e.parentMap)
			for k := len(trace) - 1; k >= 0; k-- { // the first of equal span IDs wins
				e.parentMap[trace[k].SpanID] = int32(k)
			}
			e.parentLo = lo
		}
		if k, ok := e.parentMap[parent]; ok {
			j = int(k)
		}
	}
	if j < 0 {
		c[colParents].PutUvarint(parentLiteral)
		c[colParentIDs].PutBytes(parent[:])
		return
	}
	c[colParents].PutUvarint(uint64(parentRowBase + j))
}

// finishTables chooses every table's mode and ids and ranks the slots by
// use.
func (e *RowGroupEncoder) finishTables() {
	for i := range e.fields {
		finishStrings(&e.fields[i])
	}
	slots := e.slots[:e.nslots]
	for _, s := range slots {
		switch s.typ {
		case ValueStr, ValueBytes:
			finishStrings(&s.str)
		case ValueInt:
			s.num.finish(func(v uint64) int { return uvarintLen(zigzag(int64(v))) })
		case ValueBool:
			s.num.finish(uvarintLen)
		case ValueDouble:
			s.num.finish(func(uint64) int { return 8 })
		}
	}
	// Rank by descending use so that frequent slots get one-byte numbers.
	e.ranked = append(e.ranked[:0], slots...)
	slices.SortStableFunc(e.ranked, func(a, b *encSlot) int { return b.count - a.count })
	for r, s := range e.ranked {
		s.rank = r
	}
}

func zigzag(v int64) uint64 { return uint64(v<<1) ^ uint64(v>>63) }

// putReferences writes the slot, value-id and field reference columns.
func (e *RowGroupEncoder) putReferences() {
	for _, r := range e.slotRefs {
		e.cols[colSlots].PutUvarint(uint64(e.slots[r].rank))
	}
	vid := &e.cols[colValueIDs]
	for _, r := range e.valRefs {
		s := e.slots[r]
		switch s.typ {
		case ValueStr, ValueBytes:
			s.str.putRef(vid, s.cur)
		default:
			s.num.putRef(vid, s.cur)
		}
		s.cur++
	}
	for t := range e.fields {
		col := fieldColumn[t]
		if col < 0 {
			continue
		}
		f := &e.fields[t]
		for u := range f.occ {
			f.putRef(&e.cols[col], u)
		}
	}
}

// putSchema writes the schema column: totals, keys, slots with their
// table headers, field table headers, resources and scopes.
func (e *RowGroupEncoder) putSchema() {
	b := &e.cols[colSchema]
	b.PutUvarint(uint64(e.nKVs))
	b.PutUvarint(uint64(e.nEvents))
	b.PutUvarint(uint64(e.nLinks))
	b.PutUvarint(uint64(len(e.keys.vals)))
	b.PutUvarint(uint64(e.nslots))
	for _, s := range e.ranked {
		b.PutUvarint(uint64(s.key))
		b.PutByte(byte(s.typ))
		switch s.typ {
		case ValueStr, ValueBytes:
			s.str.header(b)
		case ValueInt, ValueDouble, ValueBool:
			s.num.header(b)
		}
	}
	for t := range e.fields {
		e.fields[t].header(b)
	}
	urls := &e.fields[tabSchemaURL]
	u := 0
	b.PutUvarint(uint64(len(e.res.list)))
	for _, r := range e.res.list {
		b.PutUvarint(uint64(r.DroppedAttrs))
		urls.putRef(b, u)
		u++
		b.PutUvarint(uint64(len(r.Attrs)))
	}
	b.PutUvarint(uint64(len(e.scopes.list)))
	for k, s := range e.scopes.list {
		e.fields[tabScopeName].putRef(b, k)
		e.fields[tabScopeVersion].putRef(b, k)
		b.PutUvarint(uint64(s.DroppedAttrs))
		urls.putRef(b, u)
		u++
		b.PutUvarint(uint64(len(s.Attrs)))
	}
}

// putPool writes the string pool (keys, field tables, string slot tables)
// and the numeric tables.
func (e *RowGroupEncoder) putPool() {
	lens, data := &e.cols[colStrLens], &e.cols[colStrData]
	putStr := func(s string) {
		lens.PutUvarint(uint64(len(s)))
		data.PutString(s)
	}
	e.poolBytes = 0
	putTable := func(t *table[string]) {
		e.poolBytes += t.count() * t.prefix
		if t.count() == 0 {
			return
		}
		if t.prefix > 0 {
			putStr(t.vals[0][:t.prefix])
		}
		t.entries(func(s string) { putStr(s[t.prefix:]) })
	}
	for _, k := range e.keys.vals {
		putStr(k)
	}
	for t := range e.fields {
		putTable(&e.fields[t])
	}
	nums := &e.cols[colNums]
	for _, s := range e.ranked {
		switch s.typ {
		case ValueStr, ValueBytes:
			putTable(&s.str)
		case ValueInt:
			s.num.entries(func(v uint64) { nums.PutVarint(int64(v)) })
		case ValueBool:
			s.num.entries(nums.PutUvarint)
		case ValueDouble:
			s.num.entries(nums.PutBE64)
		}
	}
}

// minCompress is the column size below which compression is not tried:
// a zstd frame's header and block header alone take this much.
const minCompress = 16

// assemble compresses the columns and appends the row group to dst.
func (e *RowGroupEncoder) assemble(dst []byte, n int, minStart uint64, exp int) ([]byte, error) {
	if n := len(e.cols[colStrData].B) + e.poolBytes; n > MaxColumnBytes {
		return dst, fmt.Errorf("encode row group: %d bytes of strings, at most %d", n, MaxColumnBytes)
	}
	for i := range e.cols {
		raw := e.cols[i].B
		if len(raw) > MaxColumnBytes {
			return dst, fmt.Errorf("encode row group: column %s has %d bytes, at most %d", columnNames[i], len(raw), MaxColumnBytes)
		}
		e.code[i] = codecRaw
		if e.forceRaw || len(raw) < minCompress {
			continue
		}
		e.comp[i] = e.c.enc.EncodeAll(raw, e.comp[i][:0])
		if len(e.comp[i]) < len(raw) {
			e.code[i] = codecZstd
		}
	}
	base := len(dst)
	h := Encbuf{B: dst}
	h.PutBE32(RowGroupMagic)
	h.PutByte(RowGroupVersion1)
	h.PutUvarint(uint64(n))
	h.PutUvarint(minStart)
	h.PutByte(byte(exp))
	h.PutUvarint(colCount)
	for i := range e.cols {
		body := e.body(i)
		h.PutByte(e.code[i])
		h.PutUvarint(uint64(len(e.cols[i].B)))
		h.PutUvarint(uint64(len(body)))
		h.PutBE32(Checksum(body))
	}
	h.PutBE32(Checksum(h.B[base:]))
	for i := range e.cols {
		h.PutBytes(e.body(i))
	}
	return h.B, nil
}

func (e *RowGroupEncoder) body(i int) []byte {
	if e.code[i] == codecZstd {
		return e.comp[i]
	}
	return e.cols[i].B
}
