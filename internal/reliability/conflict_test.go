package reliability

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/authdb/authdb/backend"
)

// TestDeadlockIsRetried provokes a real deadlock in which the backend's
// statement is the victim, and shows that the bounded retry hides it: the
// call succeeds with the right result.
//
// The backend revokes a subject's two tokens A and B (one UPDATE that locks
// A, then B) while an admin transaction holds B and then asks for A. The
// server must abort one of the two: the admin is made the one to keep (on
// PostgreSQL its deadlock_timeout is longer, so the backend's session runs
// the deadlock check first and aborts itself; on MariaDB it has written
// more rows, and InnoDB rolls back the lighter transaction). The server's
// own deadlock counter proves that a deadlock happened, and a control run
// of the same scenario with a plain database/sql client, which does not
// retry, shows the error the backend hid.
func TestDeadlockIsRetried(t *testing.T) {
	for _, engine := range servers {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			t.Run("control: plain client", func(t *testing.T) {
				e := newEnv(t, engine)
				b := e.open(t)
				_, err := provokeDeadlock(t, e, b, func(ctx context.Context, sub string) (int64, error) {
					if strings.ContainsAny(sub, `'\`) {
						t.Fatalf("subject %q cannot be inlined", sub)
					}
					// The subject inline (it is a plain constant): one text
					// statement, as the backend sends.
					res, err := e.raw.ExecContext(ctx, e.q(`UPDATE "RefreshTokens" SET "Status"='REVOKED' WHERE "Status"='CREATED' AND "Sub"='`+sub+`'`))
					if err != nil {
						return 0, err
					}
					return res.RowsAffected()
				})
				if !isDeadlock(err) {
					t.Fatalf("the plain client's UPDATE: %v, want the server's deadlock error", err)
				}
				t.Logf("%s: without a retry the caller sees: %v", engine, err)
			})
			t.Run("backend", func(t *testing.T) {
				e := newEnv(t, engine)
				var logs syncBuffer
				b := e.open(t, backend.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
				n, err := provokeDeadlock(t, e, b, b.RevokeUserRefreshTokens)
				if err != nil {
					t.Fatalf("RevokeUserRefreshTokens after a deadlock: %v (the retry should have hidden it)", err)
				}
				if n != 2 {
					t.Errorf("RevokeUserRefreshTokens = %d, want 2", n)
				}
				// The backend's own account: it retried after the deadlock.
				var retried []string
				for _, line := range strings.Split(logs.String(), "\n") {
					if strings.Contains(line, "retrying") && (strings.Contains(line, "40P01") || strings.Contains(line, "1213")) {
						retried = append(retried, line)
					}
				}
				// At least one: under load the retried statement can meet the
				// admin's locks again, and the bounded retry hides that too.
				if len(retried) == 0 {
					t.Errorf("want a logged retry after the deadlock, got none; log:\n%s", logs.String())
				} else {
					t.Logf("%d retries, the first: %s", len(retried), retried[0])
				}
			})
		})
	}
}

// provokeDeadlock stores two tokens of one subject, then runs revoke (the
// victim) against an admin transaction that closes a lock cycle with it,
// and returns revoke's result once the admin committed. It checks that the
// server counted a deadlock.
func provokeDeadlock(t *testing.T, e *env, b backend.Backend, revoke func(ctx context.Context, sub string) (int64, error)) (int64, error) {
	t.Helper()
	k := newKiller(t, e) // a watcher on the server's default database
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	sub := "deadlock-" + e.engine
	a, bb := orderedJTIs(e)
	for _, jti := range []uuid.UUID{a, bb} {
		if err := b.InsertRefreshToken(ctx, jti, sub, "openid"); err != nil {
			t.Fatal(err)
		}
	}
	if e.engine == "mysql" {
		mustExec(t, e.raw, "CREATE TABLE ballast (id INT PRIMARY KEY)")
	}
	before := deadlocks(t, e, k)

	admin, err := e.raw.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	adminTx, err := admin.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer adminTx.Rollback()
	if e.engine == "postgres" {
		mustExec(t, adminTx, "SET LOCAL deadlock_timeout = '20s'")
	} else {
		var vals []string
		for i := range 500 {
			vals = append(vals, fmt.Sprintf("(%d)", i))
		}
		mustExec(t, adminTx, "INSERT INTO ballast (id) VALUES "+strings.Join(vals, ","))
	}
	mustExec(t, adminTx, e.q(`UPDATE "RefreshTokens" SET "Scope"='admin' WHERE "JTI"=?`), jtiArg(e, bb))

	type result struct {
		n   int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := revoke(ctx, sub)
		done <- result{n, err}
	}()
	waitForLockWait(t, e, k)
	// Now the victim holds A and waits for B: asking for A closes the cycle.
	mustExec(t, adminTx, e.q(`UPDATE "RefreshTokens" SET "Scope"='admin' WHERE "JTI"=?`), jtiArg(e, a))
	if err := adminTx.Commit(); err != nil {
		t.Fatalf("admin commit: %v", err)
	}
	r := <-done
	if r.err == nil {
		for _, jti := range []uuid.UUID{a, bb} {
			tok, err := b.GetRefreshToken(ctx, jti)
			if err != nil || tok.Status != backend.TokenRevoked || tok.Scope != "admin" {
				t.Errorf("token %s = %+v, %v; want REVOKED with the admin's scope", jti, tok, err)
			}
		}
	}
	b.Close()                // PostgreSQL sessions report their statistics when they end
	e.raw.SetMaxIdleConns(0) // the plain client's session too
	after := waitDeadlocks(t, e, k, before)
	t.Logf("%s: server deadlock counter %d -> %d", e.engine, before, after)
	return r.n, r.err
}

// isDeadlock reports whether err is the server's deadlock error
// (PostgreSQL 40P01, MySQL 1213).
func isDeadlock(err error) bool {
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		return pqErr.Code == "40P01"
	}
	var myErr *mysql.MySQLError
	return errors.As(err, &myErr) && myErr.Number == 1213
}

// orderedJTIs returns two JTIs with a < b (index order on every engine).
func orderedJTIs(e *env) (a, b uuid.UUID) {
	a, b = e.newJTI(), e.newJTI()
	if strings.Compare(a.String(), b.String()) > 0 {
		a, b = b, a
	}
	return a, b
}

func jtiArg(e *env, id uuid.UUID) string {
	if e.engine == "postgres" {
		return id.String()
	}
	return backend.HexJTI(id)
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func mustExec(t *testing.T, db execer, query string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(t.Context(), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// waitForLockWait polls until a session of the test database other than
// the raw handle's waits for a row lock.
func waitForLockWait(t *testing.T, e *env, k *killer) {
	t.Helper()
	query := `SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'`
	if e.engine == "mysql" {
		// information_schema.INNODB_TRX does not reliably list a waiting
		// transaction on MariaDB; a statement that has been running for
		// 50 ms on two rows is waiting for a lock (TIME_MS: MariaDB).
		query = `SELECT count(*) FROM information_schema.PROCESSLIST
			WHERE DB = ? AND COMMAND = 'Query' AND INFO LIKE 'UPDATE%' AND TIME_MS > 50`
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		var n int
		if err := k.db.QueryRowContext(t.Context(), query, e.dbName).Scan(&n); err != nil {
			t.Fatalf("watch lock waits: %v", err)
		}
		if n > 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the backend's statement never waited for the admin's lock")
}

// deadlocks reads the server's deadlock counter: PostgreSQL's per database
// (pg_stat_database.deadlocks), InnoDB's global one (Innodb_deadlocks).
func deadlocks(t *testing.T, e *env, k *killer) int64 {
	t.Helper()
	var n int64
	var err error
	if e.engine == "postgres" {
		err = k.db.QueryRowContext(t.Context(), `SELECT deadlocks FROM pg_stat_database WHERE datname = $1`, e.dbName).Scan(&n)
	} else {
		var name string
		err = k.db.QueryRowContext(t.Context(), `SHOW GLOBAL STATUS LIKE 'Innodb_deadlocks'`).Scan(&name, &n)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return 0
	}
	if err != nil {
		t.Fatalf("read the deadlock counter: %v", err)
	}
	return n
}

// waitDeadlocks polls until the counter moved past before (statistics reach
// PostgreSQL's view asynchronously) and returns it.
func waitDeadlocks(t *testing.T, e *env, k *killer, before int64) int64 {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if e.engine == "postgres" {
			// Read fresh statistics, not the transaction's cached snapshot.
			if _, err := k.db.ExecContext(t.Context(), "SELECT pg_stat_clear_snapshot()"); err != nil {
				t.Fatal(err)
			}
		}
		n := deadlocks(t, e, k)
		if n > before {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server counted no deadlock (%d before, %d after): the test provoked none", before, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
