package index

import (
	"encoding/binary"
	"fmt"
	"io"
	"slices"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/klauspost/compress/zstd"

	"github.com/tracedb/tracedb/encoding"
)

// The block postings format: one dictionary value and a few section
// values per block, described in blockpostings.md. The constants below are
// the ones the page names. This file holds the constants and the writer;
// blockpostings_read.go the reader, blockpostings_rice.go the Rice lists.
const (
	postingsDictMagic    uint32 = 0x54445044 // "TDPD"
	postingsSectionMagic uint32 = 0x54445053 // "TDPS"

	// PostingsFormatV1 is the first version of the dictionary and section
	// formats. Versions only grow; readers keep reading old ones.
	PostingsFormatV1 byte = 1

	postingsHeaderLen  = 5 // magic (4) + version (1)
	sectionHeaderLen   = 6 // magic (4) + version (1) + compression (1)
	postingsTrailerLen = 4 // CRC32C

	// dictRestartInterval is how many values of a name share one restart
	// point: the first of them is stored whole, the others as a prefix
	// shared with the previous value plus the rest. A lookup scans at most
	// this many entries, and decodes at most this many short Rice lists
	// to find where its own begins.
	dictRestartInterval = 32

	// DefaultSectionSize is the payload size past which PostingsWriter
	// closes a section and begins the next one.
	DefaultSectionSize = 256 << 10

	// DefaultDictPageSize is the size of entries past which PostingsWriter
	// closes a dictionary page (at the next restart point) and begins the
	// next one.
	DefaultDictPageSize = 16 << 10

	// inlineMaxCardinality is the largest cardinality whose list is stored
	// inside the dictionary entry instead of a section.
	inlineMaxCardinality = 4

	// impliedLengthMaxCard is the largest cardinality of a Rice list whose
	// length the dictionary leaves out: a reader finds where the next list
	// begins by decoding it, which costs little for so few ordinals.
	impliedLengthMaxCard = 64

	// DefaultSectionCacheBytes is how many bytes of sections and
	// dictionary pages, decompressed, a PostingsReader keeps by default.
	DefaultSectionCacheBytes = 4 << 20

	// maxPayloadLen bounds the decompressed size of one section or
	// dictionary page, so that a corrupt length cannot make a reader
	// allocate without bound.
	maxPayloadLen = 1 << 30
)

// The head byte of a dictionary entry: the encoding of its list in the low
// two bits; for lists in sections, whether the list begins the next
// section, and for Rice lists their parameter; for inline lists their
// cardinality.
const (
	postingsRoaring byte = 0 // roaring portable serialization, in a section
	postingsRice    byte = 1 // Rice-coded gaps, in a section
	postingsInline  byte = 2 // delta-uvarint list, inside the dictionary entry

	entryKindMask        = 0x03
	entryNextSection     = 0x04 // section lists: the list begins the next section at offset 0
	entryRiceShift       = 3    // Rice lists: bits 3-7 hold the parameter k
	entryInlineCardShift = 2    // inline lists: bits 2-4 hold the cardinality, 1 to 4
	entryInlineCardMask  = 0x07

	// The key byte of an entry: the shared prefix length in the high
	// nibble, the suffix length in the low one; a nibble of nibbleEscape
	// means nibbleEscape plus a uvarint that follows.
	nibbleEscape = 15
)

// The compression byte of a section or a dictionary page.
const (
	compressionNone byte = 0 // the bytes as they are
	compressionZstd byte = 1 // one zstd frame of them
)

// roaringPreference makes the writer store a list as a roaring bitmap
// when the bitmap is at most 1/roaringPreference larger than the Rice
// list: dense lists (services, kinds, statuses) then read without decoding
// and take the whole-bitmap fast paths of the query combinators, for a few
// bytes more.
const roaringPreference = 4

// zstdMaxRatio bounds how much a zstd frame may claim to expand,
// so that a corrupt length cannot make a reader allocate without bound. A
// zstd block of at most 128 KiB takes at least 4 bytes.
const zstdMaxRatio = (128 << 10) / 4

