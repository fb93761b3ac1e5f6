package partition

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/internal/sqldialect"
)

const (
	// table is the partitioned table.
	table = "RefreshTokens"
	// lockWaitSeconds is how long Setup and Maintain wait for the named lock
	// that serialises partition changes of one database across processes.
	lockWaitSeconds = 60
)

// IsMySQL reports whether db was opened with the MySQL/MariaDB driver
// (github.com/go-sql-driver/mysql, through sql.Open("mysql", ...) or
// mysql.NewConnector). Databases opened through a wrapping driver are not
// recognised and count as another engine.
func IsMySQL(db *sql.DB) bool {
	switch db.Driver().(type) {
	case *mysql.MySQLDriver, mysql.MySQLDriver:
		return true
	}
	return false
}

// SetupStatement returns the statement that partitions RefreshTokens into
// SetupMonths monthly partitions from now's month plus p_future: the one
// Setup runs on an empty table, and prints for an operator to run (in a quiet
// period: it copies the table under a lock) on a non-empty one.
func SetupStatement(now time.Time) string {
	months := make([]time.Time, SetupMonths)
	m := MonthStart(now)
	for i := range months {
		months[i] = m
		m = nextMonth(m)
	}
	return "ALTER TABLE `" + table + "` PARTITION BY RANGE COLUMNS (`JTI`) (" + definitions(months) + ")"
}

// definitions returns the partition definitions of months followed by
// p_future, for PARTITION BY and REORGANIZE PARTITION.
func definitions(months []time.Time) string {
	var b strings.Builder
	for _, m := range months {
		fmt.Fprintf(&b, "PARTITION %s VALUES LESS THAN ('%s'), ", Name(m), Boundary(nextMonth(m)))
	}
	b.WriteString("PARTITION " + FutureName + " VALUES LESS THAN (MAXVALUE)")
	return b.String()
}

// Setup partitions an empty, unpartitioned RefreshTokens into SetupMonths
// monthly partitions from now's month (UTC) plus p_future (the statement is
// SetupStatement(now)), and reports whether it did.
//
// A non-empty unpartitioned table is left alone: repartitioning copies the
// whole table under a lock, which is the operator's call, so Setup logs a
// warning on logger (slog.Default() when nil) that carries the statement to
// run and returns false, nil. A table that is already partitioned, in
// whatever layout, is left alone (a layout that Maintain cannot maintain is
// logged as a warning). Setup is therefore idempotent. Concurrent calls on
// one database, from any process, are serialised by a MySQL named lock.
//
// On a database that is not MySQL/MariaDB it returns an error wrapping
// backend.ErrUnsupported. A missing RefreshTokens table is an error.
func Setup(ctx context.Context, db *sql.DB, now time.Time, logger *slog.Logger) (created bool, err error) {
	if logger == nil {
		logger = slog.Default()
	}
	if !IsMySQL(db) {
		return false, fmt.Errorf("authdb: partition set-up: only on MySQL/MariaDB: %w", backend.ErrUnsupported)
	}
	err = withLock(ctx, db, func(conn *sql.Conn, schema string) error {
		st, err := readState(ctx, conn, schema)
		if err != nil {
			return err
		}
		if st.partitioned() {
			if _, err := st.months(); err != nil {
				logger.Warn("authdb: RefreshTokens is partitioned in a layout partition maintenance does not handle; left alone",
					"error", err)
			}
			return nil
		}
		stmt := SetupStatement(now)
		var one int
		switch err := conn.QueryRowContext(ctx, "SELECT 1 FROM `"+table+"` LIMIT 1").Scan(&one); {
		case err == nil:
			logger.Warn("authdb: RefreshTokens is not partitioned and not empty, so it was left alone; "+
				"to partition it by month, run this statement in a quiet period (it copies the table under a lock)",
				"statement", stmt)
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("authdb: partition set-up: read %s: %w", table, err)
		}
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("authdb: partition set-up: partition %s: %w", table, err)
		}
		created = true
		logger.Info("authdb: partitioned RefreshTokens by month",
			"first", Name(MonthStart(now)), "months", SetupMonths)
		return nil
	})
	return created, err
}

// Maintain brings the monthly partitions of RefreshTokens in line with
// Plan(existing, now, retentionMonths, monthsAhead) and reports what it did,
// paced by DefaultPacing: MaintainPaced(ctx, db, now, retentionMonths,
// monthsAhead, DefaultPacing).
func Maintain(ctx context.Context, db *sql.DB, now time.Time, retentionMonths, monthsAhead int) (backend.PartitionReport, error) {
	return MaintainPaced(ctx, db, now, retentionMonths, monthsAhead, DefaultPacing)
}

