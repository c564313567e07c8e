package db

import "errors"

// Errors returned by the store. Corruption is reported with errors that
// wrap encoding.ErrCorrupt.
var (
	// ErrClosed is returned by calls on a closed store.
	ErrClosed = errors.New("tracedb: store is closed")
	// ErrInvalidTenant is wrapped by errors about a malformed tenant name.
	ErrInvalidTenant = errors.New("invalid tenant")
	// ErrReadOnly is returned by calls that would change a store opened
	// with Options.ReadOnly.
	ErrReadOnly = errors.New("tracedb: store is open read-only")
	// ErrNotAStore is wrapped when a read-only open finds no store.
	ErrNotAStore = errors.New("not a tracedb store")
	// ErrFormatMismatch is wrapped when a format-fixing option differs from
	// the one the store was created with.
	ErrFormatMismatch = errors.New("option differs from the store's format")
)