// PostingsCompression says whether a PostingsWriter compresses sections
// and dictionary pages.
type PostingsCompression int

const (
	// PostingsCompressionDefault is PostingsZstd.
	PostingsCompressionDefault PostingsCompression = iota
	// PostingsZstd compresses each section and each dictionary page with
	// zstd when that saves at least a sixteenth of it; readers then
	// decompress a whole section to read one list of it, and a whole page
	// to look up one term of it.
	PostingsZstd
	// PostingsUncompressed stores sections and dictionary pages as they
	// are.
	PostingsUncompressed
)

// zstdLevel is the zstd level of sections and dictionary pages, chosen by
// measurement (blockpostings.md, "Measurements").
const zstdLevel = zstd.SpeedBetterCompression

// The roaring portable format's constants (RoaringFormatSpec), for
// checkRoaring and roaringSizeBound.
const (
	roaringCookieNoRuns      = 12346
	roaringCookieRuns        = 12347
	roaringNoOffsetThreshold = 4
	roaringArrayMax          = 4096
	roaringBitmapBytes       = 8192
)

// PostingsWriterOptions configure a PostingsWriter.
type PostingsWriterOptions struct {
	// SectionSize is the payload size in bytes past which a section is
	// closed and the next begun; one list larger than it gets a section of
	// its own. A reader decompresses a whole section to read one of its
	// lists, so this bounds the cost of a lookup. Default (0):
	// DefaultSectionSize.
	SectionSize int

	// DictPageSize is the size in bytes of dictionary entries past which
	// a dictionary page is closed, at the next restart point. A reader
	// decompresses a whole page to look up one term of it. Default (0):
	// DefaultDictPageSize.
	DictPageSize int

	// Compression says whether sections and dictionary pages are
	// compressed. Default (0): PostingsZstd.
	Compression PostingsCompression
}

// PostingsWriter builds a block's postings: a dictionary and sections.
// Terms are added in strictly increasing order (Term.Compare), each with
// its ordinals; Finish returns the encoded values. Each list is stored in
// the smaller of its encodings: inline in the dictionary when it holds at
// most four ordinals, otherwise in a section as Rice-coded gaps or as a
// run-optimised roaring bitmap. A PostingsWriter is not safe for
// concurrent use.
type PostingsWriter struct {
	sectionSize int
	pageSize    int
	compress    bool
	enc         *zstd.Encoder // made when first needed

	sections [][]byte
	payload  []byte // the open section's payload
	packed   []byte // scratch: a compressed section or page

	entries  encoding.Encbuf // the open page's entries
	restarts []uint32        // the open page's restart offsets, into entries
	pages    []writerPage
	pageKey  string // the value of the open page's first entry
	names    []writerName
	numTerms int

	last     Term
	hasLast  bool
	prevVal  []byte // the previous value of the current name
	finished bool
	err      error // sticky: the first error of closing a section

	ords []uint32        // scratch: the ordinals of a bitmap being added
	bm   *roaring.Bitmap // scratch
}

type writerName struct {
	name  string
	count int
}

type writerPage struct {
	compression byte
	numRestarts int
	rawLen      int
	stored      []byte
	firstKey    string
}

// NewPostingsWriter returns a writer; opts may be nil for the defaults.
func NewPostingsWriter(opts *PostingsWriterOptions) *PostingsWriter {
	w := &PostingsWriter{sectionSize: DefaultSectionSize, pageSize: DefaultDictPageSize, compress: true, bm: roaring.New()}
	if opts != nil {
		if opts.SectionSize > 0 {
			w.sectionSize = opts.SectionSize
		}
		if opts.DictPageSize > 0 {
			w.pageSize = opts.DictPageSize
		}
		w.compress = opts.Compression != PostingsUncompressed
	}
	return w
}

