package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/server"
)

// listenFlags names the flag that moves each listener, for error messages.
var listenFlags = map[server.ListenerID]string{
	server.ListenerStorage:      "listen.storage",
	server.ListenerAdmin:        "listen.admin",
	server.ListenerOTLPGRPC:     "listen.otlp-grpc",
	server.ListenerOTLPHTTP:     "listen.otlp-http",
	server.ListenerSamplingHTTP: "listen.sampling-http",
	server.ListenerSamplingGRPC: "listen.sampling-grpc",
}

func serveCmd() *cobra.Command {
	var (
		configFile string
		logLevel   string
		flagCfg    = server.DefaultConfig()
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve a store over the network: Jaeger remote storage (gRPC), OTLP (gRPC and HTTP), health and metrics",
		Long: `Serve a store over the network. By default it listens on loopback only:

  127.0.0.1:17271  gRPC: Jaeger storage v2 API and OTLP TraceService
  127.0.0.1:17270  HTTP: /metrics, /healthz, /readyz (and /debug/pprof/ with --admin.pprof)
  127.0.0.1:4317   OTLP gRPC
  127.0.0.1:4318   OTLP HTTP (POST /v1/traces, protobuf or JSON)
  127.0.0.1:5778   Jaeger remote sampling HTTP (GET /api/sampling?service=)
  127.0.0.1:5779   Jaeger remote sampling gRPC (SamplingManager)

Settings come from --config (YAML) and are overridden by the flags given.
Set a listen address to "off" to turn that listener off. On SIGINT or
SIGTERM it stops accepting, finishes in-flight requests, then flushes and
closes the store.`,
		Example: `  tracedb serve
  tracedb serve --data-dir /var/lib/tracedb --listen.otlp-grpc 0.0.0.0:4317
  tracedb serve --config tracedb.yaml --auth.token-file tokens.txt --tls.cert cert.pem --tls.key key.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := serveConfig(configFile, cmd.Flags())
			if err != nil {
				return err
			}
			log, err := newLogger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
			defer stop()
			go func() {
				<-ctx.Done()
				stop() // a second signal kills the process at once
			}()
			return runServe(ctx, cmd.OutOrStdout(), cfg, log, nil)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&configFile, "config", "", "YAML config file; flags given override it")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	bindServeFlags(fs, &flagCfg)
	return cmd
}

// bindServeFlags defines the flags that set cfg's fields, with cfg's
// current values as their defaults.
func bindServeFlags(fs *pflag.FlagSet, cfg *server.Config) {
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "data directory")
	fs.StringVar(&cfg.Listen.Storage, listenFlags[server.ListenerStorage], cfg.Listen.Storage, `gRPC address of the Jaeger storage API and OTLP, or "off"`)
	fs.StringVar(&cfg.Listen.Admin, listenFlags[server.ListenerAdmin], cfg.Listen.Admin, `HTTP address of /metrics, /healthz and /readyz, or "off"`)
	fs.StringVar(&cfg.Listen.OTLPGRPC, listenFlags[server.ListenerOTLPGRPC], cfg.Listen.OTLPGRPC, `OTLP gRPC address, or "off"`)
	fs.StringVar(&cfg.Listen.OTLPHTTP, listenFlags[server.ListenerOTLPHTTP], cfg.Listen.OTLPHTTP, `OTLP HTTP address, or "off"`)
	fs.StringVar(&cfg.TLS.CertFile, "tls.cert", cfg.TLS.CertFile, "PEM certificate: serve TLS on every listener")
	fs.StringVar(&cfg.TLS.KeyFile, "tls.key", cfg.TLS.KeyFile, "PEM private key of --tls.cert")
	fs.StringVar(&cfg.TLS.ClientCAFile, "tls.client-ca", cfg.TLS.ClientCAFile, "PEM CA certificates: demand client certificates they signed (mutual TLS)")
	fs.StringVar(&cfg.Auth.TokenFile, "auth.token-file", cfg.Auth.TokenFile, "file of accepted bearer tokens, one per line: demand one on every call but health checks")
	fs.BoolVar(&cfg.Tenancy.Enabled, "tenancy.enabled", cfg.Tenancy.Enabled, "demand a tenant header on every call")
	fs.StringVar(&cfg.Tenancy.Header, "tenancy.header", cfg.Tenancy.Header, "header naming the tenant")
	fs.StringSliceVar(&cfg.Tenancy.Tenants, "tenancy.tenants", cfg.Tenancy.Tenants, "allowed tenants (comma-separated); empty allows any")
	fs.IntVar(&cfg.Limits.MaxMessageBytes, "limits.max-message-bytes", cfg.Limits.MaxMessageBytes, "largest OTLP request, uncompressed")
	fs.IntVar(&cfg.Limits.MaxSpansPerRequest, "limits.max-spans-per-request", cfg.Limits.MaxSpansPerRequest, "most spans in one OTLP request")
	fs.Int64Var(&cfg.Limits.IngestQueueBytes, "limits.ingest-queue-bytes", cfg.Limits.IngestQueueBytes, "bytes of OTLP requests in flight at once; beyond it clients are told to retry")
	fs.DurationVar(&cfg.Limits.WriteTimeout, "limits.write-timeout", cfg.Limits.WriteTimeout, "longest wait for the store to take a write before the client is told to retry")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "longest wait for in-flight requests on shutdown")
	fs.DurationVar(&cfg.Retention.TTL, "retention.ttl", cfg.Retention.TTL, "drop a partition once its newest span is older than this (0 keeps everything)")
	fs.Int64Var(&cfg.Retention.DiskBudget, "retention.disk-budget-bytes", cfg.Retention.DiskBudget, "drop the oldest partitions while the blocks hold more bytes than this (0: no budget)")
	fs.DurationVar(&cfg.Retention.Interval, "retention.interval", cfg.Retention.Interval, "how often retention runs (0: every minute)")
	fs.BoolVar(&cfg.Retention.Keep.Errors, "retention.keep.errors", cfg.Retention.Keep.Errors, "keep traces with an error span for --retention.keep.ttl")
	fs.DurationVar(&cfg.Retention.Keep.SlowerThan, "retention.keep.slower-than", cfg.Retention.Keep.SlowerThan, "keep traces with a span at least this long for --retention.keep.ttl")
	fs.StringVar(&cfg.Retention.Keep.Filter, "retention.keep.filter", cfg.Retention.Keep.Filter, "keep traces with a span matching this structured filter for --retention.keep.ttl")
	fs.DurationVar(&cfg.Retention.Keep.TTL, "retention.keep.ttl", cfg.Retention.Keep.TTL, "how long kept traces live (0: forever)")
	fs.IntVar(&cfg.Storage.MaxHeadSpans, "storage.max-head-spans", cfg.Storage.MaxHeadSpans, "spans a tenant's in-memory head holds before it is flushed into a block (0: 262,144)")
	fs.Int64Var(&cfg.Storage.RowGroupCacheBytes, "storage.row-group-cache-bytes", cfg.Storage.RowGroupCacheBytes, "memory for decompressed row groups that trace reads keep (0: 64 MiB; negative: no cache)")
	fs.IntVar(&cfg.Storage.RowGroupSpans, "storage.row-group-spans", cfg.Storage.RowGroupSpans, "spans per row group of new blocks: smaller groups read traces faster, larger ones compress a little better (0: 1,024)")
	fs.BoolVar(&cfg.Admin.Pprof, "admin.pprof", cfg.Admin.Pprof, "serve /debug/pprof/ on the admin listener")
	fs.StringVar(&cfg.Listen.SamplingHTTP, listenFlags[server.ListenerSamplingHTTP], cfg.Listen.SamplingHTTP, `HTTP address of Jaeger remote sampling (/api/sampling, /sampling), or "off"`)
	fs.StringVar(&cfg.Listen.SamplingGRPC, listenFlags[server.ListenerSamplingGRPC], cfg.Listen.SamplingGRPC, `gRPC address of Jaeger remote sampling, or "off"`)
	fs.StringVar(&cfg.Sampling.StrategiesFile, "sampling.strategies-file", cfg.Sampling.StrategiesFile, "Jaeger sampling strategies JSON, reloaded when it changes")
	fs.DurationVar(&cfg.Sampling.ReloadInterval, "sampling.reload-interval", cfg.Sampling.ReloadInterval, "how often the strategies file is checked for changes (0: 5s)")
	fs.BoolVar(&cfg.Sampling.Adaptive.Enabled, "sampling.adaptive.enabled", cfg.Sampling.Adaptive.Enabled, "compute strategies from ingested root spans for services without a file strategy")
	fs.Float64Var(&cfg.Sampling.Adaptive.TargetTracesPerSecond, "sampling.adaptive.target-traces-per-second", cfg.Sampling.Adaptive.TargetTracesPerSecond, "sampled traces per second wanted per operation (0: 1)")
	fs.Float64Var(&cfg.Sampling.Adaptive.MinProbability, "sampling.adaptive.min-probability", cfg.Sampling.Adaptive.MinProbability, "lowest adaptive probability (0: 1e-5)")
	fs.Float64Var(&cfg.Sampling.Adaptive.MaxProbability, "sampling.adaptive.max-probability", cfg.Sampling.Adaptive.MaxProbability, "highest adaptive probability (0: 1)")
	fs.Float64Var(&cfg.Sampling.Adaptive.MinTracesPerSecond, "sampling.adaptive.min-traces-per-second", cfg.Sampling.Adaptive.MinTracesPerSecond, "lower bound of sampled traces per second per operation (0: 1/60)")
	fs.DurationVar(&cfg.Sampling.Adaptive.Interval, "sampling.adaptive.interval", cfg.Sampling.Adaptive.Interval, "how often adaptive probabilities are recomputed (0: 1m)")
	fs.DurationVar(&cfg.Sampling.Adaptive.Window, "sampling.adaptive.window", cfg.Sampling.Adaptive.Window, "how far back throughput is averaged (0: 5m)")
}

// serveConfig returns the config file's settings (or the defaults) with
// the flags that were given on top. The given flags are replayed onto a
// flag set bound to the loaded config, so every flag is handled alike.
func serveConfig(path string, given *pflag.FlagSet) (server.Config, error) {
	cfg := server.DefaultConfig()
	if path != "" {
		var err error
		if cfg, err = server.LoadConfig(path); err != nil {
			return cfg, err
		}
	}
	over := pflag.NewFlagSet("overlay", pflag.ContinueOnError)
	bindServeFlags(over, &cfg)
	var errs []error
	given.Visit(func(f *pflag.Flag) {
		o := over.Lookup(f.Name)
		if o == nil {
			return // not a config flag (--config, --log-level)
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			errs = append(errs, o.Value.(pflag.SliceValue).Replace(sv.GetSlice()))
			return
		}
		errs = append(errs, over.Set(f.Name, f.Value.String()))
	})
	if err := errors.Join(errs...); err != nil {
		return cfg, err
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// runServe opens the store, serves it until ctx ends, then flushes and
// closes it. ready, when not nil, is called once the server listens.
func runServe(ctx context.Context, out io.Writer, cfg server.Config, log *slog.Logger, ready func(*server.Server)) (err error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	policy, err := cfg.Retention.Policy()
	if err != nil {
		return err
	}
	store, err := db.Open(cfg.DataDir, db.Options{Logger: log, Registerer: reg,
		Retention: policy, RetentionInterval: cfg.Retention.Interval,
		MaxHeadSpans: cfg.Storage.MaxHeadSpans, RowGroupCacheBytes: cfg.Storage.RowGroupCacheBytes,
		RowGroupSpans: cfg.Storage.RowGroupSpans})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := store.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close store: %w", cerr))
			return
		}
		if err == nil {
			fmt.Fprintf(out, "stopped; store in %s flushed and closed\n", cfg.DataDir)
		}
	}()
	srv, err := server.New(cfg, store, server.Options{Logger: log, Registerer: reg})
	if err != nil {
		if le, ok := errors.AsType[*server.ListenError](err); ok {
			return fmt.Errorf("%w (choose another address with --%s, or turn the listener off with --%s off)",
				err, listenFlags[le.Listener], listenFlags[le.Listener])
		}
		return err
	}
	printListeners(out, cfg, srv)
	if ready != nil {
		ready(srv)
	}
	return srv.Serve(ctx)
}

// printListeners says where the server listens.
func printListeners(out io.Writer, cfg server.Config, srv *server.Server) {
	scheme := "plain"
	if srv.TLS() {
		scheme = "TLS"
	}
	fmt.Fprintf(out, "tracedb serving %s (%s", cfg.DataDir, scheme)
	if cfg.Auth.TokenFile != "" {
		fmt.Fprint(out, ", bearer tokens")
	}
	if cfg.Tenancy.Enabled {
		fmt.Fprintf(out, ", tenants by %s", cfg.Tenancy.Header)
		if len(cfg.Tenancy.Tenants) > 0 {
			fmt.Fprintf(out, ": %s", strings.Join(cfg.Tenancy.Tenants, ", "))
		}
	}
	fmt.Fprintln(out, ")")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, l := range []struct {
		id   server.ListenerID
		what string
	}{
		{server.ListenerStorage, "gRPC: Jaeger storage v2 API + OTLP"},
		{server.ListenerOTLPGRPC, "gRPC: OTLP"},
		{server.ListenerOTLPHTTP, "HTTP: OTLP POST /v1/traces"},
		{server.ListenerAdmin, "HTTP: /metrics /healthz /readyz"},
		{server.ListenerSamplingHTTP, "HTTP: Jaeger remote sampling /api/sampling"},
		{server.ListenerSamplingGRPC, "gRPC: Jaeger remote sampling"},
	} {
		addr := "off"
		if a := srv.Addr(l.id); a != nil {
			addr = a.String()
		}
		fmt.Fprintf(tw, "  %s\t%s\t(--%s)\n", addr, l.what, listenFlags[l.id])
	}
	_ = tw.Flush()
}
