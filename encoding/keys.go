package encoding

import (
	"encoding/binary"
	"fmt"
)

// Badger key layout; keys.md draws it. Everything of one tenant's partition
// sits under one prefix, so that retention drops a partition with one
// prefix deletion and Badger's value-log GC can then give the disk back.

// Key kinds: the byte after a partition prefix.
const (
	KindRowGroup     byte = 'b' // + block BE64 + row group BE32 → row group
	KindPostingsDict byte = 'd' // + block BE64                 → postings dictionary
	KindPostings     byte = 'p' // + block BE64 + section BE32  → postings section
	KindBlockMeta    byte = 'm' // + block BE64                 → block meta
	KindTermHists    byte = 'h' // + block BE64                 → index.TermHistograms
)

const (
	tenantSpace byte = 't'
	metaSpace   byte = 'M'
)

// MaxTenantLen is the longest tenant name a key can hold.
const MaxTenantLen = 255

// Store-wide keys outside any tenant.
var (
	KeyFormat        = []byte{metaSpace, 'f'} // the format record (format.go)
	KeyWALCheckpoint = []byte{metaSpace, 'w'} // first WAL segment not yet flushed, BE64
)

// DependencyStateKey returns the key of tenant's DependencyState.
func DependencyStateKey(tenant string) []byte {
	b := make([]byte, 0, 3+len(tenant))
	b = append(b, metaSpace, 'd', byte(len(tenant)))
	return append(b, tenant...)
}

// TenantPrefix returns the prefix of every key of tenant.
func TenantPrefix(tenant string) []byte {
	b := make([]byte, 0, 2+len(tenant))
	b = append(b, tenantSpace, byte(len(tenant)))
	return append(b, tenant...)
}

// PartitionPrefix returns the prefix of every key of tenant's partition p.
func PartitionPrefix(tenant string, p PartitionID) []byte {
	return binary.BigEndian.AppendUint32(TenantPrefix(tenant), uint32(p))
}

// BlockKey returns the key of kind for block id in tenant's partition p.
// For KindRowGroup and KindPostings, n is the row group or section number;
// it is ignored for the other kinds.
func BlockKey(tenant string, p PartitionID, kind byte, id BlockID, n uint32) []byte {
	b := append(PartitionPrefix(tenant, p), kind)
	b = binary.BigEndian.AppendUint64(b, uint64(id))
	if kind == KindRowGroup || kind == KindPostings {
		b = binary.BigEndian.AppendUint32(b, n)
	}
	return b
}

// BlockPrefix returns the prefix of all keys of kind for one block.
func BlockPrefix(tenant string, p PartitionID, kind byte, id BlockID) []byte {
	b := append(PartitionPrefix(tenant, p), kind)
	return binary.BigEndian.AppendUint64(b, uint64(id))
}

// BlockKeyParts is a parsed tenant key.
type BlockKeyParts struct {
	Tenant    string
	Partition PartitionID
	Kind      byte
	Block     BlockID
	N         uint32
}

// ParseBlockKey parses a key made by BlockKey. Errors wrap ErrCorrupt.
func ParseBlockKey(k []byte) (BlockKeyParts, error) {
	var p BlockKeyParts
	d := NewDecbuf(k, "block key")
	if d.Byte() != tenantSpace {
		return p, Corruptf("block key", 0, "not a tenant key: %q", k)
	}
	n := int(d.Byte())
	p.Tenant = string(d.Bytes(n))
	p.Partition = PartitionID(d.BE32())
	p.Kind = d.Byte()
	p.Block = BlockID(d.BE64())
	switch p.Kind {
	case KindRowGroup, KindPostings:
		p.N = d.BE32()
	case KindPostingsDict, KindBlockMeta, KindTermHists:
	default:
		if d.Err() == nil {
			return p, Corruptf("block key", 0, "unknown kind %q", p.Kind)
		}
	}
	if err := d.Err(); err != nil {
		return p, err
	}
	if d.Len() != 0 {
		return p, Corruptf("block key", d.Offset(), "%d trailing bytes", d.Len())
	}
	return p, nil
}

// IsTenantKey reports whether k belongs to some tenant.
func IsTenantKey(k []byte) bool { return len(k) > 0 && k[0] == tenantSpace }

func (p BlockKeyParts) String() string {
	return fmt.Sprintf("tenant=%q partition=%d kind=%c block=%s n=%d", p.Tenant, p.Partition, p.Kind, p.Block, p.N)
}
