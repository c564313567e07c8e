package index

import (
	"encoding/binary"
	"math"
	"math/bits"

	"github.com/tracedb/tracedb/encoding"
)

// Rice lists: the gaps between consecutive ordinals, each coded with a
// Rice code of parameter k (a Golomb code whose divisor is 2^k), bit-packed
// least significant bit first. Span ordinals of one term sit at random
// places in a block sorted by trace ID, so their gaps are close to
// geometric, and a Rice code with the best k costs within a few percent of
// the binomial bound log2(C(spans, n)) bits. See blockpostings.md, "Rice
// list".

// riceMaxK is the largest Rice parameter: it fits the 5 bits the
// dictionary entry gives it, and a gap below 2^32 then has a quotient of
// at most 1.
const riceMaxK = 31

// riceGapSum returns the sum of the gaps of ords (each ordinal minus the
// previous one minus 1, the first counted from -1).
func riceGapSum(ords []uint32) uint64 {
	return uint64(ords[len(ords)-1]) + 1 - uint64(len(ords))
}

// riceBits returns the size in bits of ords coded with parameter k.
func riceBits(ords []uint32, k uint) uint64 {
	n := uint64(len(ords)) * uint64(k+1)
	prev := uint32(math.MaxUint32) // -1: the first gap is ords[0]
	for _, v := range ords {
		n += uint64(v-prev-1) >> k
		prev = v
	}
	return n
}

// riceParam returns the Rice parameter that codes ords (at least one
// ordinal) in the fewest bits, and that size in bytes. The best k for
// geometric gaps of mean m is near log2(m·ln 2); the sizes of the three
// candidates around it are computed exactly.
func riceParam(ords []uint32) (k uint, size int) {
	mean := riceGapSum(ords) / uint64(len(ords))
	guess := 0
	if m := mean * 11 / 16; m > 0 { // ln 2 ≈ 11/16
		guess = bits.Len64(m) - 1
	}
	best := uint64(math.MaxUint64)
	for c := max(guess-1, 0); c <= min(guess+1, riceMaxK); c++ {
		if b := riceBits(ords, uint(c)); b < best {
			best, k = b, uint(c)
		}
	}
	return k, int((best + 7) / 8)
}

// appendRice appends ords (strictly increasing, at least one) coded with
// parameter k; the last byte is padded with zero bits.
func appendRice(dst []byte, ords []uint32, k uint) []byte {
	var acc uint64 // pending bits, the first in bit 0
	var n uint     // number of pending bits, < 8 between gaps
	mask := uint64(1)<<k - 1
	prev := uint32(math.MaxUint32)
	for _, v := range ords {
		g := uint64(v - prev - 1)
		prev = v
		// The quotient in unary: q zero bits, then a one. n < 8 here, so
		// 56 more bits fit in acc.
		for q := g >> k; q > 0; {
			step := min(q, 56)
			n += uint(step)
			q -= step
			for ; n >= 8; n -= 8 {
				dst = append(dst, byte(acc))
				acc >>= 8
			}
		}
		acc |= 1 << n
		n++
		// The remainder in k bits; n+k <= 7+1+31 fits in acc.
		acc |= (g & mask) << n
		n += k
		for ; n >= 8; n -= 8 {
			dst = append(dst, byte(acc))
			acc >>= 8
		}
	}
	if n > 0 {
		dst = append(dst, byte(acc))
	}
	return dst
}

// riceReader reads a Rice list from b; bit i of the stream is bit i%8 of
// b[i/8].
type riceReader struct {
	b   []byte
	pos uint64 // next bit
}

// window returns the 64 bits from pos on (zeros past the end of b); at
// least 57 of them are bits of the stream or the zeros after it.
func (r *riceReader) window() uint64 {
	i := r.pos >> 3
	var w uint64
	if i+8 <= uint64(len(r.b)) {
		w = binary.LittleEndian.Uint64(r.b[i:])
	} else {
		for j := uint64(len(r.b)); j > i; j-- {
			w = w<<8 | uint64(r.b[j-1])
		}
	}
	return w >> (r.pos & 7)
}

// decodeRice decodes card ordinals coded with parameter k from the start
// of b into out (when out is not nil, it has card elements) and returns
// the number of bytes the list takes. Ordinals that overflow 32 bits, a
// stream that runs past b and padding bits that are not zero are
// corruption.
func decodeRice(b []byte, k uint, card uint64, out []uint32) (int, error) {
	const what = "rice postings list"
	if k > riceMaxK {
		return 0, encoding.Corruptf(what, 0, "rice parameter %d", k)
	}
	// Every ordinal takes at least k+1 bits: this bounds card before any
	// caller allocates for it.
	if card > uint64(len(b))*8/uint64(k+1) {
		return 0, encoding.Corruptf(what, 0, "%d ordinals of at least %d bits in %d bytes", card, k+1, len(b))
	}
	r := riceReader{b: b}
	end := uint64(len(b)) * 8
	mask := uint64(1)<<k - 1
	maxQ := uint64(math.MaxUint32) >> k
	next := uint64(0) // the smallest value the next ordinal may take
	for i := uint64(0); i < card; {
		// Fast path: decode the gaps that lie whole within 64 bits read at
		// once, while 8 bytes remain.
		if p := r.pos >> 3; p+8 <= uint64(len(b)) {
			w := binary.LittleEndian.Uint64(b[p:]) >> (r.pos & 7)
			avail := 64 - r.pos&7
			start := i
			for i < card {
				t := uint64(bits.TrailingZeros64(w))
				need := t + 1 + uint64(k)
				if need > avail {
					break
				}
				// Shift counts masked to 63 (all below 64 here) compile
				// to single shifts.
				v := next + (t<<(k&63) | (w>>(t&63)>>1)&mask)
				if v > math.MaxUint32 {
					return 0, encoding.Corruptf(what, int(r.pos>>3), "ordinal %d past 32 bits", i)
				}
				if out != nil {
					out[i] = uint32(v)
				}
				next = v + 1
				w >>= need & 63 // need = 64 leaves avail 0: w is not read again
				avail -= need
				r.pos += need
				i++
			}
			if i > start {
				continue
			}
		}
		// Slow path: one gap near the end of b, or one whose quotient
		// runs past the 57 bits a window is sure to hold.
		w := r.window()
		var q uint64
		for w == 0 {
			step := 64 - r.pos&7
			q += step
			r.pos += step
			if r.pos >= end || q > maxQ {
				return 0, encoding.Corruptf(what, int(min(r.pos, end)>>3), "unterminated quotient at ordinal %d", i)
			}
			w = r.window()
		}
		t := uint64(bits.TrailingZeros64(w))
		q += t
		r.pos += t + 1
		rem := r.window() & mask
		r.pos += uint64(k)
		if r.pos > end {
			return 0, encoding.Corruptf(what, int(end>>3), "list runs past the end at ordinal %d", i)
		}
		if q > maxQ || next+(q<<k|rem) > math.MaxUint32 {
			return 0, encoding.Corruptf(what, int(r.pos>>3), "ordinal %d past 32 bits", i)
		}
		v := next + (q<<k | rem)
		if out != nil {
			out[i] = uint32(v)
		}
		next = v + 1
		i++
	}
	n := (r.pos + 7) >> 3
	if r.pos&7 != 0 && b[n-1]>>(r.pos&7) != 0 {
		return 0, encoding.Corruptf(what, int(n-1), "padding bits not zero")
	}
	return int(n), nil
}
