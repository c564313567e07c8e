package bench

// The end-to-end OTLP/gRPC ingest benchmark (issue 5): a load generator
// sends a batch file's OTLP requests over gRPC to a tracedb server, either
// built into this process (server.New over db.Open, as `tracedb serve`
// assembles them) or a `tracedb serve` child process, and measures spans/s
// until everything is acknowledged and in blocks, export latency, retries,
// the server's peak RSS and CPU, and bytes on disk. bench/README.md
// explains the figures; bench/otlp is the program.

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	grpcencoding "google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/server"
)

// OTLPTargetSpansPerSecond is issue 5's target for end-to-end OTLP/gRPC
// ingest on 2 cores, ClickHouse shape.
const OTLPTargetSpansPerSecond = 150_000

// otlpExportMethod is OTLP's TraceService/Export, for the raw client.
const otlpExportMethod = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

// Retry policy of the load generator. The server's RetryInfo hint wins;
// the default applies to a refusal without one.
const (
	defaultRetryDelay = 250 * time.Millisecond
	maxAttempts       = 100 // per request: past it the run fails
)

// Child process timings.
const (
	childReadyTimeout  = 60 * time.Second
	childStopTimeout   = 5 * time.Minute // SIGTERM flushes the head: give it time
	childPollInterval  = 20 * time.Millisecond
	procUserHz         = 100 // USER_HZ, the unit of /proc/<pid>/stat's times on Linux
	childServeCmdShown = "tracedb serve"
)

// ServerMode says where the server runs.
type ServerMode int

const (
	// ServerInProcess runs db.Open + server.New in the benchmark's own
	// process: CPU and peak RSS then cover the client too.
	ServerInProcess ServerMode = iota
	// ServerProcess runs `tracedb serve` as a child process: CPU and peak
	// RSS are the server's alone.
	ServerProcess
)

func (m ServerMode) String() string {
	switch m {
	case ServerInProcess:
		return "inprocess"
	case ServerProcess:
		return "process"
	}
	return fmt.Sprintf("ServerMode(%d)", int(m))
}

// ClientKind says how the load generator turns a batch into an Export.
type ClientKind int

const (
	// ClientPdata decodes each batch into a ptraceotlp.ExportRequest and
	// sends it with ptraceotlp.NewGRPCClient, which marshals it again: what
	// a collector's OTLP exporter pays.
	ClientPdata ClientKind = iota
	// ClientRaw sends the batch file's protobuf bytes as they are: the
	// client costs almost nothing, which shows the server's own ceiling
	// when both share the cores.
	ClientRaw
)

func (k ClientKind) String() string {
	switch k {
	case ClientPdata:
		return "pdata"
	case ClientRaw:
		return "raw"
	}
	return fmt.Sprintf("ClientKind(%d)", int(k))
}

// ParseClientKind returns the ClientKind named s ("pdata" or "raw").
func ParseClientKind(s string) (ClientKind, error) {
	for _, k := range []ClientKind{ClientPdata, ClientRaw} {
		if s == k.String() {
			return k, nil
		}
	}
	return 0, fmt.Errorf("-client %q: want raw or pdata", s)
}

// LoadConfig configures the load generator.
type LoadConfig struct {
	// Concurrency is the number of clients, each with one Export in
	// flight. Default 4.
	Concurrency int
	// Conns is the number of gRPC connections the clients share, round
	// robin. Default 1.
	Conns int
	// Gzip compresses requests with gRPC's gzip compressor.
	Gzip bool
	// Client says how requests are built. Default ClientPdata.
	Client ClientKind
	// ReadAhead is the number of raw batches read ahead of the clients.
	// Default 2×Concurrency.
	ReadAhead int
}

func (c *LoadConfig) fillDefaults() {
	c.Concurrency = cmp.Or(c.Concurrency, defaultConcurrency)
	c.Conns = cmp.Or(c.Conns, 1)
	c.ReadAhead = cmp.Or(c.ReadAhead, 2*c.Concurrency)
}

// LoadStats is what the load generator saw.
type LoadStats struct {
	Requests      int64         // Exports acknowledged
	RequestBytes  int64         // their protobuf bytes, uncompressed
	Rejected      int64         // spans refused in partial-success answers
	Retries       int64         // Exports refused with RESOURCE_EXHAUSTED or UNAVAILABLE and sent again
	RetryWait     time.Duration // time the clients slept on retry hints, all clients together
	RetryCodes    map[codes.Code]int64
	Start, End    time.Time // the first Export sent; the last one acknowledged
	CPUAtStart    time.Duration
	CPUAtStartErr error
	// Latencies holds, for each request, the time from its first attempt
	// to its acknowledgement, retries and their waits included: what the
	// exporter waits. Sorted.
	Latencies []time.Duration
}

