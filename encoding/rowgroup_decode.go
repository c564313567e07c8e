package encoding

// This file reads the columns of a row group after the trace IDs (see
// rowgroup.md). decodeColumns decodes them column by column, in tight
// loops, into flat arrays (struct of arrays); span materialises one row from
// them.

import (
	"encoding/binary"
	"fmt"
	"math"
)

// decodedColumns is the decoded form of a row group's columns.
//
// Strings are not materialised one by one: pool holds every pooled string
// (prefixes restored) and string number s is pool[offs[s]:offs[s+1]].
// Numeric table entries are in nums. Attribute values refer to either by
// absolute index.
type decodedColumns struct {
	pool string
	offs []uint32
	nums []uint64

	slots     []decSlot
	resources []*Resource
	scopes    []*Scope

	// Per row.
	spanIDs     []SpanID
	parents     []SpanID
	starts      []uint64
	ends        []uint64
	names       []uint32 // string numbers
	kinds       []int32
	status      []int32
	statusMsgs  []uint32 // string numbers
	traceStates []uint32 // string numbers
	flags       []uint32
	dropped     []uint32 // 3 per row: attributes, events, links
	res         []uint32
	scopeOf     []uint32
	nattrs      []uint32
	kvStart     []uint32 // n+1: the row's attributes, then its events', then its links', in kv order
	evStart     []uint32 // n+1
	linkStart   []uint32 // n+1

	// Per event.
	evTimes   []uint64
	evNames   []uint32 // string numbers
	evDropped []uint32
	evAttrs   []uint32

	// Per link.
	linkTraces  []TraceID
	linkSpans   []SpanID
	linkStates  []uint32 // string numbers
	linkFlags   []uint32
	linkDropped []uint32
	linkAttrs   []uint32

	// Per attribute, in stream order (pre-order within nested values).
	kvSlot []uint32
	kvVal  []uint32 // string or num number for a scalar, element count for an array or map

	// Chunks that materialised spans and attribute lists are cut from.
	spanBuf []Span
	kvBuf   []KeyValue
}

// Chunk sizes for materialised spans: big enough to make allocation cheap
// when a whole group is read, small enough that a kept span keeps little
// memory alive.
const (
	spanChunk = 32
	kvChunk   = 512
)

func (dc *decodedColumns) newSpan() *Span {
	if len(dc.spanBuf) == 0 {
		dc.spanBuf = make([]Span, spanChunk)
	}
	s := &dc.spanBuf[0]
	dc.spanBuf = dc.spanBuf[1:]
	return s
}

func (dc *decodedColumns) newKVs(n int) []KeyValue {
	if n > kvChunk/4 {
		return make([]KeyValue, n)
	}
	if len(dc.kvBuf) < n {
		dc.kvBuf = make([]KeyValue, kvChunk)
	}
	out := dc.kvBuf[:n:n]
	dc.kvBuf = dc.kvBuf[n:]
	return out
}

func (dc *decodedColumns) str(s uint32) string { return dc.pool[dc.offs[s]:dc.offs[s+1]] }

// decSlot is a decoded slot: the key and value type of attributes, with
// where the entries of its value table start (a string number or an index
// into nums).
type decSlot struct {
	key    string
	keyNum uint32 // the key's string number
	typ    ValueType
	tab    decTable
	kids   bool // array or map
}

func isNum(t ValueType) bool { return t == ValueInt || t == ValueDouble || t == ValueBool }
func isStr(t ValueType) bool { return t == ValueStr || t == ValueBytes }

// decTable is a decoded table header.
type decTable struct {
	seq      bool
	prefixed bool
	base     uint32 // first entry's string number or nums index
	n        int    // entry count
	cur      int    // seq mode: next entry to use
}

var columnWhat = func() (w [colCount]string) {
	for i := range w {
		w[i] = "row group column " + columnNames[i]
	}
	return w
}()

// rgDecoder holds the state of one decodeColumns call.
type rgDecoder struct {
	g      *RowGroup
	d      [colCount]Decbuf
	dc     *decodedColumns
	fields [fieldTableCount]decTable
	nKVs   int
	nEv    int
	nLink  int
	nKeys  int
}

// decodeColumns decodes every column after the trace runs, once; the
// outcome is kept in g.cols or g.err.
func (g *RowGroup) decodeColumns() {
	g.decoded = true
	x := &rgDecoder{g: g, dc: &decodedColumns{}}
	if err := x.decode(); err != nil {
		g.err = err
	} else {
		g.cols = x.dc
	}
	g.body = nil
}

