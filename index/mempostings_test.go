package index

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
)

func TestMemPostingsAgainstModel(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 10))
	m := NewMemPostings()
	model := map[Term][]uint32{}
	ord := uint32(0)
	for span := 0; span < 3000; span++ {
		ord += uint32(r.IntN(3)) // gaps are allowed
		var ts []Term
		for n := 1 + r.IntN(8); n > 0; n-- {
			t := Term{fmt.Sprintf("n%d", r.IntN(5)), fmt.Sprintf("v%d", r.IntN(50))}
			ts = append(ts, t)
			if l := model[t]; len(l) == 0 || l[len(l)-1] != ord {
				model[t] = append(l, ord)
			}
		}
		var err error
		if span%2 == 0 {
			err = m.AddTerms(ord, ts)
		} else {
			for _, t := range ts {
				if err = m.Add(ord, t); err != nil {
					break
				}
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if m.Len() != int(ord)+1 {
		t.Fatalf("Len = %d, want %d", m.Len(), ord+1)
	}
	if m.NumTerms() != len(model) {
		t.Fatalf("NumTerms = %d, want %d", m.NumTerms(), len(model))
	}
	var entries uint64
	names := map[string][]string{}
	for term, want := range model {
		entries += uint64(len(want))
		names[term.Name] = append(names[term.Name], term.Value)
		got, err := Expand(m.Postings(term))
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("%v: %v, %v; want %v", term, got, err, want)
		}
		if c := m.Cardinality(term); c != uint64(len(want)) {
			t.Fatalf("%v: Cardinality = %d, want %d", term, c, len(want))
		}
	}
	if m.NumEntries() != entries {
		t.Fatalf("NumEntries = %d, want %d", m.NumEntries(), entries)
	}
	if got, want := m.Names(), slices.Sorted(maps.Keys(names)); !slices.Equal(got, want) {
		t.Fatalf("Names = %v, want %v", got, want)
	}
	for name, vs := range names {
		slices.Sort(vs)
		if got := m.Values(name); !slices.Equal(got, vs) {
			t.Fatalf("Values(%q) = %v, want %v", name, got, vs)
		}
	}
	if !IsEmpty(m.Postings(Term{"n0", "absent"})) || !IsEmpty(m.Postings(Term{"absent", "v1"})) {
		t.Fatal("absent term is not the empty sentinel")
	}
	if m.Values("absent") == nil || len(m.Values("absent")) != 0 {
		t.Fatal("Values of an absent name")
	}

	var lists []termList
	for term, ords := range model {
		lists = append(lists, termList{term, ords})
	}
	slices.SortFunc(lists, func(a, b termList) int { return a.t.Compare(b.t) })
	checkPostingsRange(t, m.PostingsRange, lists)

	var prev Term
	n := 0
	err := m.ForEach(func(term Term, ords []uint32) error {
		if n > 0 && term.Compare(prev) <= 0 {
			t.Fatalf("ForEach: %v after %v", term, prev)
		}
		if !slices.Equal(ords, model[term]) {
			t.Fatalf("ForEach: %v: %v, want %v", term, ords, model[term])
		}
		prev = term
		n++
		return nil
	})
	if err != nil || n != len(model) {
		t.Fatalf("ForEach: %d terms, %v", n, err)
	}
	stop := errors.New("stop")
	if err := m.ForEach(func(Term, []uint32) error { return stop }); err != stop {
		t.Fatalf("ForEach error = %v", err)
	}
}

func TestMemPostingsOrder(t *testing.T) {
	m := NewMemPostings()
	a := Term{"a", "1"}
	for _, step := range []struct {
		ord     uint32
		wantErr bool
	}{{5, false}, {5, false}, {7, false}, {6, true}, {7, false}, {8, false}} {
		err := m.Add(step.ord, a)
		if (err != nil) != step.wantErr || step.wantErr && !errors.Is(err, ErrOutOfOrder) {
			t.Fatalf("Add(%d) = %v, want error %v", step.ord, err, step.wantErr)
		}
	}
	if err := m.AddTerms(2, []Term{a}); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("AddTerms out of order: %v", err)
	}
	got, _ := Expand(m.Postings(a))
	if !slices.Equal(got, []uint32{5, 7, 8}) {
		t.Fatalf("got %v", got)
	}
}

