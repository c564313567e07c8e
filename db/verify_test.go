package db

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/tracedb/tracedb/db/internal/wal"
	"github.com/tracedb/tracedb/encoding"
)

// verifyStore writes a small store of two tenants, several blocks with
// several row groups and postings sections each, closes it and returns its
// directory.
func verifyStore(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	d := openTest(t, dir, testOptions())
	for _, tenant := range []string{DefaultTenant, "acme"} {
		ctx := WithTenant(context.Background(), tenant)
		for round := range 2 {
			var specs []spanSpec
			for i := range 60 {
				specs = append(specs, spanSpec{trace: byte(1 + i%7 + 10*round), span: byte(1 + i), service: []string{"front", "cart", "db"}[i%3],
					name: "op" + string(rune('a'+i%4)), start: uint64(i) * 1e6, dur: uint64(1+i) * 1e5,
					attrs: map[string]string{"http.status": []string{"200", "500"}[i%2], "round": string(rune('0' + round))}})
			}
			mustWrite(t, d, ctx, makeTraces(specs...))
			if err := d.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// verifyCollect runs VerifyDir and returns its report and problems.
func verifyCollect(t *testing.T, dir string) (VerifyReport, []VerifyProblem) {
	t.Helper()
	var probs []VerifyProblem
	rep, err := VerifyDir(context.Background(), dir, Options{}, func(p VerifyProblem) { probs = append(probs, p) })
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if rep.Problems != len(probs) {
		t.Errorf("report counts %d problems, fn saw %d", rep.Problems, len(probs))
	}
	return rep, probs
}

// flipValue flips one byte, at fraction at of its length, of the first
// value whose parsed key pick accepts, with the store closed, and returns
// that key.
func flipValue(t *testing.T, dir string, at float64, pick func(encoding.BlockKeyParts) bool) encoding.BlockKeyParts {
	t.Helper()
	bdb, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, badgerDir)).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := bdb.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	var (
		key   []byte
		parts encoding.BlockKeyParts
		val   []byte
	)
	err = bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: encoding.TenantPrefix("")[:1]})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			p, err := encoding.ParseBlockKey(it.Item().Key())
			if err != nil {
				return err
			}
			if pick(p) {
				key, parts = it.Item().KeyCopy(nil), p
				val, err = it.Item().ValueCopy(nil)
				return err
			}
		}
		return errors.New("no such key")
	})
	if err != nil {
		t.Fatal(err)
	}
	val[int(at*float64(len(val)-1))] ^= 0x5a
	if err := bdb.Update(func(txn *badger.Txn) error { return txn.Set(key, val) }); err != nil {
		t.Fatal(err)
	}
	return parts
}

