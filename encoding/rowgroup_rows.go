package encoding

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// Partial decoding: rowsDecoder builds the spans of a few rows [lo, hi)
// without decoding the group's other rows. Every column is still
// decompressed (the format has no finer unit), but the streams before lo
// are skipped rather than decoded into arrays: fixed-width columns are
// indexed, varint columns are skipped or summed, the attribute streams are
// walked only to advance the seq-mode cursors and the stream positions,
// and only the strings and numbers the rows refer to are materialised. The
// outcome is a decodedColumns of hi-lo rows whose string and number indexes
// are local to it, so decodedColumns.span builds the spans as it does for a
// whole group.
//
// Everything read is bounds-checked through the columns' Decbufs. Checks
// that need the whole group (every column used up, every seq table
// exhausted, the attribute total met) are left to the full decode; the
// cheap ones (column lengths of fixed-width and packed columns, the string
// pool's total length) are kept.
type rowsDecoder struct {
	*rgDecoder
	lo, hi int

	res, scopes []ownerRec // every resource and scope of the group
	resLocal    []int32    // resource index -> index in dc.resources, or -1
	scopeLocal  []int32

	skipKVs   uint64 // top-level attributes of the rows before lo (their own, their events', their links')
	ev0, lnk0 int    // first event and link of row lo
	lnkLits0  int    // literal link trace IDs before link lnk0
	runs      []int  // the run (trace) index of each row
}

// ownerRec is a resource or scope as the schema column lists it: string
// numbers, not yet strings; name and version are unused for a resource.
type ownerRec struct {
	name, version, schemaURL uint32
	dropped                  uint32
	nattrs                   int
}

// partialRowsDivisor: Rows decodes only the rows asked for when they are
// at most 1/partialRowsDivisor of the group; for more, one full decode is
// cheaper per row (and later Span calls reuse it).
const partialRowsDivisor = 8

// Rows returns the spans of rows [lo, hi), as Span returns them one by
// one (same content, same sharing of *Resource and *Scope among them, the
// same rules for keeping and modifying them). When the range is a small
// part of the group and Span has not decoded the group yet, it decodes only
// those rows: the cost is the zstd decompression of the columns plus a
// pass over the streams, not the building of every row. Errors wrap
// ErrCorrupt when the bytes are bad; a partial decode's error is not kept
// (Span may still decode the group, or fail itself). It panics if the
// range is not within [0, Len()].
func (g *RowGroup) Rows(lo, hi int) ([]*Span, error) {
	if lo < 0 || hi > g.n || lo > hi {
		panic(fmt.Sprintf("encoding: row group rows [%d,%d) out of range [0,%d)", lo, hi, g.n))
	}
	if lo == hi {
		return nil, nil
	}
	if g.decoded || (hi-lo)*partialRowsDivisor > g.n {
		out := make([]*Span, hi-lo)
		for i := range out {
			s, err := g.Span(lo + i)
			if err != nil {
				return nil, err
			}
			out[i] = s
		}
		return out, nil
	}
	return g.rowsPartial(lo, hi)
}

// rowsPartial decodes rows [lo, hi), lo < hi, alone.
func (g *RowGroup) rowsPartial(lo, hi int) ([]*Span, error) {
	p := &rowsDecoder{rgDecoder: &rgDecoder{g: g, dc: &decodedColumns{}}, lo: lo, hi: hi}
	buf, err := p.decompress()
	defer g.codec.putBuf(buf)
	if err != nil {
		return nil, err
	}
	steps := []func() error{p.decodeSchema, p.owners, p.rows, p.events, p.links, p.kvs, p.resolve}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	out := make([]*Span, hi-lo)
	for j := range out {
		out[j] = p.dc.span(g.traceIDs[p.runs[j]], j)
	}
	return out, nil
}