// Latency returns the q-quantile (0 ≤ q ≤ 1) of the request latencies,
// nearest rank.
func (s *LoadStats) Latency(q float64) time.Duration {
	if len(s.Latencies) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(s.Latencies)))) - 1
	return s.Latencies[min(max(i, 0), len(s.Latencies)-1)]
}

// SendOTLP sends every batch of br as an OTLP Export over conns from
// cfg.Concurrency clients, each with one request in flight, as fast as the
// server acknowledges them. A request refused with RESOURCE_EXHAUSTED or
// UNAVAILABLE is sent again after the server's RetryInfo delay; any other
// error stops the run and is returned. onStart, when not nil, is called
// once, just before the first Export is sent, so that the caller can
// snapshot its counters there.
func SendOTLP(ctx context.Context, conns []*grpc.ClientConn, br *BatchReader, cfg LoadConfig, onStart func()) (*LoadStats, error) {
	cfg.fillDefaults()
	if len(conns) == 0 {
		return nil, errors.New("send otlp: no connections")
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	var callOpts []grpc.CallOption
	if cfg.Gzip {
		callOpts = append(callOpts, grpc.UseCompressor(gzip.Name))
	}
	raw := make(chan []byte, cfg.ReadAhead)
	var (
		st        = &LoadStats{RetryCodes: map[codes.Code]int64{}}
		startOnce sync.Once
		mu        sync.Mutex // guards st's maps and slices
		requests  atomic.Int64
		reqBytes  atomic.Int64
		rejected  atomic.Int64
		lastAck   atomic.Int64 // unix nanos
	)
	start := func() {
		startOnce.Do(func() {
			if onStart != nil {
				onStart()
			}
			st.Start = time.Now()
		})
	}

	var wg sync.WaitGroup
	wg.Go(func() { feedBatches(ctx, br, raw, cancel) })
	for i := range cfg.Concurrency {
		cc := conns[i%len(conns)]
		pc := ptraceotlp.NewGRPCClient(cc)
		wg.Go(func() {
			var lat []time.Duration
			retryCodes := map[codes.Code]int64{}
			var retries int64
			var wait time.Duration
			defer func() {
				mu.Lock()
				st.Latencies = append(st.Latencies, lat...)
				st.Retries += retries
				st.RetryWait += wait
				for c, n := range retryCodes {
					st.RetryCodes[c] += n
				}
				mu.Unlock()
			}()
			for b := range raw {
				if ctx.Err() != nil {
					return
				}
				send, err := exportFunc(cfg.Client, pc, cc, b, callOpts)
				if err != nil {
					cancel(err)
					return
				}
				start()
				t0 := time.Now()
				for attempt := 1; ; attempt++ {
					rej, err := send(ctx)
					if err == nil {
						rejected.Add(rej)
						break
					}
					code, delay, retryable := retryHint(err)
					if !retryable || attempt == maxAttempts || ctx.Err() != nil {
						cancel(fmt.Errorf("export request %d (%d bytes), attempt %d: %w", requests.Load(), len(b), attempt, err))
						return
					}
					retries++
					retryCodes[code]++
					wait += delay
					select {
					case <-time.After(delay):
					case <-ctx.Done():
						return
					}
				}
				now := time.Now()
				lat = append(lat, now.Sub(t0))
				requests.Add(1)
				reqBytes.Add(int64(len(b)))
				for { // lastAck = max(lastAck, now)
					old := lastAck.Load()
					if old >= now.UnixNano() || lastAck.CompareAndSwap(old, now.UnixNano()) {
						break
					}
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	if st.Start.IsZero() {
		return nil, errors.New("send otlp: the batch file holds no batches")
	}
	st.End = time.Unix(0, lastAck.Load())
	st.Requests, st.RequestBytes, st.Rejected = requests.Load(), reqBytes.Load(), rejected.Load()
	slices.Sort(st.Latencies)
	return st, nil
}

// exportFunc prepares one batch for sending and returns the call that
// sends it; the call returns the spans the server rejected in a partial
// success answer. Preparing is the client's work: decoding for ClientPdata
// (the Export marshals again), nothing for ClientRaw.
func exportFunc(kind ClientKind, pc ptraceotlp.GRPCClient, cc *grpc.ClientConn, b []byte, opts []grpc.CallOption) (func(context.Context) (int64, error), error) {
	switch kind {
	case ClientRaw:
		return func(ctx context.Context) (int64, error) {
			var resp rawOTLPMessage
			o := append(slices.Clip(opts), grpc.ForceCodecV2(rawOTLPCodec{}))
			if err := cc.Invoke(ctx, otlpExportMethod, &rawOTLPMessage{b: b}, &resp, o...); err != nil {
				return 0, err
			}
			r := ptraceotlp.NewExportResponse()
			if err := r.UnmarshalProto(resp.b); err != nil {
				return 0, fmt.Errorf("decode export response: %w", err)
			}
			return r.PartialSuccess().RejectedSpans(), nil
		}, nil
	default:
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(b); err != nil {
			return nil, fmt.Errorf("decode batch: %w", err)
		}
		return func(ctx context.Context) (int64, error) {
			resp, err := pc.Export(ctx, req, opts...)
			if err != nil {
				return 0, err
			}
			return resp.PartialSuccess().RejectedSpans(), nil
		}, nil
	}
}

// retryHint says whether err is one that OTLP exporters retry
// (RESOURCE_EXHAUSTED, UNAVAILABLE), and after how long: the server's
// RetryInfo, else defaultRetryDelay.
func retryHint(err error) (codes.Code, time.Duration, bool) {
	st, ok := status.FromError(err)
	if !ok {
		return codes.Unknown, 0, false
	}
	switch st.Code() {
	case codes.ResourceExhausted, codes.Unavailable:
	default:
		return st.Code(), 0, false
	}
	delay := defaultRetryDelay
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			delay = ri.GetRetryDelay().AsDuration()
		}
	}
	return st.Code(), delay, true
}

// rawOTLPMessage is a request or response kept as its protobuf bytes.
type rawOTLPMessage struct{ b []byte }

// rawOTLPCodec passes rawOTLPMessage through as bytes.
type rawOTLPCodec struct{}

func (rawOTLPCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(*rawOTLPMessage)
	if !ok {
		return nil, fmt.Errorf("raw codec: cannot marshal %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(m.b)}, nil
}

func (rawOTLPCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(*rawOTLPMessage)
	if !ok {
		return fmt.Errorf("raw codec: cannot unmarshal into %T", v)
	}
	m.b = data.Materialize()
	return nil
}

func (rawOTLPCodec) Name() string { return "proto" }

var _ grpcencoding.CodecV2 = rawOTLPCodec{}

// OTLPConfig is one run of the end-to-end OTLP benchmark.
type OTLPConfig struct {
	BatchFile string // made by Generate
	// Dir is the store's directory (the child's --data-dir); should be
	// empty.
	Dir  string
	Mode ServerMode
	// Binary is the tracedb executable run for ServerProcess.
	Binary string
	Load   LoadConfig
	// CPUProfile, when set, receives a pprof CPU profile of this process
	// over the measured window: client and server in process, the client
	// alone with ServerProcess.
	CPUProfile io.Writer
	// Log receives the child's logs (stderr). Default: discarded.
	Log io.Writer

	// Described in the result only.
	Workload Workload
	Seed     uint64
	Batch    int
	Command  string
}

// OTLPResult is one run of the end-to-end OTLP benchmark.
type OTLPResult struct {
	Date        time.Time
	Mode        ServerMode
	Workload    Workload
	Seed        uint64
	Batch       int
	Load        LoadConfig
	GOMAXPROCS  int
	CPUs        int
	CPUModel    string
	LoadAverage string // /proc/loadavg's first three fields when the run began
	Command     string

	Spans      int64 // in the batch file
	Accepted   int64 // Spans − Rejected; checked against the server's own counter
	InputBytes int64 // the batch file
	Sent       *LoadStats

	// Wall runs from the first Export until every Export is acknowledged
	// and every span is in a block: in process, until the final
	// store.Flush returns; for a child, until it has exited after SIGTERM
	// (serve then flushes and closes the store).
	Wall time.Duration
	// Drain is the tail of Wall after the last acknowledgement: the final
	// Flush, or the child's shutdown.
	Drain time.Duration
	// CPU is the user+system time over Wall of the server: the whole
	// process in process (client included), the child otherwise.
	CPU time.Duration
	// ClientCPU is this process's CPU over the load (ServerProcess only).
	ClientCPU time.Duration
	// RSSPeak is the server's peak resident set: VmHWM of this process
	// since a reset after generation (client included), or the child's
	// VmHWM, sampled until it exits.
	RSSPeak int64
	Flushes int64 // flushes completed before the final one (child) or including it (in process)
	Blocks  int64 // after close

	Disk    DiskUsage
	Subdirs []SubdirUsage
	Keys    StoreKeys
}

// SpansPerSecond is the end-to-end ingest rate.
func (r *OTLPResult) SpansPerSecond() float64 { return float64(r.Accepted) / r.Wall.Seconds() }

// CPUMicrosPerSpan is the server's CPU time per accepted span.
func (r *OTLPResult) CPUMicrosPerSpan() float64 {
	return float64(r.CPU.Microseconds()) / float64(r.Accepted)
}

func (r *OTLPResult) perSpan(b int64) float64 { return float64(b) / float64(max(r.Accepted, 1)) }

// TargetMet reports whether the rate meets OTLPTargetSpansPerSecond.
func (r *OTLPResult) TargetMet() bool { return r.SpansPerSecond() >= OTLPTargetSpansPerSecond }

// RunOTLP starts a server as cfg.Mode says, sends cfg.BatchFile to it over
// OTLP/gRPC, waits until everything is in blocks, stops the server and
// measures. It needs Linux (/proc) for the RSS figures.
func RunOTLP(ctx context.Context, cfg OTLPConfig) (*OTLPResult, error) {
	cfg.Load.fillDefaults()
	r := &OTLPResult{
		Date: time.Now().UTC(), Mode: cfg.Mode, Workload: cfg.Workload, Seed: cfg.Seed, Batch: cfg.Batch,
		Load: cfg.Load, GOMAXPROCS: runtime.GOMAXPROCS(0), CPUs: runtime.NumCPU(), CPUModel: cpuModel(),
		LoadAverage: loadAverage(), Command: cfg.Command,
	}
	f, err := os.Open(cfg.BatchFile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil {
		r.InputBytes = fi.Size()
	}
	br, err := NewBatchReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.BatchFile, err)
	}
	switch cfg.Mode {
	case ServerInProcess:
		err = runInProcess(ctx, cfg, br, r)
	case ServerProcess:
		err = runChild(ctx, cfg, br, r)
	default:
		err = fmt.Errorf("unknown server mode %s", cfg.Mode)
	}
	if err != nil {
		return nil, err
	}
	if r.Disk, r.Subdirs, err = MeasureDiskBySubdir(cfg.Dir); err != nil {
		return nil, err
	}
	if r.Keys, err = ReadStoreKeys(filepath.Join(cfg.Dir, storeBadgerDir)); err != nil {
		return nil, err
	}
	r.Blocks = r.Keys.BlockMeta.Keys
	return r, nil
}

// finishLoad checks the load's span count against the batch file's and
// the server's accepted counter, and fills r.
func finishLoad(r *OTLPResult, br *BatchReader, st *LoadStats, serverAccepted int64) error {
	_, spans, ok := br.Trailer()
	if !ok {
		return errors.New("send otlp: the batch file was not read to its end")
	}
	r.Sent, r.Spans = st, int64(spans)
	r.Accepted = r.Spans - st.Rejected
	if serverAccepted != r.Accepted {
		return fmt.Errorf("the server counted %d spans accepted, the clients %d (%d sent, %d rejected)",
			serverAccepted, r.Accepted, r.Spans, st.Rejected)
	}
	return nil
}

// dialAll opens n plaintext connections to addr.
func dialAll(addr string, n int) ([]*grpc.ClientConn, func() error, error) {
	var conns []*grpc.ClientConn
	closeAll := func() error {
		var errs []error
		for _, c := range conns {
			errs = append(errs, c.Close())
		}
		return errors.Join(errs...)
	}
	for range n {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, nil, errors.Join(fmt.Errorf("dial %s: %w", addr, err), closeAll())
		}
		conns = append(conns, cc)
	}
	return conns, closeAll, nil
}

// inProcessConfig is `tracedb serve`'s config with only the OTLP gRPC
// listener, on a free loopback port.
func inProcessConfig(dir string) server.Config {
	c := server.DefaultConfig()
	c.DataDir = dir
	c.Listen = server.Listen{Storage: server.Off, Admin: server.Off, OTLPGRPC: "127.0.0.1:0", OTLPHTTP: server.Off,
		SamplingHTTP: server.Off, SamplingGRPC: server.Off}
	return c
}

func runInProcess(ctx context.Context, cfg OTLPConfig, br *BatchReader, r *OTLPResult) (err error) {
	runtime.GC()
	debug.FreeOSMemory()
	if err := ResetPeakRSS(); err != nil {
		return err
	}
	// The store's options are serve's: the defaults and a shared registry.
	reg := prometheus.NewRegistry()
	store, err := db.Open(cfg.Dir, db.Options{Registerer: reg})
	if err != nil {
		return err
	}
	storeClosed := false
	defer func() {
		if !storeClosed {
			err = errors.Join(err, store.Close())
		}
	}()
	srv, err := server.New(inProcessConfig(cfg.Dir), store, server.Options{Registerer: reg})
	if err != nil {
		return err
	}
	serveCtx, stopServe := context.WithCancel(ctx)
	defer stopServe()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(serveCtx) }()
	stop := func() error {
		stopServe()
		return <-served
	}
	conns, closeConns, err := dialAll(srv.Addr(server.ListenerOTLPGRPC).String(), cfg.Load.Conns)
	if err != nil {
		return errors.Join(err, stop())
	}

	var cpu0 time.Duration
	var cpuErr error
	onStart := func() {
		cpu0, cpuErr = CPUTime()
		if cfg.CPUProfile != nil {
			cpuErr = errors.Join(cpuErr, pprof.StartCPUProfile(cfg.CPUProfile))
		}
	}
	st, err := SendOTLP(ctx, conns, br, cfg.Load, onStart)
	if err == nil {
		err = store.Flush()
	}
	end := time.Now()
	cpu1, cpuErr1 := CPUTime()
	if cfg.CPUProfile != nil {
		pprof.StopCPUProfile()
	}
	if err = errors.Join(err, cpuErr, cpuErr1); err != nil {
		return errors.Join(err, closeConns(), stop())
	}
	mem, err := ReadMemory()
	if err != nil {
		return errors.Join(err, closeConns(), stop())
	}
	r.Wall, r.Drain, r.CPU, r.RSSPeak = end.Sub(st.Start), end.Sub(st.End), cpu1-cpu0, mem.Peak
	accepted, err := gatherCounter(reg, "tracedb_server_spans_accepted_total", "")
	if err == nil {
		err = finishLoad(r, br, st, accepted)
	}
	if err == nil {
		r.Flushes, err = countFlushes(reg)
	}
	if err = errors.Join(err, closeConns(), stop()); err != nil {
		return err
	}
	storeClosed = true
	if err := store.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// gatherCounter sums the counter name over its series that carry the
// label pair label (`name="value"`, or "" for all).
func gatherCounter(g prometheus.Gatherer, name, label string) (int64, error) {
	mfs, err := g.Gather()
	if err != nil {
		return 0, fmt.Errorf("gather metrics: %w", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, l := range m.GetLabel() {
				if fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()) == label {
					match = true
				}
			}
			if match {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return int64(sum), nil
}

// child is a `tracedb serve` process.
type child struct {
	cmd      *exec.Cmd
	grpcAddr string
	admin    string
	exited   chan struct{} // closed when Wait returns
	waitErr  error
	peak     atomic.Int64 // the last VmHWM read
	stdout   bytes.Buffer // what the child printed, for errors; guarded by outMu
	outMu    sync.Mutex
}

func (c *child) output() string {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	return c.stdout.String()
}

// startChild starts `binary serve` on dir with the OTLP gRPC and admin
// listeners on free loopback ports, learns the ports from what serve
// prints, and waits until /readyz answers 200.
func startChild(ctx context.Context, binary, dir string, log io.Writer) (*child, error) {
	cmd := exec.Command(binary, "serve", "--data-dir", dir,
		"--listen.otlp-grpc", "127.0.0.1:0", "--listen.admin", "127.0.0.1:0",
		"--listen.storage", server.Off, "--listen.otlp-http", server.Off,
		"--listen.sampling-http", server.Off, "--listen.sampling-grpc", server.Off, "--log-level", "warn")
	cmd.Stderr = cmp.Or(log, io.Discard)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", binary, err)
	}
	c := &child{cmd: cmd, exited: make(chan struct{})}
	addrs := make(chan [2]string, 1)
	go func() {
		var grpcAddr, admin string
		sent := false
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			c.outMu.Lock()
			c.stdout.WriteString(line + "\n")
			c.outMu.Unlock()
			// serve prints "  <addr>  <what>  (--<flag>)" per listener.
			if f := strings.Fields(line); len(f) > 0 {
				switch {
				case strings.HasSuffix(line, "(--listen.otlp-grpc)"):
					grpcAddr = f[0]
				case strings.HasSuffix(line, "(--listen.admin)"):
					admin = f[0]
				}
				if grpcAddr != "" && admin != "" && !sent {
					addrs <- [2]string{grpcAddr, admin} // buffered: never blocks
					sent = true
				}
			}
		}
		_, _ = io.Copy(io.Discard, out)
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()
	go func() {
		status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
		t := time.NewTicker(childPollInterval)
		defer t.Stop()
		for {
			if b, err := os.ReadFile(status); err == nil {
				if m, err := parseProcStatus(bytes.NewReader(b)); err == nil {
					c.peak.Store(m.Peak)
				}
			}
			select {
			case <-c.exited:
				return
			case <-t.C:
			}
		}
	}()

	deadline := time.After(childReadyTimeout)
	select {
	case a := <-addrs:
		c.grpcAddr, c.admin = a[0], a[1]
	case <-c.exited:
		return nil, fmt.Errorf("%s exited before listening: %v\n%s", childServeCmdShown, c.waitErr, c.output())
	case <-deadline:
		return nil, errors.Join(fmt.Errorf("%s did not print its listeners within %s:\n%s", childServeCmdShown, childReadyTimeout, c.output()), c.kill())
	case <-ctx.Done():
		return nil, errors.Join(ctx.Err(), c.kill())
	}
	for {
		resp, err := http.Get("http://" + c.admin + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c, nil
			}
		}
		select {
		case <-time.After(childPollInterval):
		case <-c.exited:
			return nil, fmt.Errorf("%s exited before it was ready: %v\n%s", childServeCmdShown, c.waitErr, c.output())
		case <-deadline:
			return nil, errors.Join(fmt.Errorf("%s not ready within %s", childServeCmdShown, childReadyTimeout), c.kill())
		case <-ctx.Done():
			return nil, errors.Join(ctx.Err(), c.kill())
		}
	}
}

// kill ends the child at once and waits for it.
func (c *child) kill() error {
	select {
	case <-c.exited:
		return nil
	default:
	}
	err := c.cmd.Process.Kill()
	<-c.exited
	return err
}

// stop sends SIGTERM, which makes serve finish in-flight requests, flush
// and close the store, and waits for the exit.
func (c *child) stop() error {
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("signal %s: %w", childServeCmdShown, err)
	}
	select {
	case <-c.exited:
	case <-time.After(childStopTimeout):
		return errors.Join(fmt.Errorf("%s did not stop within %s of SIGTERM", childServeCmdShown, childStopTimeout), c.kill())
	}
	if c.waitErr != nil {
		return fmt.Errorf("%s: %w\n%s", childServeCmdShown, c.waitErr, c.output())
	}
	return nil
}

// procCPU reads a process's user+system time from /proc/<pid>/stat, in
// USER_HZ ticks.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read cpu time of %d: %w", pid, err)
	}
	// The command name, field 2, is in parentheses and may hold spaces:
	// count fields after the last ')'. utime and stime are fields 14, 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("read cpu time of %d: no command name in %q", pid, b)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("read cpu time of %d: short stat line %q", pid, b)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("read cpu time of %d: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / procUserHz, nil
}

// scrapeCounter sums the samples of counter name whose labels contain
// label (or all when label is "") in the Prometheus text at url.
func scrapeCounter(url, name, label string) (int64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		series, value, ok := strings.Cut(line, " ")
		if !ok || (series != name && !strings.HasPrefix(series, name+"{")) || !strings.Contains(series, label) {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return 0, fmt.Errorf("scrape %s: %q: %w", url, line, err)
		}
		sum += v
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("scrape %s: %w", url, err)
	}
	return int64(sum), nil
}