// TestMemPostingsScratchTerms checks that terms whose strings point into a
// buffer that is later overwritten are copied when stored.
func TestMemPostingsScratchTerms(t *testing.T) {
	m := NewMemPostings()
	buf := []byte("name=value")
	if err := m.Add(0, Term{string(buf[:4]), string(buf[5:])}); err != nil {
		t.Fatal(err)
	}
	x := NewTermExtractor(0)
	for i, s := range benchSpans(50) {
		x.SpanTerms(s, func(t Term) {
			if err := m.Add(uint32(i+1), t); err != nil {
				panic(err)
			}
		})
	}
	want := NewMemPostings()
	for i, s := range benchSpans(50) {
		SpanTerms(s, 0, func(t Term) { want.Add(uint32(i+1), t) })
	}
	for _, name := range want.Names() {
		if got := m.Values(name); !slices.Equal(got, want.Values(name)) {
			t.Fatalf("Values(%q) = %v, want %v", name, got, want.Values(name))
		}
	}
}

// TestMemPostingsConcurrent reads while one goroutine adds; run with -race.
// Every postings a reader takes must be a sorted prefix of the final list.
func TestMemPostingsConcurrent(t *testing.T) {
	m := NewMemPostings()
	terms := []Term{{"s", "a"}, {"s", "b"}, {"k", "1"}}
	const spans = 20000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ord := uint32(0); ord < spans; ord++ {
			if err := m.AddTerms(ord, []Term{terms[ord%3], terms[2]}); err != nil {
				panic(err)
			}
		}
	}()
	var snaps [][]uint32
	for i := 0; i < 200; i++ {
		got, err := Expand(m.Postings(terms[2]))
		if err != nil {
			t.Fatal(err)
		}
		_ = m.Values("s")
		snaps = append(snaps, got)
	}
	wg.Wait()
	final, _ := Expand(m.Postings(terms[2]))
	if len(final) != spans {
		t.Fatalf("final list holds %d ordinals", len(final))
	}
	for _, s := range snaps {
		if !slices.Equal(s, final[:len(s)]) {
			t.Fatal("a snapshot is not a prefix of the final list")
		}
	}
}

func BenchmarkMemPostingsAdd(b *testing.B) {
	spans := benchSpans(4096)
	x := NewTermExtractor(DefaultMaxValueLen)
	b.Run("Add", func(b *testing.B) {
		m := NewMemPostings()
		b.ReportAllocs()
		ord := uint32(0)
		for b.Loop() {
			x.SpanTerms(spans[ord&4095], func(t Term) { _ = m.Add(ord, t) })
			ord++
		}
		b.ReportMetric(float64(m.NumEntries())/float64(ord), "terms/span")
	})
	b.Run("AddTerms", func(b *testing.B) {
		m := NewMemPostings()
		var ts []Term
		collect := func(t Term) { ts = append(ts, t) }
		b.ReportAllocs()
		ord := uint32(0)
		for b.Loop() {
			ts = ts[:0]
			x.SpanTerms(spans[ord&4095], collect)
			_ = m.AddTerms(ord, ts)
			ord++
		}
	})
}

// BenchmarkMemPostingsMemory reports the heap a head's postings take for
// 100,000 ClickHouse-shaped spans.
func BenchmarkMemPostingsMemory(b *testing.B) {
	const n = 100_000
	spans := benchSpans(n)
	x := NewTermExtractor(DefaultMaxValueLen)
	var ts []Term
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		m := NewMemPostings()
		for i, s := range spans {
			ts = ts[:0]
			x.SpanTerms(s, func(t Term) { ts = append(ts, t) })
			_ = m.AddTerms(uint32(i), ts)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-B/span")
		b.ReportMetric(float64(m.NumTerms()), "terms")
		runtime.KeepAlive(m)
	}
}
