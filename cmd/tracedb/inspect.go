package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/query"
	"github.com/tracedb/tracedb/server"
)

// This file holds what the commands that work on a local data directory
// share: the store flags, opening the store, and parsing times, tags and
// filters. The commands are in inspect_*.go; main.go adds them with
// root.AddCommand(inspectCmds()...).

// defaultInspectDataDir is the data directory the inspecting commands read
// when --data-dir is not given: the one tracedb serve writes by default.
const defaultInspectDataDir = server.DefaultDataDir

// defaultTermWidth is the width of drawn output when neither --width nor
// $COLUMNS says otherwise.
const defaultTermWidth = 120

// inspectCmds returns the commands that read or fill a data directory.
func inspectCmds() []*cobra.Command {
	return []*cobra.Command{
		traceCmd(), searchCmd(), servicesCmd(), operationsCmd(), depsCmd(),
		histogramCmd(), rateCmd(), statsCmd(), exportCmd(), importCmd(),
	}
}

// storeFlags are the flags of every command that opens a data directory.
type storeFlags struct {
	dataDir string
	tenant  string
	remote  remoteFlags // --server and its flags (remote.go)
}

func (f *storeFlags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&f.dataDir, "data-dir", defaultInspectDataDir, "data directory of the store")
	fs.StringVar(&f.tenant, "tenant", db.DefaultTenant, "tenant to read or write (with --server, sent as the x-tenant header)")
	f.remote.bind(fs)
}

// errStoreInUse is returned when another process holds the store open.
var errStoreInUse = errors.New("in use by another process (a running tracedb serve?)")

// badgerLockMessage is how Badger says its directory lock is held; Badger
// formats the cause with %+v, so the text is all there is to test.
const badgerLockMessage = "Another process is using this Badger database"

// open opens the store in f.dataDir and returns a context for f.tenant.
// A directory that does not exist is refused unless create is set, so
// that a mistyped path does not read an empty new store; without create
// the store is opened read-only and nothing on disk changes.
func (f *storeFlags) open(ctx context.Context, create bool) (*db.DB, context.Context, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if f.remote.set() {
		return nil, nil, errNoServerMode
	}
	if err := db.ValidateTenant(f.tenant); err != nil {
		return nil, nil, fmt.Errorf("--tenant: %w", err)
	}
	if !create {
		if _, err := os.Stat(f.dataDir); errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("no store in %s (give --data-dir, or fill one with tracedb import or tracedb demo)", f.dataDir)
		}
	}
	store, err := db.Open(f.dataDir, db.Options{Logger: slog.New(slog.DiscardHandler), ReadOnly: !create})
	if err != nil {
		if strings.Contains(err.Error(), badgerLockMessage) {
			return nil, nil, fmt.Errorf("the store in %s is %w", f.dataDir, errStoreInUse)
		}
		return nil, nil, err
	}
	return store, db.WithTenant(ctx, f.tenant), nil
}

// withStore opens the store, calls fn, and closes the store, reporting a
// failure to close.
func (f *storeFlags) withStore(ctx context.Context, create bool, fn func(ctx context.Context, store *db.DB) error) (err error) {
	store, ctx, err := f.open(ctx, create)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := store.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close store: %w", cerr))
		}
	}()
	return fn(ctx, store)
}

// oneLine makes err's message a single line (errors.Join puts a newline
// between errors), as the CLI prints errors.
func oneLine(err error) error {
	if err == nil || !strings.Contains(err.Error(), "\n") {
		return err
	}
	return &flatError{err}
}

type flatError struct{ err error }

func (e *flatError) Error() string { return strings.ReplaceAll(e.err.Error(), "\n", "; ") }
func (e *flatError) Unwrap() error { return e.err }

// runE wraps a command body so that its error prints on one line.
func runE(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error { return oneLine(fn(cmd, args)) }
}

// engine returns a query engine over store.
func engine(store *db.DB) (*query.Engine, error) {
	return query.NewEngine(store, query.Options{})
}

// timeFlag is a time given as RFC 3339 ("2024-05-01T12:00:00Z"), as
// "now", or as a duration before now ("1h", "90m", "2d"). It stays unset
// when not given.
type timeFlag struct {
	text string
}

func (t *timeFlag) String() string     { return t.text }
func (t *timeFlag) Set(s string) error { _, err := parseTime(s, time.Now()); t.text = s; return err }
func (t *timeFlag) Type() string       { return "time" }
func (t *timeFlag) set() bool          { return t.text != "" }

// at returns the time, relative ones counted back from now.
func (t *timeFlag) at(now time.Time) time.Time {
	v, _ := parseTime(t.text, now) // Set checked it
	return v
}

// parseTime parses a timeFlag's text.
func parseTime(s string, now time.Time) (time.Time, error) {
	if s == "now" {
		return now, nil
	}
	if v, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return v, nil
	}
	d, err := parseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%q is neither RFC 3339 (2024-05-01T12:00:00Z), now, nor a duration before now (1h, 30m, 2d)", s)
	}
	return now.Add(-d), nil
}