// Pacing spreads partition maintenance over time so that the token traffic
// it runs beside keeps its latency. Every ALTER TABLE on a partition takes
// the table's metadata lock exclusively: it waits for the transactions in
// flight on RefreshTokens, and every statement on the table that arrives
// meanwhile waits behind it, so each statement is a short stall of all
// token traffic (tens of milliseconds on a quiet server). Pacing bounds
// how often (Pause) and how long (LockWait) that happens.
type Pacing struct {
	// Pause is how long maintenance waits between two statements, holding
	// no lock and no connection; 0: none.
	Pause time.Duration
	// LockWait bounds how long one statement waits for the metadata lock
	// (the session's lock_wait_timeout, in whole seconds, rounded up; the
	// server's own default is a year on MariaDB). A statement that times
	// out, because a long transaction holds the table, stops blocking the
	// traffic queued behind it and is tried again after the pause, up to 8
	// times in all. 0: the server's lock_wait_timeout.
	LockWait time.Duration
}

// DefaultPacing is Maintain's pacing: backend.DefaultPartitionPause between
// statements, a metadata-lock wait of one second. docs/scale.md ("Latency
// under maintenance") has the measurements behind it.
var DefaultPacing = Pacing{Pause: backend.DefaultPartitionPause, LockWait: time.Second}

// MaintainPaced brings the monthly partitions of RefreshTokens in line with
// Plan(existing, now, retentionMonths, monthsAhead) and reports what it did.
//
// It adds first, one month per statement, each splitting p_future (ALTER
// TABLE ... REORGANIZE PARTITION p_future INTO (p_<month>, p_future)), then
// drops, one month per statement, oldest first (ALTER TABLE ... DROP
// PARTITION p_<month>), waiting p.Pause between two statements. Dropping a
// partition deletes all of its tokens, revoked ones included (and, for the
// oldest partition, every older token): retentionMonths must outlive the
// longest refresh-token lifetime, or a replayed revoked token would no
// longer be recognised.
//
// Each statement is atomic; the call is not: when a statement fails, or ctx
// ends during a pause, the report lists the months changed so far and the
// error is returned (ctx's, wrapped, for a pause); running it again
// completes the work. Inserts and rotations running concurrently wait for
// the metadata lock and are not lost. Concurrent maintenance and Setup
// calls on one server are serialised statement by statement by a MySQL
// named lock, taken for each statement and released during the pauses; each
// statement is planned from the layout read under that lock. On a Galera
// cluster, where the lock is per node, maintenance may run from several
// nodes at once: a statement that finds a partition already added or
// dropped by another (1517, 1507, ...), or that another's DDL aborted
// (1213), reads the layout again, plans anew and carries on, so every
// caller succeeds and the layout is the planned one. The report lists what
// this call changed. A second call with the same arguments is a no-op.
//
// Errors: negative retentionMonths or monthsAhead, or a negative pacing,
// wrap backend.ErrInvalidInput; a database that is not MySQL/MariaDB, or an
// unpartitioned RefreshTokens (the message says how to partition it), wraps
// backend.ErrUnsupported; a partitioning that is not the layout of this
// package (other names or bounds, no p_future) is an error and nothing is
// changed.
func MaintainPaced(ctx context.Context, db *sql.DB, now time.Time, retentionMonths, monthsAhead int, p Pacing) (backend.PartitionReport, error) {
	var rep backend.PartitionReport
	if err := checkMaintain(db, retentionMonths, monthsAhead); err != nil {
		return rep, err
	}
	if p.Pause < 0 {
		return rep, backend.InvalidInput("Pacing.Pause", "must not be negative")
	}
	if p.LockWait < 0 {
		return rep, backend.InvalidInput("Pacing.LockWait", "must not be negative")
	}
	for step := 0; ; step++ {
		if step > 0 && p.Pause > 0 {
			if err := pause(ctx, p.Pause); err != nil {
				return rep, fmt.Errorf("authdb: partition maintenance: stopped after %d added and %d dropped months: %w",
					len(rep.Added), len(rep.Dropped), err)
			}
		}
		var done bool
		err := withLock(ctx, db, func(conn *sql.Conn, schema string) error {
			var err error
			done, err = maintainStep(ctx, conn, schema, now, retentionMonths, monthsAhead, p, &rep, step == 0)
			return err
		})
		if err != nil || done {
			return rep, err
		}
	}
}

