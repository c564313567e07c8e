package encoding

import (
	"cmp"
	"slices"
)

// DependencyEdge counts calls from one service to another: child spans of
// service Child whose parent span is of service Parent, a different service,
// that started in one minute. Blocks carry the edges found while their spans
// were written (BlockMeta.Edges), so that the service graph of any time range
// is a sum over block metas, without reading a span. dependencies.md draws
// the encodings.
type DependencyEdge struct {
	Parent, Child string
	Minute        uint32 // the child spans' start, in whole Unix minutes
	Calls         uint64
}

// MinuteOf returns the Unix minute of a Unix-nanosecond time.
func MinuteOf(unixNano uint64) uint32 { return uint32(unixNano / 60e9) }

// SortEdges sorts edges by minute, then parent, then child: the order
// BlockMeta stores them in, so that a time range is a contiguous run.
func SortEdges(es []DependencyEdge) {
	slices.SortFunc(es, func(a, b DependencyEdge) int {
		if c := cmp.Compare(a.Minute, b.Minute); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Parent, b.Parent); c != 0 {
			return c
		}
		return cmp.Compare(a.Child, b.Child)
	})
}

// putEdges writes es, which must be sorted by SortEdges with no two edges
// of one (minute, parent, child): a string table, then each edge as a
// minute delta, two string indexes and a call count.
func putEdges(e *Encbuf, es []DependencyEdge) {
	strs := map[string]int{}
	var table []string
	intern := func(s string) {
		if _, ok := strs[s]; !ok {
			strs[s] = len(table)
			table = append(table, s)
		}
	}
	for _, x := range es {
		intern(x.Parent)
		intern(x.Child)
	}
	e.PutUvarint(uint64(len(table)))
	for _, s := range table {
		e.PutUvarintString(s)
	}
	e.PutUvarint(uint64(len(es)))
	var prev uint32
	for _, x := range es {
		e.PutUvarint(uint64(x.Minute - prev))
		prev = x.Minute
		e.PutUvarint(uint64(strs[x.Parent]))
		e.PutUvarint(uint64(strs[x.Child]))
		e.PutUvarint(x.Calls)
	}
}

// readEdges reads what putEdges wrote, checking the order.
func readEdges(d *Decbuf) []DependencyEdge {
	table := make([]string, d.UvarintInt(d.Len()))
	for i := range table {
		table[i] = d.UvarintString()
	}
	n := d.UvarintInt(d.Len() / 4)
	if n == 0 || d.Err() != nil {
		return nil
	}
	es := make([]DependencyEdge, n)
	var minute uint64
	for i := range es {
		minute += d.Uvarint()
		if minute > 1<<32-1 {
			d.Fail("edge minute overflows 32 bits")
			return nil
		}
		p, c := tableIndex(d, len(table)), tableIndex(d, len(table))
		calls := d.Uvarint()
		if d.Err() != nil {
			return nil
		}
		es[i] = DependencyEdge{Parent: table[p], Child: table[c], Minute: uint32(minute), Calls: calls}
		if i > 0 && edgeLess(es[i], es[i-1], true) {
			d.Fail("edges out of order or repeated")
			return nil
		}
	}
	return es
}

// tableIndex reads an index into a table of n entries.
func tableIndex(d *Decbuf, n int) int {
	i := d.UvarintInt(n)
	if i == n && d.Err() == nil {
		d.Fail("string index out of range")
	}
	return i
}

// edgeLess reports whether a sorts before b (or equal to it, when orEqual).
func edgeLess(a, b DependencyEdge, orEqual bool) bool {
	c := cmp.Compare(a.Minute, b.Minute)
	if c == 0 {
		c = cmp.Compare(a.Parent, b.Parent)
	}
	if c == 0 {
		c = cmp.Compare(a.Child, b.Child)
	}
	return c < 0 || orEqual && c == 0
}

// WaitingChild is a span whose parent span had not been seen when the
// store last flushed: when the parent arrives, the call is counted. The
// store keeps these across restarts in a DependencyState.
type WaitingChild struct {
	TraceID TraceID
	Parent  SpanID // the parent span ID the child names
	Service string // the child's service
	Minute  uint32 // the child's start, Unix minutes
	Age     uint32 // flushes since the child arrived
}

// DependencyState is a tenant's dependency tracking state at a flush: the
// children still waiting for their parents. It is stored under
// DependencyStateKey(tenant), in the transaction that publishes the flush.
type DependencyState struct {
	Waiting []WaitingChild
}

// Dependency state format constants.
const (
	DependencyStateMagic   uint32 = 0x54444453 // "TDDS"
	DependencyStateVersion byte   = 1
)

// Encode appends s's encoding to dst.
func (s *DependencyState) Encode(dst []byte) []byte {
	e := Encbuf{B: dst}
	start := len(dst)
	e.PutBE32(DependencyStateMagic)
	e.PutByte(DependencyStateVersion)
	strs := map[string]int{}
	var table []string
	for _, w := range s.Waiting {
		if _, ok := strs[w.Service]; !ok {
			strs[w.Service] = len(table)
			table = append(table, w.Service)
		}
	}
	e.PutUvarint(uint64(len(table)))
	for _, t := range table {
		e.PutUvarintString(t)
	}
	e.PutUvarint(uint64(len(s.Waiting)))
	for _, w := range s.Waiting {
		e.PutBytes(w.TraceID[:])
		e.PutBytes(w.Parent[:])
		e.PutUvarint(uint64(strs[w.Service]))
		e.PutUvarint(uint64(w.Minute))
		e.PutUvarint(uint64(w.Age))
	}
	e.PutBE32(Checksum(e.B[start:]))
	return e.B
}

// DecodeDependencyState decodes what Encode wrote. Errors wrap ErrCorrupt.
func DecodeDependencyState(b []byte) (*DependencyState, error) {
	const what = "dependency state"
	d, _, err := OpenRecord(b, what, DependencyStateMagic, DependencyStateVersion, DependencyStateVersion)
	if err != nil {
		return nil, err
	}
	table := make([]string, d.UvarintInt(d.Len()))
	for i := range table {
		table[i] = d.UvarintString()
	}
	s := &DependencyState{}
	if n := d.UvarintInt(d.Len() / 27); n > 0 && d.Err() == nil {
		s.Waiting = make([]WaitingChild, n)
	}
	for i := range s.Waiting {
		w := &s.Waiting[i]
		copy(w.TraceID[:], d.Bytes(16))
		copy(w.Parent[:], d.Bytes(8))
		if si := tableIndex(&d, len(table)); d.Err() == nil {
			w.Service = table[si]
		}
		w.Minute = uint32(d.UvarintInt(1<<32 - 1))
		w.Age = uint32(d.UvarintInt(1<<32 - 1))
	}
	if err := d.Err(); err != nil {
		return nil, err
	}
	if d.Len() != 0 {
		return nil, Corruptf(what, d.Offset(), "%d trailing bytes", d.Len())
	}
	return s, nil
}