// parseDuration is time.ParseDuration that also takes whole days ("2d").
func parseDuration(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil {
			return 0, fmt.Errorf("duration %q: %w", s, err)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// rangeFlags are --start and --end.
type rangeFlags struct {
	start, end timeFlag
}

func (r *rangeFlags) bind(fs *pflag.FlagSet) {
	fs.Var(&r.start, "start", "earliest span start: RFC 3339, now, or a duration before now (1h)")
	fs.Var(&r.end, "end", "latest span start: RFC 3339, now, or a duration before now")
}

// timeRange returns the range in Unix ns (0 for an end not given).
func (r *rangeFlags) timeRange(now time.Time) (db.TimeRange, error) {
	var tr db.TimeRange
	if r.start.set() {
		tr.Start = unixNanos(r.start.at(now))
	}
	if r.end.set() {
		tr.End = unixNanos(r.end.at(now))
	}
	if r.end.set() && tr.Start > tr.End {
		return tr, fmt.Errorf("--start %s is after --end %s", r.start.text, r.end.text)
	}
	return tr, nil
}

func unixNanos(t time.Time) uint64 {
	if n := t.UnixNano(); n > 0 {
		return uint64(n)
	}
	return 0
}

// spanFlags select spans as Jaeger's search does, plus a structured
// filter: the flags of search, histogram and rate.
type spanFlags struct {
	rangeFlags
	service, operation string
	tags               []string
	filter             string
	minDur, maxDur     time.Duration
}

func (f *spanFlags) bind(fs *pflag.FlagSet, durations bool) {
	f.rangeFlags.bind(fs)
	fs.StringVar(&f.service, "service", "", "service name")
	fs.StringVar(&f.operation, "operation", "", "operation (span name); needs --service")
	fs.StringArrayVar(&f.tags, "tag", nil, "attribute key=value, repeatable; error=true selects spans with status Error")
	fs.StringVar(&f.filter, "filter", "", `structured filter expression (Jaeger RFC 0005), e.g. 'span.duration > 100ms and span.attr["http.status_code"] >= 500'`)
	if durations {
		fs.DurationVar(&f.minDur, "min-duration", 0, "shortest span duration (e.g. 100ms)")
		fs.DurationVar(&f.maxDur, "max-duration", 0, "longest span duration")
	}
}

// conditions turns the flags into the query's span conditions.
func (f *spanFlags) conditions(now time.Time) (query.SpanConditions, error) {
	var c query.SpanConditions
	tr, err := f.timeRange(now)
	if err != nil {
		return c, err
	}
	attrs, err := parseTags(f.tags)
	if err != nil {
		return c, err
	}
	filter, err := parseFilter(f.filter)
	if err != nil {
		return c, err
	}
	return query.SpanConditions{
		Service: f.service, Operation: f.operation, Attributes: attrs, StartTime: tr,
		DurationMin: f.minDur, DurationMax: f.maxDur, Filter: filter,
	}, nil
}

// parseTags parses key=value tags; a key given twice is refused.
func parseTags(tags []string) (map[string]string, error) {
	if len(tags) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		k, v, ok := strings.Cut(t, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--tag %q: want key=value", t)
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("--tag %q: key %q given twice", t, k)
		}
		m[k] = v
	}
	return m, nil
}

// parseFilter parses and compiles a --filter expression; "" is no filter.
func parseFilter(s string) (*query.Filter, error) {
	if s == "" {
		return nil, nil
	}
	e, err := query.ParseFilter(s)
	if err != nil {
		return nil, fmt.Errorf("--filter: %w", err)
	}
	f, err := query.Compile(e)
	if err != nil {
		return nil, fmt.Errorf("--filter: %w", err)
	}
	return f, nil
}

// outputWidth is --width when given, else $COLUMNS, else defaultTermWidth.
func outputWidth(flag int) int {
	if flag > 0 {
		return flag
	}
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	return defaultTermWidth
}

// isTerminal reports whether w is a character device (a terminal), never
// for a pipe, a file or a buffer.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// useColor reads --color: auto (only on a terminal, and not with
// $NO_COLOR), always or never.
func useColor(flag string, w io.Writer) (bool, error) {
	switch flag {
	case "auto":
		return isTerminal(w) && os.Getenv("NO_COLOR") == "", nil
	case "always":
		return true, nil
	case "never":
		return false, nil
	}
	return false, fmt.Errorf("--color %q: want auto, always or never", flag)
}

// formatTime prints a Unix ns time in UTC, to the millisecond.
func formatTime(ns uint64) string {
	return time.Unix(0, int64(min(ns, 1<<63-1))).UTC().Format("2006-01-02T15:04:05.000Z")
}