// PlanMaintenance returns what Maintain would do with the same arguments
// (Existing, and the months it would add and drop), without changing
// anything. Its errors are Maintain's.
func PlanMaintenance(ctx context.Context, db *sql.DB, now time.Time, retentionMonths, monthsAhead int) (backend.PartitionReport, error) {
	var rep backend.PartitionReport
	if err := checkMaintain(db, retentionMonths, monthsAhead); err != nil {
		return rep, err
	}
	conn, schema, err := schemaConn(ctx, db)
	if err != nil {
		return rep, err
	}
	defer conn.Close()
	st, err := readState(ctx, conn, schema)
	if err != nil {
		return rep, err
	}
	if rep.Existing, err = st.maintainable(now); err != nil {
		return rep, err
	}
	rep.Dropped, rep.Added = Plan(rep.Existing, now, retentionMonths, monthsAhead)
	return rep, nil
}

func checkMaintain(db *sql.DB, retentionMonths, monthsAhead int) error {
	if retentionMonths < 0 {
		return backend.InvalidInput("retentionMonths", "must not be negative")
	}
	if monthsAhead < 0 {
		return backend.InvalidInput("monthsAhead", "must not be negative")
	}
	if !IsMySQL(db) {
		return fmt.Errorf("authdb: partition maintenance: only on MySQL/MariaDB: %w", backend.ErrUnsupported)
	}
	return nil
}

// maintainable returns the months of a layout Maintain can maintain.
func (s state) maintainable(now time.Time) ([]time.Time, error) {
	if !s.partitioned() {
		return nil, fmt.Errorf("authdb: partition maintenance: %s is not partitioned; the SQL backend partitions it "+
			"on its first migration when it is empty (partition.Setup), or run in a quiet period: %s: %w",
			table, SetupStatement(now), backend.ErrUnsupported)
	}
	return s.months()
}

// maintainStep runs the first statement of the plan made from the layout
// read on conn (under the named lock): the first month to add, else the
// first to drop. It reports done when nothing is left to do after it.
// Another process's change (Galera), or a metadata-lock wait that timed
// out, makes it read the layout again and plan anew, up to raceAttempts
// times.
func maintainStep(ctx context.Context, conn *sql.Conn, schema string, now time.Time, retentionMonths, monthsAhead int,
	p Pacing, rep *backend.PartitionReport, first bool) (done bool, err error) {
	if p.LockWait > 0 {
		secs := int64((p.LockWait + time.Second - 1) / time.Second)
		if _, err := conn.ExecContext(ctx, "SET SESSION lock_wait_timeout = "+strconv.FormatInt(secs, 10)); err != nil {
			return false, fmt.Errorf("authdb: partition maintenance: set lock_wait_timeout: %w", err)
		}
		defer func() {
			// A fresh context: the pooled session must not keep the short
			// timeout. If it cannot be restored, the session is discarded.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if _, rerr := conn.ExecContext(rctx, "SET SESSION lock_wait_timeout = DEFAULT"); rerr != nil {
				conn.Raw(func(any) error { return driver.ErrBadConn })
			}
		}()
	}
	for attempt := 1; ; attempt++ {
		st, err := readState(ctx, conn, schema)
		if err != nil {
			return false, err
		}
		existing, err := st.maintainable(now)
		if err != nil {
			return false, err
		}
		if first && attempt == 1 {
			rep.Existing = existing
		}
		drop, add := Plan(existing, now, retentionMonths, monthsAhead)
		if len(add)+len(drop) == 0 {
			return true, nil
		}
		var stmt, what string
		if len(add) > 0 {
			stmt = "ALTER TABLE `" + table + "` REORGANIZE PARTITION " + FutureName + " INTO (" + definitions(add[:1]) + ")"
			what = "add " + Name(add[0])
		} else {
			stmt = "ALTER TABLE `" + table + "` DROP PARTITION " + Name(drop[0])
			what = "drop " + Name(drop[0])
		}
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			if concurrentChange(err) && attempt < raceAttempts && ctx.Err() == nil {
				if isLockWaitTimeout(err) {
					if perr := pause(ctx, max(p.Pause, 100*time.Millisecond)); perr != nil {
						return false, fmt.Errorf("authdb: partition maintenance: %s: %w", what, perr)
					}
				} else {
					raceSleep(ctx, attempt)
				}
				continue
			}
			if isLockWaitTimeout(err) {
				return false, fmt.Errorf("authdb: partition maintenance: %s: a transaction on %s held its metadata lock "+
					"through %d waits of %s (find it in information_schema.INNODB_TRX): %w", what, table, attempt, p.LockWait, err)
			}
			return false, fmt.Errorf("authdb: partition maintenance: %s: %w", what, err)
		}
		if len(add) > 0 {
			rep.Added = append(rep.Added, add[0])
		} else {
			rep.Dropped = append(rep.Dropped, drop[0])
		}
		return len(add)+len(drop) == 1, nil
	}
}

