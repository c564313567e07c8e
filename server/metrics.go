package server

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Labels of the server's metrics.
const (
	protoGRPC = "grpc"
	protoHTTP = "http"
)

// Request-level reasons for refusing a whole request's spans, next to the
// per-span db.RejectReason values in tracedb_server_spans_rejected_total.
const (
	reasonOverloaded   = "overloaded"     // the in-flight budget was full
	reasonStorageBusy  = "storage_busy"   // the store's write did not finish within WriteTimeout
	reasonTooManySpans = "too_many_spans" // over Limits.MaxSpansPerRequest
	reasonUnavailable  = "unavailable"    // the store refused the write (closed, I/O error)
	reasonMalformed    = "malformed"      // the body did not decode (requests only)
	reasonBadTenant    = "invalid_tenant" // the tenant name is malformed (requests only)
)

// metrics are the server's own Prometheus metrics, registered on
// Options.Registerer; the store registers its own there too.
type metrics struct {
	spansReceived   *prometheus.CounterVec   // protocol
	spansAccepted   *prometheus.CounterVec   // protocol
	spansRejected   *prometheus.CounterVec   // protocol, reason
	requestsRefused *prometheus.CounterVec   // protocol, reason
	requestDuration *prometheus.HistogramVec // handler, code
	inflightBytes   prometheus.Gauge
	inflightLimit   prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, queueBytes int64) (*metrics, error) {
	m := &metrics{
		spansReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tracedb_server_spans_received_total", Help: "Spans received in decoded OTLP requests, by protocol."},
			[]string{"protocol"}),
		spansAccepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tracedb_server_spans_accepted_total", Help: "Spans stored and acknowledged, by protocol."},
			[]string{"protocol"}),
		spansRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tracedb_server_spans_rejected_total",
			Help: "Spans not stored, by protocol and reason: a span validation reason, or overloaded, storage_busy, too_many_spans, unavailable for a whole request."},
			[]string{"protocol", "reason"}),
		requestsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tracedb_server_ingest_requests_refused_total",
			Help: "OTLP requests refused as a whole, by protocol and reason (overloaded, storage_busy, too_many_spans, unavailable, malformed, invalid_tenant)."},
			[]string{"protocol", "reason"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tracedb_server_request_duration_seconds", Help: "Time to answer a request, by gRPC method or HTTP route and result code.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)},
			[]string{"handler", "code"}),
		inflightBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tracedb_server_ingest_inflight_bytes", Help: "Bytes of OTLP requests being decoded and written (the ingest queue depth)."}),
		inflightLimit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tracedb_server_ingest_inflight_limit_bytes", Help: "The in-flight budget: requests beyond it are refused with a retryable code."}),
	}
	m.inflightLimit.Set(float64(queueBytes))
	for _, c := range []prometheus.Collector{m.spansReceived, m.spansAccepted, m.spansRejected, m.requestsRefused, m.requestDuration, m.inflightBytes, m.inflightLimit} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