// decompress decompresses every column after the trace runs into one
// scratch buffer and points x.d at them. The caller returns the buffer to
// the codec (putBuf) when nothing refers to it any more.
func (x *rgDecoder) decompress() ([]byte, error) {
	g := x.g
	total := 0
	for i := colSpanIDs; i < colCount; i++ {
		if g.dir[i].codec == codecZstd {
			total += g.dir[i].rawLen
		}
	}
	buf := g.codec.getBuf(total + DecodeSlack)
	for i := colSpanIDs; i < colCount; i++ {
		e := &g.dir[i]
		end := len(buf)
		if e.codec == codecZstd {
			end += e.rawLen
		}
		raw, err := g.codec.column(e.diskAt(g.body, g.bodyOff), e, buf[len(buf):len(buf):end+DecodeSlack])
		if err != nil {
			return buf, err
		}
		buf = buf[:end]
		x.d[i] = NewDecbuf(raw, columnWhat[i])
	}
	return buf, nil
}

func (x *rgDecoder) decode() error {
	buf, err := x.decompress()
	defer x.g.codec.putBuf(buf)
	if err != nil {
		return err
	}
	steps := []func() error{x.decodeSchema, x.decodePool, x.decodeOwners, x.decodeRows, x.decodeEvents, x.decodeLinks, x.decodeKVs}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	// Every column must be used up and every seq table exhausted.
	for i := colSpanIDs; i < colCount; i++ {
		if x.d[i].Len() != 0 {
			x.d[i].Fail(fmt.Sprintf("%d bytes left over", x.d[i].Len()))
			return x.d[i].Err()
		}
	}
	for t := range x.fields {
		if f := &x.fields[t]; f.seq && f.cur != f.n {
			return Corruptf(columnWhat[colSchema], -1, "field table %d: %d entries unused", t, f.n-f.cur)
		}
	}
	for i := range x.dc.slots {
		if t := &x.dc.slots[i].tab; t.seq && t.cur != t.n {
			return Corruptf(columnWhat[colSchema], -1, "slot %d: %d entries unused", i, t.n-t.cur)
		}
	}
	return nil
}

// decodeSchema reads the schema column's totals, slots and table headers.
func (x *rgDecoder) decodeSchema() error {
	sc := &x.d[colSchema]
	// Bounds: every attribute has a slot byte, every event a time byte,
	// every link a span ID, every pooled string a length byte, every
	// numeric entry a byte.
	x.nKVs = sc.UvarintInt(x.d[colSlots].Len())
	x.nEv = sc.UvarintInt(x.d[colTimeWidths].Len())
	x.nLink = sc.UvarintInt(x.d[colLinkIDs].Len() / len(SpanID{}))
	strBudget := x.d[colStrLens].Len()
	numBudget := x.d[colNums].Len()
	nKeys := sc.UvarintInt(strBudget)
	x.nKeys = nKeys
	strBudget -= nKeys
	nSlots := sc.UvarintInt(sc.Len() / 2) // a slot takes at least two bytes
	if err := sc.Err(); err != nil {
		return err
	}
	if nSlots > 0 && nKeys == 0 {
		sc.Fail("slots without keys")
		return sc.Err()
	}
	// String numbers: keys first, then the field tables, then the string
	// slot tables; decodePool checks the prefixes against the budget.
	next := uint32(nKeys)
	numNext := uint32(0)
	x.dc.slots = make([]decSlot, nSlots)
	for i := range x.dc.slots {
		s := &x.dc.slots[i]
		s.keyNum = uint32(sc.UvarintInt(nKeys - 1))
		s.typ = ValueType(sc.Byte())
		if sc.Err() == nil && !s.typ.Valid() {
			sc.Fail(fmt.Sprintf("slot %d: invalid value type %d", i, s.typ))
		}
		switch s.typ {
		case ValueStr, ValueBytes:
			s.tab = x.tableHeader(sc, &strBudget, true)
		case ValueInt, ValueDouble, ValueBool:
			s.tab = x.tableHeader(sc, &numBudget, false)
			s.tab.base = numNext
			numNext += uint32(s.tab.n)
		case ValueArray, ValueMap:
			s.kids = true
		}
		if err := sc.Err(); err != nil {
			return err
		}
	}
	for t := range x.fields {
		x.fields[t] = x.tableHeader(sc, &strBudget, true)
		x.fields[t].base = next
		next += uint32(x.fields[t].n)
	}
	for i := range x.dc.slots {
		if s := &x.dc.slots[i]; isStr(s.typ) {
			s.tab.base = next
			next += uint32(s.tab.n)
		}
	}
	return sc.Err()
}

