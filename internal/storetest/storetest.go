// Package storetest damages stores on disk for the tests that check what
// tracedb says about damage (verify, locally and through the server).
package storetest

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/tracedb/tracedb/encoding"
)

// FlipOldestRowGroup flips a byte in the middle of a row group of
// tenant's oldest block (the lowest block ID) in the closed store in dir,
// and returns the row group's key. The store's Badger database is in
// dir/badger (db's layout).
func FlipOldestRowGroup(t testing.TB, dir, tenant string) encoding.BlockKeyParts {
	t.Helper()
	bdb, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "badger")).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	var bad encoding.BlockKeyParts
	err = bdb.Update(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: encoding.TenantPrefix(tenant)})
		var key []byte
		for it.Rewind(); it.Valid(); it.Next() {
			p, err := encoding.ParseBlockKey(it.Item().Key())
			if err != nil {
				it.Close()
				return err
			}
			if p.Kind == encoding.KindRowGroup && (key == nil || p.Block < bad.Block) {
				bad, key = p, it.Item().KeyCopy(nil)
			}
		}
		it.Close()
		if key == nil {
			return errors.New("no row group")
		}
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		val, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		val[len(val)/2] ^= 1
		return txn.Set(key, val)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := bdb.Close(); err != nil {
		t.Fatal(err)
	}
	return bad
}