// owners reads every resource and scope record of the schema column.
func (p *rowsDecoder) owners() error {
	sc := &p.d[colSchema]
	budget := p.nKVs
	ref := func(t int) uint32 {
		var one [1]uint32
		p.refs(&p.fields[t], sc, one[:])
		return one[0]
	}
	attrs := func() int {
		n := sc.UvarintInt(budget)
		budget -= n
		return n
	}
	p.res = make([]ownerRec, sc.UvarintInt(p.g.n))
	for i := range p.res {
		r := &p.res[i]
		r.dropped = u32(sc)
		r.schemaURL = ref(tabSchemaURL)
		r.nattrs = attrs()
		if err := sc.Err(); err != nil {
			return err
		}
	}
	p.scopes = make([]ownerRec, sc.UvarintInt(p.g.n))
	for i := range p.scopes {
		s := &p.scopes[i]
		s.name = ref(tabScopeName)
		s.version = ref(tabScopeVersion)
		s.dropped = u32(sc)
		s.schemaURL = ref(tabSchemaURL)
		s.nattrs = attrs()
		if err := sc.Err(); err != nil {
			return err
		}
	}
	if sc.Err() == nil && sc.Len() != 0 {
		sc.Fail(fmt.Sprintf("%d bytes left over", sc.Len()))
	}
	return sc.Err()
}

// rows reads the per-row columns of rows [lo, hi) and the sums over the
// rows before lo that locate their events, links and attributes.
func (p *rowsDecoder) rows() error {
	g, dc, d := p.g, p.dc, &p.d
	lo, hi, n := p.lo, p.hi, g.n
	m := hi - lo

	p.runs = make([]int, m)
	k := g.runOf(lo)
	for j := range p.runs {
		for int(g.runStart[k+1]) <= lo+j {
			k++
		}
		p.runs[j] = k
	}

	// Span IDs: fixed width, read in place.
	ids := d[colSpanIDs].B
	if len(ids) != n*len(SpanID{}) {
		d[colSpanIDs].Fail(fmt.Sprintf("%d bytes for %d rows", len(ids), n))
		return d[colSpanIDs].Err()
	}
	spanID := func(i int) (s SpanID) {
		copy(s[:], ids[i*len(SpanID{}):])
		return s
	}
	dc.spanIDs = make([]SpanID, m)
	for j := range dc.spanIDs {
		dc.spanIDs[j] = spanID(lo + j)
	}

	// Parents: literals before lo locate this range's in parentIDs.
	lits := skipUvarints(&d[colParents], lo)
	d[colParentIDs].Bytes(lits * len(SpanID{}))
	refs := make([]uint32, m)
	uvarints32(&d[colParents], refs, MaxRowGroupSpans+parentRowBase)
	dc.parents = make([]SpanID, m)
	for j, r := range refs {
		tlo, thi := int(g.runStart[p.runs[j]]), int(g.runStart[p.runs[j]+1])
		switch r := int(r); {
		case r == parentNone:
		case r == parentLiteral:
			copy(dc.parents[j][:], d[colParentIDs].Bytes(len(SpanID{})))
		case r-parentRowBase < thi-tlo:
			dc.parents[j] = spanID(tlo + r - parentRowBase)
		default:
			d[colParents].Fail("parent row outside the trace")
		}
	}

	// Times: starts from the first row of lo's trace on, as they are
	// deltas within a trace.
	ws := d[colTimeWidths].B
	if len(ws) != 2*n+p.nEv {
		d[colTimeWidths].Fail(fmt.Sprintf("%d bit lengths, want %d", len(ws), 2*n+p.nEv))
		return d[colTimeWidths].Err()
	}
	if !checkPacked(&d[colTimeWidths], ws[:n], &d[colStarts]) || !checkPacked(&d[colTimeWidths], ws[n:2*n], &d[colDurations]) {
		return p.firstErr()
	}
	unit := g.unit
	r0 := int(g.runStart[p.runs[0]])
	vals := make([]uint64, hi-r0)
	packedAt(ws[:n], d[colStarts].B, r0, vals)
	dc.starts = make([]uint64, m)
	var prev uint64
	k = p.runs[0]
	for i := r0; i < hi; i++ {
		if i == int(g.runStart[k+1]) {
			k++
		}
		if v := vals[i-r0]; i == int(g.runStart[k]) {
			prev = g.minStart + v*unit
		} else {
			prev += uint64(unzigzag(v) * int64(unit))
		}
		if i >= lo {
			dc.starts[i-lo] = prev
		}
	}
	dc.ends = make([]uint64, m)
	packedAt(ws[n:2*n], d[colDurations].B, lo, dc.ends)
	for j := range dc.ends {
		dc.ends[j] = dc.starts[j] + dc.ends[j]*unit
	}

	u32s := func(k int) []uint32 { return make([]uint32, k) }
	dc.names = u32s(m)
	p.refsAt(&p.fields[tabSpanName], &d[colNames], lo, dc.names)
	skipUvarints(&d[colKinds], lo)
	dc.kinds = make([]int32, m)
	varints32(&d[colKinds], dc.kinds)
	skipUvarints(&d[colStatusCodes], lo)
	dc.status = make([]int32, m)
	varints32(&d[colStatusCodes], dc.status)
	dc.statusMsgs = u32s(m)
	p.refsAt(&p.fields[tabStatusMsg], &d[colStatusMsgs], lo, dc.statusMsgs)
	dc.traceStates = u32s(m)
	p.refsAt(&p.fields[tabTraceState], &d[colTraceStates], lo, dc.traceStates)
	skipUvarints(&d[colFlags], lo)
	dc.flags = u32s(m)
	uvarints32(&d[colFlags], dc.flags, math.MaxUint32)
	skipUvarints(&d[colDropped], 3*lo)
	dc.dropped = u32s(3 * m)
	uvarints32(&d[colDropped], dc.dropped, math.MaxUint32)
	skipUvarints(&d[colResources], lo)
	dc.res = u32s(m)
	indexes(&d[colResources], dc.res, len(p.res))
	skipUvarints(&d[colScopes], lo)
	dc.scopeOf = u32s(m)
	indexes(&d[colScopes], dc.scopeOf, len(p.scopes))

	attrs0 := sumUvarints(&d[colAttrCounts], lo, uint64(p.nKVs))
	dc.nattrs = u32s(m)
	uvarints32(&d[colAttrCounts], dc.nattrs, uint64(p.nKVs))
	p.skipKVs = attrs0
	ev0 := sumUvarints(&d[colEventCounts], lo, uint64(p.nEv))
	dc.evStart = u32s(m + 1)
	startsFromCounts(&d[colEventCounts], dc.evStart, p.nEv-int(min(ev0, uint64(p.nEv))), false)
	lnk0 := sumUvarints(&d[colLinkCounts], lo, uint64(p.nLink))
	dc.linkStart = u32s(m + 1)
	startsFromCounts(&d[colLinkCounts], dc.linkStart, p.nLink-int(min(lnk0, uint64(p.nLink))), false)
	p.ev0, p.lnk0 = int(ev0), int(lnk0)
	return p.firstErr()
}

