package retention

import (
	"slices"
	"testing"
	"time"

	"github.com/tracedb/tracedb/encoding"
)

const hour = uint64(time.Hour)

// part returns a partition of tenant whose spans end at hour h.
func part(tenant string, id uint32, h uint64, bytes uint64) Partition {
	return Partition{Tenant: tenant, ID: encoding.PartitionID(id), MinStart: (h - 1) * hour, MaxEnd: h * hour, Bytes: bytes, Spans: bytes / 50}
}

func TestPlan(t *testing.T) {
	now := time.Unix(0, int64(100*hour))
	parts := []Partition{
		part("a", 90, 90, 100), // 10 h old
		part("a", 97, 97, 100), // 3 h old
		part("a", 99, 99, 100), // 1 h old
		part("b", 90, 90, 100),
		part("b", 99, 99, 100),
	}
	type dropped struct {
		tenant string
		id     uint32
		reason Reason
	}
	for _, c := range []struct {
		name   string
		policy Policy
		want   []dropped
	}{
		{"nothing", Policy{}, nil},
		{"ttl 5h", Policy{TTL: 5 * time.Hour}, []dropped{{"a", 90, ReasonTTL}, {"b", 90, ReasonTTL}}},
		{"ttl exactly the age keeps", Policy{TTL: 10 * time.Hour}, nil},
		{"ttl 2h", Policy{TTL: 2 * time.Hour}, []dropped{{"a", 90, ReasonTTL}, {"a", 97, ReasonTTL}, {"b", 90, ReasonTTL}}},
		{"tenant ttl overrides", Policy{TTL: 2 * time.Hour, TenantTTL: map[string]time.Duration{"b": 0, "a": 5 * time.Hour}},
			[]dropped{{"a", 90, ReasonTTL}}},
		{"budget drops oldest first, across tenants", Policy{DiskBudget: 300},
			[]dropped{{"a", 90, ReasonBudget}, {"b", 90, ReasonBudget}}},
		{"budget keeps each tenant's newest", Policy{DiskBudget: 1},
			[]dropped{{"a", 90, ReasonBudget}, {"b", 90, ReasonBudget}, {"a", 97, ReasonBudget}}},
		{"ttl then budget", Policy{TTL: 5 * time.Hour, DiskBudget: 250},
			[]dropped{{"a", 90, ReasonTTL}, {"b", 90, ReasonTTL}, {"a", 97, ReasonBudget}}},
		{"under budget", Policy{DiskBudget: 500}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := slices.Clone(parts)
			var got []dropped
			for _, d := range Plan(in, c.policy, now) {
				got = append(got, dropped{d.Tenant, uint32(d.ID), d.Reason})
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("drops %v, want %v", got, c.want)
			}
			if !slices.Equal(in, parts) {
				t.Errorf("Plan modified its input")
			}
		})
	}
}

func TestPolicyValidateAndEnabled(t *testing.T) {
	if err := (Policy{TTL: -time.Second}).Validate(); err == nil {
		t.Error("negative TTL accepted")
	}
	if err := (Policy{TenantTTL: map[string]time.Duration{"x": -1}}).Validate(); err == nil {
		t.Error("negative tenant TTL accepted")
	}
	for _, c := range []struct {
		p    Policy
		want bool
	}{
		{Policy{}, false},
		{Policy{TenantTTL: map[string]time.Duration{"x": 0}}, false},
		{Policy{TenantTTL: map[string]time.Duration{"x": time.Hour}}, true},
		{Policy{TTL: time.Hour}, true},
		{Policy{DiskBudget: 1}, true},
	} {
		if got := c.p.Enabled(); got != c.want {
			t.Errorf("%+v.Enabled() = %v, want %v", c.p, got, c.want)
		}
	}
}

func TestPlanKeep(t *testing.T) {
	now := time.Unix(0, int64(100*hour))
	keptOld := part("a", 0, 80, 10)
	keptOld.ID = encoding.PartitionID(80).Kept()
	keptNew := part("a", 0, 95, 10)
	keptNew.ID = encoding.PartitionID(95).Kept()
	parts := []Partition{part("a", 90, 90, 100), part("a", 99, 99, 100), keptOld, keptNew}
	p := Policy{TTL: 5 * time.Hour, Keep: KeepRule{Errors: true, TTL: 15 * time.Hour}}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	got := Plan(parts, p, now)
	want := []Drop{{parts[0], ReasonTTL, true}, {keptOld, ReasonTTL, false}}
	if !slices.Equal(got, want) {
		t.Errorf("drops %+v, want %+v", got, want)
	}
	// The budget may drop kept partitions; each tenant's newest ordinary
	// partition stays.
	got = Plan(parts, Policy{DiskBudget: 50, Keep: KeepRule{Errors: true}}, now)
	var ids []encoding.PartitionID
	for _, d := range got {
		ids = append(ids, d.ID)
		if d.Keep {
			t.Errorf("a budget drop keeps traces: %+v", d)
		}
	}
	if wantIDs := []encoding.PartitionID{keptOld.ID, 90, keptNew.ID}; !slices.Equal(ids, wantIDs) {
		t.Errorf("budget drops %v, want %v", ids, wantIDs)
	}
	if err := (Policy{TTL: time.Hour, Keep: KeepRule{Errors: true, TTL: time.Hour}}).Validate(); err == nil {
		t.Error("a keep TTL no longer than the TTL was accepted")
	}
}
