package index

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// ErrOutOfOrder is returned by MemPostings.Add and AddTerms when an
// ordinal is smaller than one already added: postings must stay sorted.
var ErrOutOfOrder = errors.New("index: span ordinal out of order")

// MemPostings holds the postings of the head: for every term, the ordinals
// of the spans that carry it, in the order they were added.
//
// Concurrency: one writer at a time may call Add or AddTerms (the head
// appends spans in ordinal order), while any number of readers call the
// other methods concurrently. A term's list only ever grows at its end and
// the prefix a reader captured is never rewritten, so the Postings a reader
// holds stays valid and fixed (it does not see ordinals added after it was
// taken) without holding the lock.
type MemPostings struct {
	mu struct {
		sync.RWMutex
		terms    map[string]map[string]*memList // name -> value -> list
		numTerms int
		entries  uint64 // sum of the lengths of all lists
		last     uint32 // the highest ordinal added, when any
		any      bool   // an ordinal has been added
	}
}

type memList struct {
	ords []uint32
}

// NewMemPostings returns empty postings.
func NewMemPostings() *MemPostings {
	m := &MemPostings{}
	m.mu.terms = make(map[string]map[string]*memList)
	return m
}

// Add records that span ord carries term t. Ordinals must not decrease
// across calls (ErrOutOfOrder otherwise); adding the same (ord, t) twice
// records it once. The strings of t are copied when t is new, so t may
// point into a TermExtractor's scratch buffer.
func (m *MemPostings) Add(ord uint32, t Term) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.checkOrdLocked(ord); err != nil {
		return err
	}
	m.addLocked(ord, t)
	return nil
}

// AddTerms records that span ord carries every term of ts, under one lock.
// The same rules as for Add apply.
func (m *MemPostings) AddTerms(ord uint32, ts []Term) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.checkOrdLocked(ord); err != nil {
		return err
	}
	for _, t := range ts {
		m.addLocked(ord, t)
	}
	return nil
}

func (m *MemPostings) checkOrdLocked(ord uint32) error {
	if m.mu.any && ord < m.mu.last {
		return fmt.Errorf("%w: %d after %d", ErrOutOfOrder, ord, m.mu.last)
	}
	m.mu.any, m.mu.last = true, ord
	return nil
}

func (m *MemPostings) addLocked(ord uint32, t Term) {
	values := m.mu.terms[t.Name]
	if values == nil {
		values = make(map[string]*memList)
		m.mu.terms[strings.Clone(t.Name)] = values
	}
	l := values[t.Value]
	if l == nil {
		l = &memList{ords: make([]uint32, 0, 1)}
		values[strings.Clone(t.Value)] = l
		m.mu.numTerms++
	} else if n := len(l.ords); n > 0 && l.ords[n-1] == ord {
		return
	}
	// append either writes past every length a reader captured or moves the
	// list to a new array; captured prefixes are never written.
	l.ords = append(l.ords, ord)
	m.mu.entries++
}

// Postings returns the ordinals of the spans that carry t, as of now, or
// the EmptyPostings sentinel when none does.
func (m *MemPostings) Postings(t Term) Postings {
	m.mu.RLock()
	var ords []uint32
	if l := m.mu.terms[t.Name][t.Value]; l != nil {
		ords = l.ords
	}
	m.mu.RUnlock()
	return NewListPostings(ords)
}

// Cardinality returns how many spans carry t.
func (m *MemPostings) Cardinality(t Term) uint64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if l := m.mu.terms[t.Name][t.Value]; l != nil {
		return uint64(len(l.ords))
	}
	return 0
}

// Values returns the values of the terms named name, sorted (for example
// every service, or every operation). The caller owns the slice.
func (m *MemPostings) Values(name string) []string {
	m.mu.RLock()
	values := m.mu.terms[name]
	out := make([]string, 0, len(values))
	for v := range values {
		out = append(out, v)
	}
	m.mu.RUnlock()
	slices.Sort(out)
	return out
}

// PostingsRange calls fn, in value order, with every value v of name such
// that from <= v < to (to "" means no upper bound) and its postings as of
// the call, like PostingsReader.PostingsRange. It stops at the first error
// fn returns and returns it.
func (m *MemPostings) PostingsRange(name, from, to string, fn func(value string, p Postings) error) error {
	type entry struct {
		value string
		ords  []uint32
	}
	var es []entry
	m.mu.RLock()
	for v, l := range m.mu.terms[name] {
		if v >= from && (to == "" || v < to) {
			es = append(es, entry{v, l.ords})
		}
	}
	m.mu.RUnlock()
	slices.SortFunc(es, func(a, b entry) int { return strings.Compare(a.value, b.value) })
	for _, e := range es {
		if err := fn(e.value, NewListPostings(e.ords)); err != nil {
			return err
		}
	}
	return nil
}

// Names returns the term names, sorted. The caller owns the slice.
func (m *MemPostings) Names() []string {
	m.mu.RLock()
	out := make([]string, 0, len(m.mu.terms))
	for n := range m.mu.terms {
		out = append(out, n)
	}
	m.mu.RUnlock()
	slices.Sort(out)
	return out
}

// NumTerms returns the number of distinct terms.
func (m *MemPostings) NumTerms() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.mu.numTerms
}

// NumEntries returns the number of (term, ordinal) pairs held.
func (m *MemPostings) NumEntries() uint64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.mu.entries
}

// Len returns one more than the highest ordinal added, 0 when none was:
// the number of spans when the head numbers them from 0 without gaps.
func (m *MemPostings) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if !m.mu.any {
		return 0
	}
	return int(m.mu.last) + 1
}

// ForEach calls fn for every term in sorted order (see Term.Compare) with
// its ordinals as of the call, for example to write a block's postings with
// a PostingsWriter. It stops at the first error fn returns and returns it.
// The lock is held only while taking the snapshot, so Add may proceed while
// fn runs; fn must not modify ords.
func (m *MemPostings) ForEach(fn func(t Term, ords []uint32) error) error {
	type entry struct {
		value string
		ords  []uint32
	}
	type group struct {
		name    string
		entries []entry
	}
	m.mu.RLock()
	groups := make([]group, 0, len(m.mu.terms))
	for name, values := range m.mu.terms {
		g := group{name: name, entries: make([]entry, 0, len(values))}
		for v, l := range values {
			g.entries = append(g.entries, entry{v, l.ords})
		}
		groups = append(groups, g)
	}
	m.mu.RUnlock()

	slices.SortFunc(groups, func(a, b group) int { return strings.Compare(a.name, b.name) })
	for _, g := range groups {
		slices.SortFunc(g.entries, func(a, b entry) int { return strings.Compare(a.value, b.value) })
		for _, e := range g.entries {
			if err := fn(Term{g.name, e.value}, e.ords); err != nil {
				return err
			}
		}
	}
	return nil
}