// events reads the events of rows [lo, hi).
func (p *rowsDecoder) events() error {
	g, dc, d := p.g, p.dc, &p.d
	m := p.hi - p.lo
	ne := int(dc.evStart[m])
	ws := d[colTimeWidths].B[2*g.n:]
	if !checkPacked(&d[colTimeWidths], ws, &d[colEventTimes]) {
		return p.firstErr()
	}
	dc.evTimes = make([]uint64, ne)
	packedAt(ws, d[colEventTimes].B, p.ev0, dc.evTimes)
	dc.eventTimesFromOffsets(m, g.unit)
	dc.evNames = make([]uint32, ne)
	p.refsAt(&p.fields[tabEventName], &d[colEventNames], p.ev0, dc.evNames)
	attrs0, _ := sumGroups(&d[colEvents], p.ev0, 2)
	p.skipKVs += attrs0
	dc.readEventCounts(&d[colEvents], ne)
	return p.firstErr()
}

// links reads the links of rows [lo, hi).
func (p *rowsDecoder) links() error {
	g, dc, d := p.g, p.dc, &p.d
	m := p.hi - p.lo
	nl := int(dc.linkStart[m])
	attrs0, lits0 := sumGroups(&d[colLinks], p.lnk0, 4)
	p.skipKVs += attrs0
	p.lnkLits0 = lits0
	quads := make([]uint32, 4*nl)
	uvarints32(&d[colLinks], quads, math.MaxUint32)
	if err := p.firstErr(); err != nil {
		return err
	}
	ids := &d[colLinkIDs]
	ids.Bytes(p.lnk0*len(SpanID{}) + lits0*len(TraceID{}))
	dc.makeLinks(nl)
	for j := range m {
		dc.readLinks(j, g.traceIDs[p.runs[j]], quads, ids, &d[colLinks])
	}
	dc.linkStates = make([]uint32, nl)
	p.refsAt(&p.fields[tabLinkState], &d[colLinkStates], p.lnk0, dc.linkStates)
	return p.firstErr()
}

