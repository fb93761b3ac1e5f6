package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/partition"
)

// Defaults of 'authdb partitions' (and of the partition step of cleanup).
const (
	defaultRetentionMonths = 6
	defaultMonthsAhead     = 12
)

const partitionsUsage = `Usage: authdb [--db URL] partitions [--retention-months N] [--months-ahead N] [--pause DUR] [--dry-run]

On MySQL/MariaDB, RefreshTokens is partitioned BY RANGE COLUMNS (JTI), one
partition per calendar month (UTC) named p_<year>_<month>, plus p_future.
A JTI is a UUIDv7, so a month's partition holds the tokens created in it.

This command shows the partitions and the plan, then applies it (unless
--dry-run):
  - add monthly partitions (splitting p_future) up to now + months-ahead;
  - drop every partition whose upper bound is at or before
    now - retention-months.
Each month added or dropped is one ALTER TABLE, which holds the table's
metadata lock for a moment: token traffic waits for it. Two statements are
--pause apart (default 5s) so that the traffic's tail latency stays low; a
statement that waits more than a second for the lock (a long transaction
holds the table) gives up, lets the traffic through and is tried again.

WARNING: dropping a partition deletes all of its tokens at once, revoked ones
included. Revoked tokens are what reuse detection checks: a stolen refresh
token replayed after its row is gone is no longer recognised as reused (it is
just unknown). So --retention-months must outlive the longest refresh-token
lifetime of your service (a 30-day lifetime needs at least 2 months; the
default 6 leaves a margin).

Run it monthly (cron). On engines without partitions (SQLite, PostgreSQL,
the memory store) it says so and exits with status 2; there, use
'authdb cleanup --refresh-retention DUR'.
`

func runPartitions(ctx context.Context, a *app, args []string) error {
	fs := a.newFlagSet("partitions", partitionsUsage+otlpUsage)
	otlp := otlpFlag(fs)
	retention := fs.Int("retention-months", defaultRetentionMonths,
		"drop partitions whose tokens are all older than this many `months`; must outlive the longest refresh-token lifetime")
	ahead := fs.Int("months-ahead", defaultMonthsAhead, "keep monthly partitions up to this many `months` ahead")
	dryRun := fs.Bool("dry-run", false, "show the plan, change nothing")
	pause := backend.DefaultPartitionPause
	fs.Var(durationFlag{&pause}, "pause", "wait this `duration` between two partition statements, leaving the table to the token traffic")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *retention < 1 {
		return usageErrorf("--retention-months must be at least 1, got %d", *retention)
	}
	if *ahead < 0 {
		return usageErrorf("--months-ahead must not be negative, got %d", *ahead)
	}
	raw, err := a.open(ctx, backend.WithoutMigration(), backend.WithPartitionPause(pause))
	if err != nil {
		return err
	}
	defer raw.Close()
	tel, err := startTelemetry(ctx, *otlp)
	if err != nil {
		return err
	}
	defer tel.shutdown(a)
	b := tel.wrap(raw)
	where := target(a.dbURL)

	pm, ok := b.(backend.PartitionMaintainer)
	if !ok {
		return unsupportedPartitions(where)
	}
	plan, err := pm.PlanRefreshTokenPartitions(ctx, *retention, *ahead)
	if errors.Is(err, backend.ErrUnsupported) {
		if s, ok := raw.(sqlIntrospector); ok && s.Dialect() == "mysql" {
			// MySQL with an unpartitioned RefreshTokens: the error says how to partition it.
			// MySQL with an unpartitioned RefreshTokens that holds rows
			// (migrate partitions it while it is empty).
			return &exitError{code: exitUnsupported, err: fmt.Errorf("%s: RefreshTokens is not partitioned and holds rows, "+
				"so it was left alone; 'authdb migrate' prints the ALTER TABLE statement that partitions it "+
				"(run it in a quiet period: it copies the table under a lock)", where)}
		}
		return unsupportedPartitions(where)
	}
	if errors.Is(err, backend.ErrNotFound) {
		return fmt.Errorf("%s has no RefreshTokens table; run 'authdb migrate' first", where)
	}
	if err != nil {
		return schemaHint(fmt.Errorf("%s: %w", where, err))
	}

	w := a.stdout
	fmt.Fprintf(w, "RefreshTokens on %s: %d monthly partitions + p_future\n", where, len(plan.Existing))
	for _, m := range plan.Existing {
		fmt.Fprintf(w, "  %-10s JTI < %s  (tokens created before %s)\n",
			partition.Name(m), partition.Boundary(nextMonth(m)), nextMonth(m).Format("2006-01-02"))
	}
	fmt.Fprintf(w, "plan (retention %d months, %d months ahead):\n", *retention, *ahead)
	printMonths(w, "  add ", plan.Added)
	printMonths(w, "  drop", plan.Dropped)
	if *dryRun {
		fmt.Fprintln(w, "dry run: nothing changed")
		return nil
	}
	if len(plan.Added) == 0 && len(plan.Dropped) == 0 {
		fmt.Fprintln(w, "nothing to do")
		return nil
	}
	done, err := pm.MaintainRefreshTokenPartitions(ctx, *retention, *ahead)
	if err != nil {
		return fmt.Errorf("%s: maintain partitions: %w", where, err)
	}
	fmt.Fprintf(w, "applied: added %d, dropped %d\n", len(done.Added), len(done.Dropped))
	printMonths(w, "  added  ", done.Added)
	printMonths(w, "  dropped", done.Dropped)
	return nil
}

func unsupportedPartitions(where string) error {
	return &exitError{code: exitUnsupported, err: fmt.Errorf(
		"%s does not partition RefreshTokens (monthly partitions are a MySQL/MariaDB feature), nothing to do; "+
			"delete old tokens with 'authdb cleanup --refresh-retention DUR'", where)}
}

// printMonths prints one line: a label and the partition names of months.
func printMonths(w io.Writer, label string, months []time.Time) {
	if len(months) == 0 {
		fmt.Fprintf(w, "%s none\n", label)
		return
	}
	names := make([]string, len(months))
	for i, m := range months {
		names[i] = partition.Name(m)
	}
	fmt.Fprintf(w, "%s %s\n", label, strings.Join(names, " "))
}

// nextMonth returns the first instant of the month after m's, in UTC.
func nextMonth(m time.Time) time.Time {
	m = m.UTC()
	return time.Date(m.Year(), m.Month()+1, 1, 0, 0, 0, 0, time.UTC)
}
