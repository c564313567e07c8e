//go:build linux

package bench

// The processes of the side-by-side benchmark (compare.go): Jaeger v2
// started from a generated config, with its Badger backend in a directory
// of the run or with a `tracedb serve` as its remote storage, and the
// `tracedb serve` itself. Every process runs in a process group of its
// own, on loopback ports picked free by the harness, and its peak resident
// set (VmHWM) is sampled while it runs. A small client reads Jaeger's
// HTTP query API (/api/...), the API Jaeger's UI uses.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tracedb/tracedb/internal/jaegerconf"
)

// Process timings and sizes.
const (
	procReadyTimeout  = 60 * time.Second
	procStopTimeout   = 5 * time.Minute // SIGTERM may flush a store: give it time
	procKillTimeout   = 5 * time.Second
	procPollInterval  = 20 * time.Millisecond
	procReadyPoll     = 100 * time.Millisecond
	procLogTail       = 64 << 10
	jaegerHTTPTimeout = 2 * time.Minute // one query of Jaeger's HTTP API
	// jaegerRemoteTimeout bounds one call from Jaeger to its remote
	// storage; under full ingest load a write batch can take a while.
	jaegerRemoteTimeout = 30 * time.Second
)

// benchProc is a child process in a process group of its own.
type benchProc struct {
	name string
	cmd  *exec.Cmd
	out  tailBuffer
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, valid once done is closed
	peak atomic.Int64  // the last VmHWM read, bytes
}

// tailBuffer keeps the last procLogTail bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > 2*procLogTail {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-procLogTail:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf[max(0, len(b.buf)-procLogTail):])
}

// startBenchProc starts bin with args in a new process group and samples
// its VmHWM every procPollInterval until it exits.
func startBenchProc(name, bin string, args ...string) (*benchProc, error) {
	p := &benchProc{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	// A group of its own, so that stopping it reaches whatever it forks;
	// Pdeathsig, so that it dies with the harness even when the harness
	// is killed without a chance to clean up.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	go func() {
		status := fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid)
		t := time.NewTicker(procPollInterval)
		defer t.Stop()
		for {
			if b, err := os.ReadFile(status); err == nil {
				if m, err := parseProcStatus(bytes.NewReader(b)); err == nil {
					p.peak.Store(m.Peak)
				}
			}
			select {
			case <-p.done:
				return
			case <-t.C:
			}
		}
	}()
	return p, nil
}

func (p *benchProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Peak returns the process's peak resident set so far (VmHWM), in bytes.
func (p *benchProc) Peak() int64 { return p.peak.Load() }

// Stop sends SIGTERM to the process group and waits for the exit; past
// procStopTimeout it kills the group. A non-zero exit after SIGTERM is
// reported only when clean is set.
func (p *benchProc) Stop(clean bool) error {
	if p.exited() {
		return nil
	}
	pgid := -p.cmd.Process.Pid
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil && clean {
			return fmt.Errorf("%s exited with %v after SIGTERM:\n%s", p.name, p.err, p.out.String())
		}
		return nil
	case <-time.After(procStopTimeout):
		p.Kill()
		return fmt.Errorf("%s did not exit within %s of SIGTERM; killed", p.name, procStopTimeout)
	}
}

// Kill kills the process group at once and waits for the exit.
func (p *benchProc) Kill() {
	if p.exited() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(procKillTimeout):
	}
}

// waitHTTP polls url until it answers 200, the process exits, ctx ends
// or procReadyTimeout passes.
func (p *benchProc) waitHTTP(ctx context.Context, hc *http.Client, url string) error {
	deadline := time.Now().Add(procReadyTimeout)
	var last string
	for {
		if p.exited() {
			return fmt.Errorf("%s exited before it was ready (%v):\n%s", p.name, p.err, p.out.String())
		}
		resp, err := hc.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("status %d: %s", resp.StatusCode, bytes.TrimSpace(body))
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: GET %s: %s\n%s", p.name, procReadyTimeout, url, last, p.out.String())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(procReadyPoll):
		}
	}
}

