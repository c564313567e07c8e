package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"slices"
	"sort"
	"sync"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/tracedb/tracedb/encoding"
)

// The block postings format: one dictionary value and a few section
// values per block, described in blockpostings.md. The constants below are
// the ones the page names.
const (
	postingsDictMagic    uint32 = 0x54445044 // "TDPD"
	postingsSectionMagic uint32 = 0x54445053 // "TDPS"

	// PostingsFormatV1 is the first version of the dictionary and section
	// formats. Versions only grow; readers keep reading old ones.
	PostingsFormatV1 byte = 1

	postingsHeaderLen  = 5 // magic (4) + version (1)
	postingsTrailerLen = 4 // CRC32C

	// dictRestartInterval is how many values of a name share one restart
	// point: the first of them is stored whole, the others as a prefix
	// shared with the previous value plus the rest.
	dictRestartInterval = 16

	// DefaultSectionSize is the size past which PostingsWriter closes a
	// section and begins the next one.
	DefaultSectionSize = 1 << 20

	// inlineMaxCardinality is the largest cardinality whose list is stored
	// inside the dictionary entry instead of a section.
	inlineMaxCardinality = 4

	// DefaultSectionCacheBytes is how many bytes of loaded sections a
	// PostingsReader keeps by default.
	DefaultSectionCacheBytes = 4 << 20
)

// The head byte of a dictionary entry: the encoding of its list in the low
// two bits, then, for lists in sections, whether the list begins the next
// section, and for inline lists their cardinality.
const (
	postingsRoaring byte = 0 // roaring portable serialization, in a section
	postingsDelta   byte = 1 // delta-uvarint list, in a section
	postingsInline  byte = 2 // delta-uvarint list, inside the dictionary entry

	entryKindMask        = 0x03
	entryNextSection     = 0x04 // section lists: the list begins the next section at offset 0
	entryInlineCardShift = 2    // inline lists: bits 2-4 hold the cardinality, 1 to 4
	entryInlineCardMask  = 0x07
)

// The roaring portable format's constants (RoaringFormatSpec), for
// checkRoaring.
const (
	roaringCookieNoRuns      = 12346
	roaringCookieRuns        = 12347
	roaringNoOffsetThreshold = 4
	roaringArrayMax          = 4096
	roaringBitmapBytes       = 8192
)

// PostingsWriterOptions configure a PostingsWriter.
type PostingsWriterOptions struct {
	// SectionSize is the size in bytes past which a section is closed and
	// the next begun; one list larger than it gets a section of its own.
	// Default (0): DefaultSectionSize.
	SectionSize int
}

// PostingsWriter builds a block's postings: a dictionary and sections.
// Terms are added in strictly increasing order (Term.Compare), each with
// its ordinals; Finish returns the encoded values. Each list is stored in
// the smallest of its encodings: inline in the dictionary when it holds at
// most four ordinals, otherwise in a section as a run-optimised roaring
// bitmap or as a delta-uvarint list. A PostingsWriter is not safe for
// concurrent use.
type PostingsWriter struct {
	sectionSize int

	sections [][]byte
	sec      encoding.Encbuf // the open section, header included

	entries  encoding.Encbuf
	restarts []uint32
	names    []writerName
	numTerms int

	last     Term
	hasLast  bool
	prevVal  []byte // the previous value of the current name
	finished bool

	delta []byte          // scratch: the delta-uvarint form of the list being added
	bm    *roaring.Bitmap // scratch
}

type writerName struct {
	name  string
	count int
}

// NewPostingsWriter returns a writer; opts may be nil for the defaults.
func NewPostingsWriter(opts *PostingsWriterOptions) *PostingsWriter {
	w := &PostingsWriter{sectionSize: DefaultSectionSize, bm: roaring.New()}
	if opts != nil && opts.SectionSize > 0 {
		w.sectionSize = opts.SectionSize
	}
	return w
}