// tableHeader reads a table's mode and entry count; the count and, for a
// prefixed table, its prefix string are taken from budget.
func (x *rgDecoder) tableHeader(d *Decbuf, budget *int, strs bool) decTable {
	mode := d.Byte()
	mask := modeSeq
	if strs {
		mask = modeMask
	}
	if d.Err() == nil && mode&^mask != 0 {
		d.Fail(fmt.Sprintf("unknown table mode %d", mode))
	}
	t := decTable{seq: mode&modeSeq != 0, prefixed: mode&modePrefixed != 0}
	t.n = d.UvarintInt(max(*budget, 0))
	*budget -= t.n
	if t.prefixed {
		if t.n == 0 {
			d.Fail("prefixed empty table")
		}
		*budget--
	}
	return t
}

// decodePool reads the pooled strings (restoring prefixes) and the numeric
// tables.
func (x *rgDecoder) decodePool() error {
	dc := x.dc
	lensCol, data := &x.d[colStrLens], &x.d[colStrData]
	nKeys := x.nKeys
	nStrs := nKeys // strings with numbers
	nRaw := nKeys  // stored strings, including prefixes
	count := func(t *decTable) {
		nStrs += t.n
		nRaw += t.n
		if t.prefixed {
			nRaw++
		}
	}
	for t := range x.fields {
		count(&x.fields[t])
	}
	for i := range dc.slots {
		if s := &dc.slots[i]; isStr(s.typ) {
			count(&s.tab)
		}
	}
	lens := make([]uint32, nRaw)
	uvarints32(lensCol, lens, uint64(data.Len()))
	if err := lensCol.Err(); err != nil {
		return err
	}
	// The pool's size with prefixes restored, bounded before allocating.
	size, at := uint64(0), 0
	stored := uint64(0)
	measure := func(t *decTable) {
		var p uint64
		if t.prefixed {
			p = uint64(lens[at])
			stored += p
			at++
		}
		for range t.n {
			size += p + uint64(lens[at])
			stored += uint64(lens[at])
			at++
		}
	}
	for _, l := range lens[:nKeys] {
		size += uint64(l)
		stored += uint64(l)
	}
	at = nKeys
	for t := range x.fields {
		measure(&x.fields[t])
	}
	for i := range dc.slots {
		if s := &dc.slots[i]; isStr(s.typ) {
			measure(&s.tab)
		}
	}
	if stored != uint64(data.Len()) {
		data.Fail(fmt.Sprintf("lengths add up to %d bytes, column has %d", stored, data.Len()))
		return data.Err()
	}
	if size > MaxColumnBytes {
		data.Fail(fmt.Sprintf("strings expand to %d bytes", size))
		return data.Err()
	}
	src := data.Bytes(data.Len())
	// Expand into scratch (not zeroed), then copy into the pool string.
	pool := x.g.codec.getBuf(int(size))[:size]
	defer x.g.codec.putBuf(pool)
	dc.offs = make([]uint32, nStrs+1)
	s, at, pos, w := 0, 0, 0, 0 // string number, length index, position in src and in pool
	w = copy(pool, src[:sumLens(lens[:nKeys])])
	pos = w
	for _, l := range lens[:nKeys] {
		s++
		dc.offs[s] = dc.offs[s-1] + l
	}
	at = nKeys
	expand := func(t *decTable) {
		if !t.prefixed {
			// Stored contiguously: copy once, then number.
			start := pos
			for range t.n {
				pos += int(lens[at])
				at++
				s++
				dc.offs[s] = uint32(w + pos - start)
			}
			w += copy(pool[w:], src[start:pos])
			return
		}
		prefix := src[pos : pos+int(lens[at])]
		pos += int(lens[at])
		at++
		for range t.n {
			w += copy(pool[w:], prefix)
			l := int(lens[at])
			w += copy(pool[w:], src[pos:pos+l])
			pos += l
			at++
			s++
			dc.offs[s] = uint32(w)
		}
	}
	for t := range x.fields {
		expand(&x.fields[t])
	}
	for i := range dc.slots {
		if sl := &dc.slots[i]; isStr(sl.typ) {
			expand(&sl.tab)
		}
	}
	dc.pool = string(pool)
	for i := range dc.slots {
		dc.slots[i].key = dc.str(dc.slots[i].keyNum)
	}

	// Numeric tables, in slot order.
	nums := &x.d[colNums]
	total := 0
	for i := range dc.slots {
		if sl := &dc.slots[i]; isNum(sl.typ) {
			total += sl.tab.n
		}
	}
	dc.nums = make([]uint64, total)
	for i := range dc.slots {
		sl := &dc.slots[i]
		if !isNum(sl.typ) {
			continue
		}
		dst := dc.nums[sl.tab.base : sl.tab.base+uint32(sl.tab.n)]
		switch sl.typ {
		case ValueInt:
			varints64(nums, dst)
		case ValueBool:
			uvarints64(nums, dst)
		case ValueDouble:
			for j := range dst {
				dst[j] = nums.BE64()
			}
		}
	}
	return nums.Err()
}

