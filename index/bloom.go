package index

import (
	"encoding/binary"
	"math"

	"github.com/cespare/xxhash/v2"

	"github.com/tracedb/tracedb/encoding"
)

// The trace-ID bloom filter format, described in bloom.md.
const (
	bloomMagic uint32 = 0x54444246 // "TDBF"

	// BloomFormatV1 is the first version of the bloom filter format.
	BloomFormatV1 byte = 1

	bloomHeaderLen  = 6 // magic (4), version (1), hash count (1)
	bloomTrailerLen = 4 // CRC32C

	// DefaultBloomFPR is the false-positive rate bloom filters aim at
	// unless told otherwise.
	DefaultBloomFPR = 0.01

	bloomMaxHashes = 30
	// bloomMaxWords caps a filter at 2^32 bits (512 MiB), the most that
	// 32-bit probe positions can address.
	bloomMaxWords = 1 << 26
)

// Bloom is a bloom filter over trace IDs: MayContain is true for every ID
// added and, for others, false except with about the chosen false-positive
// rate. Each ID is hashed once with xxhash64 over its 16 bytes (so IDs that
// are not random, such as 64-bit Jaeger IDs with a zero high half, spread
// as well as random ones), and the k probe positions are derived from the
// two halves of that hash by enhanced double hashing.
//
// Add is not safe for concurrent use; MayContain is, once the filter is
// built or decoded.
type Bloom struct {
	k    uint32
	bits []uint64
}

// NewBloom returns an empty filter sized for n IDs at false-positive rate
// fpr (DefaultBloomFPR when fpr is not in (0, 1)).
func NewBloom(n int, fpr float64) *Bloom {
	if n < 1 {
		n = 1
	}
	if !(fpr > 0 && fpr < 1) {
		fpr = DefaultBloomFPR
	}
	// Optimal size m = -n ln p / (ln 2)^2 bits, and k = m/n ln 2 probes.
	m := math.Ceil(-float64(n) * math.Log(fpr) / (math.Ln2 * math.Ln2))
	words := min(max(int(math.Ceil(m/64)), 1), bloomMaxWords)
	k := min(max(int(math.Round(float64(words*64)/float64(n)*math.Ln2)), 1), bloomMaxHashes)
	return &Bloom{k: uint32(k), bits: make([]uint64, words)}
}

// BuildBloom returns a filter holding ids, sized for len(ids) at fpr.
func BuildBloom(ids []encoding.TraceID, fpr float64) *Bloom {
	b := NewBloom(len(ids), fpr)
	for _, id := range ids {
		b.Add(id)
	}
	return b
}

// Add adds id to the filter.
func (b *Bloom) Add(id encoding.TraceID) {
	h := xxhash.Sum64(id[:])
	x, y := uint32(h), uint32(h>>32)
	m := uint64(len(b.bits)) * 64
	for i := uint32(0); i < b.k; i++ {
		pos := uint64(x) * m >> 32 // in [0, m) without a division
		b.bits[pos>>6] |= 1 << (pos & 63)
		x += y
		y += i
	}
}

// MayContain reports whether id may have been added: always true when it
// was, and false with high probability when it was not.
func (b *Bloom) MayContain(id encoding.TraceID) bool {
	h := xxhash.Sum64(id[:])
	x, y := uint32(h), uint32(h>>32)
	m := uint64(len(b.bits)) * 64
	for i := uint32(0); i < b.k; i++ {
		pos := uint64(x) * m >> 32
		if b.bits[pos>>6]&(1<<(pos&63)) == 0 {
			return false
		}
		x += y
		y += i
	}
	return true
}

// NumBits returns the size of the filter in bits.
func (b *Bloom) NumBits() int { return len(b.bits) * 64 }

// NumHashes returns the number of probes per ID.
func (b *Bloom) NumHashes() int { return int(b.k) }

// Encode returns the filter in the format of bloom.md.
func (b *Bloom) Encode() []byte {
	e := encoding.Encbuf{B: make([]byte, 0, bloomHeaderLen+binary.MaxVarintLen64+8*len(b.bits)+bloomTrailerLen)}
	e.PutBE32(bloomMagic)
	e.PutByte(BloomFormatV1)
	e.PutByte(byte(b.k))
	e.PutUvarint(uint64(len(b.bits)))
	for _, w := range b.bits {
		e.PutBE64(w)
	}
	e.PutBE32(encoding.Checksum(e.B))
	return e.B
}

// DecodeBloom decodes a filter that Encode produced. The result does not
// alias data. Errors wrap encoding.ErrCorrupt.
func DecodeBloom(data []byte) (*Bloom, error) {
	const what = "trace id bloom filter"
	if len(data) < bloomHeaderLen+bloomTrailerLen {
		return nil, encoding.Corruptf(what, 0, "%d bytes, too short", len(data))
	}
	if m := binary.BigEndian.Uint32(data); m != bloomMagic {
		return nil, encoding.Corruptf(what, 0, "bad magic %#08x", m)
	}
	if v := data[4]; v != BloomFormatV1 {
		return nil, encoding.Corruptf(what, 4, "unknown version %d", v)
	}
	body := data[:len(data)-bloomTrailerLen]
	if want, got := binary.BigEndian.Uint32(data[len(body):]), encoding.Checksum(body); want != got {
		return nil, encoding.Corruptf(what, len(body), "checksum %#08x, want %#08x", got, want)
	}
	d := encoding.NewDecbuf(body[5:], what)
	k := d.Byte()
	words := d.UvarintInt(min(d.Len()/8, bloomMaxWords))
	if d.Err() == nil && (k < 1 || k > bloomMaxHashes) {
		d.Fail("hash count out of range")
	}
	if d.Err() == nil && words < 1 {
		d.Fail("no bits")
	}
	if d.Err() == nil && d.Len() != 8*words {
		d.Fail("length does not match the bit count")
	}
	if err := d.Err(); err != nil {
		return nil, err
	}
	b := &Bloom{k: uint32(k), bits: make([]uint64, words)}
	for i := range b.bits {
		b.bits[i] = d.BE64()
	}
	return b, d.Err()
}
