package query

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/cespare/xxhash/v2"

	"github.com/tracedb/tracedb/encoding"
)

// A page token continues a search where its previous page ended. It is
// opaque to callers; page.md describes its bytes. It carries the position
// of the last result returned (a sort key, a trace ID and, for spans, a
// span ID and a content hash) and a hash of the query's conditions, so that
// a token presented with another query is refused rather than silently
// answering something else. The page size (Limit) is not part of the hash:
// it may change from page to page.
//
// Tokens are stable: they name a position in the result order, not an
// offset, so a page continues correctly after writes, and never returns a
// result twice for unchanged data.

// Page token constants; see page.md.
const (
	pageTokenMagic   = 0x7a // first byte of every token
	pageTokenVersion = 1
	// pageTokenLen is the length of a decoded token: magic, version,
	// kind, order, query hash (8), key (8), trace ID (16), span ID (8),
	// tie (8), CRC32C (4).
	pageTokenLen = 1 + 1 + 1 + 1 + 8 + 8 + 16 + 8 + 8 + 4
)

// pageKind says which search a token belongs to.
type pageKind byte

const (
	pageTraces pageKind = 1
	pageSpans  pageKind = 2
)

func (k pageKind) String() string {
	switch k {
	case pageTraces:
		return "trace search"
	case pageSpans:
		return "span search"
	}
	return "kind " + strconv.Itoa(int(k))
}

// pageCursor is the position a token carries: the last result returned.
type pageCursor struct {
	kind  pageKind
	order byte   // the span sort order; 0 for traces
	hash  uint64 // of the query's conditions
	key   uint64 // trace: latest matching start; span: the order's key
	trace encoding.TraceID
	span  encoding.SpanID
	tie   uint64 // span: content hash telling apart spans with equal IDs
}

// pageTokenEncoding is strict: a token has one spelling, so that trailing
// bits cannot make distinct strings of one cursor.
var pageTokenEncoding = base64.RawURLEncoding.Strict()

// encode returns the token of c.
func (c *pageCursor) encode() string {
	var b encoding.Encbuf
	b.B = make([]byte, 0, pageTokenLen)
	b.PutByte(pageTokenMagic)
	b.PutByte(pageTokenVersion)
	b.PutByte(byte(c.kind))
	b.PutByte(c.order)
	b.PutBE64(c.hash)
	b.PutBE64(c.key)
	b.PutBytes(c.trace[:])
	b.PutBytes(c.span[:])
	b.PutBE64(c.tie)
	b.PutBE32(encoding.Checksum(b.B))
	return pageTokenEncoding.EncodeToString(b.B)
}

// errPageToken is wrapped by every refusal of a page token, itself
// wrapping ErrInvalidQuery.
var errPageToken = fmt.Errorf("%w: page token", ErrInvalidQuery)

// decodePageToken reads token, which must come from a search of kind and
// of a query whose conditions hash to hash. Every refusal wraps
// ErrInvalidQuery; a token whose bytes are damaged also wraps
// encoding.ErrCorrupt.
func decodePageToken(token string, kind pageKind, hash uint64) (pageCursor, error) {
	raw, err := pageTokenEncoding.DecodeString(token)
	if err == nil && pageTokenEncoding.EncodedLen(len(raw)) != len(token) {
		// The decoder skips line breaks; a token has one spelling.
		err = errors.New("line breaks in the token")
	}
	if err != nil {
		return pageCursor{}, fmt.Errorf("%w is not base64url: %w", errPageToken, encoding.Corruptf("page token", 0, "%v", err))
	}
	c, err := readPageToken(raw)
	if err != nil {
		return pageCursor{}, fmt.Errorf("%w: %w", errPageToken, err)
	}
	if c.kind != kind {
		return pageCursor{}, fmt.Errorf("%w is for a %s, not a %s", errPageToken, c.kind, kind)
	}
	if c.hash != hash {
		return pageCursor{}, fmt.Errorf("%w was issued for another query: a token continues only the query that returned it", errPageToken)
	}
	return c, nil
}

// readPageToken decodes a token's bytes; errors wrap encoding.ErrCorrupt.
func readPageToken(raw []byte) (pageCursor, error) {
	d := encoding.NewDecbuf(raw, "page token")
	if len(raw) != pageTokenLen {
		d.Fail(fmt.Sprintf("length %d, want %d", len(raw), pageTokenLen))
		return pageCursor{}, d.Err()
	}
	if sum := encoding.Checksum(raw[:len(raw)-4]); sum != beUint32(raw[len(raw)-4:]) {
		d.Fail("checksum mismatch")
		return pageCursor{}, d.Err()
	}
	if d.Byte() != pageTokenMagic {
		d.Fail("bad magic")
		return pageCursor{}, d.Err()
	}
	if v := d.Byte(); v != pageTokenVersion {
		d.Fail(fmt.Sprintf("unknown version %d", v))
		return pageCursor{}, d.Err()
	}
	var c pageCursor
	c.kind = pageKind(d.Byte())
	c.order = d.Byte()
	c.hash = d.BE64()
	c.key = d.BE64()
	copy(c.trace[:], d.Bytes(len(c.trace)))
	copy(c.span[:], d.Bytes(len(c.span)))
	c.tie = d.BE64()
	d.BE32()
	if err := d.Err(); err != nil {
		return pageCursor{}, err
	}
	if c.kind != pageTraces && c.kind != pageSpans {
		d.Fail(fmt.Sprintf("unknown kind %d", c.kind))
		return pageCursor{}, d.Err()
	}
	return c, nil
}

func beUint32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// queryHash hashes the conditions of q, all but Limit and PageToken, in a
// canonical form (attributes sorted, the filter as its String).
func queryHash(q *TraceQuery) uint64 {
	var b encoding.Encbuf
	b.PutUvarintString(q.Service)
	b.PutUvarintString(q.Operation)
	keys := make([]string, 0, len(q.Attributes))
	for k := range q.Attributes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b.PutUvarint(uint64(len(keys)))
	for _, k := range keys {
		b.PutUvarintString(k)
		b.PutUvarintString(q.Attributes[k])
	}
	b.PutBE64(q.StartTime.Start)
	b.PutBE64(q.StartTime.End)
	b.PutVarint(int64(q.DurationMin))
	b.PutVarint(int64(q.DurationMax))
	if q.Filter != nil {
		b.PutByte(1)
		b.PutUvarintString(q.Filter.String())
	} else {
		b.PutByte(0)
	}
	return xxhash.Sum64(b.B)
}
