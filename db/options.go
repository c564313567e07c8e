package db

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tracedb/tracedb/compaction"
	"github.com/tracedb/tracedb/db/internal/wal"
	"github.com/tracedb/tracedb/retention"
)

// SyncMode says when a write is durable enough to be acknowledged. It is
// the write-ahead log's own setting.
type SyncMode = wal.SyncMode

const (
	// SyncGroup acknowledges a write after an fsync of the write-ahead log
	// that covers it; concurrent writes share one fsync per GroupWindow.
	SyncGroup = wal.SyncGroup
	// SyncEveryWrite fsyncs before every acknowledgement (concurrent writers
	// still share an fsync that covers all of them).
	SyncEveryWrite = wal.SyncEveryWrite
	// SyncNone acknowledges once the write is in the OS page cache: it
	// survives the process being killed, not the machine losing power.
	SyncNone = wal.SyncNone
)

// Clock tells the time. Options.Clock lets tests move time by hand.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Limits bound what one span may carry. A span over a limit is rejected
// (with the reason) and its neighbours in the batch are still stored.
type Limits struct {
	// MaxAttributeValueBytes bounds one attribute value: a string's or
	// bytes' length, or an array's or map's encoded size. Default 64 KiB.
	MaxAttributeValueBytes int
	// MaxSpanBytes bounds the approximate encoded size of one span with its
	// attributes, events and links (not its resource and scope). Default 1 MiB.
	MaxSpanBytes int
	// MaxAttributes bounds the attributes of one span, event or link.
	// Default 1,024.
	MaxAttributes int
	// MaxEventsOrLinks bounds the events and the links of one span. Default 10,000.
	MaxEventsOrLinks int
}

// Options configure a store. The zero value of a field means its default.
type Options struct {
	// Logger receives the store's logs. Default: discard.
	Logger *slog.Logger
	// Registerer receives the store's metrics. Default: none registered.
	Registerer prometheus.Registerer
	// Clock tells the time for head ages and block IDs. Default: the system clock.
	Clock Clock

	// ReadOnly opens an existing store for reading only: nothing on disk
	// changes (the WAL is replayed into memory, torn tails are skipped, not
	// cut), writes, flushes, compaction and retention return ErrReadOnly,
	// and there is no background work. Badger's directory lock still
	// refuses a store another process has open for writing.
	ReadOnly bool

	// PartitionWidth is the window of span start times one partition holds.
	// It fixes the on-disk layout: it is stored at creation and a reopen
	// with a different value is refused; 0 on a reopen takes the stored
	// value. Default 1h for a new store; at least 1 minute.
	PartitionWidth time.Duration

	// Sync is when writes are acknowledged. Default SyncGroup.
	Sync SyncMode
	// GroupWindow is how long SyncGroup gathers writes before one fsync.
	// Default 2ms.
	GroupWindow time.Duration
	// WALSegmentSize is the size at which a WAL segment is rotated. Default 128 MiB.
	WALSegmentSize int64

	// MaxHeadSpans flushes the head when it holds this many spans. Default
	// 262,144: with one head filling while another is flushed, a 2-core
	// ingest of the ClickHouse-shape workload stays under 1 GiB of RSS
	// (bench/RESULTS.md); larger heads make larger, denser blocks.
	MaxHeadSpans int
	// MaxHeadBytes flushes the head when its spans' approximate size passes
	// this (rows and index entries). Default 160 MiB.
	MaxHeadBytes int64
	// MaxHeadAge flushes a non-empty head this long after its first span.
	// Default 5 minutes.
	MaxHeadAge time.Duration
	// RowGroupSpans is the number of spans per row group of a block. Default
	// 1,024. A row group is the unit a trace read decompresses, so smaller
	// groups read a trace faster, and larger ones compress a little better:
	// over 10M ClickHouse-shape spans (bench/query), 1,024 / 2,048 / 4,096
	// read a trace by ID in p50 0.09 / 0.17 / 0.64 ms (p99 0.15 / 0.70 /
	// 1.25 ms) and store 48.5 / 47.8 / 47.5 B/span; the microservice mix
	// compresses 13% worse at 1,024 than at 4,096 (encoding/rowgroup.md).
	RowGroupSpans int
	// MaxIndexedValueLen is the longest attribute value (in its string form)
	// that gets a postings entry; longer values are still stored and are
	// matched from the columns. Like PartitionWidth, it is fixed when the
	// store is created (0 on a reopen takes the stored value). Default 256.
	MaxIndexedValueLen int
	// TraceChunkSpans is the most spans GetTrace yields in one chunk.
	// Default 10,000.
	TraceChunkSpans int
	// Limits bound single spans; see Limits.
	Limits Limits

	// RowGroupCacheBytes bounds the cache of row groups that trace reads
	// keep decompressed (see rowGroupCache): a trace read again, or
	// another trace of the same row group (the newest traces, which
	// searches return first), costs no decompression. Default 64 MiB;
	// negative turns the cache off.
	RowGroupCacheBytes int64
	// BadgerBlockCacheBytes is Badger's block cache. Default 64 MiB.
	BadgerBlockCacheBytes int64
	// BadgerMemTableBytes is Badger's memtable size. Default 16 MiB: the
	// LSM tree holds only keys and small values (row groups and postings
	// over 4 KiB go to the value log), and three memtables of 64 MiB cost
	// about 100 MiB more peak RSS while ingesting (bench/RESULTS.md).
	BadgerMemTableBytes int64
	// BadgerValueLogFileBytes is the size of Badger's value-log files,
	// where row groups and postings live. Space is given back a file at a
	// time (after retention, the value-log GC rewrites a file's live
	// values and deletes it), so smaller files return disk sooner. Default
	// 64 MiB.
	BadgerValueLogFileBytes int64

	// Compaction tunes the compaction planner (PartitionWidth is taken
	// from the store's); see compaction.Options.
	Compaction compaction.Options
	// CompactionInterval is how often the background loop compacts.
	// Default 1 minute; negative turns background compaction off (Compact
	// still works).
	CompactionInterval time.Duration

	// Retention says what the store drops: partitions past a TTL (per
	// tenant if need be), the oldest partitions over a disk budget. The
	// zero value keeps everything. See retention.Policy.
	Retention retention.Policy
	// RetentionInterval is how often the background loop applies
	// Retention. Default 1 minute.
	RetentionInterval time.Duration
}