// decodeOwners reads the resources and scopes from the schema column and
// their attributes from the attribute streams (decodeKVs walks them later).
func (x *rgDecoder) decodeOwners() error {
	sc := &x.d[colSchema]
	dc := x.dc
	budget := x.nKVs // attributes left for the lists allocated here
	list := func() []KeyValue {
		n := sc.UvarintInt(budget)
		budget -= n
		return make([]KeyValue, n) // filled by decodeKVs
	}
	nRes := sc.UvarintInt(x.g.n)
	if err := sc.Err(); err != nil {
		return err
	}
	dc.resources = make([]*Resource, nRes)
	for i := range dc.resources {
		r := &Resource{}
		r.DroppedAttrs = u32(sc)
		r.SchemaURL = x.fieldStr(tabSchemaURL, sc)
		r.Attrs = list()
		if err := sc.Err(); err != nil {
			return err
		}
		dc.resources[i] = r
	}
	nScopes := sc.UvarintInt(x.g.n)
	if err := sc.Err(); err != nil {
		return err
	}
	dc.scopes = make([]*Scope, nScopes)
	for i := range dc.scopes {
		s := &Scope{}
		s.Name = x.fieldStr(tabScopeName, sc)
		s.Version = x.fieldStr(tabScopeVersion, sc)
		s.DroppedAttrs = u32(sc)
		s.SchemaURL = x.fieldStr(tabSchemaURL, sc)
		s.Attrs = list()
		if err := sc.Err(); err != nil {
			return err
		}
		dc.scopes[i] = s
	}
	return nil
}

// fieldStr reads one reference to field table t from d and returns the
// string ("" after an error).
func (x *rgDecoder) fieldStr(t int, d *Decbuf) string {
	var one [1]uint32
	x.refs(&x.fields[t], d, one[:])
	if d.Err() != nil {
		return ""
	}
	return x.dc.str(one[0])
}

// refs reads len(dst) references to table t from d into dst as absolute
// entry numbers: ids in dict mode, the next entries in seq mode.
func (x *rgDecoder) refs(t *decTable, d *Decbuf, dst []uint32) {
	if len(dst) == 0 {
		return
	}
	if t.seq {
		if t.cur+len(dst) > t.n {
			d.Fail("more uses of a table than entries")
			return
		}
		for i := range dst {
			dst[i] = t.base + uint32(t.cur+i)
		}
		t.cur += len(dst)
		return
	}
	switch t.n {
	case 0:
		d.Fail("reference into an empty table")
		return
	case 1: // ids are implicit
		clear(dst)
	default:
		uvarints32(d, dst, uint64(t.n-1))
	}
	for i := range dst {
		dst[i] += t.base
	}
}

// decodeRows reads the per-row columns.
func (x *rgDecoder) decodeRows() error {
	g, dc, d := x.g, x.dc, &x.d
	n := g.n
	u32s := func(k int) []uint32 { return make([]uint32, k) }

	dc.spanIDs = make([]SpanID, n)
	ids := d[colSpanIDs].Bytes(n * len(SpanID{}))
	for i := range dc.spanIDs {
		copy(dc.spanIDs[i][:], ids[i*8:])
	}

	// Parents, resolved to span IDs.
	dc.parents = make([]SpanID, n)
	refs := u32s(n)
	uvarints32(&d[colParents], refs, MaxRowGroupSpans+parentRowBase)
	lits := &d[colParentIDs]
	for k := range g.traceIDs {
		lo, hi := int(g.runStart[k]), int(g.runStart[k+1])
		for i := lo; i < hi; i++ {
			switch p := int(refs[i]); {
			case p == parentNone:
			case p == parentLiteral:
				copy(dc.parents[i][:], lits.Bytes(len(SpanID{})))
			case p-parentRowBase < hi-lo:
				dc.parents[i] = dc.spanIDs[lo+p-parentRowBase]
			default:
				d[colParents].Fail("parent row outside the trace")
			}
		}
	}

	// Times: the first start of each trace from the group's minimum, the
	// others from the previous row's.
	dc.starts = make([]uint64, n)
	dc.ends = make([]uint64, n)
	unit := g.unit
	getPacked(&d[colTimeWidths], &d[colStarts], dc.starts)
	for k := range g.traceIDs {
		lo, hi := int(g.runStart[k]), int(g.runStart[k+1])
		prev := g.minStart + dc.starts[lo]*unit
		dc.starts[lo] = prev
		for i := lo + 1; i < hi; i++ {
			prev += uint64(unzigzag(dc.starts[i]) * int64(unit))
			dc.starts[i] = prev
		}
	}
	getPacked(&d[colTimeWidths], &d[colDurations], dc.ends)
	for i := range dc.ends {
		dc.ends[i] = dc.starts[i] + dc.ends[i]*unit
	}

	dc.names = u32s(n)
	x.refs(&x.fields[tabSpanName], &d[colNames], dc.names)
	dc.kinds = make([]int32, n)
	varints32(&d[colKinds], dc.kinds)
	dc.status = make([]int32, n)
	varints32(&d[colStatusCodes], dc.status)
	dc.statusMsgs = u32s(n)
	x.refs(&x.fields[tabStatusMsg], &d[colStatusMsgs], dc.statusMsgs)
	dc.traceStates = u32s(n)
	x.refs(&x.fields[tabTraceState], &d[colTraceStates], dc.traceStates)
	dc.flags = u32s(n)
	uvarints32(&d[colFlags], dc.flags, math.MaxUint32)
	dc.dropped = u32s(3 * n)
	uvarints32(&d[colDropped], dc.dropped, math.MaxUint32)
	dc.res = u32s(n)
	indexes(&d[colResources], dc.res, len(dc.resources))
	dc.scopeOf = u32s(n)
	indexes(&d[colScopes], dc.scopeOf, len(dc.scopes))
	dc.nattrs = u32s(n)
	uvarints32(&d[colAttrCounts], dc.nattrs, uint64(x.nKVs))
	dc.evStart = u32s(n + 1)
	startsFromCounts(&d[colEventCounts], dc.evStart, x.nEv, true)
	dc.linkStart = u32s(n + 1)
	startsFromCounts(&d[colLinkCounts], dc.linkStart, x.nLink, true)
	return x.firstErr()
}