// kvs walks the attribute streams: it skips the lists of the resources
// and scopes that rows [lo, hi) do not use and of the rows before lo, and
// collects the others' into dc.kvSlot and dc.kvVal, in the order the
// materialiser reads them back (the rows' resources, their scopes, then
// row by row).
func (p *rowsDecoder) kvs() error {
	dc := p.dc
	m := p.hi - p.lo
	w := kvCursor{slots: dc.slots, nKVs: p.nKVs, sl: &p.d[colSlots], kid: &p.d[colKidCounts], ids: &p.d[colValueIDs]}
	// Which resources and scopes the rows use, numbered in group order.
	local := func(idx []uint32, n int) (loc []int32, used int) {
		loc = make([]int32, n)
		for _, i := range idx {
			loc[i] = 1
		}
		for i := range loc {
			if loc[i] == 1 {
				loc[i] = int32(used)
				used++
			} else {
				loc[i] = -1
			}
		}
		return loc, used
	}
	var nr, ns int
	p.resLocal, nr = local(dc.res, len(p.res))
	p.scopeLocal, ns = local(dc.scopeOf, len(p.scopes))
	pend := uint64(0)
	owners := func(recs []ownerRec, loc []int32) {
		for i := range recs {
			if loc[i] < 0 {
				pend += uint64(recs[i].nattrs)
				continue
			}
			w.skip(pend)
			pend = 0
			w.collect(recs[i].nattrs)
		}
	}
	owners(p.res, p.resLocal)
	owners(p.scopes, p.scopeLocal)
	w.skip(pend + p.skipKVs)
	dc.kvStart = make([]uint32, m+1)
	for j := range m {
		dc.kvStart[j] = uint32(len(w.kvSlot))
		w.collect(int(dc.nattrs[j]))
		for e := dc.evStart[j]; e < dc.evStart[j+1]; e++ {
			w.collect(int(dc.evAttrs[e]))
		}
		for l := dc.linkStart[j]; l < dc.linkStart[j+1]; l++ {
			w.collect(int(dc.linkAttrs[l]))
		}
	}
	dc.kvStart[m] = uint32(len(w.kvSlot))
	dc.kvSlot, dc.kvVal = w.kvSlot, w.kvVal
	// Resource and scope shells; resolve fills their strings and attributes.
	dc.resources = make([]*Resource, nr)
	for i, r := range p.res {
		if k := p.resLocal[i]; k >= 0 {
			dc.resources[k] = &Resource{DroppedAttrs: r.dropped, Attrs: make([]KeyValue, r.nattrs)}
		}
	}
	dc.scopes = make([]*Scope, ns)
	for i, s := range p.scopes {
		if k := p.scopeLocal[i]; k >= 0 {
			dc.scopes[k] = &Scope{DroppedAttrs: s.dropped, Attrs: make([]KeyValue, s.nattrs)}
		}
	}
	for j := range m {
		dc.res[j] = uint32(p.resLocal[dc.res[j]])
		dc.scopeOf[j] = uint32(p.scopeLocal[dc.scopeOf[j]])
	}
	return p.firstErr()
}