func runChild(ctx context.Context, cfg OTLPConfig, br *BatchReader, r *OTLPResult) (err error) {
	if cfg.Binary == "" {
		return errors.New("server mode process needs the tracedb binary")
	}
	c, err := startChild(ctx, cfg.Binary, cfg.Dir, cfg.Log)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.kill())
		}
	}()
	conns, closeConns, err := dialAll(c.grpcAddr, cfg.Load.Conns)
	if err != nil {
		return err
	}
	pid := c.cmd.Process.Pid
	var childCPU0, clientCPU0 time.Duration
	var cpuErr error
	onStart := func() {
		var e1, e2 error
		childCPU0, e1 = procCPU(pid)
		clientCPU0, e2 = CPUTime()
		cpuErr = errors.Join(e1, e2)
		if cfg.CPUProfile != nil {
			cpuErr = errors.Join(cpuErr, pprof.StartCPUProfile(cfg.CPUProfile))
		}
	}
	st, err := SendOTLP(ctx, conns, br, cfg.Load, onStart)
	clientCPU1, cpuErr1 := CPUTime()
	if cfg.CPUProfile != nil {
		pprof.StopCPUProfile()
	}
	if err = errors.Join(err, cpuErr, cpuErr1, closeConns()); err != nil {
		return err
	}
	metricsURL := "http://" + c.admin + "/metrics"
	accepted, err := scrapeCounter(metricsURL, "tracedb_server_spans_accepted_total", "")
	if err != nil {
		return err
	}
	if err := finishLoad(r, br, st, accepted); err != nil {
		return err
	}
	if r.Flushes, err = scrapeCounter(metricsURL, "tracedb_flushes_total", `result="ok"`); err != nil {
		return err
	}
	if err := c.stop(); err != nil {
		return err
	}
	end := time.Now()
	ps := c.cmd.ProcessState
	r.Wall, r.Drain = end.Sub(st.Start), end.Sub(st.End)
	r.CPU = ps.UserTime() + ps.SystemTime() - childCPU0
	r.ClientCPU = clientCPU1 - clientCPU0
	r.RSSPeak = c.peak.Load()
	return nil
}

