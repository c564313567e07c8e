package encoding

import (
	"errors"
	"fmt"
)

// ErrCorrupt is the sentinel every decoder in tracedb wraps when the bytes it
// reads are not a valid encoding: a bad magic, a checksum mismatch, a length
// past the end, a value out of range. Callers test for it with
// errors.Is(err, encoding.ErrCorrupt).
var ErrCorrupt = errors.New("corrupt data")

// CorruptionError says what was found corrupt and where. It unwraps to
// ErrCorrupt.
type CorruptionError struct {
	What   string // the structure being decoded, e.g. "row group", "wal record"
	Offset int    // byte offset within that structure, -1 when unknown
	Reason string
}

func (e *CorruptionError) Error() string {
	if e.Offset >= 0 {
		return fmt.Sprintf("%s: corrupt at offset %d: %s", e.What, e.Offset, e.Reason)
	}
	return fmt.Sprintf("%s: corrupt: %s", e.What, e.Reason)
}

// Unwrap makes errors.Is(err, ErrCorrupt) hold.
func (e *CorruptionError) Unwrap() error { return ErrCorrupt }

// Corruptf returns a *CorruptionError for what with a formatted reason.
func Corruptf(what string, offset int, format string, args ...any) error {
	return &CorruptionError{What: what, Offset: offset, Reason: fmt.Sprintf(format, args...)}
}
