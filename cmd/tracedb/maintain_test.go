package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/tracedb/tracedb/encoding"
)

func TestVerifyCommand(t *testing.T) {
	dir := fixtureStore(t)
	out := mustRun(t, "verify", "--data-dir", dir)
	if !strings.HasSuffix(out, "no corruption\n") || !strings.Contains(out, "checked 2 tenants") {
		t.Errorf("clean store:\n%s", out)
	}

	// Flip a byte in the middle of a row group of the acme tenant.
	bdb, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "badger")).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	var bad encoding.BlockKeyParts
	err = bdb.Update(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: encoding.TenantPrefix("acme")})
		var key, val []byte
		for it.Rewind(); it.Valid(); it.Next() {
			p, err := encoding.ParseBlockKey(it.Item().Key())
			if err != nil {
				return err
			}
			if p.Kind == encoding.KindRowGroup {
				bad, key = p, it.Item().KeyCopy(nil)
				if val, err = it.Item().ValueCopy(nil); err != nil {
					return err
				}
				break
			}
		}
		it.Close()
		val[len(val)/2] ^= 1
		return txn.Set(key, val)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := bdb.Close(); err != nil {
		t.Fatal(err)
	}
	out, _, err = run(t, "verify", "--data-dir", dir)
	if err == nil || !strings.Contains(err.Error(), "corrupt: 1 problems") {
		t.Errorf("verify of a flipped byte: err = %v", err)
	}
	want := "CORRUPT: tenant \"acme\" partition " + bad.Partition.String() + " block " + bad.Block.String() + ": row group 0: "
	if !strings.HasPrefix(out, want) || !strings.Contains(out, "checksum") {
		t.Errorf("verify output lacks %q:\n%s", want, out)
	}
}

func TestCompactAndRetentionCommands(t *testing.T) {
	dir := fixtureStore(t)
	out := mustRun(t, "compact", "--data-dir", dir)
	if !strings.Contains(out, "nothing to merge") && !strings.Contains(out, "groups merged") {
		t.Errorf("compact:\n%s", out)
	}
	stats := mustRun(t, "stats", "--data-dir", dir)

	out = mustRun(t, "retention", "--dry-run", "--ttl", "72h", "--data-dir", dir)
	// The fixture's spans are from 2024: all past any TTL.
	if !strings.Contains(out, "would drop") || !strings.Contains(out, "acme") || !strings.Contains(out, "ttl") {
		t.Errorf("dry run:\n%s", out)
	}
	if got := mustRun(t, "stats", "--data-dir", dir); got != stats {
		t.Errorf("a dry run changed the store:\n%s\nbefore:\n%s", got, stats)
	}
	out = mustRun(t, "retention", "--ttl", "72h", "--tenant-ttl", "acme=0", "--data-dir", dir)
	if !strings.Contains(out, "dropped") || strings.Contains(out, "\nacme") {
		t.Errorf("retention keeping acme:\n%s", out)
	}
	out = mustRun(t, "stats", "--data-dir", dir)
	if !strings.Contains(out, "acme") {
		t.Errorf("stats after retention:\n%s", out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"retention", "--dry-run", "--data-dir", dir}, "no policy"},
		{[]string{"retention", "--tenant-ttl", "acme", "--data-dir", dir}, "tenant=duration"},
		{[]string{"compact", "--data-dir", filepath.Join(dir, "nope")}, "no store in"},
		{[]string{"verify", "--data-dir", filepath.Join(dir, "nope")}, "no store in"},
	} {
		_, _, err := run(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("tracedb %v: err = %v, want %q", tc.args, err, tc.want)
		}
	}
}