// Defaults.
const (
	DefaultPartitionWidth        = time.Hour
	MinPartitionWidth            = time.Minute
	DefaultGroupWindow           = 2 * time.Millisecond
	DefaultWALSegmentSize        = 128 << 20
	DefaultMaxHeadSpans          = 1 << 18
	DefaultMaxHeadBytes          = 160 << 20
	DefaultMaxHeadAge            = 5 * time.Minute
	DefaultRowGroupSpans         = 1024
	DefaultMaxIndexedValueLen    = 256
	DefaultTraceChunkSpans       = 10_000
	DefaultMaxAttributeValue     = 64 << 10
	DefaultMaxSpanBytes          = 1 << 20
	DefaultMaxAttributes         = 1024
	DefaultMaxEventsOrLinks      = 10_000
	DefaultBadgerBlockCacheBytes = 64 << 20
	DefaultRowGroupCacheBytes    = 64 << 20
	DefaultBadgerMemTableBytes   = 16 << 20
	DefaultBadgerValueLogBytes   = 64 << 20
	DefaultRetentionInterval     = time.Minute
	DefaultCompactionInterval    = time.Minute
)

// DefaultOptions returns Options with every default filled in.
func DefaultOptions() Options {
	var o Options
	o.fillDefaults()
	return o
}

