// Package index holds tracedb's span indexes: postings (sorted span
// ordinals behind the Postings iterator, with Intersect, Merge and Without),
// the terms a span is indexed under, duration buckets, the in-memory
// postings of the head (MemPostings), the block postings format
// (PostingsWriter, PostingsReader) and the per-block trace-ID bloom filter.
//
// Formats are described beside the code: terms.md (term names and values,
// duration buckets), blockpostings.md, bloom.md. Decoders never panic on
// bad bytes; their errors wrap encoding.ErrCorrupt.
//
// index imports encoding and nothing else of tracedb.
package index
