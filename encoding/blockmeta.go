package encoding

import "fmt"

// BlockMeta describes one immutable block: what the store keeps in memory
// for every block, to choose blocks by time and trace ID without reading
// them. Its encoding is drawn in blockmeta.md.
type BlockMeta struct {
	ID        BlockID
	Partition PartitionID

	MinStart uint64 // earliest span start, Unix ns
	MaxStart uint64 // latest span start, Unix ns
	MaxEnd   uint64 // latest span end, Unix ns

	Spans  uint64 // spans in the block
	Traces uint64 // distinct trace IDs in the block
	Bytes  uint64 // encoded bytes of row groups and postings

	// RowGroups is the sparse trace-ID index: row groups in order, each
	// with the first and last trace ID it holds (rows are sorted by trace ID).
	RowGroups []RowGroupRef

	PostingsSections uint32 // number of postings section values
	TraceBloom       []byte // index.Bloom encoding over the block's trace IDs

	// Edges are the service-graph calls counted while the block's spans
	// were written (see DependencyEdge), sorted by SortEdges. A call is in
	// the block of its child's partition when that flush wrote one, else in
	// another block of the same flush; it is counted exactly once.
	Edges []DependencyEdge
}

// RowGroupRef summarises one row group of a block.
type RowGroupRef struct {
	FirstTrace TraceID
	LastTrace  TraceID
	Spans      uint32
	Bytes      uint32
}

// Block meta format constants.
const (
	BlockMetaMagic   uint32 = 0x5444424d // "TDBM"
	BlockMetaVersion byte   = 2          // 2 added Edges; version 1 is still read

	maxRowGroupsPerBlock = 1 << 24
	maxBloomBytes        = 1 << 30
)

// Encode appends m's encoding to dst.
func (m *BlockMeta) Encode(dst []byte) []byte {
	e := Encbuf{B: dst}
	start := len(dst)
	e.PutBE32(BlockMetaMagic)
	e.PutByte(BlockMetaVersion)
	e.PutBE64(uint64(m.ID))
	e.PutBE32(uint32(m.Partition))
	e.PutUvarint(m.MinStart)
	e.PutUvarint(m.MaxStart)
	e.PutUvarint(m.MaxEnd)
	e.PutUvarint(m.Spans)
	e.PutUvarint(m.Traces)
	e.PutUvarint(m.Bytes)
	e.PutUvarint(uint64(len(m.RowGroups)))
	for _, rg := range m.RowGroups {
		e.PutBytes(rg.FirstTrace[:])
		e.PutBytes(rg.LastTrace[:])
		e.PutUvarint(uint64(rg.Spans))
		e.PutUvarint(uint64(rg.Bytes))
	}
	e.PutUvarint(uint64(m.PostingsSections))
	e.PutUvarintBytes(m.TraceBloom)
	putEdges(&e, m.Edges)
	e.PutBE32(Checksum(e.B[start:]))
	return e.B
}

// DecodeBlockMeta decodes what Encode wrote. Errors wrap ErrCorrupt; a
// version newer than this build knows is an error too.
func DecodeBlockMeta(b []byte) (*BlockMeta, error) {
	const what = "block meta"
	d, v, err := OpenRecord(b, what, BlockMetaMagic, 1, BlockMetaVersion)
	if err != nil {
		return nil, err
	}
	m := &BlockMeta{}
	m.ID = BlockID(d.BE64())
	m.Partition = PartitionID(d.BE32())
	m.MinStart = d.Uvarint()
	m.MaxStart = d.Uvarint()
	m.MaxEnd = d.Uvarint()
	m.Spans = d.Uvarint()
	m.Traces = d.Uvarint()
	m.Bytes = d.Uvarint()
	n := d.UvarintInt(min(maxRowGroupsPerBlock, d.Len()/34))
	if n > 0 {
		m.RowGroups = make([]RowGroupRef, n)
	}
	for i := range m.RowGroups {
		rg := &m.RowGroups[i]
		copy(rg.FirstTrace[:], d.Bytes(16))
		copy(rg.LastTrace[:], d.Bytes(16))
		rg.Spans = uint32(d.UvarintInt(1<<31 - 1))
		rg.Bytes = uint32(d.UvarintInt(1<<32 - 1))
	}
	m.PostingsSections = uint32(d.UvarintInt(1<<31 - 1))
	bloom := d.UvarintBytes()
	if len(bloom) > maxBloomBytes {
		d.Fail("bloom filter too large")
	}
	m.TraceBloom = append([]byte(nil), bloom...)
	if v >= 2 {
		m.Edges = readEdges(&d)
	}
	if err := d.Err(); err != nil {
		return nil, err
	}
	if d.Len() != 0 {
		return nil, Corruptf(what, d.Offset(), "%d trailing bytes", d.Len())
	}
	if m.MinStart > m.MaxStart {
		return nil, Corruptf(what, -1, "min start %d after max start %d", m.MinStart, m.MaxStart)
	}
	return m, nil
}

// RowGroupsFor returns the indexes of the row groups that may hold trace id.
func (m *BlockMeta) RowGroupsFor(id TraceID) []int {
	var out []int
	for i := range m.RowGroups {
		rg := &m.RowGroups[i]
		if id.Compare(rg.FirstTrace) >= 0 && id.Compare(rg.LastTrace) <= 0 {
			out = append(out, i)
		}
	}
	return out
}

func (m *BlockMeta) String() string {
	return fmt.Sprintf("block %s partition %d: %d spans, %d traces, %d row groups", m.ID, m.Partition, m.Spans, m.Traces, len(m.RowGroups))
}