// Add adds term t with ordinals ords, which must be strictly increasing.
// t must sort after every term added before. An empty list adds nothing.
func (w *PostingsWriter) Add(t Term, ords []uint32) error {
	if err := w.begin(t); err != nil {
		return err
	}
	w.delta = w.delta[:0]
	var prev uint32
	containers := 0
	for i, v := range ords {
		if i > 0 && v <= prev {
			return fmt.Errorf("postings writer: ordinals of %v not strictly increasing at %d", t, i)
		}
		if i == 0 || v>>16 != prev>>16 {
			containers++
		}
		w.delta = binary.AppendUvarint(w.delta, uint64(v-prev))
		prev = v
	}
	return w.write(t, uint64(len(ords)), containers, func() *roaring.Bitmap {
		w.bm.Clear()
		w.bm.AddMany(ords)
		return w.bm
	})
}

// AddBitmap adds term t with the ordinals of b, which is not modified. t
// must sort after every term added before. An empty bitmap adds nothing.
func (w *PostingsWriter) AddBitmap(t Term, b *roaring.Bitmap) error {
	if err := w.begin(t); err != nil {
		return err
	}
	w.delta = w.delta[:0]
	var prev uint32
	containers := 0
	var buf [expandBatch]uint32
	it := b.ManyIterator()
	for n := it.NextMany(buf[:]); n > 0; n = it.NextMany(buf[:]) {
		for _, v := range buf[:n] {
			if len(w.delta) == 0 || v>>16 != prev>>16 {
				containers++
			}
			w.delta = binary.AppendUvarint(w.delta, uint64(v-prev))
			prev = v
		}
	}
	return w.write(t, b.GetCardinality(), containers, func() *roaring.Bitmap { return b.Clone() })
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
	if w.hasLast && t.Compare(w.last) <= 0 {
		return fmt.Errorf("postings writer: term %v does not sort after %v", t, w.last)
	}
	w.last, w.hasLast = t, true
	return nil
}

// write adds the dictionary entry of t and stores its list; w.delta holds
// the list's delta-uvarint form, containers is the number of roaring
// containers the list spans, and bitmap builds its roaring form.
func (w *PostingsWriter) write(t Term, card uint64, containers int, bitmap func() *roaring.Bitmap) error {
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
		if w.entries.Len() > math.MaxUint32 {
			return fmt.Errorf("postings writer: dictionary larger than 4 GiB")
		}
		w.restarts = append(w.restarts, uint32(w.entries.Len()))
	} else {
		shared = commonPrefix(w.prevVal, t.Value)
	}
	nm.count++
	w.numTerms++
	w.prevVal = append(w.prevVal[:0], t.Value...)

	e := &w.entries
	e.PutUvarint(uint64(shared))
	e.PutUvarintString(t.Value[shared:])
	payload := max(w.sec.Len()-postingsHeaderLen, 0)
	if restart {
		// The section cursor: where the next list would go without a
		// section change. Entries up to the next restart point derive
		// their places from it.
		e.PutUvarint(uint64(len(w.sections)))
		e.PutUvarint(uint64(payload))
	}

	if card <= inlineMaxCardinality {
		e.PutByte(postingsInline | byte(card)<<entryInlineCardShift)
		e.PutBytes(w.delta)
		return nil
	}

	// A roaring bitmap takes at least a 4-byte cookie and, per container,
	// 4 bytes of key and cardinality and 2 of data: when the delta list is
	// smaller than that, the bitmap need not be built to know it loses.
	var bm *roaring.Bitmap
	kind, size := postingsDelta, uint64(len(w.delta))
	if size >= 4+6*uint64(containers) {
		bm = bitmap()
		bm.RunOptimize()
		if rs := bm.GetSerializedSizeInBytes(); rs <= size {
			kind, size = postingsRoaring, rs
		}
	}
	head := kind
	if payload > 0 && uint64(payload)+size > uint64(w.sectionSize) {
		w.closeSection()
		head |= entryNextSection
	}
	if w.sec.Len() == 0 {
		w.sec.PutBE32(postingsSectionMagic)
		w.sec.PutByte(PostingsFormatV1)
	}
	if kind == postingsRoaring {
		if _, err := bm.WriteTo(encbufWriter{&w.sec}); err != nil {
			return fmt.Errorf("postings writer: %v: %w", t, err)
		}
	} else {
		w.sec.PutBytes(w.delta)
	}
	e.PutByte(head)
	e.PutUvarint(card)
	e.PutUvarint(size)
	return nil
}

