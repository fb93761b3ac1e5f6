package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/partition"
)

const cleanupUsage = `Usage: authdb [--db URL] cleanup [--device-retention DUR] [--authorization-retention DUR]
                                 [--refresh-retention DUR] [--batch-size N] [--pause DUR]

Deletes device flows and authorization flows created more than the given
retention ago, whatever their status, and, when --refresh-retention is given,
refresh tokens whose JTI (a UUIDv7) was made more than that long ago, revoked
or not. Prints how many rows each step deleted. SQL backends delete in batches
of --batch-size rows, waiting --pause between two, so that no statement holds
locks for long and other clients keep their latency. Durations are Go
durations (90s, 45m, 36h) or whole days (30d). A retention of 0 skips the step.

Refresh tokens on a partitioned MySQL/MariaDB table: first, every monthly
partition whose tokens are all older than the retention is dropped whole
(cheap, no row scan), as 'authdb partitions --retention-months N' would, with
N = ceil(retention / 28 days): N calendar months always span at least N*28
days, so a partition dropped this way only holds tokens older than the
retention (30d gives N = 2, 90d gives N = 4). The step also keeps the
partitions 12 months ahead, as 'authdb partitions' does. Then the tokens left
that are older than the retention are deleted by JTI range. Elsewhere the
range delete does it all, in batches.

Keep --refresh-retention longer than the longest refresh-token lifetime: a
revoked token that is deleted is no longer recognised when it is replayed.

A step the engine does not support is reported and skipped; it never stops
the other steps. The exit status is 1 if any step failed. On a terminal, long
deletions show the rows deleted so far on stderr.
`

// partitionMonthDays is the shortest calendar month: N months always span at
// least N*partitionMonthDays days.
const partitionMonthDays = 28

// retentionMonthsFor returns the partition retention, in months, that never
// drops a token younger than d: ceil(d / 28 days), at least 1.
func retentionMonthsFor(d time.Duration) int {
	month := partitionMonthDays * 24 * time.Hour
	n := int((d + month - 1) / month)
	if n < 1 {
		n = 1
	}
	return n
}

// fmtDuration prints a retention briefly: whole days as "30d", else Go's
// form without zero units ("1h", "90m" as "1h30m").
func fmtDuration(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	day := 24 * time.Hour
	if d >= day && d%day == 0 {
		return fmt.Sprintf("%dd", d/day)
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// durationFlag is a time.Duration flag that also accepts whole days ("30d").
type durationFlag struct{ d *time.Duration }

func (f durationFlag) String() string {
	if f.d == nil {
		return "0"
	}
	return fmtDuration(*f.d)
}

func (f durationFlag) Set(s string) error {
	d, err := parseRetention(s)
	if err != nil {
		return err
	}
	*f.d = d
	return nil
}

// parseRetention parses a Go duration or a whole number of days ("30d").
// Negative durations are refused.
func parseRetention(s string) (time.Duration, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q (want e.g. 90m, 36h or 30d)", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("invalid duration %q (want e.g. 90m, 36h or 30d)", s)
		}
	}
	if d < 0 {
		return 0, fmt.Errorf("negative duration %q", s)
	}
	return d, nil
}

