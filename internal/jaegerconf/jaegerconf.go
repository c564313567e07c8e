// Package jaegerconf writes Jaeger v2 configurations for the programs that
// run a real Jaeger beside tracedb: the end-to-end test (e2e/) and the
// side-by-side benchmark (bench/). One place knows Jaeger's config
// vocabulary, so that both run Jaeger the same way.
package jaegerconf

import (
	"fmt"
	"path/filepath"
	"time"
)

// Config describes a Jaeger v2 process: everything on the addresses given
// (loopback ones, in tests and benchmarks), one storage backend, and
// Jaeger's own tracing and metrics off. Jaeger v2 traces itself to
// localhost:4317 by default and waits for that export on shutdown, which
// would also send its spans to a tracedb listening there.
type Config struct {
	OTLPGRPC, OTLPHTTP   string // the OTLP receiver
	QueryHTTP, QueryGRPC string // the query service (HTTP API and gRPC)
	Health               string // healthcheckv2's HTTP endpoint (/status)

	// BadgerDir, when set, selects Jaeger's embedded Badger backend with
	// its default options, keys and values in subdirectories of it.
	BadgerDir string
	// Remote, when BadgerDir is not set, selects the `grpc` remote
	// storage backend at this address for reads and writes (tracedb's
	// storage API), with RemoteTimeout per call (default 5s).
	Remote        string
	RemoteTimeout time.Duration

	// BatchTimeout is the batch processor's timeout; 0 keeps Jaeger's
	// default (200ms). A short one makes spans queryable sooner.
	BatchTimeout time.Duration
	// LogLevel is Jaeger's log level; default "warn".
	LogLevel string
}

// YAML returns the configuration as Jaeger reads it (--config).
func (c Config) YAML() string {
	var backend string
	if c.BadgerDir != "" {
		backend = fmt.Sprintf(`        badger:
          directories:
            keys: %q
            values: %q
          ephemeral: false
`, filepath.Join(c.BadgerDir, "keys"), filepath.Join(c.BadgerDir, "values"))
	} else {
		timeout := c.RemoteTimeout
		if timeout == 0 {
			timeout = 5 * time.Second
		}
		backend = fmt.Sprintf(`        grpc:
          endpoint: %s
          tls:
            insecure: true
          timeout: %s
`, c.Remote, timeout)
	}
	batch := ""
	if c.BatchTimeout > 0 {
		batch = fmt.Sprintf("\n    timeout: %s", c.BatchTimeout)
	}
	logLevel := c.LogLevel
	if logLevel == "" {
		logLevel = "warn"
	}
	return fmt.Sprintf(`service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: %[7]s

extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: %[5]s
  jaeger_query:
    enable_tracing: false
    storage:
      traces: store
    http:
      endpoint: %[3]s
    grpc:
      endpoint: %[4]s
  jaeger_storage:
    backends:
      store:
%[6]s
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %[1]s
      http:
        endpoint: %[2]s

processors:
  batch:%[8]s

exporters:
  jaeger_storage_exporter:
    trace_storage: store
`, c.OTLPGRPC, c.OTLPHTTP, c.QueryHTTP, c.QueryGRPC, c.Health, backend, logLevel, batch)
}
