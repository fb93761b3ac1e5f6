package partition

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/authdb/authdb/backend"
)

// later14 is testNow plus 14 months: with 12 months of retention and 12
// ahead, maintenance of Setup's layout adds 3 months and drops 2 (TestMaintain).
var later14 = AddMonths(testNow, 14)

// TestMaintainPaced: the statements are a month each, Pause apart; a
// context that ends during a pause stops the call with what it changed in
// its report, the server's layout agrees with that report, and a second
// call completes the plan.
func TestMaintainPaced(t *testing.T) {
	db := newMySQL(t)
	ctx := context.Background()
	if _, err := Setup(ctx, db, testNow, nil); err != nil {
		t.Fatal(err)
	}
	plan, err := PlanMaintenance(ctx, db, later14, 12, 12)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Added) != 3 || len(plan.Dropped) != 2 {
		t.Fatalf("plan adds %d and drops %d months, want 3 and 2", len(plan.Added), len(plan.Dropped))
	}

	// Pauses of 400 ms and a context of 600 ms: at least the first
	// statement runs, and the call cannot finish its five statements
	// (four pauses, 1.6 s).
	const pauseLen = 400 * time.Millisecond
	short, cancel := context.WithTimeout(ctx, 600*time.Millisecond)
	defer cancel()
	start := time.Now()
	rep, err := MaintainPaced(short, db, later14, 12, 12, Pacing{Pause: pauseLen, LockWait: time.Second})
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("MaintainPaced with a 600 ms context and 400 ms pauses: %v, want context.DeadlineExceeded", err)
	}
	changed := len(rep.Added) + len(rep.Dropped)
	if changed < 1 || changed > 2 {
		t.Fatalf("stopped after %d statements (added %q, dropped %q), want 1 or 2", changed, names(rep.Added), names(rep.Dropped))
	}
	if names(rep.Existing) != names(plan.Existing) {
		t.Fatalf("report's Existing %q, want %q", names(rep.Existing), names(plan.Existing))
	}
	if min := time.Duration(changed-1) * pauseLen; took < min {
		t.Fatalf("%d statements took %v, want at least the %v of the pauses between them", changed, took, min)
	}
	// Adds come first, oldest month first: the report is a prefix of the plan.
	if names(rep.Added) != names(plan.Added[:len(rep.Added)]) || len(rep.Dropped) > 0 && len(rep.Added) < 3 {
		t.Fatalf("partial report added %q, dropped %q; want a prefix of the plan's adds %q", names(rep.Added), names(rep.Dropped), names(plan.Added))
	}
	wantPartitions(t, db, month(2026, time.November), rep.Added[len(rep.Added)-1])

	rest, err := MaintainPaced(ctx, db, later14, 12, 12, noPause)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(append(rep.Added, rest.Added...)), names(plan.Added); got != want {
		t.Fatalf("the two calls added %q, want %q", got, want)
	}
	if got, want := names(rest.Dropped), names(plan.Dropped); got != want {
		t.Fatalf("the second call dropped %q, want %q", got, want)
	}
	wantPartitions(t, db, month(2027, time.January), month(2029, time.January))
}

// TestMaintainLockWait: a transaction that holds RefreshTokens open keeps
// the maintenance statement from its metadata lock. The statement gives up
// after LockWait instead of queueing the token traffic behind it for as
// long as the transaction lasts, so an insert made meanwhile completes while
// the transaction is still open; once the transaction ends, the call's
// next attempt succeeds. A transaction that outlasts every attempt makes the
// call fail with an error that says so.
func TestMaintainLockWait(t *testing.T) {
	db := newMySQL(t)
	ctx := context.Background()
	if _, err := Setup(ctx, db, testNow, nil); err != nil {
		t.Fatal(err)
	}
	insertTokens(t, db, jtiAt(testNow))

	hold := func() *sql.Tx {
		t.Helper()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := tx.QueryRow("SELECT COUNT(*) FROM `RefreshTokens`").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return tx
	}

	// 1. The transaction ends once an insert has gone through beside the
	// waiting maintenance.
	tx := hold()
	type result struct {
		rep backend.PartitionReport
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := MaintainPaced(ctx, db, later14, 12, 12, Pacing{Pause: 200 * time.Millisecond, LockWait: time.Second})
		done <- result{rep, err}
	}()
	// Wait until the statement is queued on the metadata lock (the server
	// says so), so that the insert below arrives behind it.
	for {
		var n int
		if err := db.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND STATE = 'Waiting for table metadata lock' AND INFO LIKE 'ALTER TABLE%'").Scan(&n); err != nil {
			tx.Rollback()
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		select {
		case r := <-done:
			tx.Rollback()
			t.Fatalf("maintenance returned (%+v, %v) without waiting for the lock the transaction holds", r.rep, r.err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	ictx, icancel := context.WithTimeout(ctx, 20*time.Second)
	defer icancel()
	start := time.Now()
	if err := insertTokensErr(ictx, db, jtiAt(testNow.Add(time.Minute))); err != nil {
		tx.Rollback()
		t.Fatalf("insert while maintenance waited for the lock held by an open transaction: %v (after %v)", err, time.Since(start))
	}
	waited := time.Since(start)
	select {
	case r := <-done:
		tx.Rollback()
		t.Fatalf("maintenance returned (%+v, %v) while a transaction held the table", r.rep, r.err)
	default:
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("maintenance after the transaction ended: %v", r.err)
	}
	if len(r.rep.Added) != 3 || len(r.rep.Dropped) != 2 {
		t.Fatalf("maintenance added %q, dropped %q; want 3 and 2 months", names(r.rep.Added), names(r.rep.Dropped))
	}
	t.Logf("an insert queued behind the waiting statement went through in %v", waited)

	// 2. A transaction that never ends: every attempt times out.
	tx = hold()
	defer tx.Rollback()
	_, err := MaintainPaced(ctx, db, AddMonths(later14, 1), 12, 12, Pacing{LockWait: time.Second})
	if err == nil || !strings.Contains(err.Error(), "metadata lock") || !isLockWaitTimeout(err) {
		t.Fatalf("maintenance beside a transaction that never ends: %v; want a lock wait timeout (1205) naming the metadata lock", err)
	}
}

// TestMaintainPacingArguments: a negative pacing is refused before anything runs.
func TestMaintainPacingArguments(t *testing.T) {
	db := newMySQL(t)
	for _, p := range []Pacing{{Pause: -time.Second}, {LockWait: -time.Second}} {
		if _, err := MaintainPaced(context.Background(), db, testNow, 12, 12, p); !errors.Is(err, backend.ErrInvalidInput) {
			t.Errorf("MaintainPaced(%+v): %v, want ErrInvalidInput", p, err)
		}
	}
}
