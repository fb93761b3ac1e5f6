// Package partition maintains the MySQL/MariaDB monthly RANGE COLUMNS
// partitioning of RefreshTokens by JTI (a UUIDv7, so JTI order is creation
// order): a pure planner (Name, Boundary, Plan), the first set-up (Setup) and
// maintenance (Maintain, PlanMaintenance).
//
// # Layout
//
// RefreshTokens is partitioned BY RANGE COLUMNS (JTI), one partition per
// calendar month (UTC) named p_<year>_<month> without zero padding (p_2026_3),
// whose upper bound (VALUES LESS THAN) is Boundary of the first instant of the
// next month, followed by p_future VALUES LESS THAN (MAXVALUE). A RANGE
// partition holds everything below its bound that no earlier partition holds,
// so the oldest monthly partition also holds any older token.
//
// # Retention
//
// Dropping a partition deletes every token in it, revoked or not, in one
// cheap metadata operation. A revoked token that is deleted can no longer be
// recognised as replayed, so retentionMonths must outlive the longest
// refresh-token lifetime of the service.
//
// # Months and "now minus N months"
//
// Every month is its first instant in UTC. "now plus or minus N months" keeps
// the day of the month and the time of day and clamps the day to the target
// month's last day: 31 March minus one month is 28 February (29 in a leap
// year), never 3 March as time.AddDate would say.
package partition

import (
	"fmt"
	"slices"
	"time"

	"github.com/authdb/authdb/backend"
)

const (
	// FutureName is the catch-all last partition, VALUES LESS THAN (MAXVALUE).
	FutureName = "p_future"
	// SetupMonths is the number of monthly partitions Setup creates, the
	// current month first.
	SetupMonths = 24
	// DefaultMonthsAhead is the usual monthsAhead of maintenance: partitions
	// are kept up to the month twelve months from now.
	DefaultMonthsAhead = 12
	// maxPlanMonths bounds retentionMonths and monthsAhead in the month
	// arithmetic (a million years) so that huge values cannot overflow.
	maxPlanMonths = 12 * 1_000_000
)

// Name returns the partition name of the month containing month (UTC):
// p_<year>_<month> without zero padding, e.g. p_2026_3.
func Name(month time.Time) string {
	y, m, _ := month.UTC().Date()
	return fmt.Sprintf("p_%d_%d", y, int(m))
}

// Boundary returns the lowest UUIDv7 of t (48-bit millisecond timestamp,
// version 7, variant bits set, all random bits zero) as 32 lowercase hex
// digits: every JTI made at or after t compares >= to it, every JTI made
// before compares lower. A month's partition bound is Boundary of the first
// instant of the next month.
func Boundary(t time.Time) string {
	return backend.HexJTI(backend.LowestUUIDv7(t))
}

// MonthStart returns the first instant (UTC) of the month containing t.
func MonthStart(t time.Time) time.Time {
	y, m, _ := t.UTC().Date()
	return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
}

// AddMonths returns t (in UTC) moved by n calendar months, keeping the day
// of the month and the time of day, the day clamped to the target month's
// last day: AddMonths(31 March, -1) is 28 February. n is clamped to plus or
// minus a million years.
func AddMonths(t time.Time, n int) time.Time {
	n = min(max(n, -maxPlanMonths), maxPlanMonths)
	t = t.UTC()
	y, m, d := t.Date()
	total := int64(y)*12 + int64(m-1) + int64(n)
	ny := total / 12
	if total%12 < 0 {
		ny--
	}
	nm := time.Month(total-ny*12) + 1
	if last := daysIn(int(ny), nm); d > last {
		d = last
	}
	return time.Date(int(ny), nm, d, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
}

// daysIn returns the number of days of month m of year y.
func daysIn(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// nextMonth returns the first instant of the month after month start m.
func nextMonth(m time.Time) time.Time { return m.AddDate(0, 1, 0) }

// Plan returns the months (first instants, UTC, ascending) to drop and to
// add, given the existing monthly partitions (any instant of each month; the
// order and duplicates do not matter), now, the retention and the look-ahead.
//
// Adding: partitions must cover up to now+monthsAhead inclusive, that is up
// to and including the month that contains AddMonths(now, monthsAhead). Only
// months after the last existing one are added, contiguously from the month
// right after it (gaps between existing partitions are not filled: the
// partition after a gap already holds its months). With no existing
// partitions the plan adds the current month through that month. With the
// default monthsAhead of 12, maintenance keeps 13 months from the current
// one; Setup creates 24 and is not a Plan.
//
// Dropping: every month, existing or added by this plan, whose upper bound
// (the first instant of the next month) is at or before the horizon
// AddMonths(now, -retentionMonths). A month added only to be dropped appears
// when the partitions lag far behind now: the months are still added one by
// one so that each token lands in its own month's partition, then dropped.
//
// Negative retentionMonths or monthsAhead count as 0; values beyond a million
// years are clamped. The current month is never dropped.
func Plan(existing []time.Time, now time.Time, retentionMonths, monthsAhead int) (drop, add []time.Time) {
	now = now.UTC()
	retentionMonths = min(max(retentionMonths, 0), maxPlanMonths)
	monthsAhead = min(max(monthsAhead, 0), maxPlanMonths)

	months := make([]time.Time, 0, len(existing))
	for _, e := range existing {
		months = append(months, MonthStart(e))
	}
	slices.SortFunc(months, func(a, b time.Time) int { return a.Compare(b) })
	months = slices.CompactFunc(months, func(a, b time.Time) bool { return a.Equal(b) })

	last := MonthStart(AddMonths(now, monthsAhead))
	next := MonthStart(now)
	if len(months) > 0 {
		next = nextMonth(months[len(months)-1])
	}
	for m := next; !m.After(last); m = nextMonth(m) {
		add = append(add, m)
	}

	horizon := AddMonths(now, -retentionMonths)
	for _, m := range slices.Concat(months, add) {
		if !nextMonth(m).After(horizon) {
			drop = append(drop, m)
		}
	}
	return drop, add
}
