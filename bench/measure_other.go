//go:build !unix

package bench

import (
	"errors"
	"io/fs"
	"time"
)

// allocatedBytes falls back to the apparent size where st_blocks is unknown.
func allocatedBytes(fi fs.FileInfo) int64 { return fi.Size() }

// CPUTime is not measured on this platform.
func CPUTime() (time.Duration, error) {
	return 0, errors.New("cpu time is measured on unix systems only")
}
