// Package sampling serves Jaeger remote sampling strategies from tracedb:
// the SamplingManager gRPC service of jaeger-idl's api_v2/sampling.proto
// and the HTTP endpoint the SDKs poll (GET /api/sampling?service=<name>,
// also /sampling), with Jaeger's JSON (the protojson of
// SamplingStrategyResponse, enums by name), which the OpenTelemetry
// jaegerremote sampler parses.
//
// Which strategy a service gets, per tenant (db.TenantFromContext):
// the strategies file's strategy for it when the file names the service;
// else the adaptive one when AdaptiveOptions.Enabled; else the file's
// default_strategy (or probabilistic at DefaultProbability without a file).
//
// The strategies file (Jaeger's format, see ParseStrategies) is polled
// every ReloadInterval; when its modification time or size change it is
// read again. A file that does not parse is logged and counted
// (tracedb_sampling_strategies_reloads_total{result="error"}), and the last
// good one stays in force. At New, a bad file is an error.
//
// # Adaptive sampling
//
// The server calls Observe after each accepted write. For each root span
// (no parent span ID), per tenant, service (resource service.name) and
// operation (span name), the open interval counts one sampled trace, its
// estimated weight 1/p where p is the probability in force when it was
// sampled (the span's jaeger.sampler.param, or sampler.param, when its
// sampler type is probabilistic; 1 for const and rate-limiting/lower-bound
// samplers; else the probability last served), whether its status is
// error, and its duration. Every Interval the open interval is closed and,
// per operation with traffic in the last Window:
//
//	est   = Σweight / Σduration over the window, or the last interval's
//	        rate when larger and based on at least MinSamples spans
//	        (total traces/s, sampled or not)
//	want  = TargetTracesPerSecond / est
//	p     = want, moved at most ×MaxIncreaseFactor up or ÷MaxDecreaseFactor
//	        down from the current probability (dampening)
//	floor = MinTracesPerSecond / est            (the minimum rate)
//	        and, when the last interval's error ratio exceeds its baseline
//	        by ErrorRise, or its p99 exceeds LatencyRise × its baseline:
//	        max(floor, want × boost), boost = ErrorBoost and/or ×LatencyBoost
//	p     = clamp(max(p, floor), MinProbability, MaxProbability)
//
// The baselines are exponentially weighted averages (weight
// BaselineWeight) of the error ratio and p99 of the intervals with at least
// MinSamples root spans, updated after the comparison: a lasting change
// becomes the new normal within about 1/BaselineWeight intervals. The
// served strategy lists every tracked operation with its probability,
// defaultSamplingProbability InitialProbability (new operations) and
// defaultLowerBoundTracesPerSecond MinTracesPerSecond (which SDKs enforce
// locally). Operations are capped per service (MaxOperationsPerService)
// and services per tenant (MaxServices), which also bounds the
// cardinality of tracedb_sampling_probability; operations without traffic
// for IdleExpiry are forgotten.
//
// The probabilities and baselines survive restart: each tenant's state is
// written to <StateDir>/<tenant>.json (see state.md) after every recompute
// that changed it and on Close, crash-safely; a damaged file is logged and
// the tenant starts afresh.
package sampling

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/tracedb/tracedb/db"
	pb "github.com/tracedb/tracedb/server/pb/samplingv2"
)

// Clock tells the time. Options.Clock lets tests move time by hand.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Defaults of Options and AdaptiveOptions.
const (
	DefaultReloadInterval          = 5 * time.Second
	DefaultTargetTracesPerSecond   = 1.0
	DefaultMinProbability          = 1e-5
	DefaultMaxProbability          = 1.0
	DefaultMinTracesPerSecond      = 1.0 / 60
	DefaultInterval                = time.Minute
	DefaultWindow                  = 5 * time.Minute
	DefaultMaxIncreaseFactor       = 2.0
	DefaultMaxDecreaseFactor       = 10.0
	DefaultErrorRise               = 0.05
	DefaultErrorBoost              = 4.0
	DefaultLatencyRise             = 1.5
	DefaultLatencyBoost            = 2.0
	DefaultMinSamples              = 20
	DefaultBaselineWeight          = 0.1
	DefaultMaxOperationsPerService = 256
	DefaultMaxServices             = 1024
	DefaultIdleExpiry              = 7 * 24 * time.Hour
)