// Add adds term t with ordinals ords, which must be strictly increasing.
// t must sort after every term added before. An empty list adds nothing.
// ords is not kept.
func (w *PostingsWriter) Add(t Term, ords []uint32) error {
	if err := w.begin(t); err != nil {
		return err
	}
	for i := 1; i < len(ords); i++ {
		if ords[i] <= ords[i-1] {
			return fmt.Errorf("postings writer: ordinals of %v not strictly increasing at %d", t, i)
		}
	}
	return w.write(t, ords, nil)
}

// AddBitmap adds term t with the ordinals of b, which is not modified. t
// must sort after every term added before. An empty bitmap adds nothing.
func (w *PostingsWriter) AddBitmap(t Term, b *roaring.Bitmap) error {
	if err := w.begin(t); err != nil {
		return err
	}
	w.ords = w.ords[:0]
	var buf [expandBatch]uint32
	it := b.ManyIterator()
	for n := it.NextMany(buf[:]); n > 0; n = it.NextMany(buf[:]) {
		w.ords = append(w.ords, buf[:n]...)
	}
	return w.write(t, w.ords, b)
}

// AddPostings adds term t with the ordinals of p, which it consumes. t must
// sort after every term added before. Empty postings add nothing.
func (w *PostingsWriter) AddPostings(t Term, p Postings) error {
	if b, ok := freshBitmap(p); ok {
		return w.AddBitmap(t, b)
	}
	ords, err := Expand(p)
	if err != nil {
		return fmt.Errorf("postings writer: %v: %w", t, err)
	}
	return w.Add(t, ords)
}

func (w *PostingsWriter) begin(t Term) error {
	if w.finished {
		return fmt.Errorf("postings writer: add %v after Finish", t)
	}
	if w.err != nil {
		return w.err
	}
	if w.hasLast && t.Compare(w.last) <= 0 {
		return fmt.Errorf("postings writer: term %v does not sort after %v", t, w.last)
	}
	w.last, w.hasLast = t, true
	return nil
}

// write adds the dictionary entry of t and stores ords, strictly
// increasing; src, when not nil, is a bitmap of the same ordinals.
func (w *PostingsWriter) write(t Term, ords []uint32, src *roaring.Bitmap) error {
	card := uint64(len(ords))
	if card == 0 {
		return nil
	}
	// Name and restart bookkeeping, then the entry's key.
	if len(w.names) == 0 || w.names[len(w.names)-1].name != t.Name {
		w.names = append(w.names, writerName{name: t.Name})
		w.prevVal = w.prevVal[:0]
	}
	nm := &w.names[len(w.names)-1]
	restart := nm.count%dictRestartInterval == 0
	shared := 0
	if restart {
		if w.entries.Len() >= w.pageSize {
			if err := w.closePage(); err != nil {
				return err
			}
		}
		if len(w.restarts) == 0 {
			w.pageKey = t.Value
		}
		w.restarts = append(w.restarts, uint32(w.entries.Len()))
	} else {
		shared = commonPrefix(w.prevVal, t.Value)
	}
	nm.count++
	w.numTerms++
	w.prevVal = append(w.prevVal[:0], t.Value...)

	e := &w.entries
	suffix := t.Value[shared:]
	e.PutByte(byte(min(shared, nibbleEscape))<<4 | byte(min(len(suffix), nibbleEscape)))
	if shared >= nibbleEscape {
		e.PutUvarint(uint64(shared - nibbleEscape))
	}
	if len(suffix) >= nibbleEscape {
		e.PutUvarint(uint64(len(suffix) - nibbleEscape))
	}
	e.PutString(suffix)
	if restart {
		// The section cursor: where the next list would go without a
		// section change. Entries up to the next restart point derive
		// their places from it.
		e.PutUvarint(uint64(len(w.sections)))
		e.PutUvarint(uint64(len(w.payload)))
	}

	if card <= inlineMaxCardinality {
		e.PutByte(postingsInline | byte(card)<<entryInlineCardShift)
		prev := uint32(0)
		for _, v := range ords {
			e.PutUvarint(uint64(v - prev))
			prev = v
		}
		return nil
	}

	k, size := riceParam(ords)
	head := postingsRice | byte(k)<<entryRiceShift
	var bm *roaring.Bitmap
	if roaringSizeBound(ords) <= size+size/roaringPreference {
		if src != nil {
			bm = src.Clone()
		} else {
			bm = w.bm
			bm.Clear()
			bm.AddMany(ords)
		}
		bm.RunOptimize()
		if rs := int(bm.GetSerializedSizeInBytes()); rs <= size+size/roaringPreference {
			head, size = postingsRoaring, rs
		} else {
			bm = nil
		}
	}
	if len(w.payload) > 0 && len(w.payload)+size > w.sectionSize {
		if err := w.closeSection(); err != nil {
			return err
		}
		head |= entryNextSection
	}
	if bm != nil {
		if _, err := bm.WriteTo(appendWriter{&w.payload}); err != nil {
			return fmt.Errorf("postings writer: %v: %w", t, err)
		}
	} else {
		w.payload = appendRice(w.payload, ords, k)
	}
	e.PutByte(head)
	e.PutUvarint(card)
	if head&entryKindMask == postingsRoaring || card > impliedLengthMaxCard {
		e.PutUvarint(uint64(size))
	}
	return nil
}

