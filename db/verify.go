package db

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/tracedb/tracedb/db/internal/wal"
	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/index"
)

// Verification reads everything the store keeps and checks it the way a
// reader would, without stopping at the first damage:
//
//   - store records: the format record, the WAL checkpoint, every tenant's
//     dependency state;
//   - every block: its meta (CRC32C, and the ID and partition its key
//     names), its trace-ID bloom filter, every row group (magic, version,
//     header and column CRC32Cs, then every span decoded; row counts and
//     trace-ID bounds against the meta, every span start inside the meta's
//     range and the partition, every trace ID in the bloom filter), the
//     postings dictionary (CRC32C) and every postings list of every term
//     (so every section's CRC32C, and every ordinal below the block's span
//     count), the term histograms; keys the meta does not account for;
//   - every WAL segment: header, every record's CRC32C, every payload
//     decoded; gaps in the numbering.
//
// Blocks are read from the keys in Badger, not from the store's list, so
// that a block the store could not load is checked too.

// VerifyProblem is one piece of damage Verify found: where, and what
// failed.
type VerifyProblem struct {
	// Tenant, Partition and Block locate a problem in a block; Block is
	// zero for the store's records and the WAL.
	Tenant    string
	Partition encoding.PartitionID
	Block     encoding.BlockID
	// Where names the value within the block or the store: "row group 3",
	// "postings section 2", "postings dictionary", "term histograms",
	// "block meta", "trace bloom", "keys", "format record",
	// "wal checkpoint", "dependency state", "wal segment 7 offset 1234".
	Where string
	// Segment and Offset locate a WAL problem (Segment 0 otherwise).
	Segment uint64
	Offset  int64
	// Err says what failed; damaged bytes give errors that wrap
	// encoding.ErrCorrupt.
	Err error
	// Benign is set for a state that a writable open cleans up without
	// losing anything acknowledged: the keys of a block that has no meta
	// (a flush or compaction that crashed, or one running while Verify
	// reads a writable store), a WAL segment older than the checkpoint.
	Benign bool
}

func (p VerifyProblem) String() string {
	var b strings.Builder
	if p.Block != 0 || p.Tenant != "" {
		fmt.Fprintf(&b, "tenant %q partition %s block %s: ", p.Tenant, p.Partition, p.Block)
	}
	b.WriteString(p.Where)
	b.WriteString(": ")
	b.WriteString(p.Err.Error())
	if p.Benign {
		b.WriteString(" (benign: a writable open cleans it up)")
	}
	return b.String()
}

// VerifyReport counts what Verify checked and found.
type VerifyReport struct {
	Tenants        int
	Blocks         int
	RowGroups      int
	Spans          uint64 // spans decoded from row groups
	Terms          uint64 // postings lists decoded
	Sections       int    // postings sections read
	WALSegments    int
	WALRecords     int
	Problems       int // all problems reported
	BenignProblems int // of Problems, the benign ones
	Elapsed        time.Duration
}

// Corrupt reports whether Verify found a problem that is not benign.
func (r VerifyReport) Corrupt() bool { return r.Problems > r.BenignProblems }

// Verify checks every checksum and every structure of the store (see the
// comment at the top of verify.go), calls fn for each problem found, in
// the order found, and returns what it checked. A problem is not an error:
// the error is for what kept Verify from going on (ctx ended, the store
// closed, Badger failing to read). fn may be nil.
//
// On a store open for writing, Verify holds off compaction and retention
// while it runs, and does not read the WAL segment being written.
// A store too damaged to open (a corrupt block meta, or a corrupt row
// group in the blocks Open reads back) can be checked with VerifyDir.
func (db *DB) Verify(ctx context.Context, fn func(VerifyProblem)) (VerifyReport, error) {
	return db.verify(ctx, "", fn)
}

// verify is Verify, of one tenant's keys and WAL records when tenant is
// not "" (VerifyTenant, verify_tenant.go).
func (db *DB) verify(ctx context.Context, tenant string, fn func(VerifyProblem)) (VerifyReport, error) {
	if db.isClosed() {
		return VerifyReport{}, ErrClosed
	}
	var live uint64
	if !db.opts.ReadOnly {
		db.maintMu.Lock()
		defer db.maintMu.Unlock()
		if db.wal != nil {
			live = db.wal.Stats().Segment
		}
	}
	v := &verifier{bdb: db.bdb, codec: db.codec, walDir: filepath.Join(db.dir, walDir), liveSegment: live, tenant: tenant, fn: fn}
	return v.run(ctx)
}

