package query

import (
	"context"
	"errors"
	"iter"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/index"
)

var errInjected = errors.New("injected failure")

// failingReader is a reader whose chosen method fails.
type failingReader struct {
	BlockReader
	fail string // "postings", "values" or "spans"
}

func (r failingReader) Postings(t index.Term) (index.Postings, error) {
	if r.fail == "postings" {
		return nil, errInjected
	}
	return r.BlockReader.Postings(t)
}

func (r failingReader) TermKinds(t index.Term) (uint8, bool, error) {
	if r.fail == "postings" {
		return 0, false, errInjected // the kinds are index data too
	}
	return r.BlockReader.TermKinds(t)
}

func (r failingReader) DurationHistogram(t index.Term) ([]index.BucketCount, bool, error) {
	if r.fail == "postings" {
		return nil, false, errInjected
	}
	return r.BlockReader.DurationHistogram(t)
}

func (r failingReader) Values(name string) ([]string, error) {
	if r.fail == "values" {
		return nil, errInjected
	}
	return r.BlockReader.Values(name)
}

func (r failingReader) Spans(ctx context.Context, ords index.Postings, fn func(uint32, *encoding.Span) error) error {
	if r.fail == "spans" {
		return errInjected
	}
	return r.BlockReader.Spans(ctx, ords, fn)
}

func (r failingReader) SpanTimes(ctx context.Context, ords index.Postings, fn func(uint32, encoding.TraceID, uint64, uint64) error) error {
	if r.fail == "spans" {
		return errInjected
	}
	return r.BlockReader.SpanTimes(ctx, ords, fn)
}

// wrapStore hands out the readers of a store through wrap and counts
// releases.
type wrapStore struct {
	inner    Store
	wrap     func(BlockReader) BlockReader
	readers  int
	released int
}

func (s *wrapStore) Readers(ctx context.Context) ([]BlockReader, func(), error) {
	rs, release, err := s.inner.Readers(ctx)
	if err != nil {
		return nil, nil, err
	}
	s.readers++
	for i := range rs {
		rs[i] = s.wrap(rs[i])
	}
	return rs, func() { s.released++; release() }, nil
}

func (s *wrapStore) GetTrace(ctx context.Context, id encoding.TraceID, r db.TimeRange) iter.Seq2[ptrace.Traces, error] {
	return s.inner.GetTrace(ctx, id, r)
}

// TestReaderErrors checks that a failing reader fails the query with an
// error that names the reader and wraps the cause, and that the readers
// are released.
func TestReaderErrors(t *testing.T) {
	api := testResource("api")
	d, _ := openWith(t, 1, testSpan(1, 1, api, "GET", 0, 10), testSpan(2, 1, api, "GET", 5, 10))
	for _, fail := range []string{"postings", "values", "spans"} {
		s := &wrapStore{inner: dbStore{d}, wrap: func(r BlockReader) BlockReader { return failingReader{r, fail} }}
		e, err := NewEngineWithStore(s, Options{})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		calls := []struct {
			name string
			run  func() error
		}{
			{"find", func() error {
				_, err := e.FindTraceIDs(ctx, TraceQuery{Service: "api", DurationMin: 1})
				if err == nil {
					// A duration alone: the buckets' values are read.
					_, err = e.FindTraceIDs(ctx, TraceQuery{DurationMin: 1})
				}
				return err
			}},
			{"services", func() error { _, err := e.GetServices(ctx, db.TimeRange{}); return err }},
			{"operations", func() error { _, err := e.GetOperations(ctx, OperationQuery{Service: "api"}); return err }},
		}
		for _, c := range calls {
			err := c.run()
			wantFail := fail == "values" || (fail == "postings" && c.name != "services") || (fail == "spans" && c.name == "find")
			if !wantFail {
				if err != nil {
					t.Errorf("%s with failing %s: %v", c.name, fail, err)
				}
				continue
			}
			if !errors.Is(err, errInjected) || !strings.Contains(err.Error(), "block ") && !strings.Contains(err.Error(), "head") {
				t.Errorf("%s with failing %s: got %v, want the injected error with the reader's name", c.name, fail, err)
			}
		}
		if s.released != s.readers {
			t.Errorf("failing %s: %d views taken, %d released", fail, s.readers, s.released)
		}
	}
}
