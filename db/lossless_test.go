package db

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/internal/spangen"
)

// storable makes spangen.Random's adversarial spans acceptable to the
// store and representable in pdata: invalid UTF-8 in names (rejected by
// validation, tested elsewhere) is mended, and duplicate keys in a map (which
// pdata's Map cannot hold) keep their first occurrence. Everything else —
// every value type, nesting, NaN payloads, -0, extreme times and counts —
// goes through untouched.
func storable(spans []*encoding.Span) []*encoding.Span {
	for _, s := range spans {
		s.Name = strings.ToValidUTF8(s.Name, "?")
		s.Attrs = dedupKeys(s.Attrs)
		for i := range s.Events {
			s.Events[i].Name = strings.ToValidUTF8(s.Events[i].Name, "?")
			s.Events[i].Attrs = dedupKeys(s.Events[i].Attrs)
		}
		for i := range s.Links {
			s.Links[i].Attrs = dedupKeys(s.Links[i].Attrs)
		}
		if s.Resource != nil {
			s.Resource.Attrs = dedupKeys(s.Resource.Attrs)
		}
		if s.Scope != nil {
			s.Scope.Name = strings.ToValidUTF8(s.Scope.Name, "?")
			s.Scope.Attrs = dedupKeys(s.Scope.Attrs)
		}
	}
	return spans
}

func dedupKeys(kvs []encoding.KeyValue) []encoding.KeyValue {
	seen := map[string]bool{}
	out := kvs[:0]
	for _, kv := range kvs {
		kv.Key = strings.ToValidUTF8(kv.Key, "?")
		if seen[kv.Key] {
			continue
		}
		seen[kv.Key] = true
		dedupValue(&kv.Value)
		out = append(out, kv)
	}
	if kvs != nil && len(out) == 0 {
		return kvs[:0]
	}
	return out
}

func dedupValue(v *encoding.Value) {
	switch v.Type {
	case encoding.ValueMap:
		v.Kids = dedupKeys(v.Kids)
	case encoding.ValueArray:
		for i := range v.Kids {
			dedupValue(&v.Kids[i].Value)
		}
	}
}

// byTrace groups want by trace ID, dropping exact duplicates (the store
// returns those once).
func byTrace(spans []*encoding.Span) map[encoding.TraceID][]*encoding.Span {
	m := map[encoding.TraceID][]*encoding.Span{}
	for _, s := range spans {
		if !slices.ContainsFunc(m[s.TraceID], s.Equal) {
			m[s.TraceID] = append(m[s.TraceID], s)
		}
	}
	return m
}

// sameSpans reports whether got and want hold the same spans, in any order.
func sameSpans(got, want []*encoding.Span) bool {
	if len(got) != len(want) {
		return false
	}
	used := make([]bool, len(got))
	for _, w := range want {
		found := false
		for i, g := range got {
			if !used[i] && g.Equal(w) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// TestLossless writes random spans of every shape through the public API
// and checks that every one comes back identical from the head, from disk
// blocks, and after a reopen (once from blocks, once from WAL replay).
func TestLossless(t *testing.T) {
	for seed := uint64(1); seed <= 12; seed++ {
		r := rand.New(rand.NewPCG(seed, 99))
		want := storable(spangen.Random(r, 50+r.IntN(400)))
		dir := t.TempDir()
		opts := testOptions()
		opts.PartitionWidth = time.Duration([]int64{1, 60}[seed%2] * int64Minute)
		d := openTest(t, dir, opts)
		ctx := context.Background()
		// Write in a few batches, as clients do.
		for lo := 0; lo < len(want); {
			hi := min(len(want), lo+1+r.IntN(100))
			res := mustWrite(t, d, ctx, encoding.ToTraces(want[lo:hi]))
			if len(res.Rejected) > 0 {
				t.Fatalf("seed %d: rejected %v", seed, res.Rejected[0])
			}
			lo = hi
		}
		traces := byTrace(want)
		check := func(stage string) {
			t.Helper()
			for id, w := range traces {
				got := collect(t, d, ctx, id)
				if !sameSpans(got, w) {
					t.Fatalf("seed %d %s: trace %s: got %d spans, want %d, or contents differ", seed, stage, id, len(got), len(w))
				}
			}
		}
		check("head")
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		d = openTest(t, dir, opts) // flushed at Close: reads come from blocks
		check("blocks after reopen")
		// Half in the head, replayed from the WAL after a reopen without flush.
		extra := storable(spangen.Random(r, 100))
		mustWrite(t, d, ctx, encoding.ToTraces(extra))
		for id, w := range byTrace(extra) {
			traces[id] = append(traces[id], w...)
		}
		d.closeWithoutFlush(t)
		d = openTest(t, dir, opts)
		check("wal replay")
		if err := d.Flush(); err != nil {
			t.Fatal(err)
		}
		check("blocks and replayed head flushed")
		d.Close()
	}
}

const int64Minute = int64(60e9)