// roaringSizeBound returns a lower bound of the size of the run-optimised
// roaring bitmap of ords, without building it: a 4-byte cookie, then per
// container 4 bytes of key and cardinality and the smallest of its array,
// bitmap and run forms.
func roaringSizeBound(ords []uint32) int {
	size := 4
	for i := 0; i < len(ords); {
		key := ords[i] >> 16
		runs, j := 1, i+1
		for ; j < len(ords) && ords[j]>>16 == key; j++ {
			if ords[j] != ords[j-1]+1 {
				runs++
			}
		}
		c := j - i
		cs := roaringBitmapBytes
		if c <= roaringArrayMax {
			cs = 2 * c
		}
		size += 4 + min(cs, 2+4*runs)
		i = j
	}
	return size
}

// closeSection seals the open section, compressing it when that pays.
func (w *PostingsWriter) closeSection() error {
	if len(w.payload) > maxPayloadLen {
		w.err = fmt.Errorf("postings writer: section of %d bytes, more than %d", len(w.payload), maxPayloadLen)
		return w.err
	}
	v := make([]byte, 0, sectionHeaderLen+binary.MaxVarintLen64+len(w.payload)+postingsTrailerLen)
	v = binary.BigEndian.AppendUint32(v, postingsSectionMagic)
	v = append(v, PostingsFormatV1)
	packed, err := w.pack(w.payload)
	switch {
	case err != nil:
		return err
	case packed != nil:
		v = append(v, compressionZstd)
		v = binary.AppendUvarint(v, uint64(len(w.payload)))
		v = append(v, packed...)
	default:
		v = append(v, compressionNone)
		v = append(v, w.payload...)
	}
	v = binary.BigEndian.AppendUint32(v, encoding.Checksum(v))
	w.sections = append(w.sections, v)
	w.payload = w.payload[:0]
	return nil
}

// closePage seals the open dictionary page: its restart offsets, then its
// entries, compressed when that pays.
func (w *PostingsWriter) closePage() error {
	if n := 4*len(w.restarts) + w.entries.Len(); n > maxPayloadLen {
		w.err = fmt.Errorf("postings writer: dictionary page of %d bytes, more than %d", n, maxPayloadLen)
		return w.err
	}
	raw := make([]byte, 0, 4*len(w.restarts)+w.entries.Len())
	for _, r := range w.restarts {
		raw = binary.BigEndian.AppendUint32(raw, r)
	}
	raw = append(raw, w.entries.B...)
	pg := writerPage{compression: compressionNone, numRestarts: len(w.restarts), rawLen: len(raw), stored: raw, firstKey: w.pageKey}
	packed, err := w.pack(raw)
	if err != nil {
		return err
	}
	if packed != nil {
		pg.compression, pg.stored = compressionZstd, slices.Clone(packed)
	}
	w.pages = append(w.pages, pg)
	w.restarts = w.restarts[:0]
	w.entries.Reset()
	return nil
}

