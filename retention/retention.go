// Package retention decides what the store drops: policies are pure
// functions from partition metadata and the time to the partitions to
// drop, so that they are tested with small tables and reasoned about
// without a store. The store (package db) carries the drops out and gives
// the disk back.
package retention

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/tracedb/tracedb/encoding"
)

// Partition describes one tenant's partition as the store holds it: the
// union of its blocks.
type Partition struct {
	Tenant string
	ID     encoding.PartitionID
	// MinStart is the earliest span start, MaxEnd the latest span end (or
	// start, when later), Unix ns.
	MinStart, MaxEnd uint64
	Spans            uint64
	Bytes            uint64 // encoded bytes of its blocks
}

// Policy is what the store keeps. The zero value keeps everything.
type Policy struct {
	// TTL drops a partition once its newest span (MaxEnd) is older than
	// TTL; 0 keeps partitions forever.
	TTL time.Duration
	// TenantTTL overrides TTL for the tenants it names (0 there keeps the
	// tenant's partitions forever).
	TenantTTL map[string]time.Duration
	// DiskBudget, when not 0, drops the oldest partitions (by MaxEnd, over
	// all tenants) until the partitions kept hold at most DiskBudget
	// bytes. The newest partition of each tenant is never dropped for the
	// budget, so that a store over budget still answers for the present.
	// The budget counts the blocks' encoded bytes; the store's directory
	// holds besides them the WAL written since the last flush, Badger's
	// tables and up to one value-log file being filled or awaiting its GC
	// (db.Options.BadgerValueLogFileBytes): that is the slack to allow
	// when sizing a disk (db's TestRetentionDiskBudget measures it).
	DiskBudget uint64
}

// Validate reports a policy that cannot be applied.
func (p Policy) Validate() error {
	if p.TTL < 0 {
		return fmt.Errorf("retention TTL %s is negative", p.TTL)
	}
	for t, ttl := range p.TenantTTL {
		if ttl < 0 {
			return fmt.Errorf("retention TTL %s of tenant %q is negative", ttl, t)
		}
	}
	return nil
}

// Enabled reports whether the policy can drop anything.
func (p Policy) Enabled() bool {
	if p.TTL > 0 || p.DiskBudget > 0 {
		return true
	}
	for _, ttl := range p.TenantTTL {
		if ttl > 0 {
			return true
		}
	}
	return false
}

// ttlOf returns the TTL of tenant t.
func (p Policy) ttlOf(t string) time.Duration {
	if ttl, ok := p.TenantTTL[t]; ok {
		return ttl
	}
	return p.TTL
}

// Reason says why a partition is dropped.
type Reason string

// The reasons.
const (
	ReasonTTL    Reason = "ttl"
	ReasonBudget Reason = "disk_budget"
)

// Drop is a partition to drop and why.
type Drop struct {
	Partition
	Reason Reason
}

// Plan returns the partitions of parts that p drops at time now: first
// those past their tenant's TTL, then, while the rest hold more than the
// disk budget, the oldest of the rest. Drops come in that order; parts is
// not modified.
func Plan(parts []Partition, p Policy, now time.Time) []Drop {
	var drops []Drop
	var kept []Partition
	nowNs := uint64(max(now.UnixNano(), 0))
	for _, part := range parts {
		if ttl := p.ttlOf(part.Tenant); ttl > 0 && part.MaxEnd+uint64(ttl) < nowNs {
			drops = append(drops, Drop{part, ReasonTTL})
			continue
		}
		kept = append(kept, part)
	}
	if p.DiskBudget == 0 {
		return drops
	}
	var total uint64
	newest := map[string]encoding.PartitionID{}
	for _, part := range kept {
		total += part.Bytes
		if n, ok := newest[part.Tenant]; !ok || part.ID > n {
			newest[part.Tenant] = part.ID
		}
	}
	slices.SortStableFunc(kept, func(a, b Partition) int {
		return cmp.Or(cmp.Compare(a.MaxEnd, b.MaxEnd), cmp.Compare(a.ID, b.ID), cmp.Compare(a.Tenant, b.Tenant))
	})
	for _, part := range kept {
		if total <= p.DiskBudget {
			break
		}
		if newest[part.Tenant] == part.ID {
			continue
		}
		drops = append(drops, Drop{part, ReasonBudget})
		total -= part.Bytes
	}
	return drops
}
