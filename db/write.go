package db

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/tracedb/tracedb/encoding"
)

// WriteResult says what a Write stored: how many spans were accepted, and
// for each rejected span, which one and why (OTLP partial success).
type WriteResult struct {
	Accepted int
	Rejected []Rejection
}

// Write stores the spans of td for the context's tenant. Spans that fail
// validation are rejected one by one, never their neighbours. When Write
// returns a nil error, the accepted spans are durable per Options.Sync and
// visible to every read. A non-nil error means nothing of td is
// acknowledged (some spans may still become visible).
//
// Write does not keep td; the caller may reuse it after Write returns.
func (db *DB) Write(ctx context.Context, td ptrace.Traces) (WriteResult, error) {
	return db.write(ctx, td, nil)
}

// WriteEncoded is Write for spans the caller decoded from their OTLP
// protobuf encoding: wire must be the bytes td was decoded from, an
// ExportTraceServiceRequest or a TracesData (the same wire format). When
// every span is accepted, the WAL logs wire as it is instead of encoding
// td again; replay decodes it the same way. A receiver that holds the
// request's bytes (tracedb serve) saves the encoding.
//
// WriteEncoded does not keep td or wire.
func (db *DB) WriteEncoded(ctx context.Context, td ptrace.Traces, wire []byte) (WriteResult, error) {
	return db.write(ctx, td, wire)
}

func (db *DB) write(ctx context.Context, td ptrace.Traces, wire []byte) (WriteResult, error) {
	var res WriteResult
	tenant, err := tenantOf(ctx)
	if err != nil {
		return res, err
	}
	if err := db.enter(); err != nil {
		return res, err
	}
	defer db.inflight.Done()
	spans, refs := encoding.FromTraces(nil, nil, td)
	db.metrics.spansReceived.Add(float64(len(spans)))
	accepted := spans[:0]
	for i, s := range spans {
		reason, detail := validateSpan(s, &db.opts.Limits)
		if reason != "" {
			res.Rejected = append(res.Rejected, Rejection{Ref: refs[i], TraceID: s.TraceID, SpanID: s.SpanID, Reason: reason, Detail: detail})
			db.metrics.spansRejected.WithLabelValues(string(reason)).Inc()
			continue
		}
		accepted = append(accepted, s)
	}
	if len(accepted) == 0 {
		return res, nil
	}
	var rec []byte
	switch {
	case len(res.Rejected) > 0:
		rec, err = encodeWALRecord(nil, tenant, encoding.ToTraces(accepted))
	case wire != nil:
		rec = walRecordOfWire(nil, tenant, wire)
	default:
		rec, err = encodeWALRecord(nil, tenant, td)
	}
	if err != nil {
		return res, fmt.Errorf("write: encode wal record: %w", err)
	}
	t := db.tenant(tenant)
	if err := db.waitForRoom(ctx, t); err != nil {
		return res, err
	}
	// Extract and hash the spans' terms before queueing for the head's
	// lock, in parallel with the other writers.
	h := t.liveHead(db)
	terms := h.prepareTerms(accepted)

	db.cutMu.RLock()
	pos, err := db.wal.Append(rec)
	if err == nil {
		t.liveHead(db).appendPrepared(accepted, terms)
	}
	db.cutMu.RUnlock()
	h.releaseTerms(terms)
	if err != nil {
		return res, fmt.Errorf("write: %w", err)
	}
	start := time.Now()
	if err := db.wal.Wait(ctx, pos); err != nil {
		return res, fmt.Errorf("write: wait for wal: %w", err)
	}
	db.metrics.walWait.Observe(time.Since(start).Seconds())
	db.metrics.spansAccepted.Add(float64(len(accepted)))
	db.metrics.headSpans.Add(float64(len(accepted)))
	res.Accepted = len(accepted)
	if db.headFull(t) {
		// Only this tenant's head grew; the loop checks ages and the
		// other tenants every second.
		db.requestFlush()
	}
	return res, nil
}

// waitForRoom blocks while the tenant's live head is full and a flush is
// running, so that memory stays bounded (one live and one frozen head) when
// writes outpace flushes: backpressure instead of an ever-growing head.
func (db *DB) waitForRoom(ctx context.Context, t *tenantDB) error {
	over := func() bool { return db.headFull(t) }
	if !over() {
		return nil
	}
	db.requestFlush()
	db.flushCond.L.Lock()
	defer db.flushCond.L.Unlock()
	for db.flushing && over() {
		if err := ctx.Err(); err != nil {
			return err
		}
		db.flushCond.Wait()
	}
	return nil
}

// headFull reports whether t's live head has reached its span or byte limit.
func (db *DB) headFull(t *tenantDB) bool {
	n, b := t.liveHead(db).stats()
	return n >= db.opts.MaxHeadSpans || b >= db.opts.MaxHeadBytes
}

// requestFlush wakes the background loop without waiting for it.
func (db *DB) requestFlush() {
	select {
	case db.flushReq <- struct{}{}:
	default:
	}
}
