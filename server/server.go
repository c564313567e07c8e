// Package server is tracedb's network face, the process `tracedb serve`
// runs: the Jaeger storage v2 gRPC API (package storagev2) and, beside it,
// tracedb's own analytics API (package analytics: histograms, rates,
// stats, export, which the CLI's --server mode uses), OTLP receivers
// over gRPC and HTTP, gRPC health checking, the admin HTTP listener
// (/metrics, /healthz, /readyz, pprof), Jaeger remote sampling (package
// sampling, on listeners of its own), TLS, bearer-token auth and tenants.
//
// Decisions, written down:
//
//   - Every listener is optional and binds in New, so a taken port is an
//     error before anything is served (ListenError names the setting), and
//     tests can listen on 127.0.0.1:0 and ask Addr.
//   - Ingest never queues without bound. An in-flight budget
//     (Limits.IngestQueueBytes) counts the uncompressed bytes of the OTLP
//     requests being decoded and written; a request that does not fit is
//     refused at once with RESOURCE_EXHAUSTED plus RetryInfo (gRPC) or 429
//     plus Retry-After (HTTP), which OTLP exporters retry with back-off.
//     While the budget is full, gRPC exports are refused before their
//     bodies are read (a tap handle). A store write that blocks because
//     the head is full and flushing is cut off after Limits.WriteTimeout
//     and refused the same way (503 over HTTP): nothing of it was
//     acknowledged, and a retry that duplicates spans is folded on read.
//   - Spans the store rejects are reported as OTLP partial success; their
//     neighbours are stored.
//   - Auth and tenancy apply to every RPC and route but health checks
//     (grpc.health.v1, /healthz, /readyz); /metrics and pprof need a token
//     but no tenant.
//   - Shutdown (Serve's context ends): readiness and gRPC health go to
//     NOT_SERVING, listeners stop accepting, in-flight requests finish;
//     after Config.ShutdownTimeout the rest are cut off. The caller then
//     closes the store, which flushes it.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/query"
	"github.com/tracedb/tracedb/server/analytics"
	"github.com/tracedb/tracedb/server/sampling"
	"github.com/tracedb/tracedb/server/storagev2"
)

// HTTP server timeouts: a client gets this long to send its headers, and
// an idle keep-alive connection is closed after idleTimeout.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
)

// Options are the server's collaborators. The zero value of a field means
// its default.
type Options struct {
	// Logger receives the server's logs. Default: discard.
	Logger *slog.Logger
	// Registerer receives the server's metrics. Default: a new registry.
	// Give the store the same one (db.Options.Registerer) so that /metrics
	// shows both.
	Registerer prometheus.Registerer
	// Gatherer is what /metrics serves. Default: Registerer, when it is a
	// Gatherer too (a *prometheus.Registry is).
	Gatherer prometheus.Gatherer
	// Writer receives OTLP spans. Default: the store passed to New.
	Writer Writer
	// StorageV2 configures the Jaeger storage API.
	StorageV2 storagev2.Options
}

// Server is the standalone server. New binds its listeners; Serve serves
// them until its context ends, then shuts down gracefully.
type Server struct {
	cfg      Config
	log      *slog.Logger
	m        *metrics
	budget   *budget
	in       *ingester
	auth     *authenticator // nil: no auth
	tenants  *tenancy
	gatherer prometheus.Gatherer
	tlsCfg   *tls.Config       // nil: plain TCP
	sampling *sampling.Service // nil: both sampling listeners off

	lns         [numListeners]net.Listener // nil: off
	grpcServers [numListeners]*grpc.Server // storage, otlp_grpc
	healths     []*health.Server
	httpServers [numListeners]*http.Server // admin, otlp_http

	// baseCtx is the HTTP requests' parent context; cancelled when
	// shutdown gives up waiting for them.
	baseCtx    context.Context
	cancelBase context.CancelFunc

	ready atomic.Bool
	mu    struct {
		sync.Mutex
		started bool
		closed  bool
	}
}

