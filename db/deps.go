package db

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/zeebo/xxh3"

	"github.com/tracedb/tracedb/encoding"
)

// Dependency tracking. The service graph is counted as spans arrive: each
// child span is paired with its parent span, whichever comes first, and the
// pair is one call on the edge (parent's service, child's service, minute
// of the child's start) when the services differ. The count goes into the
// live head (a pair found later, when the second span arrives, is counted in
// that span's head), moves with the head into its blocks' metas at flush,
// and is summed at query time: no span is read again to draw the graph.
//
// The tracker remembers the (trace ID, span ID) → service of the spans of
// the live head and the one flushed before it (two generations), and the
// children whose parent it has not seen, for up to maxWaitFlushes flushes.
// So a call is counted when the parent arrives at most that many flushes
// after the child, or the child at most one flush after the parent; in
// OpenTelemetry SDKs children end, and so are exported, before their
// parents, and a flush holds up to Options.MaxHeadSpans spans. The waiting
// children are stored at each flush (encoding.DependencyState) and the
// previous generation is rebuilt from the newest blocks at open, so a
// restart loses no call that those bounds count.
//
// An exact duplicate of a span still remembered (a retried write: same
// trace and span ID, same service) is not counted again. Recent spans are
// remembered by a 64-bit hash of their IDs: two spans of the window that
// collide (about one chance in 10^7 for a million spans) can misattribute
// one call.

const (
	// maxWaitFlushes is how many flushes a child waits for its parent.
	maxWaitFlushes = 4
	// maxWaiting bounds the children waiting, whatever their age; beyond
	// it, children without a known parent are not tracked (and counted in
	// the metric dependencyChildrenDropped).
	maxWaiting = 1 << 20
)

// depTracker is one tenant's dependency tracker. Its methods are safe for
// concurrent use.
type depTracker struct {
	mu        sync.Mutex
	cur, prev map[uint64]uint32 // span key → service number (names)
	waiting   map[uint64][]waitingChild
	nWaiting  int
	services  map[string]uint32 // service name → its number
	names     []string          // service number → name
	dropped   uint64            // children not tracked because maxWaiting was reached
}

type waitingChild struct {
	trace   encoding.TraceID
	parent  encoding.SpanID
	service string
	minute  uint32
	age     uint32
}

// edgeKey is an edge of the head's service graph.
type edgeKey struct {
	parent, child string
	minute        uint32
}

func newDepTracker() *depTracker {
	return &depTracker{
		cur:      map[uint64]uint32{},
		prev:     map[uint64]uint32{},
		waiting:  map[uint64][]waitingChild{},
		services: map[string]uint32{},
	}
}

func spanKey(t encoding.TraceID, s encoding.SpanID) uint64 {
	var b [24]byte
	copy(b[:16], t[:])
	copy(b[16:], s[:])
	return xxh3.Hash(b[:])
}

// intern returns the number of service s, giving it one if need be.
func (d *depTracker) intern(s string) uint32 {
	if v, ok := d.services[s]; ok {
		return v
	}
	n := uint32(len(d.names))
	s = strings.Clone(s)
	d.services[s] = n
	d.names = append(d.names, s)
	return n
}

func (d *depTracker) lookup(k uint64) (uint32, bool) {
	if s, ok := d.cur[k]; ok {
		return s, true
	}
	s, ok := d.prev[k]
	return s, ok
}

// observe pairs spans with the spans already seen and calls count for each
// call found.
func (d *depTracker) observe(spans []*encoding.Span, count func(edgeKey)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range spans {
		svcID := d.intern(s.ServiceName())
		svc := d.names[svcID]
		k := spanKey(s.TraceID, s.SpanID)
		if old, ok := d.lookup(k); ok {
			if old == svcID {
				continue // a duplicate: its calls are counted already
			}
		} else {
			d.cur[k] = svcID
		}
		minute := encoding.MinuteOf(s.StartUnixNano)
		if !s.ParentSpanID.IsZero() && s.ParentSpanID != s.SpanID {
			pk := spanKey(s.TraceID, s.ParentSpanID)
			if psvc, ok := d.lookup(pk); ok {
				if psvc != svcID {
					count(edgeKey{d.names[psvc], svc, minute})
				}
			} else if d.nWaiting < maxWaiting {
				d.waiting[pk] = append(d.waiting[pk], waitingChild{s.TraceID, s.ParentSpanID, svc, minute, 0})
				d.nWaiting++
			} else {
				d.dropped++
			}
		}
		ws, ok := d.waiting[k]
		if !ok {
			continue
		}
		kept := ws[:0]
		for _, w := range ws {
			if w.trace != s.TraceID || w.parent != s.SpanID {
				kept = append(kept, w) // another span whose IDs hash alike
				continue
			}
			if w.service != svc {
				count(edgeKey{svc, w.service, w.minute})
			}
			d.nWaiting--
		}
		if len(kept) == 0 {
			delete(d.waiting, k)
		} else {
			d.waiting[k] = kept
		}
	}
}