// resolve materialises the strings and numbers the collected rows refer
// to, renumbers every reference to them locally, and fills the resources'
// and scopes' attributes.
func (p *rowsDecoder) resolve() error {
	dc := p.dc
	// Strings: every string number held, then the pool walked once.
	var need []uint32
	need = append(need, dc.names...)
	need = append(need, dc.statusMsgs...)
	need = append(need, dc.traceStates...)
	need = append(need, dc.evNames...)
	need = append(need, dc.linkStates...)
	used := make([]bool, len(dc.slots))
	var numNeed []uint32
	for k, s := range dc.kvSlot {
		used[s] = true
		switch t := dc.slots[s].typ; {
		case isStr(t):
			need = append(need, dc.kvVal[k])
		case isNum(t):
			numNeed = append(numNeed, dc.kvVal[k])
		}
	}
	for i := range dc.slots {
		if used[i] {
			need = append(need, dc.slots[i].keyNum)
		}
	}
	for i, r := range p.res {
		if p.resLocal[i] >= 0 {
			need = append(need, r.schemaURL)
		}
	}
	for i, s := range p.scopes {
		if p.scopeLocal[i] >= 0 {
			need = append(need, s.name, s.version, s.schemaURL)
		}
	}
	slices.Sort(need)
	need = slices.Compact(need)
	if err := p.strings(need); err != nil {
		return err
	}
	local := func(v uint32) uint32 {
		k, _ := slices.BinarySearch(need, v)
		return uint32(k)
	}
	for _, refs := range [][]uint32{dc.names, dc.statusMsgs, dc.traceStates, dc.evNames, dc.linkStates} {
		for j, v := range refs {
			refs[j] = local(v)
		}
	}
	for i := range dc.slots {
		if used[i] {
			dc.slots[i].key = dc.str(local(dc.slots[i].keyNum))
		}
	}
	for i, r := range p.res {
		if k := p.resLocal[i]; k >= 0 {
			dc.resources[k].SchemaURL = dc.str(local(r.schemaURL))
		}
	}
	for i, s := range p.scopes {
		if k := p.scopeLocal[i]; k >= 0 {
			sc := dc.scopes[k]
			sc.Name, sc.Version, sc.SchemaURL = dc.str(local(s.name)), dc.str(local(s.version)), dc.str(local(s.schemaURL))
		}
	}

	// Numbers, likewise.
	slices.Sort(numNeed)
	numNeed = slices.Compact(numNeed)
	if err := p.numbers(numNeed); err != nil {
		return err
	}
	for k, s := range dc.kvSlot {
		switch t := dc.slots[s].typ; {
		case isStr(t):
			dc.kvVal[k] = local(dc.kvVal[k])
		case isNum(t):
			j, _ := slices.BinarySearch(numNeed, dc.kvVal[k])
			dc.kvVal[k] = uint32(j)
		}
	}

	mt := materialiser{dc: dc}
	for _, r := range dc.resources {
		mt.fill(r.Attrs)
	}
	for _, s := range dc.scopes {
		mt.fill(s.Attrs)
	}
	return nil
}