// cpuModel returns the first "model name" of /proc/cpuinfo, or "unknown".
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// loadAverage returns the 1, 5 and 15 minute load averages, or "unknown".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

func (r *OTLPResult) clientDescription() string {
	comp := "no compression"
	if r.Load.Gzip {
		comp = "gzip"
	}
	return fmt.Sprintf("%d clients (%s) over %d connection(s), %s", r.Load.Concurrency, r.Load.Client, r.Load.Conns, comp)
}

func (r *OTLPResult) serverDescription() string {
	if r.Mode == ServerProcess {
		return "tracedb serve child process (default options)"
	}
	return "in process: db.Open + server.New (serve's defaults)"
}

// figures returns the result's figures as (name, value, note) rows, shared
// by the text and the markdown reports.
func (r *OTLPResult) figures() [][3]string {
	s := r.Sent
	f := func(format string, args ...any) string { return fmt.Sprintf(format, args...) }
	ms := func(d time.Duration) string { return f("%.1f ms", float64(d.Microseconds())/1000) }
	rows := [][3]string{
		{"spans/s", f("%.0f", r.SpansPerSecond()), f("%d spans ÷ %.2f s from the first Export until all are acknowledged and in blocks", r.Accepted, r.Wall.Seconds())},
		{"acknowledged after", f("%.2f s", s.End.Sub(s.Start).Seconds()), f("%.0f spans/s until the last acknowledgement", float64(r.Accepted)/s.End.Sub(s.Start).Seconds())},
		{"drain", f("%.2f s", r.Drain.Seconds()), map[ServerMode]string{ServerInProcess: "the final store.Flush", ServerProcess: "SIGTERM until the child exited (serve flushes and closes the store)"}[r.Mode]},
		{"export latency p50", ms(s.Latency(0.5)), f("%d requests, first attempt to acknowledgement, retries included", s.Requests)},
		{"export latency p99", ms(s.Latency(0.99)), ""},
		{"export latency max", ms(s.Latency(1)), ""},
		{"retries", f("%d", s.Retries), f("%s; %.1f s slept on retry hints", retryCodesString(s.RetryCodes), s.RetryWait.Seconds())},
		{"rejected spans", f("%d", s.Rejected), "partial success"},
	}
	if r.Mode == ServerProcess {
		rows = append(rows,
			[3]string{"server CPU", f("%.2f µs/span", r.CPUMicrosPerSpan()), f("%.2f s user+sys of the child, %.2f cores busy", r.CPU.Seconds(), r.CPU.Seconds()/r.Wall.Seconds())},
			[3]string{"client CPU", f("%.2f µs/span", float64(r.ClientCPU.Microseconds())/float64(r.Accepted)), f("%.2f s of the load generator", r.ClientCPU.Seconds())},
			[3]string{"server peak RSS", f("%.0f MiB", float64(r.RSSPeak)/mib), "the child's VmHWM, sampled every 20 ms until it exited"})
	} else {
		rows = append(rows,
			[3]string{"CPU", f("%.2f µs/span", r.CPUMicrosPerSpan()), f("%.2f s user+sys of the process, client included; %.2f cores busy", r.CPU.Seconds(), r.CPU.Seconds()/r.Wall.Seconds())},
			[3]string{"peak RSS", f("%.0f MiB", float64(r.RSSPeak)/mib), "VmHWM of the process since after generation, client included"})
	}
	total := r.CPU + r.ClientCPU
	ceiling := float64(r.GOMAXPROCS) * float64(r.Accepted) / total.Seconds()
	note := f("GOMAXPROCS ÷ CPU per span (client included): the rate if every core were busy with this run")
	if r.Mode == ServerProcess {
		note += f("; the server alone: %.0f spans/s", float64(r.GOMAXPROCS)*float64(r.Accepted)/r.CPU.Seconds())
	}
	rows = append(rows, [3]string{"CPU-bound ceiling", f("%.0f spans/s", ceiling), note})
	k := r.Keys
	rows = append(rows,
		[3]string{"on disk", f("%.1f B/span", r.perSpan(r.Disk.Allocated)), f("allocated after close (apparent %.1f); row groups %.1f, postings %.1f, metas %.2f B/span as written",
			r.perSpan(r.Disk.Apparent), r.perSpan(k.RowGroups.Bytes), r.perSpan(k.PostingsDict.Bytes+k.Postings.Bytes), r.perSpan(k.BlockMeta.Bytes+k.StoreMeta.Bytes))},
		[3]string{"flushes, blocks", f("%d, %d", r.Flushes, r.Blocks), map[ServerMode]string{ServerInProcess: "flushes include the final one", ServerProcess: "flushes before SIGTERM; blocks after exit"}[r.Mode]},
		[3]string{"OTLP input", f("%.1f B/span", r.perSpan(r.InputBytes)), "the batch file, uncompressed protobuf"},
	)
	return rows
}