// VerifyDir is Verify for the store in dir, which it opens read-only
// without loading it: it checks a store whose damage keeps Open from
// succeeding. The store must not be open for writing by another process
// (Badger refuses then). Of opts, only Logger is used.
func VerifyDir(ctx context.Context, dir string, opts Options, fn func(VerifyProblem)) (VerifyReport, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	bdir := filepath.Join(dir, badgerDir)
	if _, err := os.Stat(bdir); err != nil {
		return VerifyReport{}, fmt.Errorf("verify %s: %w: %w", dir, ErrNotAStore, err)
	}
	bopts := badger.DefaultOptions(bdir).
		WithLogger(badgerLogger{logger}).
		WithReadOnly(true).
		WithCompression(options.None).
		WithValueThreshold(badgerValueThreshold).
		WithNumMemtables(badgerMemtables).
		WithMetricsEnabled(false)
	bdb, err := badger.Open(bopts)
	if err != nil {
		return VerifyReport{}, fmt.Errorf("verify: open badger in %s read-only: %w", bdir, err)
	}
	codec, err := encoding.NewCodec()
	if err != nil {
		return VerifyReport{}, errors.Join(err, bdb.Close())
	}
	defer codec.Close()
	v := &verifier{bdb: bdb, codec: codec, walDir: filepath.Join(dir, walDir), fn: fn}
	rep, err := v.run(ctx)
	if cerr := bdb.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close badger: %w", cerr))
	}
	return rep, err
}

// verifier is one run of Verify.
type verifier struct {
	bdb         *badger.DB
	codec       *encoding.Codec
	walDir      string
	liveSegment uint64 // the WAL segment being written, not read; 0: none
	tenant      string // "": every tenant; else only its blocks, problems and WAL records
	fn          func(VerifyProblem)

	width      time.Duration // partition width from the format record; 0 when unreadable
	checkpoint uint64
	rep        VerifyReport
}

func (v *verifier) report(p VerifyProblem) {
	if v.tenant != "" && p.Tenant != "" && p.Tenant != v.tenant {
		return
	}
	v.rep.Problems++
	if p.Benign {
		v.rep.BenignProblems++
	}
	if v.fn != nil {
		v.fn(p)
	}
}

// blockRef names a block by its key.
type blockRef struct {
	tenant string
	part   encoding.PartitionID
	id     encoding.BlockID
}

// blockKeys is the inventory of one block's keys.
type blockKeys struct {
	meta, dict, hists bool
	rowGroups         []uint32
	sections          []uint32
}

