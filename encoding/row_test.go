package encoding_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/internal/spangen"
)

// rowTables gives every span's resource and scope an index.
func rowTables(spans []*encoding.Span) ([]*encoding.Resource, []*encoding.Scope, func(*encoding.Span) (uint32, uint32)) {
	var res []*encoding.Resource
	var scopes []*encoding.Scope
	ri, si := map[*encoding.Resource]uint32{}, map[*encoding.Scope]uint32{}
	for _, s := range spans {
		if _, ok := ri[s.Resource]; !ok {
			ri[s.Resource] = uint32(len(res))
			res = append(res, s.Resource)
		}
		if _, ok := si[s.Scope]; !ok {
			si[s.Scope] = uint32(len(scopes))
			scopes = append(scopes, s.Scope)
		}
	}
	return res, scopes, func(s *encoding.Span) (uint32, uint32) { return ri[s.Resource], si[s.Scope] }
}

func TestRowRoundTrip(t *testing.T) {
	for seed := uint64(0); seed < 200; seed++ {
		spans := spangen.Random(rand.New(rand.NewPCG(seed, 5)), 30)
		res, scopes, idx := rowTables(spans)
		for i, s := range spans {
			r, sc := idx(s)
			row := encoding.AppendRow([]byte("x"), s, r, sc)[1:]
			got, err := encoding.DecodeRow(row, res, scopes)
			if err != nil {
				t.Fatalf("seed %d span %d: %v", seed, i, err)
			}
			if !got.Equal(s) || got.Resource != s.Resource || got.Scope != s.Scope {
				t.Fatalf("seed %d span %d: round trip differs", seed, i)
			}
			if (got.Attrs == nil) != (s.Attrs == nil) {
				t.Fatalf("seed %d span %d: nil and empty attributes not kept apart", seed, i)
			}
			id, start, sid, err := encoding.RowKey(row)
			if err != nil || id != s.TraceID || start != s.StartUnixNano || sid != s.SpanID {
				t.Fatalf("seed %d span %d: RowKey = %s %d %s %v", seed, i, id, start, sid, err)
			}
		}
	}
}

func TestRowDamage(t *testing.T) {
	spans := spangen.Random(rand.New(rand.NewPCG(9, 9)), 5)
	res, scopes, idx := rowTables(spans)
	r, sc := idx(spans[0])
	row := encoding.AppendRow(nil, spans[0], r, sc)
	for n := range len(row) {
		if _, err := encoding.DecodeRow(row[:n], res, scopes); !errors.Is(err, encoding.ErrCorrupt) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
	if _, err := encoding.DecodeRow(append(bytes.Clone(row), 0), res, scopes); !errors.Is(err, encoding.ErrCorrupt) {
		t.Fatalf("trailing byte: %v", err)
	}
	if _, err := encoding.DecodeRow(row, nil, nil); !errors.Is(err, encoding.ErrCorrupt) {
		t.Fatalf("resource out of range: %v", err)
	}
}

func FuzzDecodeRow(f *testing.F) {
	spans := spangen.Random(rand.New(rand.NewPCG(3, 3)), 20)
	res, scopes, idx := rowTables(spans)
	for _, s := range spans {
		r, sc := idx(s)
		f.Add(encoding.AppendRow(nil, s, r, sc))
	}
	f.Fuzz(func(t *testing.T, row []byte) {
		s, err := encoding.DecodeRow(row, res, scopes)
		if err != nil {
			if !errors.Is(err, encoding.ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		r, sc := idx(s)
		again, err := encoding.DecodeRow(encoding.AppendRow(nil, s, r, sc), res, scopes)
		if err != nil || !again.Equal(s) {
			t.Fatalf("a decoded row does not survive a round trip: %v", err)
		}
	})
}