// strings walks the string pool once and keeps the strings numbered in
// need (sorted, distinct) as dc.pool and dc.offs, in need's order. The
// lengths of the strings between the needed ones are only added up.
func (p *rowsDecoder) strings(need []uint32) error {
	dc := p.dc
	lens, data := &p.d[colStrLens], p.d[colStrData].B
	type table struct {
		base     uint32
		n        int
		prefixed bool
	}
	tabs := make([]table, 0, 1+len(p.fields)+len(dc.slots))
	tabs = append(tabs, table{0, p.nKeys, false})
	for t := range p.fields {
		f := &p.fields[t]
		tabs = append(tabs, table{f.base, f.n, f.prefixed})
	}
	for i := range dc.slots {
		if s := &dc.slots[i]; isStr(s.typ) {
			tabs = append(tabs, table{s.tab.base, s.tab.n, s.tab.prefixed})
		}
	}
	b, pos := lens.B, 0
	off := uint64(0) // in data
	limit := uint64(len(data))
	out := make([]byte, 0, 16*len(need))
	dc.offs = make([]uint32, len(need)+1)
	ni := 0
	// skip adds up the next k lengths into off; take reads the next one.
	skip := func(k int) bool {
		var sum uint64
		var ok bool
		if pos, sum, ok = uvarintSum(b, pos, k, limit); !ok {
			lens.Fail("bad string length")
			return false
		}
		if off += sum; off > limit {
			p.d[colStrData].Fail("string lengths add up to more than the column")
			return false
		}
		return true
	}
	take := func() ([]byte, bool) {
		at := off
		if !skip(1) {
			return nil, false
		}
		return data[at:off], true
	}
	for _, t := range tabs {
		var prefix []byte
		if t.prefixed {
			var ok bool
			if prefix, ok = take(); !ok {
				return p.firstErr()
			}
		}
		j := 0 // entries of t passed
		for ; ni < len(need) && need[ni]-t.base < uint32(t.n); ni++ {
			k := int(need[ni] - t.base)
			if !skip(k - j) {
				return p.firstErr()
			}
			str, ok := take()
			if !ok {
				return p.firstErr()
			}
			j = k + 1
			if len(out)+len(prefix)+len(str) > MaxColumnBytes {
				p.d[colStrData].Fail("strings expand past the column limit")
				return p.firstErr()
			}
			out = append(out, prefix...)
			out = append(out, str...)
			dc.offs[ni+1] = uint32(len(out))
		}
		if !skip(t.n - j) {
			return p.firstErr()
		}
	}
	switch {
	case pos != len(b):
		lens.Fail(fmt.Sprintf("%d bytes left over", len(b)-pos))
	case off != limit:
		p.d[colStrData].Fail(fmt.Sprintf("lengths add up to %d bytes, column has %d", off, limit))
	case ni != len(need):
		p.d[colStrData].Fail("reference to a string past the pool")
	}
	dc.pool = string(out)
	return p.firstErr()
}

// uvarintSum adds up k uvarints of b from pos on, each at most limit; it
// returns the position after them and their sum, or ok false if b ends
// first or holds a bad or too large uvarint.
func uvarintSum(b []byte, pos, k int, limit uint64) (next int, sum uint64, ok bool) {
	for ; k > 0; k-- {
		if pos < len(b) && b[pos] < 0x80 {
			sum += uint64(b[pos])
			pos++
			continue
		}
		v, n := binary.Uvarint(b[pos:])
		if n <= 0 || v > limit {
			return pos, 0, false
		}
		sum += v
		pos += n
	}
	return pos, sum, true
}

// numbers walks the numeric tables up to the last entry numbered in need
// (sorted, distinct) and keeps those entries as dc.nums, in need's order.
func (p *rowsDecoder) numbers(need []uint32) error {
	if len(need) == 0 {
		return nil
	}
	dc := p.dc
	nums := &p.d[colNums]
	dc.nums = make([]uint64, len(need))
	ni := 0
	for i := range dc.slots {
		s := &dc.slots[i]
		if !isNum(s.typ) {
			continue
		}
		for j := range s.tab.n {
			if ni == len(need) {
				return nil
			}
			var v uint64
			switch s.typ {
			case ValueInt:
				v = uint64(unzigzag(nums.Uvarint()))
			case ValueBool:
				v = nums.Uvarint()
			case ValueDouble:
				v = nums.BE64()
			}
			if err := nums.Err(); err != nil {
				return err
			}
			if need[ni] == s.tab.base+uint32(j) {
				dc.nums[ni] = v
				ni++
			}
		}
	}
	if ni != len(need) {
		nums.Fail("reference to a number past the tables")
	}
	return nums.Err()
}

// refsAt reads len(dst) references to table t from d, after the first
// skip ones of the column, as refs does; it does not move t's seq cursor
// (a field table is referred to from one column only).
func (p *rowsDecoder) refsAt(t *decTable, d *Decbuf, skip int, dst []uint32) {
	if len(dst) == 0 {
		return
	}
	if t.seq {
		if skip+len(dst) > t.n {
			d.Fail("more uses of a table than entries")
			return
		}
		for i := range dst {
			dst[i] = t.base + uint32(skip+i)
		}
		return
	}
	if t.n >= 2 {
		skipUvarints(d, skip)
	}
	cur := *t
	p.refs(&cur, d, dst)
}