func retryCodesString(m map[codes.Code]int64) string {
	if len(m) == 0 {
		return "none refused"
	}
	var parts []string
	for _, c := range slices.Sorted(func(yield func(codes.Code) bool) {
		for c := range m {
			if !yield(c) {
				return
			}
		}
	}) {
		parts = append(parts, fmt.Sprintf("%s: %d", c, m[c]))
	}
	return strings.Join(parts, ", ")
}

func (r *OTLPResult) verdict() string {
	if r.TargetMet() {
		return "met"
	}
	return "not met"
}

// WriteText prints the result for a person.
func (r *OTLPResult) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "workload\t%s (seed %d), %d spans in requests of %d\n", r.Workload, r.Seed, r.Spans, r.Batch)
	fmt.Fprintf(tw, "server\t%s\n", r.serverDescription())
	fmt.Fprintf(tw, "load\t%s\n", r.clientDescription())
	fmt.Fprintf(tw, "machine\tGOMAXPROCS %d, %d CPUs, %s, load average %s at start\n", r.GOMAXPROCS, r.CPUs, r.CPUModel, r.LoadAverage)
	for _, row := range r.figures() {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", row[0], row[1], row[2])
	}
	fmt.Fprintf(tw, "target\t≥ %d spans/s on 2 cores\t%s\n", OTLPTargetSpansPerSecond, r.verdict())
	return tw.Flush()
}

