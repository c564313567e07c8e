package bench

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// writeBatchFile generates spans of w into a batch file under t's temp
// directory.
func writeBatchFile(t *testing.T, w Workload, spans, batch int) string {
	t.Helper()
	g, err := NewGenerator(w, 1)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "in.batches")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(f, g, spans, batch); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRunOTLPInProcess runs the whole benchmark on a small workload with
// each client kind and checks that the figures add up.
func TestRunOTLPInProcess(t *testing.T) {
	const spans, batch = 3_000, 250
	for _, tc := range []struct {
		name string
		w    Workload
		load LoadConfig
	}{
		{"clickhouse/pdata", WorkloadClickHouse, LoadConfig{Concurrency: 3, Conns: 2}},
		{"mix/raw+gzip", WorkloadMix, LoadConfig{Concurrency: 2, Client: ClientRaw, Gzip: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := RunOTLP(context.Background(), OTLPConfig{
				BatchFile: writeBatchFile(t, tc.w, spans, batch),
				Dir:       filepath.Join(t.TempDir(), "store"),
				Load:      tc.load,
				Workload:  tc.w, Seed: 1, Batch: batch, Command: "test",
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Spans != spans || res.Accepted != spans || res.Sent.Requests != spans/batch || len(res.Sent.Latencies) != spans/batch {
				t.Errorf("spans %d, accepted %d, requests %d, latencies %d: want %d spans in %d requests",
					res.Spans, res.Accepted, res.Sent.Requests, len(res.Sent.Latencies), spans, spans/batch)
			}
			if res.Wall <= 0 || res.CPU <= 0 || res.RSSPeak <= 0 || res.Sent.Latency(0.99) <= 0 {
				t.Errorf("wall %s, cpu %s, peak RSS %d, p99 %s: want all positive", res.Wall, res.CPU, res.RSSPeak, res.Sent.Latency(0.99))
			}
			if res.Blocks < 1 || res.Flushes < 1 || res.Keys.RowGroups.Bytes == 0 || res.Disk.Allocated == 0 {
				t.Errorf("blocks %d, flushes %d, keys %+v, disk %+v: want everything flushed", res.Blocks, res.Flushes, res.Keys, res.Disk)
			}
			var text strings.Builder
			if err := res.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			md := res.Markdown()
			for _, want := range []string{"spans/s", "export latency p99", "Target ≥ 150000 spans/s", "`test`"} {
				if !strings.Contains(text.String()+md, want) {
					t.Errorf("reports lack %q:\n%s\n%s", want, text.String(), md)
				}
			}
		})
	}
}

// TestRunOTLPChild runs the benchmark against a `tracedb serve` child built
// from this module. It is skipped with -short, and when cmd/tracedb does
// not build (another package mid-change must not fail this one's tests).
func TestRunOTLPChild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/tracedb")
	}
	const spans, batch = 2_000, 500
	bin := filepath.Join(t.TempDir(), "tracedb")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/tracedb/tracedb/cmd/tracedb").CombinedOutput(); err != nil {
		t.Skipf("cmd/tracedb does not build: %v\n%s", err, out)
	}
	res, err := RunOTLP(context.Background(), OTLPConfig{
		BatchFile: writeBatchFile(t, WorkloadClickHouse, spans, batch),
		Dir:       filepath.Join(t.TempDir(), "data"),
		Mode:      ServerProcess,
		Binary:    bin,
		Batch:     batch,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != spans || res.Sent.Requests != spans/batch {
		t.Errorf("accepted %d in %d requests, want %d in %d", res.Accepted, res.Sent.Requests, spans, spans/batch)
	}
	if res.CPU <= 0 || res.RSSPeak <= 0 || res.Blocks < 1 {
		t.Errorf("server cpu %s, peak RSS %d, blocks %d: want all positive (SIGTERM flushes the head)", res.CPU, res.RSSPeak, res.Blocks)
	}
}

func TestRetryHint(t *testing.T) {
	withInfo, err := status.New(codes.ResourceExhausted, "full").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(3 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		err   error
		delay time.Duration
		retry bool
	}{
		{"hint", withInfo.Err(), 3 * time.Second, true},
		{"unavailable without hint", status.Error(codes.Unavailable, "down"), defaultRetryDelay, true},
		{"invalid argument", status.Error(codes.InvalidArgument, "bad"), 0, false},
		{"not a status", errors.New("plain"), 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, delay, retry := retryHint(tc.err)
			if delay != tc.delay || retry != tc.retry {
				t.Errorf("retryHint = %s, %v; want %s, %v", delay, retry, tc.delay, tc.retry)
			}
		})
	}
}

func TestLatencyQuantiles(t *testing.T) {
	s := LoadStats{}
	for i := 1; i <= 100; i++ {
		s.Latencies = append(s.Latencies, time.Duration(i)*time.Millisecond)
	}
	for q, want := range map[float64]time.Duration{0.5: 50 * time.Millisecond, 0.99: 99 * time.Millisecond, 1: 100 * time.Millisecond, 0: time.Millisecond} {
		if got := s.Latency(q); got != want {
			t.Errorf("Latency(%v) = %s, want %s", q, got, want)
		}
	}
}