func (w *PostingsWriter) closeSection() {
	w.sec.PutBE32(encoding.Checksum(w.sec.B))
	w.sections = append(w.sections, w.sec.B)
	w.sec = encoding.Encbuf{B: make([]byte, 0, w.sectionSize+postingsHeaderLen+postingsTrailerLen)}
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
	if w.sec.Len() > 0 {
		w.closeSection()
	}
	var d encoding.Encbuf
	d.B = make([]byte, 0, w.entries.Len()+4*len(w.restarts)+64)
	d.PutBE32(postingsDictMagic)
	d.PutByte(PostingsFormatV1)
	d.PutUvarint(uint64(len(w.sections)))
	d.PutUvarint(uint64(w.numTerms))
	d.PutUvarint(uint64(len(w.names)))
	for _, n := range w.names {
		d.PutUvarintString(n.name)
		d.PutUvarint(uint64(n.count))
	}
	d.PutUvarint(uint64(len(w.restarts)))
	for _, r := range w.restarts {
		d.PutBE32(r)
	}
	d.PutUvarintBytes(w.entries.B)
	d.PutBE32(encoding.Checksum(d.B))
	return d.B, w.sections, nil
}

type encbufWriter struct{ e *encoding.Encbuf }

func (w encbufWriter) Write(p []byte) (int, error) {
	w.e.PutBytes(p)
	return len(p), nil
}

var _ io.Writer = encbufWriter{}

