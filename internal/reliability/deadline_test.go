package reliability

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/backend/sqlbackend"
	"github.com/authdb/authdb/internal/bench"
)

// promptly is how soon after its deadline or cancellation a call must return.
const promptly = 500 * time.Millisecond

// blocker holds a lock that makes the backend's write on the token wait:
// a row lock of an open transaction on PostgreSQL and MariaDB, SQLite's
// write lock (BEGIN IMMEDIATE) on SQLite.
type blocker struct {
	conn *sql.Conn
	tx   *sql.Tx
}

func block(t *testing.T, e *env, jti uuid.UUID) *blocker {
	t.Helper()
	bl := newBlocker(t, e)
	bl.lock(t, e, jti)
	return bl
}

// newBlocker takes a connection of the raw handle, without locking yet.
func newBlocker(t *testing.T, e *env) *blocker {
	t.Helper()
	conn, err := e.raw.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return &blocker{conn: conn}
}

func (bl *blocker) lock(t *testing.T, e *env, jti uuid.UUID) {
	t.Helper()
	ctx := t.Context()
	if e.engine == "sqlite" {
		// BEGIN IMMEDIATE takes the write lock now (database/sql's BeginTx
		// would be a deferred BEGIN on this handle).
		if _, err := bl.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			t.Fatal(err)
		}
		return
	}
	var err error
	if bl.tx, err = bl.conn.BeginTx(ctx, nil); err != nil {
		t.Fatal(err)
	}
	mustExec(t, bl.tx, e.q(`UPDATE "RefreshTokens" SET "Scope"='locked' WHERE "JTI"=?`), jtiArg(e, jti))
}

func (bl *blocker) release(t *testing.T) {
	t.Helper()
	var err error
	if bl.tx != nil {
		err = bl.tx.Rollback()
	} else {
		_, err = bl.conn.ExecContext(context.Background(), "ROLLBACK")
	}
	if err != nil {
		t.Errorf("release the lock: %v", err)
	}
	bl.conn.Close()
}

// TestDeadlineWhileBlocked makes the backend's write wait for a lock held by
// another connection, then lets its context expire (or cancels it): the
// call must return the context's own error within 0.5 s of that moment, and
// once the lock is released the refused write must not have happened.
func TestDeadlineWhileBlocked(t *testing.T) {
	for _, engine := range sqlEngines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			for _, how := range []string{"deadline", "cancel"} {
				t.Run(how, func(t *testing.T) {
					e := newEnv(t, engine)
					var logs syncBuffer
					b, sent := e.openWatched(t, backend.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
					defer func() {
						if t.Failed() {
							t.Logf("backend log:\n%s", logs.String())
						}
					}()
					jti := e.newJTI()
					if err := b.InsertRefreshToken(t.Context(), jti, "blocked", "s"); err != nil {
						t.Fatal(err)
					}
					bl := block(t, e, jti)
					released := false
					defer func() {
						if !released {
							bl.release(t)
						}
					}()

					var ctx context.Context
					var cancel context.CancelFunc
					if how == "deadline" {
						ctx, cancel = context.WithTimeout(t.Context(), 300*time.Millisecond)
					} else {
						ctx, cancel = context.WithCancel(t.Context())
					}
					defer cancel()
					done := make(chan error, 1)
					sent.Record(true)
					began := time.Now()
					go func() { done <- b.RevokeRefreshToken(ctx, jti) }()

					var end time.Time // when the context ended
					if how == "cancel" {
						if engine == "sqlite" {
							waitUpdateSent(t, sent)
						} else {
							waitForLockWait(t, e, newKiller(t, e))
						}
						select {
						case err := <-done:
							t.Fatalf("the write returned (%v) while the lock was held", err)
						default:
						}
						end = time.Now()
						cancel()
					} else {
						end = began.Add(300 * time.Millisecond)
					}
					var err error
					select {
					case err = <-done:
					case <-time.After(30 * time.Second):
						t.Fatal("the call did not return 30s after its context ended")
					}
					late := time.Since(end)
					want := context.DeadlineExceeded
					if how == "cancel" {
						want = context.Canceled
					}
					if !errors.Is(err, want) {
						t.Errorf("error = %v, want errors.Is(err, %v)", err, want)
					}
					if late > promptly {
						t.Errorf("returned %v after the context ended, want within %v", late, promptly)
					}
					bl.release(t)
					released = true
					wantUnwritten(t, e, b, jti)
					t.Logf("%s %s: returned %v after the context ended: %v", engine, how, late.Round(time.Millisecond), err)
				})
			}
		})
	}
}