func (v *verifier) run(ctx context.Context) (VerifyReport, error) {
	start := time.Now()
	// One transaction: every value read belongs to one state of the store.
	err := v.bdb.View(func(txn *badger.Txn) error {
		v.storeRecords(txn)
		blocks, order, tenants, err := v.inventory(ctx, txn)
		if err != nil {
			return err
		}
		v.rep.Tenants = tenants
		for _, ref := range order {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := v.block(ctx, txn, ref, blocks[ref]); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = v.wal(ctx)
	}
	v.rep.Elapsed = time.Since(start)
	if err != nil {
		return v.rep, fmt.Errorf("verify: %w", err)
	}
	return v.rep, nil
}

// value returns the value of key, nil when it is absent.
func value(txn *badger.Txn, key []byte) ([]byte, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

// storeRecords checks the format record, the WAL checkpoint and the
// dependency states.
func (v *verifier) storeRecords(txn *badger.Txn) {
	b, err := value(txn, encoding.KeyFormat)
	switch {
	case err != nil:
		v.report(VerifyProblem{Where: "format record", Err: err})
	case b == nil:
		v.report(VerifyProblem{Where: "format record", Err: errors.New("missing")})
	default:
		f, err := encoding.DecodeFormatRecord(b)
		if err != nil {
			v.report(VerifyProblem{Where: "format record", Err: err})
		} else {
			v.width = f.PartitionWidth
		}
	}
	b, err = value(txn, encoding.KeyWALCheckpoint)
	if err == nil && b != nil {
		d := encoding.NewDecbuf(b, "wal checkpoint")
		v.checkpoint = d.BE64()
		if err = d.Err(); err == nil && d.Len() != 0 {
			err = encoding.Corruptf("wal checkpoint", d.Offset(), "%d trailing bytes", d.Len())
		}
	}
	if err != nil {
		v.report(VerifyProblem{Where: "wal checkpoint", Err: err})
	}
	prefix := encoding.DependencyStateKey("")[:2]
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().KeyCopy(nil)
		if len(k) < 3 || int(k[2]) != len(k)-3 {
			if v.tenant != "" {
				continue // it may name another tenant: not for this one's eyes
			}
			v.report(VerifyProblem{Where: "dependency state", Err: encoding.Corruptf("dependency state key", 0, "malformed key %x", k)})
			continue
		}
		tenant := string(k[3:])
		b, err := it.Item().ValueCopy(nil)
		if err == nil {
			_, err = encoding.DecodeDependencyState(b)
		}
		if err != nil {
			v.report(VerifyProblem{Tenant: tenant, Where: "dependency state", Err: err})
		}
	}
}

// inventory lists every block's keys, in key order.
func (v *verifier) inventory(ctx context.Context, txn *badger.Txn) (map[blockRef]*blockKeys, []blockRef, int, error) {
	blocks := map[blockRef]*blockKeys{}
	var order []blockRef
	tenants := map[string]bool{}
	prefix := encoding.TenantPrefix("")[:1]
	if v.tenant != "" {
		prefix = encoding.TenantPrefix(v.tenant)
	}
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
	defer it.Close()
	n := 0
	for it.Rewind(); it.Valid(); it.Next() {
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, nil, 0, err
			}
		}
		kp, err := encoding.ParseBlockKey(it.Item().Key())
		if err != nil {
			v.report(VerifyProblem{Where: "keys", Err: err})
			continue
		}
		tenants[kp.Tenant] = true
		ref := blockRef{kp.Tenant, kp.Partition, kp.Block}
		bk := blocks[ref]
		if bk == nil {
			bk = &blockKeys{}
			blocks[ref] = bk
			order = append(order, ref)
		}
		switch kp.Kind {
		case encoding.KindBlockMeta:
			bk.meta = true
		case encoding.KindPostingsDict:
			bk.dict = true
		case encoding.KindTermHists:
			bk.hists = true
		case encoding.KindRowGroup:
			bk.rowGroups = append(bk.rowGroups, kp.N)
		case encoding.KindPostings:
			bk.sections = append(bk.sections, kp.N)
		}
	}
	return blocks, order, len(tenants), nil
}

// block checks one block.
func (v *verifier) block(ctx context.Context, txn *badger.Txn, ref blockRef, keys *blockKeys) error {
	problem := func(where string, err error) {
		v.report(VerifyProblem{Tenant: ref.tenant, Partition: ref.part, Block: ref.id, Where: where, Err: err})
	}
	key := func(kind byte, n uint32) []byte { return encoding.BlockKey(ref.tenant, ref.part, kind, ref.id, n) }
	if !keys.meta {
		v.report(VerifyProblem{Tenant: ref.tenant, Partition: ref.part, Block: ref.id, Where: "keys",
			Err: errors.New("block keys without a block meta (an unfinished flush or compaction)"), Benign: true})
		return nil
	}
	v.rep.Blocks++
	b, err := value(txn, key(encoding.KindBlockMeta, 0))
	if err != nil {
		return err
	}
	m, err := encoding.DecodeBlockMeta(b)
	if err != nil {
		problem("block meta", err)
		return nil // without the meta, nothing else of the block can be judged
	}
	if m.ID != ref.id || m.Partition != ref.part {
		problem("block meta", encoding.Corruptf("block meta", -1, "names block %s partition %s, its key block %s partition %s", m.ID, m.Partition, ref.id, ref.part))
	}
	bloom, err := index.DecodeBloom(m.TraceBloom)
	if err != nil {
		problem("trace bloom", err)
		bloom = nil
	}
	if err := v.rowGroups(ctx, txn, ref, keys, m, bloom, problem); err != nil {
		return err
	}
	if err := v.postings(ctx, txn, ref, keys, m, problem); err != nil {
		return err
	}
	if keys.hists {
		b, err := value(txn, key(encoding.KindTermHists, 0))
		if err != nil {
			return err
		}
		if _, err := index.DecodeTermHistograms(b); err != nil {
			problem("term histograms", err)
		}
	}
	return nil
}

