package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/query"
	"github.com/tracedb/tracedb/retention"
	"github.com/tracedb/tracedb/server/sampling"
)

// Off as a listen address turns that listener off.
const Off = "off"

// Default listen addresses: loopback, on the ports Jaeger users know.
const (
	DefaultStorageAddr  = "127.0.0.1:17271"
	DefaultAdminAddr    = "127.0.0.1:17270"
	DefaultOTLPGRPCAddr = "127.0.0.1:4317"
	DefaultOTLPHTTPAddr = "127.0.0.1:4318"
	// Jaeger remote sampling, as Jaeger serves it.
	DefaultSamplingHTTPAddr = "127.0.0.1:5778"
	DefaultSamplingGRPCAddr = "127.0.0.1:5779"
)

// Defaults of the other settings.
const (
	DefaultDataDir            = "./tracedb-data"
	DefaultTenantHeader       = "x-tenant"
	DefaultMaxMessageBytes    = 16 << 20
	DefaultMaxSpansPerRequest = 100_000
	DefaultIngestQueueBytes   = 64 << 20
	DefaultWriteTimeout       = 5 * time.Second
	DefaultShutdownTimeout    = 10 * time.Second
)

// Config is the standalone server's configuration, as read from a YAML file
// (LoadConfig) and overridden by the serve command's flags. The zero value
// of a field means its default.
type Config struct {
	// DataDir is the store's directory; the caller opens it. Default
	// ./tracedb-data.
	DataDir string `yaml:"data_dir"`
	// Listen are the listen addresses; Off turns one off.
	Listen Listen `yaml:"listen"`
	// TLS, when CertFile is set, is used on every listener.
	TLS TLS `yaml:"tls"`
	// Auth, when TokenFile is set, demands a bearer token on every RPC and
	// route except health checks.
	Auth Auth `yaml:"auth"`
	// Tenancy selects tenants by header.
	Tenancy Tenancy `yaml:"tenancy"`
	// Limits bound ingest.
	Limits Limits `yaml:"limits"`
	// Admin configures the admin HTTP listener's extras.
	Admin Admin `yaml:"admin"`
	// Retention is what the store drops, and how often it looks: see
	// retention.Policy. The zero value keeps everything.
	Retention Retention `yaml:"retention"`
	// Storage tunes the store's memory; zero values take db.Options'
	// defaults.
	Storage Storage `yaml:"storage"`
	// Sampling configures the Jaeger remote sampling strategies served on
	// Listen.SamplingHTTP and Listen.SamplingGRPC.
	Sampling Sampling `yaml:"sampling"`
	// ShutdownTimeout bounds how long Serve waits for in-flight requests
	// after its context ends before cutting them off. Default 10s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// Storage tunes the store (db.Options): how much memory it may use to
// buffer writes and to cache reads.
type Storage struct {
	// MaxHeadSpans flushes a tenant's in-memory head into a block at this
	// many spans (db.Options.MaxHeadSpans). Default 262,144.
	MaxHeadSpans int `yaml:"max_head_spans"`
	// RowGroupCacheBytes bounds the cache of decompressed row groups
	// that trace reads keep (db.Options.RowGroupCacheBytes). Default
	// 64 MiB; negative turns it off.
	RowGroupCacheBytes int64 `yaml:"row_group_cache_bytes"`
	// RowGroupSpans is the number of spans per row group of the blocks
	// the store writes (db.Options.RowGroupSpans): smaller groups read a
	// trace faster, larger ones compress a little better. Default 1,024.
	RowGroupSpans int `yaml:"row_group_spans"`
}

// Retention configures the store's retention (db.Options.Retention).
type Retention struct {
	// TTL drops a partition once its newest span is older; 0 keeps
	// everything.
	TTL time.Duration `yaml:"ttl"`
	// TenantTTL overrides TTL per tenant.
	TenantTTL map[string]time.Duration `yaml:"tenant_ttl"`
	// DiskBudget drops the oldest partitions while the blocks hold more
	// bytes; 0 means no budget.
	DiskBudget int64 `yaml:"disk_budget_bytes"`
	// Interval is how often retention runs. Default 1 minute.
	Interval time.Duration `yaml:"interval"`
	// Keep keeps the traces that matter longer than TTL.
	Keep Keep `yaml:"keep"`
}

// Keep configures retention's keep-longer rule (retention.KeepRule): traces
// with an error span, a span at least SlowerThan long, or a span matching
// Filter (the structured filter syntax of query.ParseFilter) are kept for
// TTL instead of the base TTL.
type Keep struct {
	Errors     bool          `yaml:"errors"`
	SlowerThan time.Duration `yaml:"slower_than"`
	Filter     string        `yaml:"filter"`
	TTL        time.Duration `yaml:"ttl"`
}

// Policy returns the retention policy of r, or an error for a filter that
// does not parse.
func (r Retention) Policy() (retention.Policy, error) {
	p := retention.Policy{TTL: r.TTL, TenantTTL: r.TenantTTL, DiskBudget: uint64(max(r.DiskBudget, 0)),
		Keep: retention.KeepRule{Errors: r.Keep.Errors, SlowerThan: r.Keep.SlowerThan, TTL: r.Keep.TTL}}
	if r.Keep.Filter != "" {
		e, err := query.ParseFilter(r.Keep.Filter)
		if err != nil {
			return p, fmt.Errorf("retention.keep.filter: %w", err)
		}
		f, err := query.Compile(e)
		if err != nil {
			return p, fmt.Errorf("retention.keep.filter: %w", err)
		}
		p.Keep.Match = f.Match
	}
	return p, nil
}

// Listen holds the listen addresses ("host:port", or Off).
type Listen struct {
	// Storage serves the Jaeger storage v2 gRPC API and OTLP gRPC. Default
	// 127.0.0.1:17271.
	Storage string `yaml:"storage"`
	// Admin serves /metrics, /healthz, /readyz (and pprof when enabled) over
	// HTTP. Default 127.0.0.1:17270.
	Admin string `yaml:"admin"`
	// OTLPGRPC serves OTLP over gRPC. Default 127.0.0.1:4317.
	OTLPGRPC string `yaml:"otlp_grpc"`
	// OTLPHTTP serves OTLP over HTTP (POST /v1/traces). Default 127.0.0.1:4318.
	OTLPHTTP string `yaml:"otlp_http"`
	// SamplingHTTP serves Jaeger remote sampling over HTTP (GET
	// /api/sampling?service=, /sampling?service=). Default 127.0.0.1:5778.
	SamplingHTTP string `yaml:"sampling_http"`
	// SamplingGRPC serves jaeger.api_v2.SamplingManager. Default
	// 127.0.0.1:5779.
	SamplingGRPC string `yaml:"sampling_grpc"`
}

// Sampling configures the sampling strategies served (package
// server/sampling): a service named in StrategiesFile gets the file's
// strategy, else the adaptive one when Adaptive.Enabled, else the file's
// default (probabilistic 0.001 without a file). Adaptive state is kept
// under <data_dir>/sampling.
type Sampling struct {
	// StrategiesFile is a strategies file in Jaeger's JSON format,
	// reloaded when it changes (checked every ReloadInterval, default 5s).
	StrategiesFile string        `yaml:"strategies_file"`
	ReloadInterval time.Duration `yaml:"reload_interval"`
	// Adaptive computes strategies from the root spans ingested.
	Adaptive SamplingAdaptive `yaml:"adaptive"`
}

// SamplingAdaptive configures adaptive sampling; zero values mean the
// defaults of sampling.AdaptiveOptions.
type SamplingAdaptive struct {
	Enabled bool `yaml:"enabled"`
	// TargetTracesPerSecond is the sampled traces per second wanted per
	// operation. Default 1.
	TargetTracesPerSecond float64 `yaml:"target_traces_per_second"`
	// MinProbability and MaxProbability bound the probabilities. Default
	// 1e-5 and 1.
	MinProbability float64 `yaml:"min_probability"`
	MaxProbability float64 `yaml:"max_probability"`
	// MinTracesPerSecond is the lower bound of sampled traces per second
	// per operation. Default 1/60.
	MinTracesPerSecond float64 `yaml:"min_traces_per_second"`
	// Interval is how often probabilities are recomputed (default 1m);
	// Window how far back throughput is averaged (default 5m).
	Interval time.Duration `yaml:"interval"`
	Window   time.Duration `yaml:"window"`
}

// Options returns the sampling service's options for s, with its state
// under dataDir.
func (s Sampling) Options(dataDir string) sampling.Options {
	a := s.Adaptive
	return sampling.Options{
		StrategiesFile: s.StrategiesFile,
		ReloadInterval: s.ReloadInterval,
		StateDir:       filepath.Join(dataDir, "sampling"),
		Adaptive: sampling.AdaptiveOptions{Enabled: a.Enabled, TargetTracesPerSecond: a.TargetTracesPerSecond,
			MinProbability: a.MinProbability, MaxProbability: a.MaxProbability, MinTracesPerSecond: a.MinTracesPerSecond,
			Interval: a.Interval, Window: a.Window},
	}
}

// TLS names the PEM files for TLS on every listener. The minimum version is
// TLS 1.2.
type TLS struct {
	// CertFile and KeyFile are the server's certificate and key; both or
	// neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile, when set, turns on mutual TLS: clients must present a
	// certificate signed by one of these CAs.
	ClientCAFile string `yaml:"client_ca_file"`
}

// Enabled reports whether TLS is configured.
func (t TLS) Enabled() bool { return t.CertFile != "" }

// Auth configures bearer-token authentication.
type Auth struct {
	// TokenFile holds the accepted tokens, one per line; blank lines and
	// lines starting with '#' are skipped. Empty: no authentication.
	TokenFile string `yaml:"token_file"`
}

// Tenancy configures tenant selection.
type Tenancy struct {
	// Enabled demands a tenant header on every call but health checks;
	// when false, every call goes to db.DefaultTenant and the header is
	// ignored.
	Enabled bool `yaml:"enabled"`
	// Header is the header (gRPC metadata key) naming the tenant. Default
	// x-tenant.
	Header string `yaml:"header"`
	// Tenants, when not empty, is the allow-list: other tenants are refused.
	Tenants []string `yaml:"tenants"`
}

// Limits bound what ingest may hold.
type Limits struct {
	// MaxMessageBytes bounds one OTLP request, uncompressed (gRPC's receive
	// limit and the HTTP body limit). Default 16 MiB.
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// MaxSpansPerRequest bounds the spans of one OTLP request; a larger one
	// is refused as a whole. Default 100,000.
	MaxSpansPerRequest int `yaml:"max_spans_per_request"`
	// IngestQueueBytes is the in-flight budget: the uncompressed bytes of
	// all OTLP requests being decoded and written at once. A request that
	// does not fit is refused with a retryable code. At least
	// MaxMessageBytes. Default 64 MiB.
	IngestQueueBytes int64 `yaml:"ingest_queue_bytes"`
	// WriteTimeout bounds one store write, which blocks while the store's
	// head is full and being flushed; past it the request is refused with a
	// retryable code. Default 5s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
}

// Admin configures the admin listener.
type Admin struct {
	// Pprof serves net/http/pprof under /debug/pprof/ (behind auth).
	Pprof bool `yaml:"pprof"`
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	var c Config
	c.fillDefaults()
	return c
}

func (c *Config) fillDefaults() {
	setDefault(&c.DataDir, DefaultDataDir)
	setDefault(&c.Listen.Storage, DefaultStorageAddr)
	setDefault(&c.Listen.Admin, DefaultAdminAddr)
	setDefault(&c.Listen.OTLPGRPC, DefaultOTLPGRPCAddr)
	setDefault(&c.Listen.OTLPHTTP, DefaultOTLPHTTPAddr)
	setDefault(&c.Listen.SamplingHTTP, DefaultSamplingHTTPAddr)
	setDefault(&c.Listen.SamplingGRPC, DefaultSamplingGRPCAddr)
	setDefault(&c.Tenancy.Header, DefaultTenantHeader)
	setDefault(&c.Limits.MaxMessageBytes, DefaultMaxMessageBytes)
	setDefault(&c.Limits.MaxSpansPerRequest, DefaultMaxSpansPerRequest)
	setDefault(&c.Limits.IngestQueueBytes, DefaultIngestQueueBytes)
	setDefault(&c.Limits.WriteTimeout, DefaultWriteTimeout)
	setDefault(&c.ShutdownTimeout, DefaultShutdownTimeout)
}

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// LoadConfig reads a YAML config file over DefaultConfig. Unknown keys are
// an error, so a misspelt setting is not silently ignored.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("load config: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return Config{}, fmt.Errorf("load config %s: %w", path, err)
	}
	return c, nil
}