// kvCursor walks the attribute streams (slots, element counts, value ids)
// from their start: skip passes over attributes, moving the slots' seq
// cursors; collect records them in kvSlot and kvVal like kvWalker.
type kvCursor struct {
	slots         []decSlot
	nKVs          int
	count         int // attributes walked
	sl, kid, ids  *Decbuf
	pendIDs       int // value ids of skipped attributes, not yet skipped in ids
	kvSlot, kvVal []uint32
	stack         [MaxValueDepth]int
}

// skip passes over n top-level attributes and the values nested in them.
func (w *kvCursor) skip(n uint64) {
	if n == 0 || w.sl.err != nil || w.kid.err != nil {
		return
	}
	b, pos := w.sl.B, 0
	kb, kpos := w.kid.B, 0
	defer func() {
		if w.sl.err == nil {
			w.sl.advance(pos)
		}
		if w.kid.err == nil {
			w.kid.advance(kpos)
		}
	}()
	for ; n > 0; n-- {
		if w.count >= w.nKVs {
			w.sl.Fail("more attributes than declared")
			return
		}
		w.count++
		var v uint64
		if pos < len(b) && b[pos] < 0x80 {
			v = uint64(b[pos])
			pos++
		} else {
			var k int
			if v, k = binary.Uvarint(b[pos:]); k <= 0 {
				w.sl.Fail("bad uvarint")
				return
			}
			pos += k
		}
		if v >= uint64(len(w.slots)) {
			w.sl.Fail("bad slot")
			return
		}
		s := &w.slots[v]
		switch {
		case s.kids:
			var c uint64
			if kpos < len(kb) && kb[kpos] < 0x80 {
				c = uint64(kb[kpos])
				kpos++
			} else {
				var k int
				if c, k = binary.Uvarint(kb[kpos:]); k <= 0 {
					w.kid.Fail("bad uvarint")
					return
				}
				kpos += k
			}
			if c > uint64(w.nKVs) {
				w.kid.Fail("value out of range")
				return
			}
			n += c
		case s.typ == ValueEmpty:
		case s.tab.seq:
			if s.tab.cur >= s.tab.n {
				w.sl.Fail("more uses of a table than entries")
				return
			}
			s.tab.cur++
		case s.tab.n == 1:
		default:
			w.pendIDs++
		}
	}
}

// collect walks n top-level attributes and everything nested in them,
// recording each one's slot and value.
func (w *kvCursor) collect(n int) {
	if n == 0 {
		return
	}
	skipUvarints(w.ids, w.pendIDs)
	w.pendIDs = 0
	depth := 0
	w.stack[0] = n
	for depth >= 0 && w.sl.err == nil && w.kid.err == nil && w.ids.err == nil {
		if w.stack[depth] == 0 {
			depth--
			continue
		}
		w.stack[depth]--
		if w.count >= w.nKVs {
			w.sl.Fail("more attributes than declared")
			return
		}
		w.count++
		v := w.sl.Uvarint()
		if w.sl.err == nil && v >= uint64(len(w.slots)) {
			w.sl.Fail("bad slot")
		}
		if w.sl.err != nil {
			return
		}
		s := &w.slots[v]
		var val uint32
		switch {
		case s.kids:
			c := w.kid.Uvarint()
			if w.kid.err == nil && c > uint64(w.nKVs) {
				w.kid.Fail("value out of range")
			}
			val = uint32(c)
			if c > 0 {
				if depth+1 >= MaxValueDepth {
					w.sl.Fail("attribute values nested too deep")
					return
				}
				depth++
				w.stack[depth] = int(c)
			}
		case s.typ == ValueEmpty:
		case s.tab.seq:
			if s.tab.cur >= s.tab.n {
				w.sl.Fail("more uses of a table than entries")
				return
			}
			val = s.tab.base + uint32(s.tab.cur)
			s.tab.cur++
		case s.tab.n == 1:
			val = s.tab.base
		default:
			id := w.ids.Uvarint()
			if w.ids.err == nil && id >= uint64(s.tab.n) {
				w.ids.Fail("bad value id")
			}
			val = s.tab.base + uint32(id)
		}
		w.kvSlot = append(w.kvSlot, uint32(v))
		w.kvVal = append(w.kvVal, val)
	}
}