// AdaptiveOptions configure adaptive strategies. The zero value of a field
// means its default.
type AdaptiveOptions struct {
	// Enabled serves adaptive strategies to services without a file
	// strategy.
	Enabled bool
	// TargetTracesPerSecond is the sampled traces per second wanted per
	// operation (over all instances of a service). Default 1.
	TargetTracesPerSecond float64
	// MinProbability and MaxProbability bound every probability. Default
	// 1e-5 and 1.
	MinProbability float64
	MaxProbability float64
	// MinTracesPerSecond is the minimum rate: the lower bound of sampled
	// traces per second per operation. Default 1/60 (one a minute).
	MinTracesPerSecond float64
	// InitialProbability is served for operations not yet seen. Default
	// DefaultProbability.
	InitialProbability float64
	// Interval is how often probabilities are recomputed. Default 1m.
	Interval time.Duration
	// Window is how far back throughput is averaged; at least Interval.
	// Default 5m.
	Window time.Duration
	// MaxIncreaseFactor and MaxDecreaseFactor dampen each step: a
	// probability grows at most ×MaxIncreaseFactor and shrinks at most
	// ÷MaxDecreaseFactor per interval (beyond 1). Default 2 and 10:
	// cutting back a burst is urgent, raising is not.
	MaxIncreaseFactor float64
	MaxDecreaseFactor float64
	// ErrorRise is the rise of an operation's error ratio over its
	// baseline (absolute, 0.05 is 5 points) that raises its floor by
	// ErrorBoost. Default 0.05 and 4.
	ErrorRise  float64
	ErrorBoost float64
	// LatencyRise is the factor over its baseline p99 that raises an
	// operation's floor by LatencyBoost. Default 1.5 and 2.
	LatencyRise  float64
	LatencyBoost float64
	// MinSamples is the fewest root spans of an interval whose error ratio
	// and p99 are judged. Default 20.
	MinSamples int
	// BaselineWeight is the weight of each interval in the baselines'
	// moving averages, in (0, 1]. Default 0.1.
	BaselineWeight float64
	// MaxOperationsPerService and MaxServices cap the tracked operations
	// of a service and services of a tenant; others get the defaults.
	// Default 256 and 1024.
	MaxOperationsPerService int
	MaxServices             int
	// IdleExpiry forgets operations without traffic for this long. Default
	// 7 days.
	IdleExpiry time.Duration
}

// Options configure a Service. The zero value of a field means its
// default.
type Options struct {
	// Logger receives reload and persistence problems. Default: discard.
	Logger *slog.Logger
	// Registerer receives the metrics. Default: a new registry.
	Registerer prometheus.Registerer
	// Clock tells the time of observations and recomputes. Default: the
	// system clock.
	Clock Clock
	// StrategiesFile is Jaeger's strategies JSON; empty: none.
	StrategiesFile string
	// ReloadInterval is how often the file's mtime and size are checked.
	// Default 5s.
	ReloadInterval time.Duration
	// Adaptive configures adaptive strategies.
	Adaptive AdaptiveOptions
	// StateDir is where adaptive state is kept, one file per tenant
	// (typically <data-dir>/sampling); empty: not kept.
	StateDir string
	// manual, for tests: no background loop; they call reload and
	// recompute themselves.
	manual bool
}

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