// freeLoopbackAddrs returns n distinct free loopback addresses. Another
// process may take one before the child binds it: the child then fails to
// start, loudly.
func freeLoopbackAddrs(n int) ([]string, error) {
	addrs := make([]string, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := range addrs {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		addrs[i] = l.Addr().String()
	}
	return addrs, nil
}

// tracedbServe is a `tracedb serve` child with its storage (Jaeger storage
// v2 and OTLP), OTLP gRPC and admin listeners on loopback.
type tracedbServe struct {
	*benchProc
	storage, otlpGRPC, admin string
}

// startTracedbServe starts `bin serve` on dataDir and waits for /readyz.
func startTracedbServe(ctx context.Context, bin, dataDir string) (*tracedbServe, error) {
	a, err := freeLoopbackAddrs(3)
	if err != nil {
		return nil, err
	}
	s := &tracedbServe{storage: a[0], otlpGRPC: a[1], admin: a[2]}
	s.benchProc, err = startBenchProc("tracedb serve", bin, "serve", "--data-dir", dataDir,
		"--listen.storage", s.storage, "--listen.otlp-grpc", s.otlpGRPC, "--listen.admin", s.admin,
		"--listen.otlp-http", "off", "--listen.sampling-http", "off", "--listen.sampling-grpc", "off", "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	if err := s.waitHTTP(ctx, &http.Client{Timeout: httpTimeoutShort}, "http://"+s.admin+"/readyz"); err != nil {
		s.Kill()
		return nil, err
	}
	return s, nil
}

const httpTimeoutShort = 5 * time.Second

// jaegerAddrs are the loopback addresses a Jaeger v2 process listens on.
type jaegerAddrs struct{ otlpGRPC, otlpHTTP, queryHTTP, queryGRPC, health string }

// JaegerStorage says where a Jaeger v2 process stores spans.
type JaegerStorage struct {
	// BadgerDir, when set, selects Jaeger's embedded Badger backend with
	// its default options (TTL, sync off, maintenance), keys and values
	// in subdirectories of it.
	BadgerDir string
	// Remote, when set (and BadgerDir not), selects Jaeger's `grpc` remote
	// storage backend pointed at this address for reads and writes.
	Remote string
}

// jaegerProc is a running Jaeger v2.
type jaegerProc struct {
	*benchProc
	addrs jaegerAddrs
	api   *jaegerAPI
}

// startJaeger writes a config for st into dir, starts bin with it, and
// waits for the health check and for /api/services (which answers only
// once the storage is reachable).
func startJaeger(ctx context.Context, bin, dir string, st JaegerStorage) (*jaegerProc, error) {
	a, err := freeLoopbackAddrs(5)
	if err != nil {
		return nil, err
	}
	j := &jaegerProc{addrs: jaegerAddrs{otlpGRPC: a[0], otlpHTTP: a[1], queryHTTP: a[2], queryGRPC: a[3], health: a[4]}}
	cfgPath := filepath.Join(dir, "jaeger.yaml")
	cfg := jaegerconf.Config{OTLPGRPC: a[0], OTLPHTTP: a[1], QueryHTTP: a[2], QueryGRPC: a[3], Health: a[4],
		BadgerDir: st.BadgerDir, Remote: st.Remote, RemoteTimeout: jaegerRemoteTimeout}
	if err := os.WriteFile(cfgPath, []byte(cfg.YAML()), 0o600); err != nil {
		return nil, err
	}
	if j.benchProc, err = startBenchProc("jaeger", bin, "--config", cfgPath); err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: httpTimeoutShort}
	for _, u := range []string{"http://" + j.addrs.health + "/status", "http://" + j.addrs.queryHTTP + "/api/services"} {
		if err := j.waitHTTP(ctx, hc, u); err != nil {
			j.Kill()
			return nil, err
		}
	}
	j.api = &jaegerAPI{base: "http://" + j.addrs.queryHTTP, client: &http.Client{Timeout: jaegerHTTPTimeout}}
	return j, nil
}

// jaegerAPI reads Jaeger's HTTP query API.
type jaegerAPI struct {
	base   string
	client *http.Client
}

// get fetches path?v and returns the body of a 200 answer.
func (q *jaegerAPI) get(ctx context.Context, path string, v url.Values) ([]byte, error) {
	u := q.base + path
	if len(v) > 0 {
		u += "?" + v.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := q.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s: %w: status %d: %.300s", u, errJaegerStatus, resp.StatusCode, bytes.TrimSpace(body))
	}
	return body, nil
}

var errJaegerStatus = errors.New("jaeger answered an error")

// jaegerResponse is the envelope of the v1 HTTP API.
type jaegerResponse[T any] struct {
	Data   T `json:"data"`
	Errors []struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
	} `json:"errors"`
}

func decodeJaeger[T any](body []byte) (T, error) {
	var r jaegerResponse[T]
	if err := json.Unmarshal(body, &r); err != nil {
		return r.Data, fmt.Errorf("decode jaeger answer: %w", err)
	}
	if len(r.Errors) > 0 {
		return r.Data, fmt.Errorf("jaeger answered errors %+v", r.Errors)
	}
	return r.Data, nil
}

// jaegerTrace is a trace of the v1 API, with what the checks read.
type jaegerTrace struct {
	TraceID string `json:"traceID"`
	Spans   []struct {
		SpanID        string      `json:"spanID"`
		OperationName string      `json:"operationName"`
		Duration      int64       `json:"duration"` // µs
		ProcessID     string      `json:"processID"`
		Tags          []jaegerTag `json:"tags"`
	} `json:"spans"`
	Processes map[string]struct {
		ServiceName string      `json:"serviceName"`
		Tags        []jaegerTag `json:"tags"`
	} `json:"processes"`
}

type jaegerTag struct {
	Key   string `json:"key"`
	Value any    `json:"value"`
}

// String returns the tag's value as the search API's tags parameter
// spells it.
func (t jaegerTag) String() string {
	switch v := t.Value.(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	}
	return fmt.Sprint(t.Value)
}

// spans returns the trace's spans in the form the exactness check reads.
func (t *jaegerTrace) spans() []checkSpan {
	out := make([]checkSpan, 0, len(t.Spans))
	for _, s := range t.Spans {
		p := t.Processes[s.ProcessID]
		attrs := make(map[string][]string, len(s.Tags)+len(p.Tags))
		for _, tags := range [][]jaegerTag{s.Tags, p.Tags} {
			for _, tg := range tags {
				attrs[tg.Key] = append(attrs[tg.Key], tg.String())
			}
		}
		out = append(out, checkSpan{service: p.ServiceName, name: s.OperationName,
			duration: time.Duration(s.Duration) * time.Microsecond, attrs: attrs})
	}
	return out
}

type jaegerDependency struct {
	Parent    string `json:"parent"`
	Child     string `json:"child"`
	CallCount uint64 `json:"callCount"`
}