// skipUvarints skips k uvarints of d and returns how many of them were
// the one-byte value 1.
func skipUvarints(d *Decbuf, k int) (ones int) {
	if k <= 0 || d.err != nil {
		return 0
	}
	b := d.B
	start := true // b[i] begins a uvarint
	for i, c := range b {
		if start && c == 1 {
			ones++
		}
		if start = c < 0x80; start {
			if k--; k == 0 {
				d.advance(i + 1)
				return ones
			}
		}
	}
	d.Fail("unexpected end of data")
	return 0
}

// sumUvarints reads k uvarints of d, each at most max, and returns their sum.
func sumUvarints(d *Decbuf, k int, max uint64) uint64 {
	if d.err != nil {
		return 0
	}
	b := d.B
	sum := uint64(0)
	for range k {
		var v uint64
		if len(b) > 0 && b[0] < 0x80 {
			v = uint64(b[0])
			b = b[1:]
		} else {
			var n int
			if v, n = binary.Uvarint(b); n <= 0 {
				d.advance(len(d.B) - len(b))
				d.Fail("bad uvarint")
				return 0
			}
			b = b[n:]
		}
		if v > max {
			d.advance(len(d.B) - len(b))
			d.Fail("value out of range")
			return 0
		}
		sum += v
	}
	d.advance(len(d.B) - len(b))
	return sum
}

// sumGroups reads k groups of stride uvarints of d (each at most
// MaxUint32) and returns the sum of each group's last and how many groups
// begin with linkLiteral; a group beginning with more than linkLiteral is
// corrupt (only colLinks' groups begin with a reference, and colEvents'
// first value, dropped attributes, is then ignored by the caller).
func sumGroups(d *Decbuf, k, stride int) (sumLast uint64, lits int) {
	var g [4]uint32
	for range k {
		uvarints32(d, g[:stride], math.MaxUint32)
		if d.err != nil {
			return 0, 0
		}
		sumLast += uint64(g[stride-1])
		if stride == 4 {
			switch g[0] {
			case linkSameTrace:
			case linkLiteral:
				lits++
			default:
				d.Fail("bad link trace reference")
				return 0, 0
			}
		}
	}
	return sumLast, lits
}

// checkPacked checks a packed column against its bit lengths ws (from
// the widths column): each at most 64, and the payload exactly their bits
// with zero padding. It reports whether both are sound.
func checkPacked(widths *Decbuf, ws []byte, payload *Decbuf) bool {
	if widths.err != nil || payload.err != nil {
		return false
	}
	total := 0
	for _, w := range ws {
		if w > 64 {
			widths.Fail(fmt.Sprintf("bit length %d", w))
			return false
		}
		if w > 1 {
			total += int(w) - 1
		}
	}
	if need := (total + 7) / 8; need != payload.Len() {
		payload.Fail(fmt.Sprintf("%d bytes for %d bits", payload.Len(), total))
		return false
	}
	if r := total % 8; r != 0 && payload.B[len(payload.B)-1]>>r != 0 {
		payload.Fail("nonzero padding bits")
		return false
	}
	return true
}

// packedAt reads len(dst) packed values from the from-th on, of a column
// checkPacked accepted: ws its bit lengths, b its bytes.
func packedAt(ws, b []byte, from int, dst []uint64) {
	pos := 0 // bit position in b
	for _, w := range ws[:from] {
		if w > 1 {
			pos += int(w) - 1
		}
	}
	for j, w := range ws[from : from+len(dst)] {
		if w <= 1 {
			dst[j] = uint64(w)
			continue
		}
		k := int(w) - 1
		v := uint64(0)
		for got := 0; got < k; {
			sh := pos & 7
			take := min(8-sh, k-got)
			v |= (uint64(b[pos>>3]) >> sh) & (1<<take - 1) << got
			got += take
			pos += take
		}
		dst[j] = 1<<k | v
	}
}