// rowGroups decodes every row group of block m and every span in it.
func (v *verifier) rowGroups(ctx context.Context, txn *badger.Txn, ref blockRef, keys *blockKeys, m *encoding.BlockMeta,
	bloom *index.Bloom, problem func(string, error)) error {
	for _, n := range keys.rowGroups {
		if int(n) >= len(m.RowGroups) {
			problem(fmt.Sprintf("row group %d", n), fmt.Errorf("a row group key past the %d the block meta lists", len(m.RowGroups)))
		}
	}
	var spans uint64
	for i, rg := range m.RowGroups {
		if err := ctx.Err(); err != nil {
			return err
		}
		where := fmt.Sprintf("row group %d", i)
		if !slices.Contains(keys.rowGroups, uint32(i)) {
			problem(where, errors.New("missing"))
			continue
		}
		b, err := value(txn, encoding.BlockKey(ref.tenant, ref.part, encoding.KindRowGroup, ref.id, uint32(i)))
		if err != nil {
			return err
		}
		v.rep.RowGroups++
		if err := v.rowGroup(b, m, rg, bloom, ref.part); err != nil {
			problem(where, err)
			continue
		}
		spans += uint64(rg.Spans)
	}
	v.rep.Spans += spans
	return nil
}

// rowGroup decodes one row group and checks it against its meta.
func (v *verifier) rowGroup(b []byte, m *encoding.BlockMeta, rg encoding.RowGroupRef, bloom *index.Bloom, part encoding.PartitionID) error {
	g, err := v.codec.DecodeRowGroup(b)
	if err != nil {
		return err
	}
	if uint32(g.Len()) != rg.Spans {
		return encoding.Corruptf("row group", -1, "%d rows, the block meta says %d", g.Len(), rg.Spans)
	}
	if g.Len() == 0 {
		return nil
	}
	if first, last := g.TraceID(0), g.TraceID(g.Len()-1); first != rg.FirstTrace || last != rg.LastTrace {
		return encoding.Corruptf("row group", -1, "trace IDs %s to %s, the block meta says %s to %s", first, last, rg.FirstTrace, rg.LastTrace)
	}
	for i := range g.Len() {
		s, err := g.Span(i)
		if err != nil {
			return err
		}
		switch {
		case s.StartUnixNano < m.MinStart || s.StartUnixNano > m.MaxStart:
			return encoding.Corruptf("row group", -1, "row %d starts at %d, outside the block meta's %d to %d", i, s.StartUnixNano, m.MinStart, m.MaxStart)
		case v.width > 0 && encoding.PartitionOf(s.StartUnixNano, v.width) != part:
			return encoding.Corruptf("row group", -1, "row %d starts at %d, outside partition %s", i, s.StartUnixNano, part)
		case bloom != nil && !bloom.MayContain(s.TraceID):
			return encoding.Corruptf("row group", -1, "row %d: trace %s is not in the block's bloom filter", i, s.TraceID)
		}
	}
	return nil
}