// openWatched is e.open, except that on SQLite the backend's driver
// connections record the statements they send (sqlbackend.OpenWrapped with
// internal/bench's counter), so that a test can see a write reach SQLite:
// unlike PostgreSQL and MariaDB, SQLite has no view of a writer waiting for
// its lock. The counter is returned on every engine; only SQLite's records.
func (e *env) openWatched(t *testing.T, opts ...backend.Option) (backend.Backend, *bench.Counter) {
	t.Helper()
	sent := new(bench.Counter)
	if e.engine != "sqlite" {
		return e.open(t, opts...), sent
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	all := append([]backend.Option{backend.WithClock(e.clock.Now)}, opts...)
	b, err := sqlbackend.OpenWrapped(ctx, e.url, func(c driver.Connector) driver.Connector { return bench.Count(c, sent) }, all...)
	if err != nil {
		t.Fatalf("open %s: %v", e.engine, err)
	}
	t.Cleanup(func() { b.Close() })
	return b, sent
}

// waitUpdateSent waits until an UPDATE has been handed to SQLite since
// sent.Record(true) (the counter records a prepared statement's execution
// before the driver runs it). With another connection holding the write
// lock, that UPDATE is then waiting for it: in SQLite's busy handler or in
// the backend's busy loop, either way blocked.
func waitUpdateSent(t *testing.T, sent *bench.Counter) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, st := range sent.Log() {
			if strings.HasPrefix(st.Query, "UPDATE") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no UPDATE reached SQLite within 10s; statements sent: %v", sent.Log())
		}
		time.Sleep(time.Millisecond)
	}
}

// wantUnwritten checks, once the blocking lock is gone and any orphaned
// server-side statement had time to finish, that the refused revocation did
// not happen.
func wantUnwritten(t *testing.T, e *env, b backend.Backend, jti uuid.UUID) {
	t.Helper()
	if e.engine != "sqlite" {
		k := newKiller(t, e)
		waitNoActiveStatement(t, e, k)
	}
	tok, err := b.GetRefreshToken(t.Context(), jti)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Status != backend.TokenCreated {
		t.Errorf("the cancelled revocation was written after all: token %+v", tok)
	}
}

// waitNoActiveStatement polls until no session of the test database runs a
// statement (a statement whose client gave up may still run on the server).
func waitNoActiveStatement(t *testing.T, e *env, k *killer) {
	t.Helper()
	query := `SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND state = 'active' AND pid <> pg_backend_pid()`
	if e.engine == "mysql" {
		query = `SELECT count(*) FROM information_schema.PROCESSLIST WHERE DB = ? AND COMMAND = 'Query' AND ID <> CONNECTION_ID()`
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := k.db.QueryRowContext(t.Context(), query, e.dbName).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d statements still running on the server 10s after the lock was released", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNoGoroutineOutlivesClose opens a backend, uses it (including a call
// cancelled while blocked on the SQL engines), closes it, and checks that
// the goroutine count returns to what it was before the open.
func TestNoGoroutineOutlivesClose(t *testing.T) {
	// Not parallel: the goroutine count is the whole process's.
	for _, engine := range allEngines {
		t.Run(engine, func(t *testing.T) {
			e := newEnv(t, engine)
			jti := e.newJTI()
			var bl *blocker
			var k *killer
			if e.raw != nil {
				if engine != "sqlite" {
					k = newKiller(t, e)
					if _, err := k.sessions(t.Context()); err != nil { // its connection opens now
						t.Fatal(err)
					}
				}
			}
			setup := e.open(t)
			if err := setup.InsertRefreshToken(t.Context(), jti, "g", "s"); err != nil {
				t.Fatal(err)
			}
			setup.Close()
			if e.raw != nil {
				bl = newBlocker(t, e) // its connection exists before the count
			}
			waitGoroutinesSettle()
			before := runtime.NumGoroutine()

			b, sent := e.openWatched(t)
			ctx := t.Context()
			warmPool(t, b, 4)
			for range 20 {
				if _, _, err := b.InsertDeviceFlow(ctx, "c", "s"); err != nil {
					t.Fatal(err)
				}
			}
			if bl != nil {
				bl.lock(t, e, jti)
				cctx, cancel := context.WithCancel(ctx)
				done := make(chan error, 1)
				sent.Record(true)
				go func() { done <- b.RevokeRefreshToken(cctx, jti) }()
				if k != nil {
					waitForLockWait(t, e, k)
				} else {
					waitUpdateSent(t, sent)
				}
				cancel()
				if err := <-done; !errors.Is(err, context.Canceled) {
					t.Errorf("blocked call cancelled: %v", err)
				}
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			if bl != nil {
				bl.release(t) // its connection goes back to the raw pool, still open
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				n := runtime.NumGoroutine()
				if n <= before {
					t.Logf("%s: %d goroutines before Open, %d after Close", engine, before, n)
					return
				}
				if time.Now().After(deadline) {
					buf := make([]byte, 1<<20)
					buf = buf[:runtime.Stack(buf, true)]
					t.Fatalf("%d goroutines before Open, %d 10s after Close:\n%s", before, n, buf)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// waitGoroutinesSettle gives goroutines of earlier steps (closed pools'
// openers, finished watchers) a moment to exit before a count is taken.
func waitGoroutinesSettle() {
	prev := runtime.NumGoroutine()
	for range 50 {
		time.Sleep(10 * time.Millisecond)
		n := runtime.NumGoroutine()
		if n == prev {
			return
		}
		prev = n
	}
}