// decodeEvents reads the per-event columns.
func (x *rgDecoder) decodeEvents() error {
	dc, d := x.dc, &x.d
	n := x.nEv
	dc.evTimes = make([]uint64, n)
	getPacked(&d[colTimeWidths], &d[colEventTimes], dc.evTimes)
	dc.eventTimesFromOffsets(x.g.n, x.g.unit)
	dc.evNames = make([]uint32, n)
	x.refs(&x.fields[tabEventName], &d[colEventNames], dc.evNames)
	dc.readEventCounts(&d[colEvents], n)
	return x.firstErr()
}

// decodeLinks reads the per-link columns.
func (x *rgDecoder) decodeLinks() error {
	g, dc, d := x.g, x.dc, &x.d
	n := x.nLink
	quads := make([]uint32, 4*n)
	uvarints32(&d[colLinks], quads, math.MaxUint32)
	dc.makeLinks(n)
	for k := range g.traceIDs {
		for i := g.runStart[k]; i < g.runStart[k+1]; i++ {
			dc.readLinks(int(i), g.traceIDs[k], quads, &d[colLinkIDs], &d[colLinks])
		}
	}
	dc.linkStates = make([]uint32, n)
	x.refs(&x.fields[tabLinkState], &d[colLinkStates], dc.linkStates)
	return x.firstErr()
}

// eventTimesFromOffsets turns the event times of rows [0, rows), as read
// from their column (zig-zag offsets from the span's start, in units),
// into times.
func (dc *decodedColumns) eventTimesFromOffsets(rows int, unit uint64) {
	for i := range rows {
		for e := dc.evStart[i]; e < dc.evStart[i+1]; e++ {
			dc.evTimes[e] = dc.starts[i] + uint64(unzigzag(dc.evTimes[e])*int64(unit))
		}
	}
}

// readEventCounts reads n events' dropped-attribute and attribute counts
// from the events column.
func (dc *decodedColumns) readEventCounts(events *Decbuf, n int) {
	pairs := make([]uint32, 2*n)
	uvarints32(events, pairs, math.MaxUint32)
	dc.evDropped, dc.evAttrs = make([]uint32, n), make([]uint32, n)
	for e := range n {
		dc.evDropped[e], dc.evAttrs[e] = pairs[2*e], pairs[2*e+1]
	}
}

// makeLinks allocates the per-link arrays for n links.
func (dc *decodedColumns) makeLinks(n int) {
	dc.linkTraces = make([]TraceID, n)
	dc.linkSpans = make([]SpanID, n)
	dc.linkFlags, dc.linkDropped, dc.linkAttrs = make([]uint32, n), make([]uint32, n), make([]uint32, n)
}

