//go:build unix

package db

import (
	"os"
	"syscall"
)

// lockDir takes the exclusive, non-blocking flock of directory dir that
// Badger takes when it opens a store there; ok is false when another
// process (or another open in this one) holds it.
func lockDir(dir string) (unlock func(), ok bool) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, true
}