// pack returns b compressed, in scratch space valid until the next call,
// or nil when b is not to be compressed: compression is off, or saves less
// than a sixteenth of b.
func (w *PostingsWriter) pack(b []byte) ([]byte, error) {
	if !w.compress || len(b) == 0 {
		return nil, nil
	}
	if w.enc == nil {
		enc, err := zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstdLevel),
			zstd.WithEncoderConcurrency(1),
			zstd.WithEncoderCRC(false), // the value's CRC32C covers the frame
			zstd.WithWindowSize(zstdWindow(max(w.sectionSize, w.pageSize))),
		)
		if err != nil {
			w.err = fmt.Errorf("postings writer: %w", err)
			return nil, w.err
		}
		w.enc = enc
	}
	w.packed = w.enc.EncodeAll(b, w.packed[:0])
	if len(w.packed)+binary.MaxVarintLen32 > len(b)-len(b)/16 {
		return nil, nil
	}
	return w.packed, nil
}

// zstdWindow returns the zstd window for sections of n bytes: the
// smallest power of two at least n, within zstd's bounds.
func zstdWindow(n int) int {
	win := zstd.MinWindowSize
	for win < n && win < zstd.MaxWindowSize {
		win <<= 1
	}
	return win
}

// NumTerms returns the number of terms added so far (empty lists not
// counted).
func (w *PostingsWriter) NumTerms() int { return w.numTerms }

// Finish returns the dictionary and the sections; section i is the one the
// reader's load function must return for i. The writer cannot be used
// afterwards.
func (w *PostingsWriter) Finish() (dict []byte, sections [][]byte, err error) {
	if w.finished {
		return nil, nil, fmt.Errorf("postings writer: Finish called twice")
	}
	w.finished = true
	defer func() {
		if w.enc != nil {
			w.enc.Close()
			w.enc = nil
		}
	}()
	if w.err != nil {
		return nil, nil, w.err
	}
	if len(w.payload) > 0 {
		if err := w.closeSection(); err != nil {
			return nil, nil, err
		}
	}
	if len(w.restarts) > 0 {
		if err := w.closePage(); err != nil {
			return nil, nil, err
		}
	}
	size := 64
	for _, pg := range w.pages {
		size += len(pg.stored) + len(pg.firstKey) + 16
	}
	var d encoding.Encbuf
	d.B = make([]byte, 0, size)
	d.PutBE32(postingsDictMagic)
	d.PutByte(PostingsFormatV1)
	d.PutUvarint(uint64(len(w.sections)))
	d.PutUvarint(uint64(w.numTerms))
	d.PutUvarint(uint64(len(w.names)))
	for _, n := range w.names {
		d.PutUvarintString(n.name)
		d.PutUvarint(uint64(n.count))
	}
	d.PutUvarint(uint64(len(w.pages)))
	for _, pg := range w.pages {
		d.PutByte(pg.compression)
		d.PutUvarint(uint64(pg.numRestarts))
		d.PutUvarint(uint64(pg.rawLen))
		d.PutUvarint(uint64(len(pg.stored)))
		d.PutUvarintString(pg.firstKey)
	}
	for _, pg := range w.pages {
		d.PutBytes(pg.stored)
	}
	d.PutBE32(encoding.Checksum(d.B))
	return d.B, w.sections, nil
}

// appendWriter appends what is written to a byte slice.
type appendWriter struct{ b *[]byte }

func (w appendWriter) Write(p []byte) (int, error) {
	*w.b = append(*w.b, p...)
	return len(p), nil
}

var _ io.Writer = appendWriter{}

func commonPrefix(a []byte, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}
