package db

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the store's own Prometheus metrics. They are registered on
// Options.Registerer when one is given; nothing is global.
type metrics struct {
	spansReceived prometheus.Counter
	spansAccepted prometheus.Counter
	spansRejected *prometheus.CounterVec
	walWait       prometheus.Histogram
	walFsync      prometheus.Histogram
	headSpans     prometheus.Gauge
	flushes       *prometheus.CounterVec
	flushDuration prometheus.Histogram
	flushedBytes  prometheus.Counter
	blocks        prometheus.Gauge
	walReplayCuts prometheus.Counter

	compactions        *prometheus.CounterVec
	compactionDuration prometheus.Histogram

	retentionDrops   *prometheus.CounterVec
	retentionReclaim prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		spansReceived: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tracedb_spans_received_total", Help: "Spans offered to Write."}),
		spansAccepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tracedb_spans_accepted_total", Help: "Spans stored and acknowledged."}),
		spansRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tracedb_spans_rejected_total", Help: "Spans rejected by validation, by reason."}, []string{"reason"}),
		walWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tracedb_wal_durable_wait_seconds", Help: "Time a write waited for its WAL record to be durable.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		walFsync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tracedb_wal_fsync_seconds", Help: "Duration of WAL fsyncs.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		headSpans: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tracedb_head_spans", Help: "Spans in the in-memory heads, frozen ones included."}),
		flushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tracedb_flushes_total", Help: "Head flushes, by result."}, []string{"result"}),
		flushDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tracedb_flush_duration_seconds", Help: "Time to write a cut head as blocks.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)}),
		flushedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tracedb_flushed_bytes_total", Help: "Encoded bytes of row groups and postings written by flushes."}),
		blocks: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tracedb_blocks", Help: "Disk blocks, all tenants."}),
		walReplayCuts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tracedb_wal_replay_cuts_total", Help: "Torn or corrupt WAL records cut during replay."}),
		compactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tracedb_compactions_total", Help: "Block groups merged by compaction, by result."}, []string{"result"}),
		compactionDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tracedb_compaction_duration_seconds", Help: "Duration of compaction passes that merged blocks.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 16)}),
		retentionDrops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tracedb_retention_partitions_dropped_total", Help: "Partitions dropped by retention, by reason."}, []string{"reason"}),
		retentionReclaim: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tracedb_retention_reclaim_seconds", Help: "Time to delete dropped blocks and run the value-log GC.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)}),
	}
	if reg != nil {
		reg.MustRegister(m.spansReceived, m.spansAccepted, m.spansRejected, m.walWait, m.walFsync, m.headSpans,
			m.flushes, m.flushDuration, m.flushedBytes, m.blocks, m.walReplayCuts, m.retentionDrops, m.retentionReclaim,
			m.compactions, m.compactionDuration)
	}
	return m
}

// registerSizeMetrics registers the gauges read at scrape time: the bytes
// the blocks hold, Badger's LSM tree and value log on disk, and the disk
// budget (0 when none) for alerting on it.
func (db *DB) registerSizeMetrics(reg prometheus.Registerer) error {
	blockBytes := func() float64 {
		var n uint64
		for _, p := range db.Partitions() {
			n += p.Bytes
		}
		return float64(n)
	}
	badgerSize := func(vlog bool) func() float64 {
		return func() float64 {
			db.mu.Lock()
			defer db.mu.Unlock()
			if db.mu.closed || db.bdb == nil {
				return 0
			}
			lsm, v := db.bdb.Size()
			if vlog {
				return float64(v)
			}
			return float64(lsm)
		}
	}
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tracedb_block_bytes",
			Help: "Encoded bytes of the blocks (row groups, postings, histograms), all tenants."}, blockBytes),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tracedb_badger_lsm_bytes",
			Help: "Bytes of Badger's LSM tree files on disk."}, badgerSize(false)),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tracedb_badger_vlog_bytes",
			Help: "Bytes of Badger's value-log files on disk."}, badgerSize(true)),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tracedb_retention_disk_budget_bytes",
			Help: "The retention disk budget; 0 when there is none."},
			func() float64 { return float64(db.opts.Retention.DiskBudget) }),
	} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register metrics: %w", err)
		}
	}
	return nil
}
