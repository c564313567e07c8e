package wal

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The crash test runs this test binary as a child that appends and prints
// the number of every record Wait acknowledged, kills it with SIGKILL at a
// random instant, and checks that Replay returns every acknowledged record.
const (
	crashDirEnv  = "TRACEDB_WAL_CRASH_DIR"
	crashModeEnv = "TRACEDB_WAL_CRASH_MODE"
)

// crashRecord is record number i: i as 8 bytes, then filler so records
// span segment boundaries and are torn at random places by the kill.
func crashRecord(i uint64) []byte {
	n := 8 + int(i*7919%20000)
	b := bytes.Repeat([]byte{byte(i)}, n)
	binary.BigEndian.PutUint64(b, i)
	return b
}

// TestCrashChild is the child's body; it does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("only run as the child of TestCrashKill9")
	}
	mode, _ := strconv.Atoi(os.Getenv(crashModeEnv))
	// Resume numbering after what an earlier child acknowledged.
	var next uint64
	if _, err := Replay(dir, 0, func(_ Pos, rec []byte) error {
		next = binary.BigEndian.Uint64(rec) + 1
		return nil
	}, nil); err != nil {
		fmt.Println("replay:", err)
		os.Exit(2)
	}
	w, err := Open(Options{Dir: dir, Sync: SyncMode(mode), SegmentSize: 256 << 10})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex // orders numbering with appending
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				p, err := w.Append(crashRecord(i))
				mu.Unlock()
				if err != nil {
					return
				}
				if err := w.Wait(context.Background(), p); err != nil {
					return
				}
				mu.Lock()
				fmt.Fprintln(out, i)
				out.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

func TestCrashKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	for _, mode := range []SyncMode{SyncGroup, SyncEveryWrite, SyncNone} {
		t.Run(mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			acked := map[uint64]bool{}
			for round := range 3 {
				cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
				cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashModeEnv+"="+strconv.Itoa(int(mode)))
				stdout, err := cmd.StdoutPipe()
				if err != nil {
					t.Fatal(err)
				}
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				// A failing test must not leave the child running.
				t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
				lines := make(chan string)
				go func() {
					defer close(lines)
					sc := bufio.NewScanner(stdout)
					for sc.Scan() {
						lines <- sc.Text()
					}
				}()
				deadline := time.After(time.Duration(50+round*70) * time.Millisecond)
			read:
				for {
					select {
					case l, ok := <-lines:
						if !ok {
							break read
						}
						i, err := strconv.ParseUint(l, 10, 64)
						if err != nil {
							t.Fatalf("child said %q", l)
						}
						acked[i] = true
					case <-deadline:
						cmd.Process.Signal(syscall.SIGKILL)
						deadline = nil
					}
				}
			}
			if len(acked) == 0 {
				t.Fatal("the child acknowledged nothing")
			}
			seen := map[uint64]bool{}
			rep, err := Replay(dir, 0, func(_ Pos, rec []byte) error {
				i := binary.BigEndian.Uint64(rec)
				if !bytes.Equal(rec, crashRecord(i)) {
					return fmt.Errorf("record %d garbled", i)
				}
				seen[i] = true
				return nil
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := range acked {
				if !seen[i] {
					t.Fatalf("acknowledged record %d lost", i)
				}
			}
			t.Logf("%d acknowledged, %d replayed, %d segments, %d cuts", len(acked), rep.Records, rep.Segments, len(rep.Cuts))
		})
	}
}
