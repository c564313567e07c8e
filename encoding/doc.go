// Package encoding holds tracedb's on-disk formats and the types they are
// made of: typed IDs, the in-memory span row model, the bounds-checked
// byte reader every decoder goes through, the columnar row-group format of a
// block, and the Badger key layout.
//
// Each format is described in a markdown file beside its code
// (rowgroup.md, keys.md). Decoders never panic on bad bytes: they return an
// error for which errors.Is(err, ErrCorrupt) holds.
//
// encoding imports nothing else of tracedb.
package encoding