// readLinks fills the links of row i, a span of trace, from their quads
// (trace reference, flags, dropped attributes, attribute count) and the
// link-ID column; a bad trace reference fails the links column.
func (dc *decodedColumns) readLinks(i int, trace TraceID, quads []uint32, ids, links *Decbuf) {
	for l := dc.linkStart[i]; l < dc.linkStart[i+1]; l++ {
		q := quads[4*l:]
		switch q[0] {
		case linkSameTrace:
			dc.linkTraces[l] = trace
		case linkLiteral:
			copy(dc.linkTraces[l][:], ids.Bytes(len(TraceID{})))
		default:
			links.Fail("bad link trace reference")
		}
		copy(dc.linkSpans[l][:], ids.Bytes(len(SpanID{})))
		dc.linkFlags[l], dc.linkDropped[l], dc.linkAttrs[l] = q[1], q[2], q[3]
	}
}

// decodeKVs reads the attribute streams, walking the attribute lists in
// stream order: resources', scopes', then for each row its own, its
// events' and its links'.
func (x *rgDecoder) decodeKVs() error {
	dc, d := x.dc, &x.d
	dc.kvSlot = make([]uint32, x.nKVs)
	if len(dc.slots) == 0 && x.nKVs > 0 {
		d[colSlots].Fail("attributes without slots")
		return d[colSlots].Err()
	}
	uvarints32(&d[colSlots], dc.kvSlot, uint64(max(len(dc.slots)-1, 0)))
	kids := uvarintsAll(&d[colKidCounts], uint64(x.nKVs))
	ids := uvarintsAll(&d[colValueIDs], math.MaxUint32)
	if err := x.firstErr(); err != nil {
		return err
	}
	dc.kvVal = make([]uint32, x.nKVs)
	w := kvWalker{x: x, kids: kids, ids: ids}
	for _, r := range dc.resources {
		w.list(len(r.Attrs))
	}
	for _, s := range dc.scopes {
		w.list(len(s.Attrs))
	}
	if w.err == "" {
		// Materialise the shared resources and scopes now.
		m := materialiser{dc: dc}
		for _, r := range dc.resources {
			m.fill(r.Attrs)
		}
		for _, s := range dc.scopes {
			m.fill(s.Attrs)
		}
	}
	dc.kvStart = make([]uint32, x.g.n+1)
	for i := range x.g.n {
		if w.err != "" {
			break
		}
		dc.kvStart[i] = uint32(w.k)
		w.list(int(dc.nattrs[i]))
		for e := dc.evStart[i]; e < dc.evStart[i+1]; e++ {
			w.list(int(dc.evAttrs[e]))
		}
		for l := dc.linkStart[i]; l < dc.linkStart[i+1]; l++ {
			w.list(int(dc.linkAttrs[l]))
		}
	}
	dc.kvStart[x.g.n] = uint32(w.k)
	switch {
	case w.err != "":
		d[colSlots].Fail(w.err)
	case w.k != x.nKVs:
		d[colSlots].Fail(fmt.Sprintf("%d attributes, declared %d", w.k, x.nKVs))
	case w.ki != len(kids):
		d[colKidCounts].Fail("unused element counts")
	case w.vi != len(ids):
		d[colValueIDs].Fail("unused value ids")
	}
	return x.firstErr()
}

// kvWalker walks attribute lists over the decoded slot column, resolving
// each attribute's value.
type kvWalker struct {
	x      *rgDecoder
	kids   []uint32
	ids    []uint32
	k      int // next attribute
	ki, vi int // next element count, value id
	stack  [MaxValueDepth]int
	err    string
}

// list walks a list of n attributes at depth 1 and everything nested in it.
func (w *kvWalker) list(n int) {
	if n == 0 || w.err != "" {
		return
	}
	dc := w.x.dc
	depth := 0
	w.stack[0] = n
	for depth >= 0 {
		if w.stack[depth] == 0 {
			depth--
			continue
		}
		w.stack[depth]--
		if w.k >= len(dc.kvSlot) {
			w.err = "more attributes than declared"
			return
		}
		s := &dc.slots[dc.kvSlot[w.k]]
		switch {
		case s.kids:
			if w.ki >= len(w.kids) {
				w.err = "missing element count"
				return
			}
			c := w.kids[w.ki]
			w.ki++
			dc.kvVal[w.k] = c
			if c > 0 {
				if depth+1 >= MaxValueDepth {
					w.err = "attribute values nested too deep"
					return
				}
				depth++
				w.stack[depth] = int(c)
			}
		case s.typ == ValueEmpty:
		case s.tab.seq:
			if s.tab.cur >= s.tab.n {
				w.err = "more uses of a table than entries"
				return
			}
			dc.kvVal[w.k] = s.tab.base + uint32(s.tab.cur)
			s.tab.cur++
		case s.tab.n == 1: // the id is implicit
			dc.kvVal[w.k] = s.tab.base
		default:
			if w.vi >= len(w.ids) || int(w.ids[w.vi]) >= s.tab.n {
				w.err = "bad value id"
				return
			}
			dc.kvVal[w.k] = s.tab.base + w.ids[w.vi]
			w.vi++
		}
		w.k++
	}
}