// rotate starts a generation at a flush: the live head's spans become the
// previous generation, the older one is forgotten, and children that have
// waited maxWaitFlushes flushes are given up. It returns the state to
// store with the flush.
func (d *depTracker) rotate() *encoding.DependencyState {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.prev, d.cur = d.cur, make(map[uint64]uint32, len(d.cur))
	st := &encoding.DependencyState{}
	for k, ws := range d.waiting {
		kept := ws[:0]
		for _, w := range ws {
			w.age++
			if w.age > maxWaitFlushes {
				d.nWaiting--
				continue
			}
			kept = append(kept, w)
			st.Waiting = append(st.Waiting, encoding.WaitingChild{
				TraceID: w.trace, Parent: w.parent, Service: w.service, Minute: w.minute, Age: w.age,
			})
		}
		if len(kept) == 0 {
			delete(d.waiting, k)
		} else {
			d.waiting[k] = kept
		}
	}
	return st
}

// restore loads a stored state and the spans of the previous generation
// (each span's trace and span ID key, and its service) into an empty
// tracker, at open.
func (d *depTracker) restore(st *encoding.DependencyState, prev func(yield func(key uint64, service string) bool) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, w := range st.Waiting {
		if d.nWaiting >= maxWaiting {
			break
		}
		k := spanKey(w.TraceID, w.Parent)
		d.waiting[k] = append(d.waiting[k], waitingChild{w.TraceID, w.Parent, d.names[d.intern(w.Service)], w.Minute, w.Age})
		d.nWaiting++
	}
	return prev(func(k uint64, service string) bool {
		if _, ok := d.prev[k]; !ok {
			d.prev[k] = d.intern(service)
		}
		return true
	})
}

// waitingCount returns the number of children waiting for a parent.
func (d *depTracker) waitingCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.nWaiting
}

// edgesOf turns a head's edge counts into sorted edges.
func edgesOf(m map[edgeKey]uint64) []encoding.DependencyEdge {
	if len(m) == 0 {
		return nil
	}
	es := make([]encoding.DependencyEdge, 0, len(m))
	for k, n := range m {
		es = append(es, encoding.DependencyEdge{Parent: k.parent, Child: k.child, Minute: k.minute, Calls: n})
	}
	encoding.SortEdges(es)
	return es
}

// assignEdges splits the edges counted by the heads of one flush among the
// flush's blocks: each goes to the block of its minute's partition, or to
// the first block when the flush wrote none there.
func assignEdges(heads []*head, blocks []*diskBlock, width time.Duration) {
	if len(blocks) == 0 {
		return
	}
	merged := map[edgeKey]uint64{}
	for _, h := range heads {
		for k, n := range h.frozenEdges() {
			merged[k] += n
		}
	}
	byPart := map[encoding.PartitionID]map[edgeKey]uint64{}
	for k, n := range merged {
		p := encoding.PartitionOf(uint64(k.minute)*60e9, width)
		target := blocks[0].meta.Partition
		for _, b := range blocks {
			if b.meta.Partition == p {
				target = p
				break
			}
		}
		if byPart[target] == nil {
			byPart[target] = map[edgeKey]uint64{}
		}
		byPart[target][k] += n
	}
	for _, b := range blocks {
		b.meta.Edges = edgesOf(byPart[b.meta.Partition])
	}
}

// restoreDeps gives every tenant's tracker, at open, the state its last
// flush stored and the spans of its newest blocks (the generation flushed
// last: blocks newest first, up to Options.MaxHeadSpans spans).
func (db *DB) restoreDeps() error {
	states := map[string]*encoding.DependencyState{}
	err := db.bdb.View(func(txn *badger.Txn) error {
		prefix := encoding.DependencyStateKey("")[:2]
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) < 3 || int(k[2]) != len(k)-3 {
				return encoding.Corruptf("dependency state key", 0, "malformed key %x", k)
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			st, err := encoding.DecodeDependencyState(v)
			if err != nil {
				return fmt.Errorf("tenant %q: %w", k[3:], err)
			}
			states[string(k[3:])] = st
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("load dependency state: %w", err)
	}
	for name, t := range db.mu.tenants {
		blocks := slices.Clone(t.mu.blocks)
		slices.SortFunc(blocks, func(a, b *diskBlock) int { return cmp.Compare(b.meta.ID, a.meta.ID) })
		// Only each span's IDs and resource are read, not whole spans.
		prev := func(yield func(uint64, string) bool) error {
			n := 0
			for _, b := range blocks {
				if n >= db.opts.MaxHeadSpans {
					break
				}
				err := b.spanOwners(func(t encoding.TraceID, s encoding.SpanID, r *encoding.Resource) bool {
					n++
					return yield(spanKey(t, s), r.ServiceName())
				})
				if err != nil {
					return err
				}
			}
			return nil
		}
		st := states[name]
		if st == nil {
			st = &encoding.DependencyState{}
		}
		if err := t.deps.restore(st, prev); err != nil {
			return fmt.Errorf("restore dependency tracking of tenant %q: %w", name, err)
		}
	}
	return nil
}