// isLockWaitTimeout reports a lock wait that timed out (1205): for a DDL,
// the metadata lock that lock_wait_timeout bounds.
func isLockWaitTimeout(err error) bool { return sqldialect.IsLockWaitTimeout(err) }

// pause waits d, or until ctx ends (its error).
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// schemaConn takes a connection from db and returns it with the current
// database's name.
func schemaConn(ctx context.Context, db *sql.DB) (*sql.Conn, string, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("authdb: partitions: connect: %w", err)
	}
	var schema sql.NullString
	if err := conn.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&schema); err != nil {
		conn.Close()
		return nil, "", fmt.Errorf("authdb: partitions: current database: %w", err)
	}
	if !schema.Valid || schema.String == "" {
		conn.Close()
		return nil, "", errors.New("authdb: partitions: no database selected")
	}
	return conn, schema.String, nil
}

// withLock runs fn on one connection holding the MySQL named lock of the
// current database's partitions (GET_LOCK is per server, hence the database
// name in the lock's), waiting at most lockWaitSeconds for it.
func withLock(ctx context.Context, db *sql.DB, fn func(conn *sql.Conn, schema string) error) error {
	conn, schema, err := schemaConn(ctx, db)
	if err != nil {
		return err
	}
	defer conn.Close()
	name := []rune("authdb.partition." + schema)
	if len(name) > 64 {
		name = name[:64]
	}
	lock := string(name)
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, ?)", lock, lockWaitSeconds).Scan(&got); err != nil {
		return fmt.Errorf("authdb: partitions: lock %s: %w", lock, err)
	}
	if got.Int64 != 1 {
		return fmt.Errorf("authdb: partitions: lock %s: another process held it for %d s", lock, lockWaitSeconds)
	}
	defer func() {
		// A fresh context: the lock must be released even when ctx is done.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		var released sql.NullInt64
		if err := conn.QueryRowContext(rctx, "SELECT RELEASE_LOCK(?)", lock).Scan(&released); err != nil {
			// The session may still hold the lock: close it rather than
			// return it to the pool (the server frees a closed session's
			// locks), or the next Setup or Maintain would wait for it.
			conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	return fn(conn, schema)
}

// partitionRow is a row of information_schema.PARTITIONS for RefreshTokens.
type partitionRow struct {
	name, method, expression, description sql.NullString
}

// state is the partitioning of RefreshTokens as information_schema shows it.
type state struct {
	rows []partitionRow
}

func (s state) partitioned() bool { return len(s.rows) > 0 && s.rows[0].name.Valid }

// readStateOnce reads the partitions of RefreshTokens in schema, in order. An
// unpartitioned table has one row whose name is NULL; a missing table none.
func readStateOnce(ctx context.Context, conn *sql.Conn, schema string) (state, error) {
	rows, err := conn.QueryContext(ctx, `SELECT PARTITION_NAME, PARTITION_METHOD, PARTITION_EXPRESSION, PARTITION_DESCRIPTION
FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?
ORDER BY PARTITION_ORDINAL_POSITION`, schema, table)
	if err != nil {
		return state{}, fmt.Errorf("authdb: partitions: read information_schema: %w", err)
	}
	defer rows.Close()
	var st state
	for rows.Next() {
		var r partitionRow
		if err := rows.Scan(&r.name, &r.method, &r.expression, &r.description); err != nil {
			return state{}, fmt.Errorf("authdb: partitions: read information_schema: %w", err)
		}
		st.rows = append(st.rows, r)
	}
	if err := rows.Err(); err != nil {
		return state{}, fmt.Errorf("authdb: partitions: read information_schema: %w", err)
	}
	if len(st.rows) == 0 {
		return state{}, fmt.Errorf("authdb: partitions: %w: %s.%s", errNoTable, schema, table)
	}
	return st, nil
}

// readState reads the partitions of RefreshTokens (readStateOnce). While
// another session's ALTER TABLE swaps the table for its rebuilt copy
// (another process's maintenance, or a Galera node applying one), the
// table can be missing from information_schema for a moment: a missing
// table is read again for up to about a second before it is an error.
func readState(ctx context.Context, conn *sql.Conn, schema string) (state, error) {
	for attempt := 1; ; attempt++ {
		st, err := readStateOnce(ctx, conn, schema)
		if err == nil || !errors.Is(err, errNoTable) || attempt >= raceAttempts || ctx.Err() != nil {
			return st, err
		}
		raceSleep(ctx, attempt)
	}
}

// errNoTable marks readStateOnce's error for a missing table; it wraps
// backend.ErrNotFound (the CLI hints 'authdb migrate').
var errNoTable = fmt.Errorf("table %w", backend.ErrNotFound)

// raceAttempts bounds the re-reads and re-plans after a concurrent change.
const raceAttempts = 8

// raceSleep waits before attempt+1 after a concurrent change: 10 ms,
// growing linearly, jittered by the scheduler only (a deterministic wait
// is enough here: the other process's DDL is what is waited for).
func raceSleep(ctx context.Context, attempt int) {
	pause(ctx, time.Duration(attempt)*25*time.Millisecond)
}

// concurrentChange reports whether a partition statement failed because
// another process changed the partitions since they were read: a
// partition name that exists (1517), one that no longer does (1507, 1735),
// bounds that are no longer increasing (1493), a drop of every partition
// (1508), or a statement aborted, interrupted or timed out by another's
// DDL (1213, 1317, 1205; Galera applies DDL in total order and aborts what
// conflicts, a waiting local DDL included). Callers retry only while
// their context lives, so a 1317 of their own cancellation is not retried.
func concurrentChange(err error) bool {
	var myErr *mysql.MySQLError
	if !errors.As(err, &myErr) {
		return false
	}
	switch myErr.Number {
	case 1517, 1507, 1735, 1493, 1508, 1213, 1317, 1205, 1146:
		return true
	}
	return false
}

var nameRE = regexp.MustCompile(`^p_([0-9]{1,6})_([0-9]{1,2})$`)

// parseName returns the month of a monthly partition name p_<year>_<month>.
func parseName(name string) (time.Time, bool) {
	m := nameRE.FindStringSubmatch(name)
	if m == nil {
		return time.Time{}, false
	}
	y, _ := strconv.Atoi(m[1])
	mo, _ := strconv.Atoi(m[2])
	if mo < 1 || mo > 12 || Name(time.Date(y, time.Month(mo), 1, 0, 0, 0, 0, time.UTC)) != name {
		return time.Time{}, false
	}
	return time.Date(y, time.Month(mo), 1, 0, 0, 0, 0, time.UTC), true
}

// months checks that the partitioning is this package's layout (RANGE
// COLUMNS on JTI, monthly partitions p_<year>_<month> bounded by the next
// month's Boundary, then p_future up to MAXVALUE) and returns the months of
// the monthly partitions, ascending.
func (s state) months() ([]time.Time, error) {
	var months []time.Time
	for i, r := range s.rows {
		if r.method.String != "RANGE COLUMNS" || strings.Trim(r.expression.String, "` ") != "JTI" {
			return nil, fmt.Errorf("authdb: partitions: %s is partitioned by %s (%s), not RANGE COLUMNS (JTI)",
				table, r.method.String, r.expression.String)
		}
		if r.name.String == FutureName {
			if i != len(s.rows)-1 || r.description.String != "MAXVALUE" {
				return nil, fmt.Errorf("authdb: partitions: %s must be the last partition, up to MAXVALUE", FutureName)
			}
			return months, nil
		}
		m, ok := parseName(r.name.String)
		if !ok {
			return nil, fmt.Errorf("authdb: partitions: partition %q of %s is not named p_<year>_<month>", r.name.String, table)
		}
		want := Boundary(nextMonth(m))
		if got := strings.Trim(r.description.String, "'"); got != want {
			return nil, fmt.Errorf("authdb: partitions: partition %s of %s ends at %q, want %q", r.name.String, table, got, want)
		}
		months = append(months, m)
	}
	return nil, fmt.Errorf("authdb: partitions: %s has no %s partition to split", table, FutureName)
}