func (o *Options) fillDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Clock == nil {
		o.Clock = systemClock{}
	}
	setDefault(&o.ReloadInterval, DefaultReloadInterval)
	a := &o.Adaptive
	setDefault(&a.TargetTracesPerSecond, DefaultTargetTracesPerSecond)
	setDefault(&a.MinProbability, DefaultMinProbability)
	setDefault(&a.MaxProbability, DefaultMaxProbability)
	setDefault(&a.MinTracesPerSecond, DefaultMinTracesPerSecond)
	setDefault(&a.InitialProbability, DefaultProbability)
	setDefault(&a.Interval, DefaultInterval)
	setDefault(&a.Window, DefaultWindow)
	setDefault(&a.MaxIncreaseFactor, DefaultMaxIncreaseFactor)
	setDefault(&a.MaxDecreaseFactor, DefaultMaxDecreaseFactor)
	setDefault(&a.ErrorRise, DefaultErrorRise)
	setDefault(&a.ErrorBoost, DefaultErrorBoost)
	setDefault(&a.LatencyRise, DefaultLatencyRise)
	setDefault(&a.LatencyBoost, DefaultLatencyBoost)
	setDefault(&a.MinSamples, DefaultMinSamples)
	setDefault(&a.BaselineWeight, DefaultBaselineWeight)
	setDefault(&a.MaxOperationsPerService, DefaultMaxOperationsPerService)
	setDefault(&a.MaxServices, DefaultMaxServices)
	setDefault(&a.IdleExpiry, DefaultIdleExpiry)
	// New operations start inside the bounds.
	a.InitialProbability = min(max(a.InitialProbability, a.MinProbability), a.MaxProbability)
}

// Validate reports every setting out of range, after defaults.
func (o Options) Validate() error {
	o.fillDefaults()
	a := o.Adaptive
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(o.ReloadInterval > 0, "reload interval %s must be positive", o.ReloadInterval)
	check(a.TargetTracesPerSecond > 0, "adaptive target_traces_per_second %v must be positive", a.TargetTracesPerSecond)
	check(a.MinProbability > 0 && a.MinProbability <= a.MaxProbability && a.MaxProbability <= 1,
		"adaptive probabilities need 0 < min_probability (%v) <= max_probability (%v) <= 1", a.MinProbability, a.MaxProbability)
	check(a.InitialProbability > 0 && a.InitialProbability <= 1, "adaptive initial probability %v is not in (0, 1]", a.InitialProbability)
	check(a.MinTracesPerSecond >= 0, "adaptive min_traces_per_second %v is negative", a.MinTracesPerSecond)
	check(a.Interval > 0, "adaptive interval %s must be positive", a.Interval)
	check(a.Window >= a.Interval, "adaptive window %s is shorter than the interval %s", a.Window, a.Interval)
	check(a.MaxIncreaseFactor > 1 && a.MaxDecreaseFactor > 1, "adaptive dampening factors (%v, %v) must exceed 1", a.MaxIncreaseFactor, a.MaxDecreaseFactor)
	check(a.ErrorRise > 0 && a.ErrorBoost >= 1, "adaptive error rise %v must be positive and boost %v at least 1", a.ErrorRise, a.ErrorBoost)
	check(a.LatencyRise > 1 && a.LatencyBoost >= 1, "adaptive latency rise %v must exceed 1 and boost %v be at least 1", a.LatencyRise, a.LatencyBoost)
	check(a.MinSamples > 0, "adaptive min samples %d must be positive", a.MinSamples)
	check(a.BaselineWeight > 0 && a.BaselineWeight <= 1, "adaptive baseline weight %v is not in (0, 1]", a.BaselineWeight)
	check(a.MaxOperationsPerService > 0 && a.MaxServices > 0, "adaptive caps (%d operations, %d services) must be positive", a.MaxOperationsPerService, a.MaxServices)
	check(a.IdleExpiry >= a.Window, "adaptive idle expiry %s is shorter than the window %s", a.IdleExpiry, a.Window)
	if len(errs) > 0 {
		return fmt.Errorf("invalid sampling options: %w", errors.Join(errs...))
	}
	return nil
}

