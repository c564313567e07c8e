//go:build !linux

package wal

import "os"

// fdatasync flushes f to stable storage (os.File.Sync: fsync, or
// F_FULLFSYNC on darwin). After a Close of f it returns os.ErrClosed.
func fdatasync(f *os.File) error { return f.Sync() }

// writeFrame writes hdr then payload at f's current offset: two writes,
// the payload not copied. An error leaves an unknown prefix of the frame
// written.
func writeFrame(f *os.File, hdr, payload []byte) error {
	if _, err := f.Write(hdr); err != nil {
		return err
	}
	if len(payload) == 0 {
		return nil
	}
	_, err := f.Write(payload)
	return err
}
