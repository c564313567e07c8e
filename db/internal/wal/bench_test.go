package wal

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkAppend measures Append followed by Wait, the work of one
// acknowledged write, for each sync mode, record size and number of
// concurrent writers. MB/s counts record payload bytes.
//
//	go test -run '^$' -bench BenchmarkAppend -benchmem -benchtime 2s ./db/internal/wal/
func BenchmarkAppend(b *testing.B) {
	for _, mode := range []SyncMode{SyncNone, SyncGroup, SyncEveryWrite} {
		for _, size := range []int{1 << 10, 256 << 10} {
			for _, writers := range []int{1, 8} {
				name := fmt.Sprintf("%s/%dKiB/writers=%d", mode, size>>10, writers)
				b.Run(name, func(b *testing.B) { benchAppend(b, mode, size, writers) })
			}
		}
	}
}

func benchAppend(b *testing.B, mode SyncMode, size, writers int) {
	var syncs atomic.Int64
	w, err := Open(Options{Dir: b.TempDir(), Sync: mode, SegmentSize: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	rec := make([]byte, size)
	for i := range rec {
		rec[i] = byte(i * 31)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			ctx := context.Background()
			for next.Add(1) <= int64(b.N) {
				p, err := w.Append(rec)
				if err != nil {
					b.Error(err)
					return
				}
				if err := w.Wait(ctx, p); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	syncs.Store(int64(w.Stats().Syncs))
	b.ReportMetric(float64(syncs.Load())/float64(b.N), "fsyncs/op")
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkWriteFrame compares ways of putting a framed record into the page
// cache: the writev Append uses, a copy of header and payload into one
// reused buffer written at once, and two writes.
//
//	go test -run '^$' -bench BenchmarkWriteFrame -benchmem ./db/internal/wal/
func BenchmarkWriteFrame(b *testing.B) {
	for _, size := range []int{1 << 10, 256 << 10} {
		payload := make([]byte, size)
		var hdr [RecordHeaderSize]byte
		putRecordHeader(hdr[:], payload)
		ways := []struct {
			name  string
			write func(f *os.File, buf *[]byte) error
		}{
			{"writev", func(f *os.File, _ *[]byte) error { return writeFrame(f, hdr[:], payload) }},
			{"copy", func(f *os.File, buf *[]byte) error {
				*buf = append(append((*buf)[:0], hdr[:]...), payload...)
				_, err := f.Write(*buf)
				return err
			}},
			{"two-writes", func(f *os.File, _ *[]byte) error {
				if _, err := f.Write(hdr[:]); err != nil {
					return err
				}
				_, err := f.Write(payload)
				return err
			}},
		}
		for _, way := range ways {
			b.Run(fmt.Sprintf("%dKiB/%s", size>>10, way.name), func(b *testing.B) {
				f, err := os.Create(filepath.Join(b.TempDir(), "frames"))
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				var buf []byte
				b.SetBytes(int64(size))
				b.ReportAllocs()
				written := 0
				for b.Loop() {
					if err := way.write(f, &buf); err != nil {
						b.Fatal(err)
					}
					// Keep the file small so the page cache, not writeback,
					// is measured.
					if written += size; written > 64<<20 {
						f.Truncate(0)
						f.Seek(0, 0)
						written = 0
					}
				}
			})
		}
	}
}
