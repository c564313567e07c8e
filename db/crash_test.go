package db

import (
	"bufio"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tracedb/tracedb/compaction"
	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/internal/spangen"
)

var crashRounds = flag.Int("crash.rounds", 4, "rounds of kill -9 in TestCrashRecovery")

// crashSample is how many batches of earlier rounds each round re-checks.
const crashSample = 300

const (
	crashDirEnv  = "TRACEDB_CRASH_DIR"
	crashSyncEnv = "TRACEDB_CRASH_SYNC"
	crashFromEnv = "TRACEDB_CRASH_FROM"
)

// crashBatch returns batch n of the crash workload: random spans of every
// shape, with trace IDs that encode n so the checker can find them.
func crashBatch(n uint64) []*encoding.Span {
	r := rand.New(rand.NewPCG(n, 7))
	spans := storable(spangen.Random(r, 20+r.IntN(60)))
	ids := map[encoding.TraceID]encoding.TraceID{}
	for _, s := range spans {
		id, ok := ids[s.TraceID]
		if !ok {
			binary.BigEndian.PutUint64(id[:8], n+1)
			binary.BigEndian.PutUint64(id[8:], uint64(len(ids)+1))
			ids[s.TraceID] = id
		}
		s.TraceID = id
	}
	return spans
}

func crashOptions(sync SyncMode) Options {
	return Options{Sync: sync, MaxHeadSpans: 1500, RowGroupSpans: 64, WALSegmentSize: 1 << 20,
		// The child compacts in a loop of its own; merged blocks stay
		// small so that a kill lands in every step of many compactions.
		Compaction: compaction.Options{MaxBlockSpans: 20_000}, CompactionInterval: -1}
}

// TestCrashChild is the child process of TestCrashRecovery: it writes
// batches until killed, printing "ack N" after batch N's Write returned.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("runs only as TestCrashRecovery's child")
	}
	mode, _ := strconv.Atoi(os.Getenv(crashSyncEnv))
	from, _ := strconv.ParseUint(os.Getenv(crashFromEnv), 10, 64)
	d, err := Open(dir, crashOptions(SyncMode(mode)))
	if err != nil {
		fmt.Println("open error:", err)
		os.Exit(3)
	}
	out := bufio.NewWriter(os.Stdout)
	// Compaction runs all the time beside the writers, so that kills land
	// in its merges and swaps too.
	go func() {
		for {
			if _, err := d.Compact(context.Background()); err != nil {
				fmt.Printf("error compact: %v\n", err)
				os.Exit(5)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	// Two writers, as a server has, so acknowledgements interleave.
	var mu sync.Mutex
	next := from
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				mu.Lock()
				n := next
				next++
				mu.Unlock()
				res, err := d.Write(context.Background(), encoding.ToTraces(crashBatch(n)))
				if err != nil || len(res.Rejected) > 0 {
					mu.Lock()
					fmt.Fprintf(out, "error %d: %v %v\n", n, err, res.Rejected)
					out.Flush()
					mu.Unlock()
					os.Exit(4)
				}
				mu.Lock()
				fmt.Fprintf(out, "ack %d\n", n)
				out.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// rawCount counts the stored copies of trace id's spans over every reader,
// without the dedup of TraceSpans.
func rawCount(t *testing.T, d *DB, id encoding.TraceID) int {
	t.Helper()
	snap, err := d.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	n := 0
	for _, r := range snap.Readers {
		if err := r.TraceSpans(context.Background(), id, func(*encoding.Span) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// TestCrashRecovery runs a child process that writes and acknowledges
// batches, kills it with SIGKILL at a random moment (mid-write, mid-fsync,
// mid-flush), reopens the store and checks that every acknowledged span is
// there, byte-identical. The store accumulates across rounds, each round
// with another sync mode.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	dir := t.TempDir()
	acked := map[uint64]bool{}
	var next uint64
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for round := 0; round < *crashRounds; round++ {
		mode := SyncMode(round % 3)
		roundFrom := next
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, fmt.Sprintf("%s=%d", crashSyncEnv, mode),
			fmt.Sprintf("%s=%d", crashFromEnv, next))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// Kill after a random number of acknowledgements, so the kill
		// lands anywhere in the write, fsync and flush cycle.
		target := 5 + rng.IntN(150)
		deadline := time.After(60 * time.Second)
		count := 0
	read:
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					break read
				}
				if n, found := strings.CutPrefix(line, "ack "); found {
					v, _ := strconv.ParseUint(n, 10, 64)
					acked[v] = true
					next = max(next, v+1)
					if count++; count == target {
						_ = cmd.Process.Signal(syscall.SIGKILL)
					}
				} else if strings.HasPrefix(line, "error") || strings.HasPrefix(line, "open error") {
					_ = cmd.Process.Signal(syscall.SIGKILL)
					t.Fatalf("round %d: child: %s", round, line)
				}
			case <-deadline:
				_ = cmd.Process.Signal(syscall.SIGKILL)
				t.Fatalf("round %d: child made %d acks in 60s", round, count)
			}
		}
		_ = cmd.Wait()
		// The child may have started batches past the last ack; skip them.
		next += 2

		d, err := Open(dir, crashOptions(mode))
		if err != nil {
			t.Fatalf("round %d: reopen after kill -9: %v", round, err)
		}
		// Every batch acknowledged in this round is checked, and a random
		// sample of the earlier ones (all of them while they are few), so
		// that a round costs about the same however many came before and
		// hundreds of rounds stay affordable.
		check := map[uint64]bool{}
		for n := range acked {
			if n >= roundFrom || len(acked) <= crashSample || rng.IntN(len(acked)) < crashSample {
				check[n] = true
			}
		}
		missing := 0
		for n := range check {
			batch := crashBatch(n)
			for id, want := range byTrace(batch) {
				got := collect(t, d, context.Background(), id)
				if !sameSpans(got, want) {
					missing++
					if missing < 5 {
						t.Errorf("round %d: batch %d trace %s: got %d spans, want %d identical", round, n, id, len(got), len(want))
					}
				}
				// Stored copies, before the read's dedup: a compaction
				// swap seen half done would show the old blocks and the
				// new one, each span twice.
				written := 0
				for _, s := range batch {
					if s.TraceID == id {
						written++
					}
				}
				if raw := rawCount(t, d, id); raw < len(want) || raw > written {
					missing++
					t.Errorf("round %d: batch %d trace %s: %d stored copies of %d spans (%d written)", round, n, id, raw, len(want), written)
				}
			}
		}
		if err := d.Close(); err != nil {
			t.Fatalf("round %d: close: %v", round, err)
		}
		if missing > 0 {
			t.Fatalf("round %d (%s): %d acknowledged traces lost or changed", round, mode, missing)
		}
		t.Logf("round %d (%s): killed after %d acks; %d of %d acknowledged batches checked, all intact", round, mode, count, len(check), len(acked))
	}
}
