//go:build linux

package wal

import (
	"fmt"
	"io"
	"os"
	"syscall"
	"unsafe"
)

// fdatasync flushes f's data, and the metadata needed to read it back (its
// size), to stable storage. It goes through SyscallConn so that a concurrent
// Close of f cannot let the descriptor be reused under it: after Close it
// returns an error wrapping os.ErrClosed.
func fdatasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = syscall.Fdatasync(int(fd))
			if serr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return closedErr(f, "fdatasync", err)
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}

// closedErr maps the error of a RawConn call, which for a regular file can
// only mean that the file was closed, to one wrapping os.ErrClosed, as the
// os.File methods report it.
func closedErr(f *os.File, op string, err error) error {
	return &os.PathError{Op: op, Path: f.Name(), Err: fmt.Errorf("%w (%v)", os.ErrClosed, err)}
}

// writeFrame writes hdr then payload at f's current offset with one
// writev(2), so the payload is copied once, by the kernel. A short write is
// continued; an error leaves an unknown prefix of the frame written.
func writeFrame(f *os.File, hdr, payload []byte) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	bufs := [2][]byte{hdr, payload}
	var werr error
	if err := rc.Write(func(fd uintptr) bool {
		werr = writevAll(fd, bufs[:])
		return true
	}); err != nil {
		return closedErr(f, "writev", err)
	}
	if werr != nil {
		return &os.PathError{Op: "writev", Path: f.Name(), Err: werr}
	}
	return nil
}

// writevAll writes every byte of bufs to fd, retrying short writes and EINTR.
func writevAll(fd uintptr, bufs [][]byte) error {
	var iov [2]syscall.Iovec
	for {
		n := 0
		for _, b := range bufs {
			if len(b) == 0 {
				continue
			}
			iov[n].Base = &b[0]
			iov[n].SetLen(len(b))
			n++
		}
		if n == 0 {
			return nil
		}
		r, _, errno := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(n))
		if errno == syscall.EINTR {
			continue
		}
		if errno != 0 {
			return errno
		}
		if r == 0 {
			return io.ErrShortWrite
		}
		written := int(r)
		for i := range bufs {
			k := min(written, len(bufs[i]))
			bufs[i] = bufs[i][k:]
			written -= k
		}
	}
}
