package query

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/encoding"
	"github.com/tracedb/tracedb/index"
)

// ErrInvalidQuery is wrapped by every error about a malformed query: test
// for it with errors.Is to tell a caller's mistake from a failure of the
// store.
var ErrInvalidQuery = errors.New("invalid query")

// ErrorAttribute is the attribute key that a search reads as a condition
// on the span's status, as Jaeger does: "true" asks for status code Error,
// "false" for status code Ok (a span whose status is Unset matches
// neither). The value is parsed like strconv.ParseBool; any other value is
// refused. A span attribute literally named "error" is not consulted.
const ErrorAttribute = "error"

// TraceQuery holds Jaeger's trace search parameters. A trace matches when
// one of its spans satisfies every condition that is set, all at once:
//
//   - Service: the span's resource has this service.name (a string).
//   - Operation: the span is named so (Service must be set).
//   - Attributes: for each key=value, the span, its scope, its resource or
//     one of its events has an attribute key whose value's string form
//     (index.ValueString: decimal for numbers, "true"/"false", JSON for
//     arrays and maps, base64 for bytes) is value; a key that repeats
//     matches if any of its values does. Links are not searched. The key
//     ErrorAttribute is special, see there.
//   - StartTime: the span's start time is within it.
//   - DurationMin, DurationMax: the span's duration (end minus start) is
//     within them.
//
// The zero value of a field leaves it unset.
type TraceQuery struct {
	Service    string
	Operation  string
	Attributes map[string]string
	// StartTime bounds span start times, both ends inclusive, in Unix
	// nanoseconds; End 0 means no upper bound.
	StartTime db.TimeRange
	// DurationMin and DurationMax bound span durations, inclusive; 0 means
	// no bound. Negative values are refused.
	DurationMin, DurationMax time.Duration
	// Limit is the most traces returned (Jaeger's search depth): 0 means
	// Options.DefaultLimit; above Options.MaxLimit or negative is refused.
	Limit int
	// Filter is a structured filter (Jaeger RFC 0005) that the same span
	// must also satisfy; nil means none. Build it with Compile, from
	// ParseFilter's tree or from the wire's Call.
	Filter *Filter
	// PageToken continues a search after the page that returned it (see
	// TracePage); "" starts from the first result. It is refused unless
	// the query's other conditions are those it was issued for; Limit may
	// differ from page to page.
	PageToken string
}

// TraceHit is one trace found by a search.
type TraceHit struct {
	TraceID encoding.TraceID
	// Start is the latest start time, in Unix nanoseconds, among the
	// trace's spans that match: results are ordered by it, newest first,
	// then by trace ID.
	Start uint64
}

// opSep separates the service from the span name in an operation term's
// value (see index.OperationValue).
var opSep = index.OperationValue("", "")

// spanConds is a validated TraceQuery: the conditions one span must meet.
type spanConds struct {
	service      string // "" when unset
	operation    string // span name; set only with service
	hasOperation bool
	// verifyNames asks for the service and the span name to be checked on
	// spans: the operation term's value, service NUL name, is ambiguous
	// when either holds a NUL byte.
	verifyNames bool

	startMin, startMax uint64 // inclusive

	hasDuration    bool
	durMin, durMax uint64 // inclusive

	hasStatus bool
	status    int32 // the status code the span must have

	attrs []attrCond // sorted by key

	// filter, when set, must match the span too; filterSets are the term
	// sets it implies (see filter_search.go).
	filter     *Filter
	filterSets []TermSet
	// empty says that no span can match (the filter's bounds contradict
	// the query's): the search reads nothing.
	empty bool

	limit int
}

// attrCond is one key=value condition of a search.
type attrCond struct {
	key, value string
	// indexed says whether postings hold key=value: when not, the condition
	// is verified on spans.
	indexed bool
}

// compile validates q and returns its conditions.
func (e *Engine) compile(q *TraceQuery) (*spanConds, error) {
	c := &spanConds{service: q.Service, startMin: q.StartTime.Start, startMax: q.StartTime.End}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if q.Operation != "" {
		if q.Service == "" {
			bad("operation %q given without a service", q.Operation)
		}
		c.operation, c.hasOperation = q.Operation, true
		c.verifyNames = strings.Contains(q.Service, opSep) || strings.Contains(q.Operation, opSep)
	}

	if c.startMax == 0 {
		c.startMax = math.MaxUint64
	}
	if c.startMin > c.startMax {
		bad("start time range [%d, %d] is empty: its start is after its end", c.startMin, c.startMax)
	}

	switch {
	case q.DurationMin < 0:
		bad("minimum duration %s is negative", q.DurationMin)
	case q.DurationMax < 0:
		bad("maximum duration %s is negative", q.DurationMax)
	case q.DurationMax != 0 && q.DurationMin > q.DurationMax:
		bad("minimum duration %s is above the maximum %s", q.DurationMin, q.DurationMax)
	}
	if q.DurationMin > 0 || q.DurationMax > 0 {
		c.hasDuration = true
		c.durMin, c.durMax = uint64(max(q.DurationMin, 0)), math.MaxUint64
		if q.DurationMax > 0 {
			c.durMax = uint64(q.DurationMax)
		}
	}

	switch {
	case q.Limit < 0:
		bad("limit %d is negative", q.Limit)
	case q.Limit > e.opts.MaxLimit:
		bad("limit %d is above the maximum %d", q.Limit, e.opts.MaxLimit)
	case q.Limit == 0:
		c.limit = e.opts.DefaultLimit
	default:
		c.limit = q.Limit
	}

	keys := make([]string, 0, len(q.Attributes))
	for k := range q.Attributes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := q.Attributes[k]
		if k == ErrorAttribute {
			isErr, err := strconv.ParseBool(v)
			if err != nil {
				bad("attribute %q: value %q is not true or false", k, v)
				continue
			}
			c.hasStatus, c.status = true, encoding.StatusOk
			if isErr {
				c.status = encoding.StatusError
			}
			continue
		}
		c.attrs = append(c.attrs, attrCond{key: k, value: v, indexed: index.Indexed(k, v, e.opts.MaxIndexedValueLen)})
	}

	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidQuery, errors.Join(errs...))
	}
	if q.Filter != nil {
		c.addFilter(q.Filter, e.opts.MaxIndexedValueLen)
	}
	return c, nil
}