// materialiser builds attribute lists from the flat attribute arrays.
type materialiser struct {
	dc   *decodedColumns
	pos  int // next flat attribute
	slab []KeyValue
}

// fill fills out with the next len(out) attributes, taking the elements of
// nested values from the slab.
func (m *materialiser) fill(out []KeyValue) {
	dc := m.dc
	for j := range out {
		k := m.pos
		m.pos++
		s := &dc.slots[dc.kvSlot[k]]
		kv := &out[j]
		kv.Key = s.key
		kv.Value.Type = s.typ
		switch s.typ {
		case ValueStr, ValueBytes:
			kv.Value.Str = dc.str(dc.kvVal[k])
		case ValueInt, ValueDouble, ValueBool:
			kv.Value.Num = dc.nums[dc.kvVal[k]]
		case ValueArray, ValueMap:
			n := int(dc.kvVal[k])
			if len(m.slab) < n {
				m.slab = make([]KeyValue, max(n, 64))
			}
			kv.Value.Kids = m.slab[:n:n]
			m.slab = m.slab[n:]
			m.fill(kv.Value.Kids)
		}
	}
}

// build returns the next n attributes, from the slab.
func (m *materialiser) build(n int) []KeyValue {
	if n == 0 {
		return nil
	}
	out := m.slab[:n:n]
	m.slab = m.slab[n:]
	m.fill(out)
	return out
}

// span materialises row i of dc, whose trace ID is id.
func (dc *decodedColumns) span(id TraceID, i int) *Span {
	d := dc.dropped[3*i:]
	s := dc.newSpan()
	*s = Span{
		TraceID:       id,
		SpanID:        dc.spanIDs[i],
		ParentSpanID:  dc.parents[i],
		TraceState:    dc.str(dc.traceStates[i]),
		Flags:         dc.flags[i],
		Name:          dc.str(dc.names[i]),
		Kind:          dc.kinds[i],
		StartUnixNano: dc.starts[i],
		EndUnixNano:   dc.ends[i],
		StatusCode:    dc.status[i],
		StatusMessage: dc.str(dc.statusMsgs[i]),
		DroppedAttrs:  d[0],
		DroppedEvents: d[1],
		DroppedLinks:  d[2],
		Resource:      dc.resources[dc.res[i]],
		Scope:         dc.scopes[dc.scopeOf[i]],
	}
	m := materialiser{dc: dc, pos: int(dc.kvStart[i])}
	if n := dc.kvStart[i+1] - dc.kvStart[i]; n > 0 {
		m.slab = dc.newKVs(int(n))
	}
	s.Attrs = m.build(int(dc.nattrs[i]))
	if lo, hi := dc.evStart[i], dc.evStart[i+1]; hi > lo {
		s.Events = make([]Event, hi-lo)
		for j := range s.Events {
			e := lo + uint32(j)
			s.Events[j] = Event{TimeUnixNano: dc.evTimes[e], Name: dc.str(dc.evNames[e]),
				DroppedAttrs: dc.evDropped[e], Attrs: m.build(int(dc.evAttrs[e]))}
		}
	}
	if lo, hi := dc.linkStart[i], dc.linkStart[i+1]; hi > lo {
		s.Links = make([]Link, hi-lo)
		for j := range s.Links {
			l := lo + uint32(j)
			s.Links[j] = Link{TraceID: dc.linkTraces[l], SpanID: dc.linkSpans[l], TraceState: dc.str(dc.linkStates[l]),
				Flags: dc.linkFlags[l], DroppedAttrs: dc.linkDropped[l], Attrs: m.build(int(dc.linkAttrs[l]))}
		}
	}
	return s
}

// firstErr returns the first error of any column.
func (x *rgDecoder) firstErr() error {
	for i := colSpanIDs; i < colCount; i++ {
		if err := x.d[i].Err(); err != nil {
			return err
		}
	}
	return nil
}

// The bulk readers below decode runs of varints straight from a Decbuf's
// bytes in tight loops, bounds-checked, failing through the Decbuf.

// uvarints32 decodes len(dst) uvarints, each at most max (≤ MaxUint32).
func uvarints32(d *Decbuf, dst []uint32, max uint64) {
	if d.err != nil {
		return
	}
	b := d.B
	for i := range dst {
		var v uint64
		if len(b) > 0 && b[0] < 0x80 {
			v = uint64(b[0])
			b = b[1:]
		} else {
			var n int
			if v, n = binary.Uvarint(b); n <= 0 {
				d.advance(len(d.B) - len(b))
				d.Fail("bad uvarint")
				return
			}
			b = b[n:]
		}
		if v > max {
			d.advance(len(d.B) - len(b))
			d.Fail("value out of range")
			return
		}
		dst[i] = uint32(v)
	}
	d.advance(len(d.B) - len(b))
}