func (o *Options) fillDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = systemClock{}
	}
	setDefault(&o.PartitionWidth, DefaultPartitionWidth)
	setDefault(&o.GroupWindow, DefaultGroupWindow)
	setDefault(&o.WALSegmentSize, DefaultWALSegmentSize)
	setDefault(&o.MaxHeadSpans, DefaultMaxHeadSpans)
	setDefault(&o.MaxHeadBytes, DefaultMaxHeadBytes)
	setDefault(&o.MaxHeadAge, DefaultMaxHeadAge)
	setDefault(&o.RowGroupSpans, DefaultRowGroupSpans)
	setDefault(&o.MaxIndexedValueLen, DefaultMaxIndexedValueLen)
	setDefault(&o.TraceChunkSpans, DefaultTraceChunkSpans)
	setDefault(&o.Limits.MaxAttributeValueBytes, DefaultMaxAttributeValue)
	setDefault(&o.Limits.MaxSpanBytes, DefaultMaxSpanBytes)
	setDefault(&o.Limits.MaxAttributes, DefaultMaxAttributes)
	setDefault(&o.Limits.MaxEventsOrLinks, DefaultMaxEventsOrLinks)
	setDefault(&o.BadgerBlockCacheBytes, DefaultBadgerBlockCacheBytes)
	setDefault(&o.RowGroupCacheBytes, DefaultRowGroupCacheBytes)
	setDefault(&o.BadgerMemTableBytes, DefaultBadgerMemTableBytes)
	setDefault(&o.BadgerValueLogFileBytes, DefaultBadgerValueLogBytes)
	setDefault(&o.RetentionInterval, DefaultRetentionInterval)
	setDefault(&o.CompactionInterval, DefaultCompactionInterval)
}

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// Validate reports the first option that is out of range, after defaults
// are filled in.
func (o Options) Validate() error {
	o.fillDefaults()
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(o.PartitionWidth >= MinPartitionWidth, "PartitionWidth %s is below the minimum %s", o.PartitionWidth, MinPartitionWidth)
	check(o.PartitionWidth%time.Second == 0, "PartitionWidth %s is not a whole number of seconds", o.PartitionWidth)
	check(o.Sync >= SyncGroup && o.Sync <= SyncNone, "Sync %s is not a known mode", o.Sync)
	check(o.GroupWindow > 0 && o.GroupWindow <= time.Second, "GroupWindow %s is not in (0, 1s]", o.GroupWindow)
	check(o.WALSegmentSize >= 1<<20, "WALSegmentSize %d is below 1 MiB", o.WALSegmentSize)
	check(o.MaxHeadSpans > 0, "MaxHeadSpans %d must be positive", o.MaxHeadSpans)
	check(o.MaxHeadBytes >= 1<<20, "MaxHeadBytes %d is below 1 MiB", o.MaxHeadBytes)
	check(o.MaxHeadAge >= time.Second, "MaxHeadAge %s is below 1s", o.MaxHeadAge)
	check(o.RowGroupSpans >= 16 && o.RowGroupSpans <= 1<<20, "RowGroupSpans %d is not in [16, 1Mi]", o.RowGroupSpans)
	check(o.MaxIndexedValueLen > 0 && o.MaxIndexedValueLen <= 1<<16, "MaxIndexedValueLen %d is not in [1, 64Ki]", o.MaxIndexedValueLen)
	check(o.TraceChunkSpans > 0, "TraceChunkSpans %d must be positive", o.TraceChunkSpans)
	check(o.Limits.MaxAttributeValueBytes > 0, "Limits.MaxAttributeValueBytes must be positive")
	check(o.Limits.MaxSpanBytes > 0, "Limits.MaxSpanBytes must be positive")
	check(o.Limits.MaxAttributes > 0, "Limits.MaxAttributes must be positive")
	check(o.Limits.MaxEventsOrLinks > 0, "Limits.MaxEventsOrLinks must be positive")
	check(o.BadgerMemTableBytes >= 1<<20, "BadgerMemTableBytes %d is below 1 MiB", o.BadgerMemTableBytes)
	check(o.BadgerBlockCacheBytes >= 0, "BadgerBlockCacheBytes %d is negative", o.BadgerBlockCacheBytes)
	check(o.BadgerValueLogFileBytes >= 1<<20 && o.BadgerValueLogFileBytes < 2<<30, "BadgerValueLogFileBytes %d is not in [1 MiB, 2 GiB)", o.BadgerValueLogFileBytes)
	check(o.RetentionInterval > 0, "RetentionInterval %s must be positive", o.RetentionInterval)
	if err := o.Retention.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid options: %w", errors.Join(errs...))
	}
	return nil
}
