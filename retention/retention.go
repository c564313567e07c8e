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
	// budget, so that a store over budget still answers for the present;
	// a partition dropped for the budget keeps nothing longer (Keep).
	// The budget counts the blocks' encoded bytes; the store's directory
	// holds besides them the WAL written since the last flush, Badger's
	// tables and up to one value-log file being filled or awaiting its GC
	// (db.Options.BadgerValueLogFileBytes): that is the slack to allow
	// when sizing a disk (db's TestRetentionDiskBudget measures it).
	DiskBudget uint64
	// Keep keeps some traces longer than TTL. See KeepRule.
	Keep KeepRule
}

// KeepRule keeps the traces that matter past the TTL: when a partition
// passes its TTL, the traces with a span that has an error status (Errors),
// or lasts at least SlowerThan, or satisfies Match, are rewritten whole
// into a kept partition of their own (encoding.PartitionID.Kept), which
// lives until its newest span is older than TTL; the rest of the partition
// is dropped. A trace's spans in the partition after it count too, so a
// trace that straddles two partitions is kept whole when either part
// matches. The zero value keeps nothing longer.
type KeepRule struct {
	Errors     bool
	SlowerThan time.Duration
	// Match, when set, is asked about every span of an expiring partition
	// (for example a compiled structured filter's Match).
	Match func(*encoding.Span) bool
	// TTL is how long kept traces live, by their newest span; 0 keeps
	// them forever.
	TTL time.Duration
}

// Enabled reports whether the rule keeps anything.
func (k KeepRule) Enabled() bool { return k.Errors || k.SlowerThan > 0 || k.Match != nil }

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
	if p.Keep.SlowerThan < 0 || p.Keep.TTL < 0 {
		return fmt.Errorf("retention keep rule: slower-than %s and TTL %s must not be negative", p.Keep.SlowerThan, p.Keep.TTL)
	}
	if p.Keep.Enabled() && p.Keep.TTL > 0 && p.TTL > 0 && p.Keep.TTL <= p.TTL {
		return fmt.Errorf("retention keep rule: TTL %s is not longer than the TTL %s", p.Keep.TTL, p.TTL)
	}
	return nil
}

// Enabled reports whether the policy can drop anything.
func (p Policy) Enabled() bool {
	if p.TTL > 0 || p.DiskBudget > 0 || p.Keep.Enabled() && p.Keep.TTL > 0 {
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

// Drop is a partition to drop and why. When Keep is set, the traces the
// policy's KeepRule matches are rewritten into the kept partition first.
type Drop struct {
	Partition
	Reason Reason
	Keep   bool
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
		ttl := p.ttlOf(part.Tenant)
		if part.ID.IsKept() {
			ttl = p.Keep.TTL
		}
		if ttl > 0 && part.MaxEnd+uint64(ttl) < nowNs {
			drops = append(drops, Drop{part, ReasonTTL, !part.ID.IsKept() && p.Keep.Enabled()})
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
		if part.ID.IsKept() {
			continue
		}
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
		drops = append(drops, Drop{part, ReasonBudget, false})
		total -= part.Bytes
	}
	return drops
}
