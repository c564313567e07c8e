package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tracedb/tracedb/encoding"
)

// DiskUsage is what the regular files under a directory take.
type DiskUsage struct {
	// Allocated is the space the filesystem gave the files (st_blocks ×
	// 512): what df sees. Sparse or preallocated files make it differ
	// from Apparent.
	Allocated int64
	// Apparent is the sum of the files' sizes (what ls -l shows).
	Apparent int64
	Files    int
}

// MeasureDisk sums the regular files under dir, at any depth.
func MeasureDisk(dir string) (DiskUsage, error) {
	var u DiskUsage
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		u.Files++
		u.Apparent += fi.Size()
		u.Allocated += allocatedBytes(fi)
		return nil
	})
	if err != nil {
		return DiskUsage{}, fmt.Errorf("measure disk usage of %s: %w", dir, err)
	}
	return u, nil
}

// SubdirUsage is the disk usage of one entry at the top of a directory.
type SubdirUsage struct {
	Name string // with a trailing slash for a directory
	DiskUsage
}

// MeasureDiskBySubdir returns the usage of dir and of each of its top-level
// entries, in name order (loose files are listed under their own names).
func MeasureDiskBySubdir(dir string) (DiskUsage, []SubdirUsage, error) {
	total, err := MeasureDisk(dir)
	if err != nil {
		return total, nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return total, nil, fmt.Errorf("measure disk usage of %s: %w", dir, err)
	}
	var subs []SubdirUsage
	for _, e := range entries {
		u, err := MeasureDisk(filepath.Join(dir, e.Name()))
		if err != nil {
			return total, nil, err
		}
		name := e.Name()
		if e.IsDir() {
			name += "/"
		}
		subs = append(subs, SubdirUsage{name, u})
	}
	return total, subs, nil
}

// countFlushes returns how many flushes completed, from the store's
// tracedb_flushes_total{result="ok"} counter in g.
func countFlushes(g prometheus.Gatherer) (int64, error) {
	mfs, err := g.Gather()
	if err != nil {
		return 0, fmt.Errorf("gather store metrics: %w", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "tracedb_flushes_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == "ok" {
					return int64(m.GetCounter().GetValue()), nil
				}
			}
		}
	}
	return 0, nil
}

// Memory is the process's resident set, from /proc/self/status.
type Memory struct {
	Peak    int64 // VmHWM: the most resident bytes since start or the last ResetPeakRSS
	Current int64 // VmRSS
}

// ReadMemory reads the process's resident set sizes. It works on Linux
// only.
func ReadMemory() (Memory, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return Memory{}, fmt.Errorf("read memory: %w", err)
	}
	return parseProcStatus(bytes.NewReader(b))
}

// parseProcStatus reads VmHWM and VmRSS from a /proc/<pid>/status file.
func parseProcStatus(r io.Reader) (Memory, error) {
	var m Memory
	var seen int
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		name, rest, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok {
			continue
		}
		var dst *int64
		switch string(name) {
		case "VmHWM":
			dst = &m.Peak
		case "VmRSS":
			dst = &m.Current
		default:
			continue
		}
		num, unit, _ := bytes.Cut(bytes.TrimSpace(rest), []byte(" "))
		kb, err := strconv.ParseInt(string(num), 10, 64)
		if err != nil || string(unit) != "kB" {
			return Memory{}, fmt.Errorf("read memory: bad %s line %q", name, sc.Bytes())
		}
		*dst = kb << 10
		seen++
	}
	if err := sc.Err(); err != nil {
		return Memory{}, fmt.Errorf("read memory: %w", err)
	}
	if seen != 2 {
		return Memory{}, errors.New("read memory: no VmHWM and VmRSS lines")
	}
	return m, nil
}

// ResetPeakRSS sets the process's peak resident set (VmHWM) to its current
// one, so that a later ReadMemory reports the peak of what came after
// (Linux ≥ 4.0; clear_refs value 5).
func ResetPeakRSS() error {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return fmt.Errorf("reset peak rss: %w", err)
	}
	return nil
}

// KindBytes counts one kind of Badger entry: how many, and their key plus
// value bytes as written (before Badger's own overhead).
type KindBytes struct {
	Keys  int64
	Bytes int64
}

func (k *KindBytes) add(key, value int) {
	k.Keys++
	k.Bytes += int64(key + value)
}

// StoreKeys splits a store's Badger entries by kind (encoding/keys.md).
type StoreKeys struct {
	RowGroups    KindBytes // kind 'b': the spans' columns
	PostingsDict KindBytes // kind 'd': the term dictionaries
	Postings     KindBytes // kind 'p': the bitmaps
	BlockMeta    KindBytes // kind 'm': time range, counts, trace-ID filter, row group refs
	StoreMeta    KindBytes // store-wide keys: format record, WAL checkpoint
}

// Total returns the bytes of all entries.
func (k StoreKeys) Total() int64 {
	return k.RowGroups.Bytes + k.PostingsDict.Bytes + k.Postings.Bytes + k.BlockMeta.Bytes + k.StoreMeta.Bytes
}

// ReadStoreKeys opens the Badger directory of a closed store read-only and
// sums its entries by kind. A tenant key that does not parse is an error.
func ReadStoreKeys(badgerDir string) (StoreKeys, error) {
	var k StoreKeys
	bdb, err := badger.Open(badger.DefaultOptions(badgerDir).
		WithReadOnly(true).
		WithLogger(nil).
		WithMetricsEnabled(false))
	if err != nil {
		return k, fmt.Errorf("open %s read-only: %w", badgerDir, err)
	}
	err = bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			var n int
			if err := item.Value(func(v []byte) error { n = len(v); return nil }); err != nil {
				return err
			}
			key := item.Key()
			if !encoding.IsTenantKey(key) {
				k.StoreMeta.add(len(key), n)
				continue
			}
			p, err := encoding.ParseBlockKey(key)
			if err != nil {
				return err
			}
			switch p.Kind {
			case encoding.KindRowGroup:
				k.RowGroups.add(len(key), n)
			case encoding.KindPostingsDict:
				k.PostingsDict.add(len(key), n)
			case encoding.KindPostings:
				k.Postings.add(len(key), n)
			case encoding.KindBlockMeta:
				k.BlockMeta.add(len(key), n)
			}
		}
		return nil
	})
	if err = errors.Join(err, bdb.Close()); err != nil {
		return StoreKeys{}, fmt.Errorf("read keys of %s: %w", badgerDir, err)
	}
	return k, nil
}
