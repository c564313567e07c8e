package encoding

// Inflated row groups: what a cache of row groups keeps. Reading a trace
// from a row group decompresses its columns (the format has no finer
// unit); a reader that will come back to the same group keeps it inflated,
// every column stored decompressed, and pays no decompression, no store
// read and no checksum the next time.

// Inflated returns a copy of g whose columns are all held decompressed.
// The copy is immutable: share it between goroutines and read it through
// Clone, which gives each reader its own lazily decoded state. g must be
// fresh from DecodeRowGroup (no span read from it yet); g itself is left
// as it was. The error wraps ErrCorrupt when a column does not decompress.
func (g *RowGroup) Inflated() (*RowGroup, error) {
	if g.body == nil {
		panic("encoding: Inflated on a row group whose columns were decoded")
	}
	total := 0
	for i := colSpanIDs; i < colCount; i++ {
		total += g.dir[i].rawLen
	}
	body := make([]byte, 0, total+DecodeSlack)
	ig := &RowGroup{n: g.n, traceIDs: g.traceIDs, runStart: g.runStart, codec: g.codec,
		minStart: g.minStart, unit: g.unit, dir: g.dir, bodyOff: 0}
	for i := colSpanIDs; i < colCount; i++ {
		e := &g.dir[i]
		start := len(body)
		raw, err := g.codec.column(e.diskAt(g.body, g.bodyOff), e, body[start:start:start+e.rawLen+DecodeSlack])
		if err != nil {
			return nil, err
		}
		if e.codec == codecRaw {
			body = append(body, raw...)
		} else {
			body = body[:start+e.rawLen]
		}
		// No CRC: the stored bytes' CRC was checked by DecodeRowGroup and
		// does not describe these.
		ig.dir[i] = colEntry{codec: codecRaw, rawLen: e.rawLen, diskLen: e.rawLen, off: start}
	}
	ig.body = body
	// The span times too, which every search reads: decoded once here,
	// shared read-only by the clones.
	if ig.times = ig.decodeTimes(); ig.times.err != nil {
		return nil, ig.times.err
	}
	return ig, nil
}

// Clone returns a reader of g that shares its immutable parts (trace IDs,
// column bytes, span times) and has its own lazily decoded state, so that goroutines
// can read one inflated group at the same time.
func (g *RowGroup) Clone() *RowGroup {
	c := &RowGroup{n: g.n, traceIDs: g.traceIDs, runStart: g.runStart, codec: g.codec,
		minStart: g.minStart, unit: g.unit, dir: g.dir, body: g.body, bodyOff: g.bodyOff, times: g.times}
	return c
}

// Size returns about how many bytes g holds: its column bytes and trace
// IDs, what a cache charges for it.
func (g *RowGroup) Size() int {
	n := len(g.body) + 16*len(g.traceIDs) + 4*len(g.runStart) + 256
	if g.times != nil {
		n += 8 * (len(g.times.starts) + len(g.times.ends))
	}
	return n
}
