package db

import (
	"context"
	"fmt"
	"slices"

	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/index"
)

// scanProgressStep is how many spans ScanSpans looks at between two calls
// of its progress function.
const scanProgressStep = 1024

// ScanSpans calls fn with every span of the context's tenant whose start
// is in tr (both ends inclusive; End 0 is no upper bound; the zero range
// is everything), and returns how many it passed. It reads one snapshot,
// reader by reader (heads and blocks) in order of their earliest start,
// each reader's spans in their stored order, so memory stays bounded
// whatever the store's size. Exact duplicates stored twice are passed
// twice: this is a dump of what is stored, not a query. tracedb export
// writes its output from it, locally and through the server's analytics
// API.
//
// progress, when not nil, is called with the number of spans looked at so
// far (passed or skipped) and the snapshot's total: first with 0 before
// any span is read, then every few thousand spans and after each reader. ScanSpans stops at fn's first error, or
// when ctx ends, and returns that error.
func (db *DB) ScanSpans(ctx context.Context, tr TimeRange, fn func(s *encoding.Span) error, progress func(done, total uint64)) (uint64, error) {
	snap, err := db.Snapshot(ctx)
	if err != nil {
		return 0, err
	}
	defer snap.Release()
	end := tr.End
	if end == 0 {
		end = ^uint64(0)
	}
	readers := slices.Clone(snap.Readers)
	slices.SortStableFunc(readers, func(a, b BlockReader) int {
		ai, bi := a.Info(), b.Info()
		switch {
		case ai.MinStart < bi.MinStart:
			return -1
		case ai.MinStart > bi.MinStart:
			return 1
		}
		return 0
	})
	var total, done, passed uint64
	for _, r := range readers {
		total += r.Info().Spans
	}
	report := func() {
		if progress != nil {
			progress(done, total)
		}
	}
	report()
	for _, r := range readers {
		if err := ctx.Err(); err != nil {
			return passed, err
		}
		info := r.Info()
		if info.Spans == 0 || info.MaxStart < tr.Start || info.MinStart > end {
			done += info.Spans
			report()
			continue
		}
		ords := index.NewRangePostings(0, uint32(min(info.Spans, 1<<32-1)))
		err := r.Spans(ctx, ords, func(_ uint32, s *encoding.Span) error {
			if done++; done%scanProgressStep == 0 {
				report()
			}
			if s.StartUnixNano < tr.Start || s.StartUnixNano > end {
				return nil
			}
			passed++
			return fn(s)
		})
		if err != nil {
			return passed, fmt.Errorf("scan spans: %s: %w", scanLabel(info), err)
		}
		report()
	}
	return passed, nil
}

func scanLabel(info BlockInfo) string {
	if info.Head {
		return "head"
	}
	return "block " + info.ID.String()
}
