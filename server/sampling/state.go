package sampling

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
)

// The adaptive state file of a tenant, <StateDir>/<tenant>.json; see
// state.md.
const (
	stateVersion    = 1
	stateFileSuffix = ".json"
	stateWhat       = "sampling state"
	// maxStateFileBytes bounds a state file read back: the caps on
	// services and operations keep real files far smaller.
	maxStateFileBytes = 256 << 20
)

// stateFile is the JSON of a state file. Services is kept as the exact
// bytes written, so that CRC32C can be checked over them.
type stateFile struct {
	Version  int             `json:"version"`
	Tenant   string          `json:"tenant"`
	SavedAt  time.Time       `json:"saved_at"`
	CRC32C   uint32          `json:"crc32c"`
	Services json.RawMessage `json:"services"`
}

// opJSON is one operation's persisted state. The throughput window is not
// kept: after a restart it fills again while the probability holds.
type opJSON struct {
	Probability        float64   `json:"probability"`
	LastSeen           time.Time `json:"last_seen"`
	BaselineSet        bool      `json:"baseline_set,omitempty"`
	BaselineErrorRatio float64   `json:"baseline_error_ratio,omitempty"`
	BaselineP99Seconds float64   `json:"baseline_p99_seconds,omitempty"`
}

func statePath(dir, tenant string) string { return filepath.Join(dir, tenant+stateFileSuffix) }

// encodeState returns the state file of t.
func encodeState(tenant string, t *tenantAdaptive, now time.Time) ([]byte, error) {
	services := make(map[string]map[string]opJSON, len(t.services))
	for svc, ss := range t.services {
		ops := make(map[string]opJSON, len(ss.ops))
		for name, op := range ss.ops {
			ops[name] = opJSON{Probability: op.probability, LastSeen: op.lastSeen.UTC(), BaselineSet: op.baseSet,
				BaselineErrorRatio: op.baseErr, BaselineP99Seconds: op.baseP99}
		}
		services[svc] = ops
	}
	body, err := json.Marshal(services) // map keys sorted: deterministic
	if err != nil {
		return nil, err
	}
	return json.MarshalIndent(stateFile{Version: stateVersion, Tenant: tenant, SavedAt: now.UTC(),
		CRC32C: encoding.Checksum(body), Services: body}, "", "  ")
}

// decodeState parses a state file of tenant into a fresh state opened at
// now. Damage (bad JSON, a CRC mismatch, values out of range) is an error
// wrapping encoding.ErrCorrupt; an unknown version is an error of its own.
func decodeState(b []byte, tenant string, o *AdaptiveOptions, now time.Time) (*tenantAdaptive, error) {
	var f stateFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, encoding.Corruptf(stateWhat, -1, "%v", err)
	}
	if f.Version != stateVersion {
		return nil, fmt.Errorf("%s: version %d, this build reads %d", stateWhat, f.Version, stateVersion)
	}
	if f.Tenant != tenant {
		return nil, encoding.Corruptf(stateWhat, -1, "file of tenant %q holds tenant %q", tenant, f.Tenant)
	}
	// The CRC covers the services object exactly as written (compact).
	var compact bytes.Buffer
	if err := json.Compact(&compact, f.Services); err != nil {
		return nil, encoding.Corruptf(stateWhat, -1, "services: %v", err)
	}
	if got := encoding.Checksum(compact.Bytes()); got != f.CRC32C {
		return nil, encoding.Corruptf(stateWhat, -1, "crc32c %08x, want %08x", got, f.CRC32C)
	}
	var services map[string]map[string]opJSON
	if err := json.Unmarshal(f.Services, &services); err != nil {
		return nil, encoding.Corruptf(stateWhat, -1, "services: %v", err)
	}
	t := newTenantAdaptive(now)
	for svc, ops := range services {
		for name, j := range ops {
			if !(j.Probability >= 0 && j.Probability <= 1) || !finite(j.BaselineErrorRatio) || !finite(j.BaselineP99Seconds) {
				return nil, encoding.Corruptf(stateWhat, -1, "%s/%s: value out of range", svc, name)
			}
			op := t.op(svc, name, o, j.LastSeen)
			if op == nil {
				continue // over the caps of the current options
			}
			// Options may have changed since the save: stay in bounds.
			op.probability = min(max(j.Probability, o.MinProbability), o.MaxProbability)
			op.baseSet, op.baseErr, op.baseP99 = j.BaselineSet, j.BaselineErrorRatio, j.BaselineP99Seconds
		}
	}
	t.dirty = false
	return t, nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// saveState writes b as tenant's state file under dir, crash-safely:
// a temporary file, fsync, rename, fsync of the directory.
func saveState(dir, tenant string, b []byte) (err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	path := statePath(dir, tenant)
	tmp, err := os.CreateTemp(dir, "."+tenant+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(b); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// stateTenants lists the tenants with a state file under dir; a missing
// dir has none.
func stateTenants(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var tenants []string
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), stateFileSuffix)
		if !ok || e.IsDir() || db.ValidateTenant(name) != nil {
			continue
		}
		tenants = append(tenants, name)
	}
	return tenants, nil
}

// readState reads tenant's state file under dir.
func readState(dir, tenant string, o *AdaptiveOptions, now time.Time) (*tenantAdaptive, error) {
	path := statePath(dir, tenant)
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > maxStateFileBytes {
		return nil, encoding.Corruptf(stateWhat, -1, "%s is %d bytes, more than %d", path, fi.Size(), maxStateFileBytes)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := decodeState(b, tenant, o, now)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}