// Where a served strategy came from, a label of the served metric.
const (
	sourceFile     = "file"
	sourceAdaptive = "adaptive"
	sourceDefault  = "default"
)

type metrics struct {
	served      *prometheus.CounterVec // type, source
	probability *prometheus.GaugeVec   // tenant, service, operation
	reloads     *prometheus.CounterVec // result
	saveErrors  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		served: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tracedb_sampling_strategies_served_total",
			Help: "Sampling strategies served, by type (probabilistic, ratelimiting, per_operation) and source (file, adaptive, default)."},
			[]string{"type", "source"}),
		probability: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tracedb_sampling_probability",
			Help: "The adaptive sampling probability served, by tenant, service and operation (capped per service)."},
			[]string{"tenant", "service", "operation"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tracedb_sampling_strategies_reloads_total",
			Help: "Reads of a changed strategies file, by result (ok, error: the last good file stays in force)."},
			[]string{"result"}),
		saveErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tracedb_sampling_state_save_errors_total",
			Help: "Adaptive sampling state files that could not be written."}),
	}
	for _, c := range []prometheus.Collector{m.served, m.probability, m.reloads, m.saveErrors} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// tenantEntry is one tenant's adaptive state and its lock.
type tenantEntry struct {
	mu    sync.Mutex
	state *tenantAdaptive
}

// Service computes and serves sampling strategies. Its methods are safe
// for concurrent use. New starts its background loop (file reloads and
// recomputes); Close stops it.
type Service struct {
	opts Options
	log  *slog.Logger
	m    *metrics

	file struct {
		sync.RWMutex
		strategies *Strategies // nil: no file
		seen       fileState
	}
	mu struct {
		sync.RWMutex
		tenants map[string]*tenantEntry
	}
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// New validates opts, loads the strategies file (an error if it does not
// parse) and the adaptive state, and starts the background loop.
func New(opts Options) (*Service, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.fillDefaults()
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("sampling metrics: %w", err)
	}
	s := &Service{opts: opts, log: opts.Logger, m: m, stop: make(chan struct{}), done: make(chan struct{})}
	s.mu.tenants = map[string]*tenantEntry{}
	if opts.StrategiesFile != "" {
		st, seen, err := loadStrategies(opts.StrategiesFile)
		if err != nil {
			return nil, err
		}
		s.file.strategies, s.file.seen = st, seen
	}
	if opts.Adaptive.Enabled && opts.StateDir != "" {
		s.loadStates()
	}
	if opts.manual {
		close(s.done)
	} else {
		go s.loop()
	}
	return s, nil
}

// loadStates reads every tenant's state file; a damaged one is logged and
// the tenant starts afresh.
func (s *Service) loadStates() {
	tenants, err := stateTenants(s.opts.StateDir)
	if err != nil {
		s.log.Warn("sampling: cannot list the adaptive state; starting afresh", "dir", s.opts.StateDir, "err", err)
		return
	}
	now := s.opts.Clock.Now()
	for _, tenant := range tenants {
		st, err := readState(s.opts.StateDir, tenant, &s.opts.Adaptive, now)
		if err != nil {
			s.log.Warn("sampling: cannot read a tenant's adaptive state; it starts afresh", "tenant", tenant, "err", err)
			continue
		}
		s.mu.tenants[tenant] = &tenantEntry{state: st}
		s.publishLocked(tenant, st)
	}
}

// loop reloads the file and recomputes until Close.
func (s *Service) loop() {
	defer close(s.done)
	var reload, recompute <-chan time.Time
	if s.opts.StrategiesFile != "" {
		t := time.NewTicker(s.opts.ReloadInterval)
		defer t.Stop()
		reload = t.C
	}
	if s.opts.Adaptive.Enabled {
		t := time.NewTicker(s.opts.Adaptive.Interval)
		defer t.Stop()
		recompute = t.C
	}
	for {
		select {
		case <-s.stop:
			return
		case <-reload:
			s.reload()
		case <-recompute:
			s.recompute()
		}
	}
}