// New checks cfg, builds the servers over store and binds every listener
// that is not Off. A listener that cannot bind is a *ListenError. The
// caller owns store and closes it after Serve returns.
func New(cfg Config, store *db.DB, opts Options) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.fillDefaults()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		reg := prometheus.NewRegistry()
		opts.Registerer = reg
	}
	if opts.Gatherer == nil {
		opts.Gatherer, _ = opts.Registerer.(prometheus.Gatherer)
	}
	if opts.Writer == nil {
		opts.Writer = store
	}
	m, err := newMetrics(opts.Registerer, cfg.Limits.IngestQueueBytes)
	if err != nil {
		return nil, fmt.Errorf("server metrics: %w", err)
	}
	s := &Server{
		cfg:      cfg,
		log:      opts.Logger,
		m:        m,
		budget:   newBudget(cfg.Limits.IngestQueueBytes, m.inflightBytes),
		tenants:  newTenancy(cfg.Tenancy),
		gatherer: opts.Gatherer,
	}
	s.in = &ingester{w: opts.Writer, budget: s.budget, m: m, lim: cfg.Limits, log: s.log}
	s.baseCtx, s.cancelBase = context.WithCancel(context.Background())
	if s.tlsCfg, err = tlsConfig(cfg.TLS); err != nil {
		return nil, err
	}
	if cfg.Auth.TokenFile != "" {
		if s.auth, err = loadTokens(cfg.Auth.TokenFile); err != nil {
			return nil, err
		}
	}
	eng, err := query.NewEngine(store, query.Options{})
	if err != nil {
		return nil, fmt.Errorf("query engine: %w", err)
	}

	if cfg.Listen.SamplingHTTP != Off || cfg.Listen.SamplingGRPC != Off {
		so := cfg.Sampling.Options(cfg.DataDir)
		so.Logger, so.Registerer = s.log, opts.Registerer
		if s.sampling, err = sampling.New(so); err != nil {
			return nil, err
		}
		s.in.observe = s.sampling.Observe
	}
	if cfg.Listen.Storage != Off {
		gs := s.newGRPCServer(true)
		storagev2.Register(gs, eng, opts.StorageV2)
		analytics.Register(gs, store, eng, analytics.Options{})
		s.grpcServers[ListenerStorage] = gs
	}
	if cfg.Listen.OTLPGRPC != Off {
		s.grpcServers[ListenerOTLPGRPC] = s.newGRPCServer(true)
	}
	if cfg.Listen.SamplingGRPC != Off {
		gs := s.newGRPCServer(false)
		s.sampling.RegisterGRPC(gs)
		s.grpcServers[ListenerSamplingGRPC] = gs
	}
	for _, gs := range s.grpcServers {
		if gs != nil {
			s.registerHealth(gs)
		}
	}
	if cfg.Listen.Admin != Off {
		s.httpServers[ListenerAdmin] = s.newHTTPServer(s.adminHandler(cfg.Admin))
	}
	if cfg.Listen.OTLPHTTP != Off {
		s.httpServers[ListenerOTLPHTTP] = s.newHTTPServer(s.otlpHTTPHandler())
	}
	if cfg.Listen.SamplingHTTP != Off {
		mux := http.NewServeMux()
		for _, route := range []string{sampling.PathAPISampling, sampling.PathSampling} {
			mux.Handle(route, s.httpRoute(route, true, true, s.sampling.HTTPHandler()))
		}
		s.httpServers[ListenerSamplingHTTP] = s.newHTTPServer(mux)
	}

	for _, id := range listenerIDs {
		addr := cfg.addr(id)
		if addr == Off {
			continue
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			s.closeListeners()
			s.closeSampling()
			return nil, &ListenError{Listener: id, Addr: addr, Err: err}
		}
		s.lns[id] = ln
	}
	return s, nil
}

// newGRPCServer returns a gRPC server with TLS, the guards, the size limit
// and, when otlp is set, the OTLP trace service.
func (s *Server) newGRPCServer(otlp bool) *grpc.Server {
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(s.cfg.Limits.MaxMessageBytes),
		grpc.ChainUnaryInterceptor(s.unaryInterceptor),
		grpc.ChainStreamInterceptor(s.streamInterceptor),
		grpc.InTapHandle(overloadTap(s.budget, s.m)),
		grpc.ForceServerCodecV2(newRawCodec()),
	}
	if s.tlsCfg != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(s.tlsCfg.Clone())))
	}
	gs := grpc.NewServer(opts...)
	if otlp {
		gs.RegisterService(&otlpTraceServiceDesc, &otlpGRPC{in: s.in})
	}
	return gs
}

// registerHealth serves grpc.health.v1 on gs: SERVING for the server as a
// whole ("") and for each of its services, until shutdown.
func (s *Server) registerHealth(gs *grpc.Server) {
	hs := health.NewServer()
	for name := range gs.GetServiceInfo() {
		hs.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	healthpb.RegisterHealthServer(gs, hs)
	s.healths = append(s.healths, hs)
}

func (s *Server) newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		BaseContext:       func(net.Listener) context.Context { return s.baseCtx },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// adminHandler serves /healthz (alive), /readyz (serving and not shutting
// down), /metrics and, when enabled, pprof.
func (s *Server) adminHandler(c Admin) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/healthz", s.httpRoute("/healthz", false, false, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = fmt.Fprintln(w, "ok")
	})))
	mux.Handle("/readyz", s.httpRoute("/readyz", false, false, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !s.ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintln(w, "not ready")
			return
		}
		_, _ = fmt.Fprintln(w, "ready")
	})))
	if s.gatherer != nil {
		mux.Handle("/metrics", s.httpRoute("/metrics", true, false,
			promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)})))
	}
	if c.Pprof {
		mux.Handle("/debug/pprof/", s.httpRoute("/debug/pprof/", true, false, http.HandlerFunc(pprof.Index)))
		mux.Handle("/debug/pprof/cmdline", s.httpRoute("/debug/pprof/cmdline", true, false, http.HandlerFunc(pprof.Cmdline)))
		mux.Handle("/debug/pprof/profile", s.httpRoute("/debug/pprof/profile", true, false, http.HandlerFunc(pprof.Profile)))
		mux.Handle("/debug/pprof/symbol", s.httpRoute("/debug/pprof/symbol", true, false, http.HandlerFunc(pprof.Symbol)))
		mux.Handle("/debug/pprof/trace", s.httpRoute("/debug/pprof/trace", true, false, http.HandlerFunc(pprof.Trace)))
	}
	return mux
}