// ParseConfig parses YAML over DefaultConfig.
func ParseConfig(b []byte) (Config, error) {
	c := DefaultConfig()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, err
	}
	c.fillDefaults()
	return c, nil
}

// Validate reports every setting that is out of range, after defaults are
// filled in.
func (c Config) Validate() error {
	c.fillDefaults()
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	for _, id := range listenerIDs {
		addr := c.addr(id)
		if addr == Off {
			continue
		}
		_, _, err := net.SplitHostPort(addr)
		check(err == nil, "listen.%s %q is not host:port or %q", id, addr, Off)
	}
	check(c.TLS.CertFile != "" == (c.TLS.KeyFile != ""), "tls.cert_file and tls.key_file go together")
	check(c.TLS.ClientCAFile == "" || c.TLS.Enabled(), "tls.client_ca_file needs tls.cert_file and tls.key_file")
	check(c.Tenancy.Enabled || len(c.Tenancy.Tenants) == 0, "tenancy.tenants needs tenancy.enabled")
	for _, t := range c.Tenancy.Tenants {
		if err := db.ValidateTenant(t); err != nil {
			errs = append(errs, fmt.Errorf("tenancy.tenants: %w", err))
		}
	}
	check(c.Limits.MaxMessageBytes > 0, "limits.max_message_bytes %d must be positive", c.Limits.MaxMessageBytes)
	check(c.Limits.MaxSpansPerRequest > 0, "limits.max_spans_per_request %d must be positive", c.Limits.MaxSpansPerRequest)
	check(c.Limits.IngestQueueBytes >= int64(c.Limits.MaxMessageBytes),
		"limits.ingest_queue_bytes %d is below limits.max_message_bytes %d: a largest request could never fit",
		c.Limits.IngestQueueBytes, c.Limits.MaxMessageBytes)
	check(c.Limits.WriteTimeout > 0, "limits.write_timeout %s must be positive", c.Limits.WriteTimeout)
	check(c.ShutdownTimeout > 0, "shutdown_timeout %s must be positive", c.ShutdownTimeout)
	check(c.Retention.DiskBudget >= 0, "retention.disk_budget_bytes %d is negative", c.Retention.DiskBudget)
	check(c.Retention.Interval >= 0, "retention.interval %s is negative", c.Retention.Interval)
	check(c.Storage.MaxHeadSpans >= 0, "storage.max_head_spans %d is negative", c.Storage.MaxHeadSpans)
	check(c.Storage.RowGroupSpans >= 0, "storage.row_group_spans %d is negative", c.Storage.RowGroupSpans)
	if p, err := c.Retention.Policy(); err != nil {
		errs = append(errs, err)
	} else if err := p.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Sampling.Options(c.DataDir).Validate(); err != nil {
		errs = append(errs, fmt.Errorf("sampling: %w", err))
	}
	for t := range c.Retention.TenantTTL {
		if err := db.ValidateTenant(t); err != nil {
			errs = append(errs, fmt.Errorf("retention.tenant_ttl: %w", err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid server config: %w", errors.Join(errs...))
	}
	return nil
}

// ListenerID names one of the server's listeners.
type ListenerID int

// The listeners.
const (
	ListenerStorage ListenerID = iota
	ListenerAdmin
	ListenerOTLPGRPC
	ListenerOTLPHTTP
	ListenerSamplingHTTP
	ListenerSamplingGRPC
	numListeners
)

var listenerIDs = [numListeners]ListenerID{ListenerStorage, ListenerAdmin, ListenerOTLPGRPC, ListenerOTLPHTTP, ListenerSamplingHTTP, ListenerSamplingGRPC}

// String returns the listener's key under listen: in the config file.
func (id ListenerID) String() string {
	switch id {
	case ListenerStorage:
		return "storage"
	case ListenerAdmin:
		return "admin"
	case ListenerOTLPGRPC:
		return "otlp_grpc"
	case ListenerOTLPHTTP:
		return "otlp_http"
	case ListenerSamplingHTTP:
		return "sampling_http"
	case ListenerSamplingGRPC:
		return "sampling_grpc"
	}
	return fmt.Sprintf("listener(%d)", int(id))
}

// describe says what a listener serves, for logs and errors.
func (id ListenerID) describe() string {
	switch id {
	case ListenerStorage:
		return "Jaeger storage API and OTLP gRPC"
	case ListenerAdmin:
		return "admin HTTP"
	case ListenerOTLPGRPC:
		return "OTLP gRPC"
	case ListenerOTLPHTTP:
		return "OTLP HTTP"
	case ListenerSamplingHTTP:
		return "Jaeger remote sampling HTTP"
	case ListenerSamplingGRPC:
		return "Jaeger remote sampling gRPC"
	}
	return id.String()
}

func (c *Config) addr(id ListenerID) string {
	switch id {
	case ListenerStorage:
		return c.Listen.Storage
	case ListenerAdmin:
		return c.Listen.Admin
	case ListenerOTLPGRPC:
		return c.Listen.OTLPGRPC
	case ListenerOTLPHTTP:
		return c.Listen.OTLPHTTP
	case ListenerSamplingHTTP:
		return c.Listen.SamplingHTTP
	case ListenerSamplingGRPC:
		return c.Listen.SamplingGRPC
	}
	return Off
}

// ListenError is returned by New when a listener cannot bind, most often
// because its port is taken. Listener says which setting to change.
type ListenError struct {
	Listener ListenerID
	Addr     string
	Err      error
}

func (e *ListenError) Error() string {
	return fmt.Sprintf("listen.%s: cannot listen on %s for %s: %v", e.Listener, e.Addr, e.Listener.describe(), e.Err)
}

func (e *ListenError) Unwrap() error { return e.Err }