// Markdown returns the result as a markdown section.
func (r *OTLPResult) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n## %s: OTLP/gRPC ingest, server %s\n\n", r.Date.Format("2006-01-02 15:04 MST"), r.Mode)
	fmt.Fprintf(&b, "- **Machine**: GOMAXPROCS %d, %d CPUs, `%s`, load average %s at start\n", r.GOMAXPROCS, r.CPUs, r.CPUModel, r.LoadAverage)
	fmt.Fprintf(&b, "- **Command**: `%s`\n", r.Command)
	fmt.Fprintf(&b, "- **Workload**: %s (seed %d), %d spans in %d requests of %d\n", r.Workload, r.Seed, r.Spans, r.Sent.Requests, r.Batch)
	fmt.Fprintf(&b, "- **Server**: %s; **load**: %s\n\n", r.serverDescription(), r.clientDescription())
	b.WriteString("| figure | value | note |\n|---|---|---|\n")
	for _, row := range r.figures() {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", row[0], row[1], row[2])
	}
	fmt.Fprintf(&b, "\nTarget ≥ %d spans/s on 2 cores: **%s** (%.0f spans/s).\n", OTLPTargetSpansPerSecond, r.verdict(), r.SpansPerSecond())
	return b.String()
}

// AppendMarkdown appends the result's section to the file at path.
func (r *OTLPResult) AppendMarkdown(path string) (err error) {
	return appendFile(path, r.Markdown())
}