// Addr returns the address a listener is bound to, or nil when it is off.
func (s *Server) Addr(id ListenerID) net.Addr {
	if id < 0 || id >= numListeners || s.lns[id] == nil {
		return nil
	}
	return s.lns[id].Addr()
}

// TLS reports whether the listeners serve TLS.
func (s *Server) TLS() bool { return s.tlsCfg != nil }

// Serve serves every listener until ctx ends, then shuts down: readiness
// and health checks turn NOT_SERVING, the listeners stop accepting, and
// in-flight requests finish or, after Config.ShutdownTimeout, are cut off.
// It returns nil after a shutdown that ctx asked for, or the error of a
// listener that failed. Serve may be called once.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	if s.mu.started || s.mu.closed {
		s.mu.Unlock()
		return errors.New("server: Serve called twice or after Close")
	}
	s.mu.started = true
	s.mu.Unlock()

	type served struct {
		id  ListenerID
		err error
	}
	done := make(chan served, numListeners)
	running := 0
	for _, id := range listenerIDs {
		ln := s.lns[id]
		if ln == nil {
			continue
		}
		running++
		go func() {
			var err error
			switch {
			case s.grpcServers[id] != nil:
				err = s.grpcServers[id].Serve(ln)
			case s.tlsCfg != nil:
				srv := s.httpServers[id]
				srv.TLSConfig = s.tlsCfg.Clone()
				err = srv.ServeTLS(ln, "", "")
			default:
				err = s.httpServers[id].Serve(ln)
			}
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			}
			done <- served{id, err}
		}()
		s.log.Info("listening", "listener", id.String(), "serves", id.describe(), "addr", ln.Addr().String(), "tls", s.tlsCfg != nil)
	}
	s.ready.Store(true)

	var errs []error
	select {
	case <-ctx.Done():
	case r := <-done:
		running--
		if r.err != nil {
			errs = append(errs, fmt.Errorf("serve listen.%s: %w", r.id, r.err))
		}
	}
	s.shutdown()
	for ; running > 0; running-- {
		if r := <-done; r.err != nil {
			errs = append(errs, fmt.Errorf("serve listen.%s: %w", r.id, r.err))
		}
	}
	s.mu.Lock()
	s.mu.closed = true
	s.mu.Unlock()
	return errors.Join(errs...)
}

// shutdown stops every server gracefully, within Config.ShutdownTimeout.
func (s *Server) shutdown() {
	s.ready.Store(false)
	for _, hs := range s.healths {
		hs.Shutdown()
	}
	s.log.Info("shutting down: finishing in-flight requests", "timeout", s.cfg.ShutdownTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, gs := range s.grpcServers {
		if gs == nil {
			continue
		}
		wg.Go(func() {
			stopped := make(chan struct{})
			go func() {
				gs.GracefulStop()
				close(stopped)
			}()
			select {
			case <-stopped:
			case <-ctx.Done():
				s.log.Warn("shutdown timeout: cutting off gRPC calls still running")
				gs.Stop()
				<-stopped
			}
		})
	}
	for _, hs := range s.httpServers {
		if hs == nil {
			continue
		}
		wg.Go(func() {
			if err := hs.Shutdown(ctx); err != nil {
				s.log.Warn("shutdown timeout: cutting off HTTP requests still running", "err", err)
				s.cancelBase()
				_ = hs.Close()
			}
		})
	}
	wg.Wait()
	s.cancelBase()
	s.closeSampling()
	s.log.Info("server stopped")
}

// closeSampling stops the sampling service, which saves its adaptive state.
func (s *Server) closeSampling() {
	if s.sampling == nil {
		return
	}
	if err := s.sampling.Close(); err != nil {
		s.log.Warn("sampling: closing", "err", err)
	}
}

// Close releases the listeners of a server whose Serve was never called;
// after Serve it does nothing (Serve closes everything before returning).
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.started || s.mu.closed {
		s.mu.closed = true
		return nil
	}
	s.mu.closed = true
	s.cancelBase()
	s.closeSampling()
	return s.closeListeners()
}

func (s *Server) closeListeners() error {
	var errs []error
	for i, ln := range s.lns {
		if ln != nil {
			errs = append(errs, ln.Close())
			s.lns[i] = nil
		}
	}
	return errors.Join(errs...)
}