func TestVerifyClean(t *testing.T) {
	dir := verifyStore(t)
	rep, probs := verifyCollect(t, dir)
	if len(probs) != 0 || rep.Corrupt() {
		t.Fatalf("clean store: %v", probs)
	}
	if rep.Tenants != 2 || rep.Blocks != 4 || rep.Spans != 240 || rep.RowGroups < 8 || rep.Terms == 0 || rep.Sections == 0 {
		t.Errorf("report %+v", rep)
	}

	// The same through an open store, read-only and writable (with spans
	// in the head and the WAL).
	for _, readOnly := range []bool{true, false} {
		opts := testOptions()
		opts.ReadOnly = readOnly
		d := openTest(t, dir, opts)
		if !readOnly {
			mustWrite(t, d, context.Background(), makeTraces(spanSpec{trace: 99, span: 1, service: "x", name: "y", dur: 5}))
		}
		var got []VerifyProblem
		rep2, err := d.Verify(context.Background(), func(p VerifyProblem) { got = append(got, p) })
		if err != nil || len(got) != 0 {
			t.Errorf("read-only %v: err %v, problems %v", readOnly, err, got)
		}
		if rep2.Blocks != rep.Blocks || rep2.Spans != rep.Spans {
			t.Errorf("read-only %v: report %+v, VerifyDir's %+v", readOnly, rep2, rep)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestVerifyFindsCorruptBlockValues(t *testing.T) {
	for _, tc := range []struct {
		name  string
		kind  byte
		n     uint32
		at    float64
		where string
	}{
		{"row group", encoding.KindRowGroup, 1, 0.7, "row group 1"},
		{"row group header", encoding.KindRowGroup, 0, 0.01, "row group 0"},
		{"postings section", encoding.KindPostings, 0, 0.5, "postings section 0"},
		{"postings dictionary", encoding.KindPostingsDict, 0, 0.5, "postings dictionary"},
		{"term histograms", encoding.KindTermHists, 0, 0.5, "term histograms"},
		{"block meta", encoding.KindBlockMeta, 0, 0.5, "block meta"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := verifyStore(t)
			bad := flipValue(t, dir, tc.at, func(p encoding.BlockKeyParts) bool {
				return p.Tenant == "acme" && p.Kind == tc.kind && p.N == tc.n
			})
			rep, probs := verifyCollect(t, dir)
			if len(probs) != 1 || !rep.Corrupt() {
				t.Fatalf("flipped a byte of %s: %d problems %v", bad, len(probs), probs)
			}
			p := probs[0]
			if p.Tenant != bad.Tenant || p.Partition != bad.Partition || p.Block != bad.Block || p.Where != tc.where || p.Benign {
				t.Errorf("problem %+v, want tenant %q partition %s block %s at %q", p, bad.Tenant, bad.Partition, bad.Block, tc.where)
			}
			if !errors.Is(p.Err, encoding.ErrCorrupt) {
				t.Errorf("error %v does not wrap ErrCorrupt", p.Err)
			}
			if s := p.String(); !strings.Contains(s, bad.Block.String()) || !strings.Contains(s, tc.where) {
				t.Errorf("String() = %q", s)
			}
		})
	}
}

// walStore adds a WAL segment of three records past what the store
// replays from, as a crash after three acknowledged writes leaves it, and
// returns the segment's number and the offsets just after each record.
func walStore(t *testing.T, dir string) (uint64, []int64) {
	t.Helper()
	walPath := filepath.Join(dir, walDir)
	segs, err := wal.ListSegments(walPath)
	if err != nil {
		t.Fatal(err)
	}
	var minSeg uint64 = 1 << 20 // past any checkpoint when no segment is left
	if len(segs) > 0 {
		minSeg = 0
	}
	w, err := wal.Open(wal.Options{Dir: walPath, Sync: wal.SyncNone, MinSegment: minSeg})
	if err != nil {
		t.Fatal(err)
	}
	var (
		seg  uint64
		offs []int64
	)
	for i := range 3 {
		rec, err := encodeWALRecord(nil, "acme", makeTraces(spanSpec{trace: byte(200 + i), span: 1, service: "w", name: "n", dur: 3}))
		if err != nil {
			t.Fatal(err)
		}
		p, err := w.Append(rec)
		if err != nil {
			t.Fatal(err)
		}
		seg, offs = p.Segment, append(offs, p.Offset)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return seg, offs
}

func TestVerifyFindsCorruptWAL(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string, offs []int64)
		record int // index of the record whose start is reported
	}{
		{"torn tail", func(t *testing.T, path string, offs []int64) {
			if err := os.Truncate(path, offs[2]-3); err != nil {
				t.Fatal(err)
			}
		}, 2},
		{"flipped payload byte", func(t *testing.T, path string, offs []int64) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b[offs[0]+20] ^= 0xff // inside the second record's payload
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := verifyStore(t)
			seg, offs := walStore(t, dir)
			if _, probs := verifyCollect(t, dir); len(probs) != 0 {
				t.Fatalf("before the damage: %v", probs)
			}
			path := filepath.Join(dir, walDir, segmentFileName(seg))
			tc.damage(t, path, offs)
			rep, probs := verifyCollect(t, dir)
			if len(probs) != 1 || !rep.Corrupt() {
				t.Fatalf("%d problems %v", len(probs), probs)
			}
			p := probs[0]
			if p.Segment != seg || p.Offset != offs[tc.record-1] || p.Block != 0 || !errors.Is(p.Err, encoding.ErrCorrupt) {
				t.Errorf("problem %+v (%v), want segment %d offset %d", p, p.Err, seg, offs[tc.record-1])
			}

			// A read-only open finds the same, and changes nothing.
			opts := testOptions()
			opts.ReadOnly = true
			d := openTest(t, dir, opts)
			var got []VerifyProblem
			if _, err := d.Verify(context.Background(), func(p VerifyProblem) { got = append(got, p) }); err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].Segment != seg || got[0].Offset != p.Offset {
				t.Errorf("read-only DB.Verify: %v", got)
			}
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestVerifyBenignOrphanBlock(t *testing.T) {
	dir := verifyStore(t)
	bdb, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, badgerDir)).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	orphan := encoding.BlockKey("acme", 7, encoding.KindRowGroup, 12345, 0)
	if err := bdb.Update(func(txn *badger.Txn) error { return txn.Set(orphan, []byte("half a flush")) }); err != nil {
		t.Fatal(err)
	}
	if err := bdb.Close(); err != nil {
		t.Fatal(err)
	}
	rep, probs := verifyCollect(t, dir)
	if len(probs) != 1 || !probs[0].Benign || probs[0].Block != 12345 || rep.Corrupt() {
		t.Errorf("orphan block keys: %+v, report %+v", probs, rep)
	}
}

// segmentFileName is the WAL's file name of segment n (wal.md).
func segmentFileName(n uint64) string { return fmt.Sprintf("%020d.wal", n) }
