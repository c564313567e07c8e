package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sort"
	"sync"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/klauspost/compress/zstd"

	"github.com/tracedb/tracedb/encoding"
)

// PostingsReaderOptions configure a PostingsReader.
type PostingsReaderOptions struct {
	// CacheBytes bounds the sections and dictionary pages the reader
	// keeps, counted decompressed, least recently used first out; the one
	// in use is always kept. Default (0): DefaultSectionCacheBytes.
	// Negative: keep none.
	CacheBytes int

	// Decoder decompresses compressed sections; it may be shared by many
	// readers (a zstd.Decoder is safe for concurrent use) and should be
	// made with zstd.WithDecodeAllCapLimit(true). Default (nil): the
	// reader makes its own, with concurrency 1, when it first meets a
	// compressed section.
	Decoder *zstd.Decoder
}

// SectionLoader returns the bytes of section i of a block's postings. The
// reader keeps the returned slice (in its cache and in the bitmaps it hands
// out, which point into it), so it must not be modified or reused
// afterwards: with Badger, copy the value out of the transaction.
type SectionLoader func(i int) ([]byte, error)

// PostingsReader reads a block's postings. The dictionary is checked once
// when the reader is made and kept: it costs its own bytes plus a few dozen
// bytes per term name and per page. Its pages are decompressed on demand,
// and sections loaded and decompressed on demand, both cached within one
// byte bound. A PostingsReader is safe
// for concurrent use; two goroutines missing the cache for the same section
// at once may both load it.
type PostingsReader struct {
	names       []dictName
	pages       []dictPage
	numSections int
	numTerms    int

	load       SectionLoader
	cacheLimit int

	zstd struct {
		once sync.Once
		dec  *zstd.Decoder
		err  error
	}

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

// dictPage is a dictionary page as the page table describes it.
type dictPage struct {
	firstRestart int // index of its first restart point
	numRestarts  int
	compression  byte
	rawLen       int
	stored       []byte // aliases the dictionary
	firstKey     []byte // aliases the dictionary
}

// A cached section or dictionary page: sections have keys i >= 0, page i
// has key -1-i.
type cachedSection struct {
	key     int
	payload []byte
}

// A skip is one list between a dictEntry's cursor and its own list: a Rice
// list without a stored length (skipRice, its parameter and cardinality),
// which the reader decodes to pass, or a number of bytes.
const (
	skipRice      = 1 << 63
	skipKShift    = 32
	skipCardMask  = 1<<skipKShift - 1
	maxListLength = math.MaxInt32
)

// dictEntry is one decoded dictionary entry. A list in a section starts at
// offset off of section, after the nskip lists of skips.
type dictEntry struct {
	kind    byte
	k       uint // Rice parameter
	card    uint64
	section int
	off     int
	length  int // -1: a Rice list without a stored length
	nskip   int
	skips   [dictRestartInterval]uint64
	inline  [inlineMaxCardinality]uint32
	end     int // set by list: where the list ends in its section
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
	if opts != nil {
		if opts.CacheBytes != 0 {
			r.cacheLimit = opts.CacheBytes
		}
		r.zstd.dec = opts.Decoder
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
	numPages := d.UvarintInt(d.Len() / 5) // a page takes at least five bytes in the table
	r.pages = make([]dictPage, 0, numPages)
	pageRestarts, storedLen := 0, 0
	storedLens := make([]int, 0, numPages)
	for i := 0; i < numPages && d.Err() == nil; i++ {
		pg := dictPage{firstRestart: pageRestarts, compression: d.Byte()}
		pg.numRestarts = d.UvarintInt(restarts)
		pg.rawLen = d.UvarintInt(maxPayloadLen)
		n := d.UvarintInt(len(body))
		pg.firstKey = d.UvarintBytes()
		switch {
		case d.Err() != nil:
		case pg.compression > compressionZstd:
			d.Fail(fmt.Sprintf("page %d: unknown compression %d", i, pg.compression))
		case pg.numRestarts == 0:
			d.Fail(fmt.Sprintf("page %d has no restart points", i))
		case pg.rawLen <= 4*pg.numRestarts:
			d.Fail(fmt.Sprintf("page %d: %d bytes for %d restart points", i, pg.rawLen, pg.numRestarts))
		case pg.compression == compressionNone && n != pg.rawLen,
			pg.compression == compressionZstd && pg.rawLen/zstdMaxRatio > n:
			d.Fail(fmt.Sprintf("page %d: %d bytes cannot hold %d", i, n, pg.rawLen))
		}
		pageRestarts += pg.numRestarts
		storedLen += n
		storedLens = append(storedLens, n)
		r.pages = append(r.pages, pg)
	}
	if err := d.Err(); err != nil {
		return nil, err
	}
	switch {
	case terms != r.numTerms:
		d.Fail(fmt.Sprintf("names hold %d terms, header says %d", terms, r.numTerms))
	case pageRestarts != restarts:
		d.Fail(fmt.Sprintf("pages hold %d restart points, names need %d", pageRestarts, restarts))
	case storedLen != d.Len():
		d.Fail(fmt.Sprintf("pages take %d bytes, %d are left", storedLen, d.Len()))
	}
	for i := range r.pages {
		r.pages[i].stored = d.Bytes(storedLens[i])
	}
	if err := d.Err(); err != nil {
		return nil, err
	}
	return r, nil
}

// pageOf returns the index of the page that holds restart point i.
func (r *PostingsReader) pageOf(i int) int {
	return sort.Search(len(r.pages), func(p int) bool { return r.pages[p].firstRestart > i }) - 1
}

// pageView is a decompressed, checked dictionary page.
type pageView struct {
	first, end int    // its restart points: first <= i < end
	restarts   []byte // BE32 offsets into entries, one per restart point
	entries    []byte
}

// holds reports whether the page holds restart point i.
func (v *pageView) holds(i int) bool { return v.first <= i && i < v.end }

// decoder returns a decoder standing on restart point i of the page.
func (v *pageView) decoder(r *PostingsReader, i int, key []byte) entryDecoder {
	off := binary.BigEndian.Uint32(v.restarts[4*(i-v.first):])
	return entryDecoder{d: encoding.NewDecbuf(v.entries[off:], "postings dictionary entry"), key: key[:0], r: r}
}

// page returns page p, from the cache or decompressed and checked.
func (r *PostingsReader) page(p int) (pageView, error) {
	pg := &r.pages[p]
	payload, err := r.cached(-1-p, func() ([]byte, error) {
		const what = "postings dictionary page"
		raw := pg.stored
		if pg.compression == compressionZstd {
			var err error
			if raw, err = r.decompress(pg.stored, pg.rawLen, what); err != nil {
				return nil, err
			}
		}
		restarts, entries := raw[:4*pg.numRestarts], raw[4*pg.numRestarts:]
		for i := 0; i < pg.numRestarts; i++ {
			off := int(binary.BigEndian.Uint32(restarts[4*i:]))
			switch {
			case off >= len(entries):
				return nil, encoding.Corruptf(what, 4*i, "restart point %d past the entries", i)
			case i == 0 && off != 0:
				return nil, encoding.Corruptf(what, 0, "first restart point is not at the start")
			case i > 0 && off <= int(binary.BigEndian.Uint32(restarts[4*i-4:])):
				return nil, encoding.Corruptf(what, 4*i, "restart point %d out of order", i)
			}
		}
		ed := entryDecoder{d: encoding.NewDecbuf(entries, what)}
		if key := ed.restartKey(); ed.d.Err() != nil || string(key) != string(pg.firstKey) {
			return nil, encoding.Corruptf(what, 4*pg.numRestarts, "first value %q, page table says %q", key, pg.firstKey)
		}
		return raw, nil
	})
	if err != nil {
		return pageView{}, fmt.Errorf("page %d: %w", p, err)
	}
	return pageView{
		first: pg.firstRestart, end: pg.firstRestart + pg.numRestarts,
		restarts: payload[:4*pg.numRestarts], entries: payload[4*pg.numRestarts:],
	}, nil
}

// entryDecoder decodes the entries of one name from a restart point on,
// rebuilding values from their shared prefixes and list places from the
// section cursor.
type entryDecoder struct {
	d        encoding.Decbuf
	key      []byte
	sec, off int // section cursor: where the lists of skips begin
	nskip    int
	skips    [dictRestartInterval]uint64 // lists between the cursor and the next list
	r        *PostingsReader
}

// nibble reads a length whose low part is a nibble of the key byte.
func (ed *entryDecoder) nibble(n byte, max int) int {
	v := int(n)
	if n == nibbleEscape {
		v += ed.d.UvarintInt(max)
	}
	if v > max {
		ed.d.Fail("length out of range")
		return 0
	}
	return v
}

// restartKey decodes only the value of the restart entry the decoder
// stands on.
func (ed *entryDecoder) restartKey() []byte {
	kb := ed.d.Byte()
	if ed.d.Err() == nil && kb>>4 != 0 {
		ed.d.Fail("restart point shares a prefix")
	}
	n := ed.nibble(kb&0x0f, ed.d.Len())
	ed.key = append(ed.key[:0], ed.d.Bytes(n)...)
	return ed.key
}

// next decodes the next entry into e; atRestart says it stands on a
// restart point.
func (ed *entryDecoder) next(atRestart bool, e *dictEntry) {
	d := &ed.d
	maxShared := len(ed.key)
	if atRestart {
		maxShared = 0
	}
	kb := d.Byte()
	shared := ed.nibble(kb>>4, maxShared)
	n := ed.nibble(kb&0x0f, d.Len())
	ed.key = append(ed.key[:shared], d.Bytes(n)...)
	if atRestart {
		ed.sec = d.UvarintInt(ed.r.numSections)
		ed.off = d.UvarintInt(maxListLength)
		ed.nskip = 0
	}
	head := d.Byte()
	*e = dictEntry{kind: head & entryKindMask, length: -1, end: -1}
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
	case postingsRoaring, postingsRice:
		if e.kind == postingsRoaring && head>>entryRiceShift != 0 {
			d.Fail(fmt.Sprintf("bad entry head %#02x", head))
		}
		e.k = uint(head >> entryRiceShift)
		if head&entryNextSection != 0 {
			ed.sec, ed.off, ed.nskip = ed.sec+1, 0, 0
		}
		e.card = d.Uvarint()
		if e.kind == postingsRoaring || e.card > impliedLengthMaxCard {
			e.length = d.UvarintInt(maxListLength)
		}
		e.section, e.off, e.nskip = ed.sec, ed.off, ed.nskip
		copy(e.skips[:ed.nskip], ed.skips[:ed.nskip])
		switch {
		case d.Err() != nil:
		case e.card <= inlineMaxCardinality || e.card > math.MaxUint32+1:
			d.Fail(fmt.Sprintf("section list of %d ordinals", e.card))
		case e.section >= ed.r.numSections:
			d.Fail(fmt.Sprintf("section %d of %d", e.section, ed.r.numSections))
		case e.length >= 0 && ed.nskip == 0:
			if ed.off += e.length; ed.off > maxListLength {
				d.Fail("section offset out of range")
			}
		case ed.nskip == len(ed.skips):
			d.Fail("too many lists after a restart point")
		case e.length >= 0:
			ed.skips[ed.nskip] = uint64(e.length)
			ed.nskip++
		default:
			ed.skips[ed.nskip] = skipRice | uint64(e.k)<<skipKShift | e.card
			ed.nskip++
		}
	default:
		d.Fail(fmt.Sprintf("bad entry head %#02x", head))
	}
}

// settle moves the cursor to the end of the list of the entry just
// decoded, once reading it has found where that is, so that the next
// list need not skip the ones before.
func (ed *entryDecoder) settle(e *dictEntry) {
	if e.end >= 0 && e.section == ed.sec {
		ed.off, ed.nskip = e.end, 0
	}
}

// lookup finds the dictionary entry of t and decodes it into e.
func (r *PostingsReader) lookup(t Term, e *dictEntry) (bool, error) {
	ni, ok := r.findName(t.Name)
	if !ok {
		return false, nil
	}
	n := r.names[ni]
	j, v, err := r.restartFor(n, t.Value)
	if err != nil || j < 0 {
		return false, err
	}
	var scratch [64]byte
	ed := v.decoder(r, n.firstRestart+j, scratch[:0])
	m := min(dictRestartInterval, n.count-j*dictRestartInterval)
	for k := 0; k < m; k++ {
		ed.next(k == 0, e)
		if err := ed.d.Err(); err != nil {
			return false, err
		}
		if string(ed.key) == t.Value {
			return true, nil
		}
		if string(ed.key) > t.Value {
			return false, nil
		}
	}
	return false, nil
}

// restartFor returns the restart point of name n (counted from its first)
// that begins the run of values that would hold value: the last one whose
// value is <= value, or -1 when value sorts before all of them; and the
// page that holds it. It picks the page by the first values the page
// table holds, then searches the restart points of that page alone, so it
// decompresses one page.
func (r *PostingsReader) restartFor(n dictName, value string) (int, pageView, error) {
	first, end := n.firstRestart, n.firstRestart+(n.count+dictRestartInterval-1)/dictRestartInterval
	// The pages after the one that holds first begin with values of n
	// while they begin before end.
	p0, p1 := r.pageOf(first), r.pageOf(end-1)
	p := p0 + sort.Search(p1-p0, func(k int) bool { return string(r.pages[p0+1+k].firstKey) > value })
	v, err := r.page(p)
	if err != nil {
		return -1, pageView{}, err
	}
	lo, hi := max(first, v.first), min(end, v.end)
	var scratch [64]byte
	j := sort.Search(hi-lo, func(j int) bool {
		if err != nil {
			return true
		}
		ed := v.decoder(r, lo+j, scratch[:0])
		key := ed.restartKey()
		if err = ed.d.Err(); err != nil {
			return true
		}
		return string(key) > value
	})
	if err != nil {
		return -1, pageView{}, err
	}
	if j == 0 && lo != first {
		// The page's first value is at most value: the page table and the
		// page disagree.
		return -1, pageView{}, encoding.Corruptf("postings dictionary page", -1, "page %d out of order", p)
	}
	return lo + j - 1 - first, v, nil
}

func (r *PostingsReader) findName(name string) (int, bool) {
	i := sort.Search(len(r.names), func(i int) bool { return r.names[i].name >= name })
	return i, i < len(r.names) && r.names[i].name == name
}

// Postings returns the postings of t, the EmptyPostings sentinel when the
// block has no span with t. Lists stored as roaring bitmaps (the dense
// ones) are bitmap-backed, so the whole-bitmap fast paths of this package
// apply; the others are list-backed.
func (r *PostingsReader) Postings(t Term) (Postings, error) {
	var e dictEntry
	ok, err := r.lookup(t, &e)
	if err != nil {
		return nil, fmt.Errorf("postings of %v: %w", t, err)
	}
	if !ok {
		return EmptyPostings(), nil
	}
	p, err := r.list(&e)
	if err != nil {
		return nil, fmt.Errorf("postings of %v: %w", t, err)
	}
	return p, nil
}

// list reads the list of e and records in e.end where it ends.
func (r *PostingsReader) list(e *dictEntry) (Postings, error) {
	if e.kind == postingsInline {
		return NewListPostings(slices.Clone(e.inline[:e.card])), nil
	}
	const what = "postings dictionary entry"
	payload, err := r.section(e.section)
	if err != nil {
		return nil, err
	}
	pos := e.off
	if pos > len(payload) {
		return nil, encoding.Corruptf(what, -1, "list at %d past the end of section %d (%d bytes)", pos, e.section, len(payload))
	}
	for _, s := range e.skips[:e.nskip] {
		if s&skipRice != 0 {
			n, err := decodeRice(payload[pos:], uint(s>>skipKShift)&riceMaxK, s&skipCardMask, nil)
			if err != nil {
				return nil, err
			}
			pos += n
		} else if s > uint64(len(payload)-pos) {
			return nil, encoding.Corruptf(what, -1, "list at %d+%d past the end of section %d (%d bytes)", pos, s, e.section, len(payload))
		} else {
			pos += int(s)
		}
	}
	b := payload[pos:len(payload):len(payload)]
	if e.length >= 0 {
		if e.length > len(b) {
			return nil, encoding.Corruptf(what, -1, "list at %d+%d past the end of section %d (%d bytes)", pos, e.length, e.section, len(payload))
		}
		b = b[:e.length:e.length]
	}
	if e.kind == postingsRoaring {
		if err := checkRoaring(b, e.card); err != nil {
			return nil, err
		}
		bm := roaring.New()
		if n, err := bm.FromBuffer(b); err != nil || n != int64(len(b)) {
			return nil, encoding.Corruptf("roaring bitmap", -1, "read %d of %d bytes: %v", n, len(b), err)
		}
		e.end = pos + len(b)
		return NewBitmapPostings(bm), nil
	}
	if e.card > uint64(len(b))*8/uint64(e.k+1) { // before allocating
		return nil, encoding.Corruptf("rice postings list", 0, "%d ordinals of at least %d bits in %d bytes", e.card, e.k+1, len(b))
	}
	ords := make([]uint32, e.card)
	n, err := decodeRice(b, e.k, e.card, ords)
	if err != nil {
		return nil, err
	}
	if e.length >= 0 && n != e.length {
		return nil, encoding.Corruptf("rice postings list", n, "%d bytes after the list", e.length-n)
	}
	e.end = pos + n
	return NewListPostings(ords), nil
}

// Cardinality returns how many spans carry t, from the dictionary alone.
func (r *PostingsReader) Cardinality(t Term) (uint64, error) {
	var e dictEntry
	ok, err := r.lookup(t, &e)
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
	err := r.forEachValue(name, "", func(v []byte, _ *dictEntry) error {
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
	return r.forEachValue(name, from, func(v []byte, e *dictEntry) error {
		if to != "" && string(v) >= to {
			return errStopWalk
		}
		p, err := r.list(e)
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
func (r *PostingsReader) forEachValue(name, from string, fn func(v []byte, e *dictEntry) error) error {
	ni, ok := r.findName(name)
	if !ok {
		return nil
	}
	n := r.names[ni]
	first := 0
	var v pageView
	if from != "" {
		j, pv, err := r.restartFor(n, from)
		if err != nil {
			return fmt.Errorf("values of %q: %w", name, err)
		}
		first, v = max(j, 0)*dictRestartInterval, pv
	}
	var scratch [64]byte
	ed := entryDecoder{key: scratch[:0]}
	var e dictEntry
	for k := first; k < n.count; k++ {
		atRestart := k%dictRestartInterval == 0
		if atRestart {
			// Jump to the restart point rather than read on, so that a
			// restart offset that disagrees with the entries is noticed.
			i := n.firstRestart + k/dictRestartInterval
			if !v.holds(i) {
				var err error
				if v, err = r.page(r.pageOf(i)); err != nil {
					return fmt.Errorf("values of %q: %w", name, err)
				}
			}
			ed = v.decoder(r, i, ed.key)
		}
		ed.next(atRestart, &e)
		if err := ed.d.Err(); err != nil {
			return fmt.Errorf("values of %q: %w", name, err)
		}
		if string(ed.key) < from {
			continue
		}
		if err := fn(ed.key, &e); err == errStopWalk {
			return nil
		} else if err != nil {
			return err
		}
		ed.settle(&e)
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
		err := r.forEachValue(n.name, "", func(v []byte, e *dictEntry) error {
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
	payload, err := r.cached(i, func() ([]byte, error) {
		raw, err := r.load(i)
		if err != nil {
			return nil, fmt.Errorf("load postings section %d: %w", i, err)
		}
		payload, err := r.decodeSection(raw)
		if err != nil {
			return nil, fmt.Errorf("postings section %d: %w", i, err)
		}
		return payload, nil
	})
	return payload, err
}

// cached returns the bytes cached under key, or makes them with make and
// caches them.
func (r *PostingsReader) cached(key int, make func() ([]byte, error)) ([]byte, error) {
	r.mu.Lock()
	for k, c := range r.mu.lru {
		if c.key == key {
			copy(r.mu.lru[k:], r.mu.lru[k+1:])
			r.mu.lru[len(r.mu.lru)-1] = c
			r.mu.Unlock()
			return c.payload, nil
		}
	}
	r.mu.Unlock()

	payload, err := make()
	if err != nil {
		return nil, err
	}
	if r.cacheLimit < 0 {
		return payload, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.mu.lru {
		if c.key == key { // made meanwhile by another goroutine
			return c.payload, nil
		}
	}
	r.mu.lru = append(r.mu.lru, cachedSection{key, payload})
	r.mu.bytes += len(payload)
	for len(r.mu.lru) > 1 && r.mu.bytes > r.cacheLimit {
		r.mu.bytes -= len(r.mu.lru[0].payload)
		r.mu.lru[0] = cachedSection{}
		r.mu.lru = r.mu.lru[1:]
	}
	return payload, nil
}

// decoder returns the zstd decoder, made on first use.
func (r *PostingsReader) decoder() (*zstd.Decoder, error) {
	r.zstd.once.Do(func() {
		if r.zstd.dec != nil {
			return
		}
		r.zstd.dec, r.zstd.err = zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxMemory(maxPayloadLen),
			zstd.WithDecodeAllCapLimit(true), // never decode past the stated length
			zstd.IgnoreChecksum(true),        // the value's CRC32C covers the frame
		)
	})
	return r.zstd.dec, r.zstd.err
}

// decompress returns the n bytes that the zstd frame b holds.
func (r *PostingsReader) decompress(b []byte, n int, what string) ([]byte, error) {
	if n == 0 || n/zstdMaxRatio > len(b) {
		return nil, encoding.Corruptf(what, 0, "%d bytes cannot hold %d", len(b), n)
	}
	dec, err := r.decoder()
	if err != nil {
		return nil, fmt.Errorf("postings decoder: %w", err)
	}
	out, err := encoding.DecodeFrame(dec, b, nil, n)
	if err != nil {
		return nil, encoding.Corruptf(what, 0, "zstd: %v", err)
	}
	return out, nil
}

// decodeSection checks a section value and returns its payload,
// decompressed.
func (r *PostingsReader) decodeSection(b []byte) ([]byte, error) {
	const what = "postings section"
	if len(b) < sectionHeaderLen+postingsTrailerLen {
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
	switch c := b[5]; c {
	case compressionNone:
		return body[sectionHeaderLen:len(body):len(body)], nil
	case compressionZstd:
		d := encoding.NewDecbuf(body[sectionHeaderLen:], what)
		n := d.UvarintInt(maxPayloadLen)
		if err := d.Err(); err != nil {
			return nil, err
		}
		return r.decompress(d.B, n, what)
	default:
		return nil, encoding.Corruptf(what, 5, "unknown compression %d", c)
	}
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