// postings decodes the dictionary and every postings list of block m.
func (v *verifier) postings(ctx context.Context, txn *badger.Txn, ref blockRef, keys *blockKeys, m *encoding.BlockMeta,
	problem func(string, error)) error {
	for _, n := range keys.sections {
		if n >= m.PostingsSections {
			problem(fmt.Sprintf("postings section %d", n), fmt.Errorf("a section key past the %d the block meta counts", m.PostingsSections))
		}
	}
	for n := range m.PostingsSections {
		if !slices.Contains(keys.sections, n) {
			problem(fmt.Sprintf("postings section %d", n), errors.New("missing"))
		}
	}
	if !keys.dict {
		problem("postings dictionary", errors.New("missing"))
		return nil
	}
	dict, err := value(txn, encoding.BlockKey(ref.tenant, ref.part, encoding.KindPostingsDict, ref.id, 0))
	if err != nil {
		return err
	}
	// The loader notes which section it loaded last, so that an error
	// right after a load is put on that section.
	var (
		loads, lastLoad int
		readErr         error // Badger failing, not the bytes
	)
	load := func(i int) ([]byte, error) {
		if i < 0 || uint32(i) >= m.PostingsSections {
			return nil, encoding.Corruptf("postings", -1, "section %d of %d", i, m.PostingsSections)
		}
		b, err := value(txn, encoding.BlockKey(ref.tenant, ref.part, encoding.KindPostings, ref.id, uint32(i)))
		if err != nil {
			readErr = err
			return nil, err
		}
		if b == nil {
			return nil, encoding.Corruptf("postings", -1, "section %d missing", i)
		}
		loads, lastLoad = loads+1, i
		v.rep.Sections++
		return b, nil
	}
	r, err := index.NewPostingsReader(dict, load, &index.PostingsReaderOptions{Decoder: v.codec.Decoder()})
	if err != nil {
		problem("postings dictionary", err)
		return nil
	}
	if uint32(r.NumSections()) != m.PostingsSections {
		problem("postings dictionary", encoding.Corruptf("postings dictionary", -1, "%d sections, the block meta says %d", r.NumSections(), m.PostingsSections))
	}
	reported := map[string]bool{}
	for _, name := range r.Names() {
		if err := ctx.Err(); err != nil {
			return err
		}
		okLoads := loads
		err := r.PostingsRange(name, "", "", func(value string, p index.Postings) error {
			okLoads = loads
			v.rep.Terms++
			for p.Next() {
				if uint64(p.At()) >= m.Spans {
					return encoding.Corruptf("postings", -1, "term %s: ordinal %d of a block of %d spans", index.Term{Name: name, Value: value}, p.At(), m.Spans)
				}
			}
			return p.Err()
		})
		if readErr != nil {
			return readErr
		}
		if err == nil {
			continue
		}
		where := "postings dictionary"
		if loads > okLoads {
			where = fmt.Sprintf("postings section %d", lastLoad)
		}
		if !reported[where] { // a bad section spoils every name with a list in it
			reported[where] = true
			problem(where, err)
		}
	}
	return nil
}

// wal checks every WAL segment.
func (v *verifier) wal(ctx context.Context) error {
	segs, err := wal.ListSegments(v.walDir)
	if err != nil {
		return err
	}
	var prev uint64
	for i, n := range segs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if v.liveSegment != 0 && n >= v.liveSegment {
			break
		}
		if i > 0 && n != prev+1 {
			v.report(VerifyProblem{Where: fmt.Sprintf("wal segments %d to %d", prev+1, n-1), Segment: prev + 1,
				Err: errors.New("missing (deleted behind the WAL's back: their records are lost)"), Benign: n <= v.checkpoint})
		}
		prev = n
		if err := v.segment(n); err != nil {
			return err
		}
	}
	return nil
}

// segment checks WAL segment n.
func (v *verifier) segment(n uint64) error {
	// The name as the WAL writes it (db/internal/wal/wal.md).
	path := filepath.Join(v.walDir, fmt.Sprintf("%020d.wal", n))
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	v.rep.WALSegments++
	benign := n < v.checkpoint // flushed already; a writable open deletes it
	problem := func(off int64, err error) {
		v.report(VerifyProblem{Where: fmt.Sprintf("wal segment %d offset %d", n, off), Segment: n, Offset: off, Err: err, Benign: benign})
	}
	r := wal.NewSegmentReader(f)
	for r.Next() {
		tenant, _, err := decodeWALRecord(r.Record())
		// A tenant's check counts and reports its own records, and those
		// whose tenant could not be read.
		if v.tenant != "" && tenant != "" && tenant != v.tenant {
			continue
		}
		v.rep.WALRecords++
		if err != nil {
			// The frame's CRC32C held: the record is what was written, and
			// this build cannot read it.
			problem(r.Offset(), err)
		}
	}
	if err := r.Err(); err != nil {
		if !errors.Is(err, encoding.ErrCorrupt) && !errors.Is(err, wal.ErrUnknownVersion) {
			return fmt.Errorf("read wal segment %d: %w", n, err)
		}
		fi, serr := f.Stat()
		if serr == nil && errors.Is(err, encoding.ErrCorrupt) {
			err = fmt.Errorf("%w; %d bytes from here on are unreadable (a replay for writing cuts them)", err, fi.Size()-r.Good())
		}
		problem(r.Good(), err)
	}
	if h := r.Header(); h.Version != 0 && h.Segment != n {
		problem(0, encoding.Corruptf("wal segment header", 8, "names segment %d, file name %d", h.Segment, n))
	}
	return nil
}