func commonPrefix(a []byte, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// PostingsReaderOptions configure a PostingsReader.
type PostingsReaderOptions struct {
	// CacheBytes bounds the loaded sections the reader keeps, least
	// recently used first out; the section in use is always kept. Default
	// (0): DefaultSectionCacheBytes. Negative: keep none.
	CacheBytes int
}

// SectionLoader returns the bytes of section i of a block's postings. The
// reader keeps the returned slice (in its cache and in the bitmaps it hands
// out, which point into it), so it must not be modified or reused
// afterwards: with Badger, copy the value out of the transaction.
type SectionLoader func(i int) ([]byte, error)

// PostingsReader reads a block's postings. The dictionary is checked once
// when the reader is made and read in place afterwards: it costs its own
// bytes plus a few dozen bytes per term name. Sections are loaded on demand
// and cached within a byte bound. A PostingsReader is safe for concurrent
// use; two goroutines missing the cache for the same section at once may
// both load it.
type PostingsReader struct {
	names       []dictName
	restarts    []byte // BE32 offsets into entries, one per restart point
	entries     []byte
	numSections int
	numTerms    int

	load       SectionLoader
	cacheLimit int

	mu struct {
		sync.Mutex
		lru   []cachedSection // least recently used first
		bytes int
	}
}

type dictName struct {
	name         string
	count        int // number of values
	firstRestart int // index of its first restart point
}

type cachedSection struct {
	i       int
	payload []byte
}

// dictEntry is one decoded dictionary entry.
type dictEntry struct {
	kind    byte
	card    uint64
	section int
	off     int
	length  int
	inline  [inlineMaxCardinality]uint32
}

// NewPostingsReader checks dict and returns a reader over it that loads
// sections with load. dict is kept and read in place: the caller must not
// modify it afterwards. opts may be nil for the defaults. Errors about the
// bytes wrap encoding.ErrCorrupt.
func NewPostingsReader(dict []byte, load SectionLoader, opts *PostingsReaderOptions) (*PostingsReader, error) {
	const what = "postings dictionary"
	if len(dict) < postingsHeaderLen+postingsTrailerLen {
		return nil, encoding.Corruptf(what, 0, "%d bytes, too short", len(dict))
	}
	if m := binary.BigEndian.Uint32(dict); m != postingsDictMagic {
		return nil, encoding.Corruptf(what, 0, "bad magic %#08x", m)
	}
	if v := dict[4]; v != PostingsFormatV1 {
		return nil, encoding.Corruptf(what, 4, "unknown version %d", v)
	}
	body := dict[:len(dict)-postingsTrailerLen]
	if want, got := binary.BigEndian.Uint32(dict[len(body):]), encoding.Checksum(body); want != got {
		return nil, encoding.Corruptf(what, len(body), "checksum %#08x, want %#08x", got, want)
	}
	d := encoding.NewDecbuf(body[postingsHeaderLen:], what)
	r := &PostingsReader{load: load, cacheLimit: DefaultSectionCacheBytes}
	if opts != nil && opts.CacheBytes != 0 {
		r.cacheLimit = opts.CacheBytes
	}
	r.numSections = d.UvarintInt(math.MaxInt32)
	r.numTerms = d.UvarintInt(len(body))
	numNames := d.UvarintInt(d.Len() / 2) // a name takes at least two bytes
	r.names = make([]dictName, 0, numNames)
	terms, restarts := 0, 0
	for i := 0; i < numNames && d.Err() == nil; i++ {
		n := dictName{name: d.UvarintString(), count: d.UvarintInt(r.numTerms), firstRestart: restarts}
		if d.Err() != nil {
			break
		}
		if n.count == 0 {
			d.Fail(fmt.Sprintf("term name %q has no values", n.name))
		}
		if i > 0 && n.name <= r.names[i-1].name {
			d.Fail(fmt.Sprintf("term name %q out of order", n.name))
		}
		terms += n.count
		restarts += (n.count + dictRestartInterval - 1) / dictRestartInterval
		r.names = append(r.names, n)
	}
	numRestarts := d.UvarintInt(d.Len() / 4)
	r.restarts = d.Bytes(4 * numRestarts)
	r.entries = d.UvarintBytes()
	if err := d.Err(); err != nil {
		return nil, err
	}
	switch {
	case d.Len() != 0:
		d.Fail(fmt.Sprintf("%d bytes after the entries", d.Len()))
	case terms != r.numTerms:
		d.Fail(fmt.Sprintf("names hold %d terms, header says %d", terms, r.numTerms))
	case numRestarts != restarts:
		d.Fail(fmt.Sprintf("%d restart points, names need %d", numRestarts, restarts))
	}
	for i := 0; i < numRestarts && d.Err() == nil; i++ {
		off := r.restartAt(i)
		switch {
		case off >= len(r.entries):
			d.Fail(fmt.Sprintf("restart point %d past the entries", i))
		case i == 0 && off != 0:
			d.Fail("first restart point is not at the start")
		case i > 0 && off <= r.restartAt(i-1):
			d.Fail(fmt.Sprintf("restart point %d out of order", i))
		}
	}
	if err := d.Err(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *PostingsReader) restartAt(i int) int {
	return int(binary.BigEndian.Uint32(r.restarts[4*i:]))
}

// entryDecoder decodes the entries of one name from a restart point on,
// rebuilding values from their shared prefixes and list places from the
// section cursor.
type entryDecoder struct {
	d        encoding.Decbuf
	key      []byte
	sec, off int // section cursor: where the next list in a section starts
	r        *PostingsReader
}

func (r *PostingsReader) decoderAt(restart int, key []byte) entryDecoder {
	d := encoding.NewDecbuf(r.entries[r.restartAt(restart):], "postings dictionary entry")
	return entryDecoder{d: d, key: key[:0], r: r}
}

// restartKey decodes only the value of the restart entry the decoder
// stands on.
func (ed *entryDecoder) restartKey() []byte {
	ed.d.UvarintInt(0) // nothing is shared at a restart point
	ed.key = append(ed.key[:0], ed.d.UvarintBytes()...)
	return ed.key
}

// next decodes the next entry; atRestart says it stands on a restart
// point.
func (ed *entryDecoder) next(atRestart bool) dictEntry {
	d := &ed.d
	maxShared := len(ed.key)
	if atRestart {
		maxShared = 0
	}
	shared := d.UvarintInt(maxShared)
	ed.key = append(ed.key[:shared], d.UvarintBytes()...)
	if atRestart {
		ed.sec = d.UvarintInt(ed.r.numSections)
		ed.off = d.UvarintInt(math.MaxInt32)
	}
	head := d.Byte()
	e := dictEntry{kind: head & entryKindMask}
	switch e.kind {
	case postingsInline:
		card := int(head>>entryInlineCardShift) & entryInlineCardMask
		if d.Err() == nil && (card < 1 || card > inlineMaxCardinality || head>>(entryInlineCardShift+3) != 0) {
			d.Fail(fmt.Sprintf("bad entry head %#02x", head))
		}
		e.card = uint64(card)
		var prev uint64
		for i := 0; i < card && d.Err() == nil; i++ {
			g := d.Uvarint()
			if i > 0 && g == 0 || prev+g > math.MaxUint32 {
				d.Fail("inline ordinals not increasing")
			}
			prev += g
			e.inline[i] = uint32(prev)
		}
	case postingsRoaring, postingsDelta:
		if d.Err() == nil && head&^(entryKindMask|entryNextSection) != 0 {
			d.Fail(fmt.Sprintf("bad entry head %#02x", head))
		}
		if head&entryNextSection != 0 {
			ed.sec, ed.off = ed.sec+1, 0
		}
		e.card = d.Uvarint()
		e.length = d.UvarintInt(math.MaxInt32)
		e.section, e.off = ed.sec, ed.off
		ed.off += e.length
		switch {
		case d.Err() != nil:
		case e.card == 0:
			d.Fail("empty postings list")
		case e.section >= ed.r.numSections:
			d.Fail(fmt.Sprintf("section %d of %d", e.section, ed.r.numSections))
		case ed.off > math.MaxInt32:
			d.Fail("section offset out of range")
		}
	default:
		d.Fail(fmt.Sprintf("bad entry head %#02x", head))
	}
	return e
}

// lookup finds the dictionary entry of t.
func (r *PostingsReader) lookup(t Term) (dictEntry, bool, error) {
	ni, ok := r.findName(t.Name)
	if !ok {
		return dictEntry{}, false, nil
	}
	n := r.names[ni]
	j, err := r.restartFor(n, t.Value)
	if err != nil || j < 0 {
		return dictEntry{}, false, err
	}
	var scratch [64]byte
	ed := r.decoderAt(n.firstRestart+j, scratch[:0])
	m := min(dictRestartInterval, n.count-j*dictRestartInterval)
	for k := 0; k < m; k++ {
		e := ed.next(k == 0)
		if err := ed.d.Err(); err != nil {
			return dictEntry{}, false, err
		}
		if string(ed.key) == t.Value {
			return e, true, nil
		}
		if string(ed.key) > t.Value {
			return dictEntry{}, false, nil
		}
	}
	return dictEntry{}, false, nil
}

// restartFor returns the restart point of name n (counted from its first)
// that begins the run of 16 values that would hold value: the last one
// whose value is <= value, or -1 when value sorts before all of them.
func (r *PostingsReader) restartFor(n dictName, value string) (int, error) {
	nr := (n.count + dictRestartInterval - 1) / dictRestartInterval
	var err error
	var scratch [64]byte
	j := sort.Search(nr, func(j int) bool {
		if err != nil {
			return true
		}
		ed := r.decoderAt(n.firstRestart+j, scratch[:0])
		key := ed.restartKey()
		if err = ed.d.Err(); err != nil {
			return true
		}
		return string(key) > value
	})
	return j - 1, err
}

func (r *PostingsReader) findName(name string) (int, bool) {
	i := sort.Search(len(r.names), func(i int) bool { return r.names[i].name >= name })
	return i, i < len(r.names) && r.names[i].name == name
}

// Postings returns the postings of t, the EmptyPostings sentinel when the
// block has no span with t. Large lists are bitmap-backed (so the
// whole-bitmap fast paths of this package apply), small ones list-backed.
func (r *PostingsReader) Postings(t Term) (Postings, error) {
	e, ok, err := r.lookup(t)
	if err != nil {
		return nil, fmt.Errorf("postings of %v: %w", t, err)
	}
	if !ok {
		return EmptyPostings(), nil
	}
	p, err := r.postings(e)
	if err != nil {
		return nil, fmt.Errorf("postings of %v: %w", t, err)
	}
	return p, nil
}

func (r *PostingsReader) postings(e dictEntry) (Postings, error) {
	if e.kind == postingsInline {
		return NewListPostings(slices.Clone(e.inline[:e.card])), nil
	}
	payload, err := r.section(e.section)
	if err != nil {
		return nil, err
	}
	if e.off > len(payload) || e.length > len(payload)-e.off {
		return nil, encoding.Corruptf("postings dictionary entry", -1,
			"list at %d+%d past the end of section %d (%d bytes)", e.off, e.length, e.section, len(payload))
	}
	b := payload[e.off : e.off+e.length : e.off+e.length]
	if e.kind == postingsDelta {
		ords, err := decodeDelta(b, e.card)
		if err != nil {
			return nil, err
		}
		return NewListPostings(ords), nil
	}
	if err := checkRoaring(b, e.card); err != nil {
		return nil, err
	}
	bm := roaring.New()
	if n, err := bm.FromBuffer(b); err != nil || n != int64(len(b)) {
		return nil, encoding.Corruptf("roaring bitmap", -1, "read %d of %d bytes: %v", n, len(b), err)
	}
	return NewBitmapPostings(bm), nil
}

// Cardinality returns how many spans carry t, from the dictionary alone.
func (r *PostingsReader) Cardinality(t Term) (uint64, error) {
	e, ok, err := r.lookup(t)
	if err != nil {
		return 0, fmt.Errorf("cardinality of %v: %w", t, err)
	}
	if !ok {
		return 0, nil
	}
	return e.card, nil
}

// Values returns the sorted values of the terms named name (for example
// every service, or every operation), from the dictionary alone.
func (r *PostingsReader) Values(name string) ([]string, error) {
	var out []string
	err := r.forEachValue(name, "", func(v []byte, _ dictEntry) error {
		out = append(out, string(v))
		return nil
	})
	return out, err
}

// PostingsRange calls fn, in value order, with every value v of name such
// that from <= v < to (to "" means no upper bound) and its postings: one
// binary search, then a sequential walk, much cheaper than a Postings call
// per value. Latency histograms walk the duration buckets this way, and
// duration ranges merge them. It stops at the first error fn returns and
// returns it.
func (r *PostingsReader) PostingsRange(name, from, to string, fn func(value string, p Postings) error) error {
	return r.forEachValue(name, from, func(v []byte, e dictEntry) error {
		if to != "" && string(v) >= to {
			return errStopWalk
		}
		p, err := r.postings(e)
		if err != nil {
			return fmt.Errorf("postings of %v: %w", Term{name, string(v)}, err)
		}
		return fn(string(v), p)
	})
}

// errStopWalk ends a forEachValue walk early without an error.
var errStopWalk = errors.New("stop walk")

// forEachValue calls fn with every value of name from value from on, in
// order; v is valid only during the call. fn returning errStopWalk ends
// the walk without an error.
func (r *PostingsReader) forEachValue(name, from string, fn func(v []byte, e dictEntry) error) error {
	ni, ok := r.findName(name)
	if !ok {
		return nil
	}
	n := r.names[ni]
	first := 0
	if from != "" {
		j, err := r.restartFor(n, from)
		if err != nil {
			return fmt.Errorf("values of %q: %w", name, err)
		}
		first = max(j, 0) * dictRestartInterval
	}
	var scratch [64]byte
	ed := entryDecoder{key: scratch[:0]}
	for k := first; k < n.count; k++ {
		atRestart := k%dictRestartInterval == 0
		if atRestart {
			// Jump to the restart point rather than read on, so that a
			// restart offset that disagrees with the entries is noticed.
			ed = r.decoderAt(n.firstRestart+k/dictRestartInterval, ed.key)
		}
		e := ed.next(atRestart)
		if err := ed.d.Err(); err != nil {
			return fmt.Errorf("values of %q: %w", name, err)
		}
		if string(ed.key) < from {
			continue
		}
		if err := fn(ed.key, e); err == errStopWalk {
			return nil
		} else if err != nil {
			return err
		}
	}
	return nil
}

// Names returns the term names of the block, sorted. The caller owns the
// slice.
func (r *PostingsReader) Names() []string {
	out := make([]string, len(r.names))
	for i, n := range r.names {
		out[i] = n.name
	}
	return out
}

// NumTerms returns the number of terms of the block.
func (r *PostingsReader) NumTerms() int { return r.numTerms }

// NumSections returns the number of section values of the block.
func (r *PostingsReader) NumSections() int { return r.numSections }

// ForEachTerm calls fn with every term of the block in sorted order and its
// cardinality, from the dictionary alone (compaction walks it and calls
// Postings). It stops at the first error fn returns and returns it.
func (r *PostingsReader) ForEachTerm(fn func(t Term, cardinality uint64) error) error {
	for _, n := range r.names {
		err := r.forEachValue(n.name, "", func(v []byte, e dictEntry) error {
			return fn(Term{n.name, string(v)}, e.card)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// section returns the payload of section i, from the cache or loaded.
func (r *PostingsReader) section(i int) ([]byte, error) {
	r.mu.Lock()
	for k, c := range r.mu.lru {
		if c.i == i {
			copy(r.mu.lru[k:], r.mu.lru[k+1:])
			r.mu.lru[len(r.mu.lru)-1] = c
			r.mu.Unlock()
			return c.payload, nil
		}
	}
	r.mu.Unlock()

	raw, err := r.load(i)
	if err != nil {
		return nil, fmt.Errorf("load postings section %d: %w", i, err)
	}
	payload, err := decodeSection(raw)
	if err != nil {
		return nil, fmt.Errorf("postings section %d: %w", i, err)
	}
	if r.cacheLimit < 0 {
		return payload, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.mu.lru {
		if c.i == i { // loaded meanwhile by another goroutine
			return c.payload, nil
		}
	}
	r.mu.lru = append(r.mu.lru, cachedSection{i, payload})
	r.mu.bytes += len(payload)
	for len(r.mu.lru) > 1 && r.mu.bytes > r.cacheLimit {
		r.mu.bytes -= len(r.mu.lru[0].payload)
		r.mu.lru[0] = cachedSection{}
		r.mu.lru = r.mu.lru[1:]
	}
	return payload, nil
}

// decodeSection checks a section value and returns its payload.
func decodeSection(b []byte) ([]byte, error) {
	const what = "postings section"
	if len(b) < postingsHeaderLen+postingsTrailerLen {
		return nil, encoding.Corruptf(what, 0, "%d bytes, too short", len(b))
	}
	if m := binary.BigEndian.Uint32(b); m != postingsSectionMagic {
		return nil, encoding.Corruptf(what, 0, "bad magic %#08x", m)
	}
	if v := b[4]; v != PostingsFormatV1 {
		return nil, encoding.Corruptf(what, 4, "unknown version %d", v)
	}
	body := b[:len(b)-postingsTrailerLen]
	if want, got := binary.BigEndian.Uint32(b[len(body):]), encoding.Checksum(body); want != got {
		return nil, encoding.Corruptf(what, len(body), "checksum %#08x, want %#08x", got, want)
	}
	return body[postingsHeaderLen:len(body):len(body)], nil
}

// decodeDelta decodes a delta-uvarint list of card ordinals that must fill
// b exactly.
func decodeDelta(b []byte, card uint64) ([]uint32, error) {
	const what = "postings list"
	if card > uint64(len(b)) { // every ordinal takes at least one byte
		return nil, encoding.Corruptf(what, 0, "%d ordinals in %d bytes", card, len(b))
	}
	out := make([]uint32, card)
	d := encoding.NewDecbuf(b, what)
	var prev uint64
	for i := range out {
		g := d.Uvarint()
		if i > 0 && g == 0 {
			d.Fail("ordinals not increasing")
		}
		prev += g
		if prev > math.MaxUint32 {
			d.Fail("ordinal out of range")
		}
		out[i] = uint32(prev)
	}
	if d.Err() == nil && d.Len() != 0 {
		d.Fail(fmt.Sprintf("%d bytes after the list", d.Len()))
	}
	if err := d.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// checkRoaring checks that b is exactly one well-formed roaring bitmap in
// the portable format holding card values, in linear time, so that
// roaring's own reader (which checks only lengths) and the operations on
// the result cannot go wrong on bad bytes: container keys increasing,
// array values increasing, bitmap cardinalities matching their bits, runs
// increasing, disjoint, not touching and inside the container.
func checkRoaring(b []byte, card uint64) error {
	d := encoding.NewDecbuf(b, "roaring bitmap")
	var size int
	var runFlags []byte
	switch cookie := le32(&d); {
	case d.Err() != nil:
	case cookie&0xFFFF == roaringCookieRuns:
		size = int(cookie>>16) + 1
		runFlags = d.Bytes((size + 7) / 8)
	case cookie == roaringCookieNoRuns:
		if n := le32(&d); n <= 1<<16 {
			size = int(n)
		} else {
			d.Fail("too many containers")
		}
	default:
		d.Fail("bad cookie")
	}
	keycard := d.Bytes(4 * size)
	if runFlags == nil || size >= roaringNoOffsetThreshold {
		d.Bytes(4 * size) // container offsets, which readers do not need
	}
	var total uint64
	prevKey := -1
	for i := 0; i < size && d.Err() == nil; i++ {
		key := int(binary.LittleEndian.Uint16(keycard[4*i:]))
		c := int(binary.LittleEndian.Uint16(keycard[4*i+2:])) + 1
		if key <= prevKey {
			d.Fail("container keys not increasing")
			break
		}
		prevKey = key
		switch {
		case runFlags != nil && runFlags[i/8]&(1<<(i%8)) != 0:
			nr := le16(&d)
			runs := d.Bytes(4 * nr)
			if d.Err() == nil && nr == 0 {
				d.Fail("run container without runs")
			}
			end := -2 // last value of the previous run
			for j := 0; j+4 <= len(runs); j += 4 {
				start := int(binary.LittleEndian.Uint16(runs[j:]))
				n := int(binary.LittleEndian.Uint16(runs[j+2:]))
				if start <= end+1 || start+n > math.MaxUint16 {
					d.Fail("bad run")
					break
				}
				end = start + n
				total += uint64(n) + 1
			}
		case c > roaringArrayMax:
			words := d.Bytes(roaringBitmapBytes)
			ones := 0
			for j := 0; j+8 <= len(words); j += 8 {
				ones += bits.OnesCount64(binary.LittleEndian.Uint64(words[j:]))
			}
			if d.Err() == nil && ones != c {
				d.Fail("bitmap container cardinality does not match its bits")
			}
			total += uint64(c)
		default:
			vals := d.Bytes(2 * c)
			prev := -1
			for j := 0; j+2 <= len(vals); j += 2 {
				v := int(binary.LittleEndian.Uint16(vals[j:]))
				if v <= prev {
					d.Fail("array container values not increasing")
					break
				}
				prev = v
			}
			total += uint64(c)
		}
	}
	if d.Err() == nil && d.Len() != 0 {
		d.Fail(fmt.Sprintf("%d bytes after the bitmap", d.Len()))
	}
	if d.Err() == nil && total != card {
		d.Fail(fmt.Sprintf("holds %d values, dictionary says %d", total, card))
	}
	return d.Err()
}

func le32(d *encoding.Decbuf) uint32 {
	if b := d.Bytes(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func le16(d *encoding.Decbuf) int {
	if b := d.Bytes(2); b != nil {
		return int(binary.LittleEndian.Uint16(b))
	}
	return 0
}
