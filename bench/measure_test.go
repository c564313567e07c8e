package bench

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestMeasureDisk(t *testing.T) {
	dir := t.TempDir()
	write := func(rel string, size int) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a", 10_000)
	write("sub/b", 5_000)
	write("sub/deeper/c", 1)
	write("wal/empty", 0)
	// A sparse file: 8 MiB long, one byte written at its end.
	sparse := filepath.Join(dir, "sub", "sparse")
	f, err := os.Create(sparse)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{1}, 8<<20-1); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	total, subs, err := MeasureDiskBySubdir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(10_000 + 5_000 + 1 + 8<<20); total.Apparent != want {
		t.Errorf("apparent = %d, want %d", total.Apparent, want)
	}
	if total.Files != 5 {
		t.Errorf("files = %d, want 5", total.Files)
	}
	if runtime.GOOS == "linux" {
		// Whole filesystem blocks for the dense files; far less than 8 MiB
		// for the sparse one (unless the filesystem does not do holes).
		if total.Allocated < 10_000+5_000+1 || total.Allocated >= total.Apparent {
			t.Errorf("allocated = %d, want at least the dense bytes and below the apparent %d", total.Allocated, total.Apparent)
		}
	}
	var names []string
	var sum DiskUsage
	for _, s := range subs {
		names = append(names, s.Name)
		sum.Apparent += s.Apparent
		sum.Allocated += s.Allocated
		sum.Files += s.Files
	}
	if got := strings.Join(names, " "); got != "a sub/ wal/" {
		t.Errorf("subdirectories = %q, want \"a sub/ wal/\"", got)
	}
	if sum != total {
		t.Errorf("subdirectories add up to %+v, the total is %+v", sum, total)
	}
}

func TestMeasureDiskMissing(t *testing.T) {
	if _, err := MeasureDisk(filepath.Join(t.TempDir(), "nope")); err == nil {
		t.Fatal("no error for a missing directory")
	}
}

func TestParseProcStatus(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     Memory
		wantErr  bool
	}{
		{
			name: "linux",
			in:   "Name:\tingest\nVmPeak:\t 2000 kB\nVmHWM:\t   1024 kB\nVmRSS:\t    512 kB\nThreads:\t9\n",
			want: Memory{Peak: 1 << 20, Current: 512 << 10},
		},
		{name: "no rss lines", in: "Name:\tx\n", wantErr: true},
		{name: "bad number", in: "VmHWM:\t 1x kB\nVmRSS:\t 1 kB\n", wantErr: true},
		{name: "bad unit", in: "VmHWM:\t 1 MB\nVmRSS:\t 1 kB\n", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProcStatus(strings.NewReader(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestReadMemoryAndReset(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	m, err := ReadMemory()
	if err != nil {
		t.Fatal(err)
	}
	if m.Current <= 0 || m.Peak < m.Current {
		t.Fatalf("memory = %+v, want 0 < current ≤ peak", m)
	}
	if err := ResetPeakRSS(); err != nil {
		t.Skipf("kernel cannot reset the peak: %v", err)
	}
}

func TestCPUTimeGrows(t *testing.T) {
	a, err := CPUTime()
	if err != nil {
		t.Skip(err)
	}
	x := 0
	for i := range 50_000_000 {
		x ^= i * i
	}
	_ = x
	b, err := CPUTime()
	if err != nil {
		t.Fatal(err)
	}
	if b <= a {
		t.Fatalf("cpu time went from %s to %s after a busy loop", a, b)
	}
}