// Close stops the background loop and saves the adaptive state. It is
// safe to call more than once.
func (s *Service) Close() error {
	var err error
	s.once.Do(func() {
		close(s.stop)
		<-s.done
		err = s.saveAll(true)
	})
	return err
}

// reload reads the strategies file again when its mtime or size changed;
// a file that does not parse keeps the last good one in force.
func (s *Service) reload() {
	path := s.opts.StrategiesFile
	st, err := statFile(path)
	s.file.RLock()
	same := err == nil && st == s.file.seen
	s.file.RUnlock()
	if same {
		return
	}
	strategies, seen, err := loadStrategies(path)
	s.file.Lock()
	s.file.seen = seen // a bad file is not read again until it changes
	if err == nil {
		s.file.strategies = strategies
	}
	s.file.Unlock()
	if err != nil {
		s.m.reloads.WithLabelValues("error").Inc()
		s.log.Error("sampling: the strategies file changed but cannot be used; the last good one stays in force", "file", path, "err", err)
		return
	}
	s.m.reloads.WithLabelValues("ok").Inc()
	s.log.Info("sampling: strategies file reloaded", "file", path)
}

// entry returns tenant's state, creating it when create is set (else nil).
func (s *Service) entry(tenant string, create bool) *tenantEntry {
	s.mu.RLock()
	e := s.mu.tenants[tenant]
	s.mu.RUnlock()
	if e != nil || !create {
		return e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e = s.mu.tenants[tenant]; e == nil {
		e = &tenantEntry{state: newTenantAdaptive(s.opts.Clock.Now())}
		s.mu.tenants[tenant] = e
	}
	return e
}

// Observe counts the root spans of td, which tenant's write accepted, for
// adaptive sampling. It does not keep td. Without adaptive sampling it
// does nothing.
func (s *Service) Observe(tenant string, td ptrace.Traces) {
	if !s.opts.Adaptive.Enabled {
		return
	}
	e := s.entry(tenant, true)
	now := s.opts.Clock.Now()
	e.mu.Lock()
	e.state.observe(td, &s.opts.Adaptive, now)
	e.mu.Unlock()
}

// recompute closes every tenant's interval, computes the new
// probabilities, publishes them and saves what changed.
func (s *Service) recompute() {
	now := s.opts.Clock.Now()
	s.mu.RLock()
	tenants := make(map[string]*tenantEntry, len(s.mu.tenants))
	for k, v := range s.mu.tenants {
		tenants[k] = v
	}
	s.mu.RUnlock()
	for tenant, e := range tenants {
		e.mu.Lock()
		for _, f := range e.state.recompute(&s.opts.Adaptive, now) {
			s.m.probability.DeleteLabelValues(tenant, f[0], f[1])
		}
		s.publishLocked(tenant, e.state)
		e.mu.Unlock()
	}
	_ = s.saveAll(false)
}

// publishLocked sets the probability gauges of a tenant; its lock is held.
func (s *Service) publishLocked(tenant string, t *tenantAdaptive) {
	for svc, ss := range t.services {
		for name, op := range ss.ops {
			s.m.probability.WithLabelValues(tenant, svc, name).Set(op.probability)
		}
	}
}

// saveAll writes the state of every tenant that changed (all when force).
func (s *Service) saveAll(force bool) error {
	if s.opts.StateDir == "" || !s.opts.Adaptive.Enabled {
		return nil
	}
	s.mu.RLock()
	tenants := make(map[string]*tenantEntry, len(s.mu.tenants))
	for k, v := range s.mu.tenants {
		tenants[k] = v
	}
	s.mu.RUnlock()
	var errs []error
	for tenant, e := range tenants {
		e.mu.Lock()
		var b []byte
		var err error
		if force || e.state.dirty {
			b, err = encodeState(tenant, e.state, s.opts.Clock.Now())
			e.state.dirty = false
		}
		e.mu.Unlock()
		if b == nil && err == nil {
			continue
		}
		if err == nil {
			err = saveState(s.opts.StateDir, tenant, b)
		}
		if err != nil {
			s.m.saveErrors.Inc()
			s.log.Error("sampling: cannot save the adaptive state", "tenant", tenant, "err", err)
			errs = append(errs, fmt.Errorf("save sampling state of %s: %w", tenant, err))
			e.mu.Lock()
			e.state.dirty = true // try again next time
			e.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}

// strategy returns the strategy for service of the context's tenant and
// counts it. The response must not be modified.
func (s *Service) strategy(ctx context.Context, service string) *pb.SamplingStrategyResponse {
	r, source := s.resolve(db.TenantFromContext(ctx), service)
	s.m.served.WithLabelValues(strategyType(r), source).Inc()
	return r
}

func (s *Service) resolve(tenant, service string) (*pb.SamplingStrategyResponse, string) {
	s.file.RLock()
	file := s.file.strategies
	s.file.RUnlock()
	if file != nil {
		if r, ok := file.ForService(service); ok {
			return r, sourceFile
		}
	}
	if s.opts.Adaptive.Enabled {
		o := &s.opts.Adaptive
		if e := s.entry(tenant, false); e != nil {
			e.mu.Lock()
			defer e.mu.Unlock()
			return e.state.strategy(service, o), sourceAdaptive
		}
		return newTenantAdaptive(time.Time{}).strategy(service, o), sourceAdaptive
	}
	if file != nil {
		return file.Default(), sourceDefault
	}
	return probabilistic(DefaultProbability), sourceDefault
}

func strategyType(r *pb.SamplingStrategyResponse) string {
	switch {
	case r.GetOperationSampling() != nil:
		return "per_operation"
	case r.GetRateLimitingSampling() != nil:
		return "ratelimiting"
	}
	return "probabilistic"
}

// HTTP routes of the sampling endpoint; both answer alike.
const (
	PathAPISampling = "/api/sampling"
	PathSampling    = "/sampling"
)

// HTTPHandler answers GET ?service=<name> with the service's strategy as
// JSON for the context's tenant: 400 without a service, 405 for other
// methods. Mount it at PathAPISampling and PathSampling.
func (s *Service) HTTPHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "only GET is served", http.StatusMethodNotAllowed)
			return
		}
		service := r.URL.Query().Get("service")
		if service == "" {
			http.Error(w, "'service' parameter must be provided", http.StatusBadRequest)
			return
		}
		// Jaeger's JSON: protojson with enum names and the zero values
		// (strategyType PROBABILISTIC, a rate of 0) spelt out.
		b, err := protojson.MarshalOptions{EmitDefaultValues: true}.Marshal(s.strategy(r.Context(), service))
		if err != nil {
			http.Error(w, "encode the strategy: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
}

// grpcServer implements jaeger.api_v2.SamplingManager.
type grpcServer struct {
	pb.UnimplementedSamplingManagerServer
	s *Service
}

func (g grpcServer) GetSamplingStrategy(ctx context.Context, req *pb.SamplingStrategyParameters) (*pb.SamplingStrategyResponse, error) {
	if req.GetServiceName() == "" {
		return nil, status.Error(codes.InvalidArgument, "serviceName must be provided")
	}
	return g.s.strategy(ctx, req.GetServiceName()), nil
}

// RegisterGRPC registers jaeger.api_v2.SamplingManager on gs.
func (s *Service) RegisterGRPC(gs *grpc.Server) {
	pb.RegisterSamplingManagerServer(gs, grpcServer{s: s})
}