// uvarintsAll decodes uvarints, each at most max, until d is empty.
func uvarintsAll(d *Decbuf, max uint64) []uint32 {
	if d.err != nil {
		return nil
	}
	n := 0
	for _, c := range d.B {
		if c < 0x80 {
			n++
		}
	}
	out := make([]uint32, n)
	uvarints32(d, out, max)
	if d.err == nil && d.Len() != 0 {
		d.Fail("truncated uvarint")
	}
	return out
}

// uvarints64 decodes len(dst) uvarints.
func uvarints64(d *Decbuf, dst []uint64) {
	if d.err != nil {
		return
	}
	b := d.B
	for i := range dst {
		if len(b) > 0 && b[0] < 0x80 {
			dst[i] = uint64(b[0])
			b = b[1:]
			continue
		}
		v, n := binary.Uvarint(b)
		if n <= 0 {
			d.advance(len(d.B) - len(b))
			d.Fail("bad uvarint")
			return
		}
		dst[i] = v
		b = b[n:]
	}
	d.advance(len(d.B) - len(b))
}

// varints64 decodes len(dst) zig-zag varints, stored as their int64 bits.
func varints64(d *Decbuf, dst []uint64) {
	uvarints64(d, dst)
	for i, u := range dst {
		dst[i] = uint64(unzigzag(u))
	}
}

func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// getPacked reads len(dst) values written by putPacked: their bit lengths
// from widths, their bits from payload, which must hold exactly those bits
// (padding the last byte with zeros).
func getPacked(widths, payload *Decbuf, dst []uint64) {
	ws := widths.Bytes(len(dst))
	if ws == nil {
		return
	}
	total := 0
	for _, w := range ws {
		if w > 64 {
			widths.Fail(fmt.Sprintf("bit length %d", w))
			return
		}
		if w > 1 {
			total += int(w) - 1
		}
	}
	if need := (total + 7) / 8; need != payload.Len() {
		payload.Fail(fmt.Sprintf("%d bytes for %d bits", payload.Len(), total))
		return
	}
	b := payload.Bytes(payload.Len())
	var acc uint64 // bits read, not yet used
	var nacc uint
	at := 0
	read := func(k uint) uint64 { // k <= 56
		for nacc < k {
			acc |= uint64(b[at]) << nacc
			at++
			nacc += 8
		}
		v := acc & (1<<k - 1)
		acc >>= k
		nacc -= k
		return v
	}
	for i, w := range ws {
		switch {
		case w <= 1:
			dst[i] = uint64(w)
		case w <= 57:
			dst[i] = 1<<(w-1) | read(uint(w-1))
		default:
			lo := read(32)
			dst[i] = 1<<(w-1) | read(uint(w-1-32))<<32 | lo
		}
	}
	if acc != 0 {
		payload.Fail("nonzero padding bits")
	}
}

// varints32 decodes len(dst) zig-zag varints that must fit an int32.
func varints32(d *Decbuf, dst []int32) {
	tmp := make([]uint32, len(dst))
	uvarints32(d, tmp, math.MaxUint32)
	for i, u := range tmp {
		dst[i] = int32(u>>1) ^ -int32(u&1)
	}
}

// indexes decodes len(dst) indexes below n.
func indexes(d *Decbuf, dst []uint32, n int) {
	if len(dst) > 0 && n == 0 {
		d.Fail("index into an empty list")
		return
	}
	uvarints32(d, dst, uint64(n-1))
}

// startsFromCounts decodes len(dst)-1 counts into running starts: dst[0]
// is 0 and dst[i+1] is dst[i] plus count i. The counts must add up to at
// most total, and to exactly total if exact.
func startsFromCounts(d *Decbuf, dst []uint32, total int, exact bool) {
	uvarints32(d, dst[1:], uint64(total))
	sum := uint64(0)
	for i := 1; i < len(dst); i++ {
		sum += uint64(dst[i])
		if sum > uint64(total) {
			d.Fail("counts exceed the declared total")
			return
		}
		dst[i] = uint32(sum)
	}
	if d.err == nil && exact && sum != uint64(total) {
		d.Fail(fmt.Sprintf("counts add up to %d, declared %d", sum, total))
	}
}

func sumLens(lens []uint32) int {
	n := 0
	for _, l := range lens {
		n += int(l)
	}
	return n
}

// u32 reads a uvarint that must fit a uint32.
func u32(d *Decbuf) uint32 {
	v := d.Uvarint()
	if v > math.MaxUint32 {
		d.Fail("value out of uint32 range")
		return 0
	}
	return uint32(v)
}
