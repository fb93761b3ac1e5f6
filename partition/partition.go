// Package partition maintains the MySQL/MariaDB monthly RANGE COLUMNS
// partitioning of RefreshTokens by JTI (a UUIDv7, so JTI order is creation
// order): a pure planner (Name, Boundary, Plan), the first set-up (Setup) and
// maintenance (Maintain, PlanMaintenance).
//
// STUB: signatures fixed by the lead; bodies are being written.
package partition

import (
	"context"
	"database/sql"
	"log/slog"
	"time"

	"github.com/authdb/authdb/backend"
)

// Name returns the partition name of the month containing month (UTC):
// p_<year>_<month> without zero padding, e.g. p_2026_3.
func Name(month time.Time) string { panic("TODO") }

// Boundary returns the lowest UUIDv7 of t (48-bit millisecond timestamp,
// version 7, variant bits set, all random bits zero) as 32 lowercase hex digits.
func Boundary(t time.Time) string { panic("TODO") }

// Plan returns the months (first instants, UTC, ascending) to drop and to add.
func Plan(existing []time.Time, now time.Time, retentionMonths, monthsAhead int) (drop, add []time.Time) {
	panic("TODO")
}

// Setup partitions an empty, unpartitioned RefreshTokens into 24 months from
// now's month plus p_future. It reports whether it partitioned the table.
func Setup(ctx context.Context, db *sql.DB, now time.Time, logger *slog.Logger) (created bool, err error) {
	panic("TODO")
}

// PlanMaintenance returns what Maintain would do, without changing anything.
func PlanMaintenance(ctx context.Context, db *sql.DB, now time.Time, retentionMonths, monthsAhead int) (backend.PartitionReport, error) {
	panic("TODO")
}

// Maintain adds then drops partitions as Plan says and reports what it did.
func Maintain(ctx context.Context, db *sql.DB, now time.Time, retentionMonths, monthsAhead int) (backend.PartitionReport, error) {
	panic("TODO")
}
