package db

import (
	"context"
	"maps"
	"slices"
	"testing"

	"github.com/tracedb/tracedb/encoding"
)

// edgeCounts sums the edges of every reader of the context's tenant, by
// "parent->child".
func edgeCounts(t *testing.T, d *DB, ctx context.Context) map[string]uint64 {
	t.Helper()
	snap, err := d.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, r := range snap.Readers {
		es := r.Edges()
		if !slices.IsSortedFunc(es, func(a, b encoding.DependencyEdge) int {
			x := []encoding.DependencyEdge{a, b}
			encoding.SortEdges(x)
			if x[0] == a && a != b {
				return -1
			}
			return 1
		}) {
			t.Fatalf("reader %+v: edges not sorted: %v", r.Info(), es)
		}
		for _, e := range es {
			out[e.Parent+"->"+e.Child] += e.Calls
		}
	}
	return out
}

func wantEdges(t *testing.T, label string, got map[string]uint64, want map[string]uint64) {
	t.Helper()
	if !maps.Equal(got, want) {
		t.Errorf("%s: edges %v, want %v", label, got, want)
	}
}

// TestDependenciesAcrossFlushAndRestart: calls are counted once whether
// the parent or the child comes first, in one head, across flushes, and
// across a restart in either order.
func TestDependenciesAcrossFlushAndRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	d := openTest(t, dir, testOptions())
	// Trace 1 in one write; trace 2 child first, parent after a flush.
	mustWrite(t, d, ctx, makeTraces(
		spanSpec{trace: 1, span: 1, service: "front", name: "GET", start: 0, dur: 10},
		spanSpec{trace: 1, span: 2, parent: 1, service: "cart", name: "add", start: 1, dur: 5},
		spanSpec{trace: 1, span: 3, parent: 2, service: "cart", name: "local", start: 2, dur: 1}, // same service: no call
		spanSpec{trace: 2, span: 2, parent: 1, service: "pay", name: "charge", start: 5, dur: 1},
	))
	wantEdges(t, "one head", edgeCounts(t, d, ctx), map[string]uint64{"front->cart": 1})
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, d, ctx, makeTraces(spanSpec{trace: 2, span: 1, service: "front", name: "GET", start: 0, dur: 10}))
	wantEdges(t, "parent after a flush", edgeCounts(t, d, ctx), map[string]uint64{"front->cart": 1, "front->pay": 1})

	// Trace 3's child waits across a restart; trace 4's parent is in a
	// block when its child arrives after the restart.
	mustWrite(t, d, ctx, makeTraces(
		spanSpec{trace: 3, span: 2, parent: 1, service: "db", name: "q", start: 7, dur: 1},
		spanSpec{trace: 4, span: 1, service: "front", name: "GET", start: 8, dur: 10},
	))
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = openTest(t, dir, testOptions())
	defer d.Close()
	mustWrite(t, d, ctx, makeTraces(
		spanSpec{trace: 3, span: 1, service: "cart", name: "add", start: 6, dur: 3},
		spanSpec{trace: 4, span: 2, parent: 1, service: "search", name: "find", start: 9, dur: 1},
	))
	want := map[string]uint64{"front->cart": 1, "front->pay": 1, "cart->db": 1, "front->search": 1}
	wantEdges(t, "after restart", edgeCounts(t, d, ctx), want)

	// A retried write (exact duplicates, after a flush) counts nothing new.
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, d, ctx, makeTraces(
		spanSpec{trace: 3, span: 1, service: "cart", name: "add", start: 6, dur: 3},
		spanSpec{trace: 4, span: 2, parent: 1, service: "search", name: "find", start: 9, dur: 1},
	))
	wantEdges(t, "after duplicates", edgeCounts(t, d, ctx), want)
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	wantEdges(t, "all flushed", edgeCounts(t, d, ctx), want)
	// Other tenants see none of it.
	wantEdges(t, "other tenant", edgeCounts(t, d, WithTenant(ctx, "other")), map[string]uint64{})
}

// TestDependenciesWaitIsBounded: a child whose parent never comes is given
// up after maxWaitFlushes flushes, and the state stored shrinks with it.
func TestDependenciesWaitIsBounded(t *testing.T) {
	d := openTest(t, t.TempDir(), testOptions())
	defer d.Close()
	ctx := context.Background()
	var specs []spanSpec
	for i := range 50 {
		specs = append(specs, spanSpec{trace: byte(i + 1), span: 2, parent: 1, service: "orphan", name: "x", start: 0, dur: 1})
	}
	mustWrite(t, d, ctx, makeTraces(specs...))
	tr := d.tenant(DefaultTenant).deps
	if n := tr.waitingCount(); n != 50 {
		t.Fatalf("waiting %d, want 50", n)
	}
	for i := range maxWaitFlushes + 1 {
		// A flush rotates only when something was written; write a
		// span of an unrelated trace each time.
		mustWrite(t, d, ctx, makeTraces(spanSpec{trace: 200, span: byte(10 + i), service: "tick", name: "t", start: 0, dur: 1}))
		if err := d.Flush(); err != nil {
			t.Fatal(err)
		}
		want := 50
		if i+1 > maxWaitFlushes {
			want = 0
		}
		if n := tr.waitingCount(); n != want {
			t.Fatalf("after %d flushes: waiting %d, want %d", i+1, n, want)
		}
	}
	// A parent now is too late: nothing is counted.
	mustWrite(t, d, ctx, makeTraces(spanSpec{trace: 1, span: 1, service: "front", name: "GET", start: 0, dur: 10}))
	wantEdges(t, "late parent", edgeCounts(t, d, ctx), map[string]uint64{})
}

// TestDependenciesByMinute: each call keeps its child's minute.
func TestDependenciesByMinute(t *testing.T) {
	d := openTest(t, t.TempDir(), testOptions())
	defer d.Close()
	ctx := context.Background()
	var specs []spanSpec
	for m := range 5 {
		specs = append(specs,
			spanSpec{trace: byte(m + 1), span: 1, service: "a", name: "x", start: uint64(m) * 60e9, dur: 10},
			spanSpec{trace: byte(m + 1), span: 2, parent: 1, service: "b", name: "y", start: uint64(m)*60e9 + 1, dur: 1})
	}
	mustWrite(t, d, ctx, makeTraces(specs...))
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	snap, err := d.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var minutes []uint32
	for _, r := range snap.Readers {
		for _, e := range r.Edges() {
			if e.Calls != 1 || e.Parent != "a" || e.Child != "b" {
				t.Errorf("edge %+v, want a->b with 1 call", e)
			}
			minutes = append(minutes, e.Minute)
		}
	}
	slices.Sort(minutes)
	first := encoding.MinuteOf(t0 + 1)
	if want := []uint32{first, first + 1, first + 2, first + 3, first + 4}; !slices.Equal(minutes, want) {
		t.Errorf("minutes %v, want %v", minutes, want)
	}
}