func runCleanup(ctx context.Context, a *app, args []string) error {
	fs := a.newFlagSet("cleanup", cleanupUsage+otlpUsage)
	otlp := otlpFlag(fs)
	deviceRet, authRet, refreshRet := time.Hour, time.Hour, time.Duration(0)
	fs.Var(durationFlag{&deviceRet}, "device-retention", "delete device flows older than this `duration` (0 skips)")
	fs.Var(durationFlag{&authRet}, "authorization-retention", "delete authorization flows older than this `duration` (0 skips)")
	fs.Var(durationFlag{&refreshRet}, "refresh-retention",
		"delete refresh tokens older than this `duration` (0 keeps them); must outlive the longest refresh-token lifetime")
	batch := fs.Int("batch-size", backend.DefaultCleanupBatchSize, "delete at most this many `rows` per statement (SQL backends)")
	pause := backend.DefaultCleanupPause
	fs.Var(durationFlag{&pause}, "pause", "wait this `duration` between two batches (SQL backends), leaving the database to other clients")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *batch < 1 {
		return usageErrorf("--batch-size must be at least 1, got %d", *batch)
	}

	p := &progress{w: a.stderr, on: isTerminal(a.stderr)}
	b, err := a.open(ctx, backend.WithoutMigration(), backend.WithCleanupBatchSize(*batch),
		backend.WithCleanupPause(pause), backend.WithCleanupProgress(p.report))
	if err != nil {
		return err
	}
	defer b.Close()
	tel, err := startTelemetry(ctx, *otlp)
	if err != nil {
		return err
	}
	defer tel.shutdown(a)
	b = tel.wrap(b)
	where := target(a.dbURL)
	w := a.stdout
	fmt.Fprintf(w, "cleanup on %s:\n", where)

	failed := 0
	step := func(label string, retention time.Duration, clean func(context.Context, time.Duration) (int64, error)) {
		if retention == 0 {
			fmt.Fprintf(w, "  %s: skipped\n", label)
			return
		}
		n, err := clean(ctx, retention)
		p.done()
		switch {
		case errors.Is(err, backend.ErrUnsupported):
			fmt.Fprintf(w, "  %s older than %s: not supported on this engine, skipped\n", label, fmtDuration(retention))
		case err != nil:
			failed++
			fmt.Fprintf(a.stderr, "authdb cleanup: %s: %s\n", label,
				a.errLine(schemaHint(err)))
			fmt.Fprintf(w, "  %s older than %s: failed\n", label, fmtDuration(retention))
		default:
			fmt.Fprintf(w, "  %s older than %s: %d deleted\n", label, fmtDuration(retention), n)
		}
	}

	step("device flows", deviceRet, b.CleanExpiredDeviceFlows)
	step("authorization flows", authRet, b.CleanExpiredAuthorizationFlows)
	if refreshRet > 0 {
		if pm, ok := b.(backend.PartitionMaintainer); ok {
			months := retentionMonthsFor(refreshRet)
			rep, err := pm.MaintainRefreshTokenPartitions(ctx, months, defaultMonthsAhead)
			switch {
			case errors.Is(err, backend.ErrUnsupported):
				// Not partitioned: the range delete below does it all.
			case err != nil:
				failed++
				fmt.Fprintf(a.stderr, "authdb cleanup: refresh-token partitions: %s\n",
					a.errLine(schemaHint(err)))
				fmt.Fprintf(w, "  refresh-token partitions older than %d months: failed\n", months)
			default:
				names := make([]string, len(rep.Dropped))
				for i, m := range rep.Dropped {
					names[i] = partition.Name(m)
				}
				if len(names) == 0 {
					names = []string{"none"}
				}
				fmt.Fprintf(w, "  refresh-token partitions older than %d months: dropped %d (%s), added %d ahead\n",
					months, len(rep.Dropped), strings.Join(names, " "), len(rep.Added))
			}
		}
	}
	step("refresh tokens", refreshRet, b.CleanExpiredRefreshTokens)
	if failed > 0 {
		return &exitError{code: exitFailure, err: fmt.Errorf("%d step(s) failed", failed)}
	}
	return nil
}

// isTerminal reports whether w is a file that is a character device (a
// terminal): the progress line's escapes go only where someone watches, never
// into a redirected log.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progress shows, on a terminal, a line updated in place with the rows a
// clean-up step deleted so far. It is the backend's WithCleanupProgress
// callback.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	on    bool
	shown bool
}

func (p *progress) report(table string, deletedSoFar int64) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "\r\033[K  %s: %d rows deleted so far", table, deletedSoFar)
	p.shown = true
}

// done clears the progress line, if any.
func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K")
		p.shown = false
	}
}
