package sqlbackend

import (
	"context"
	"crypto/rand"
	"database/sql/driver"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/lib/pq"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/internal/sqldialect"
)

// Retry policy for transient conflicts (see IsTransient).
const (
	// MaxAttempts is how many times an operation runs in all when it keeps
	// failing with a transient conflict; the last error is then returned,
	// wrapped.
	MaxAttempts = 5
	// MaxConnWait bounds how long an operation whose context has no
	// deadline waits for the server to accept a connection when it refuses
	// with "too many connections" (MySQL 1040, PostgreSQL 53300); with a
	// deadline, the operation waits until the deadline.
	MaxConnWait = 10 * time.Second
	// maxConnBackoff caps the wait between two connection attempts then.
	maxConnBackoff = 100 * time.Millisecond
	// maxLostAttempts bounds the attempts, beyond MaxAttempts, of an
	// operation whose connections keep dying before anything applied
	// (2*DefaultMaxIdleConns: a pool of dead idle connections is drained).
	maxLostAttempts = 2 * DefaultMaxIdleConns
	// retryBase is the first back-off; each attempt doubles it, and the wait
	// is drawn uniformly from [base/2, base] (jitter).
	retryBase = 4 * time.Millisecond
)

// IsTransient reports whether err is a conflict that the same operation,
// run again, may not meet: a serialization failure or deadlock on
// PostgreSQL (SQLSTATE 40001, 40P01), a deadlock or lock-wait timeout on
// MySQL/MariaDB (1213, 1205), or a busy or locked SQLite database.
func IsTransient(err error) bool { return sqldialect.IsTransient(err) }

// wrap turns a driver error into the backend's: the context's own error when
// ctx is done (drivers report a cancelled statement in their own words),
// backend.ErrAlreadyExists for a duplicate key, else the driver error
// wrapped with the operation's name.
func (b *Backend) wrap(ctx context.Context, op string, err error) error {
	if errors.Is(err, backend.ErrOutcomeUnknown) {
		return err // settled already (outcome.go)
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("authdb: %s: %w", op, ctxErr)
	}
	if sqldialect.IsDuplicate(err) {
		return fmt.Errorf("authdb: %s: %w (%v)", op, backend.ErrAlreadyExists, err)
	}
	if isWsrepNotReady(err) {
		return fmt.Errorf("authdb: %s on %s: %v: %w", op, b.where, errGaleraNotReady, err)
	}
	if b.galera && isLockWaitTimeout(err) && errors.Is(b.galeraReady(ctx), errGaleraNotReady) {
		// A causal read on a node cut off from the majority waits
		// repl.causal_read_timeout, then fails with 1205: not a lock
		// conflict worth retrying (galera.go).
		return fmt.Errorf("authdb: %s on %s: %w (%v)", op, b.where, errGaleraNotReady, err)
	}
	return fmt.Errorf("authdb: %s on %s: %w", op, b.where, err)
}

// Retry runs fn until it succeeds, returns an error that is not worth
// another attempt, the context is done, or MaxAttempts attempts were made;
// between attempts it waits an exponentially growing, jittered back-off.
// Worth another attempt: a transient conflict (IsTransient), or an error
// fn marked as safe to run again (a connection lost before anything was
// committed). fn must leave nothing behind when it fails that way. The error
// returned is fn's last one, or the context's error (wrapped,
// errors.Is-comparable) when ctx is done.
func Retry(ctx context.Context, fn func() error) error { return retry(ctx, 0, nil, fn) }

// retry is Retry, except that with busyBudget > 0 a busy SQLite database is
// waited for (in short jittered sleeps that watch ctx) until busyBudget has
// passed since the first busy error, however many attempts that takes.
// Each retry of a transient or lost-connection error is logged at Debug on
// logger (when not nil), with the attempt, the wait and the error.
func retry(ctx context.Context, busyBudget time.Duration, logger *slog.Logger, fn func() error) error {
	wait, connWait := retryBase, retryBase
	var busySince, fullSince time.Time
	lost := 0
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil {
			return nil
		}
		if errors.Is(err, backend.ErrOutcomeUnknown) {
			return err // never run again blindly (outcome.go)
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			if backend.IsSentinel(err) {
				return err // an outcome, found before the context ended
			}
			if errors.Is(err, ctxErr) {
				return err
			}
			return fmt.Errorf("authdb: %w (after: %v)", ctxErr, err)
		}
		var d time.Duration
		if busyBudget > 0 && sqldialect.IsBusy(err) {
			if busySince.IsZero() {
				busySince = time.Now()
			} else if time.Since(busySince) >= busyBudget {
				return fmt.Errorf("%w (database busy for %v)", err, busyBudget)
			}
			d = busyWait/2 + jitter(busyWait/2)
		} else if sqldialect.IsTooManyConnections(err) {
			// Refused at connection time: no statement was sent. Wait for a
			// free connection within the caller's deadline (at most
			// MaxConnWait without one).
			if fullSince.IsZero() {
				fullSince = time.Now()
			} else if _, ok := ctx.Deadline(); !ok && time.Since(fullSince) >= MaxConnWait {
				return fmt.Errorf("%w (the server had no free connection for %v)", err, MaxConnWait)
			}
			d = connWait/2 + jitter(connWait/2)
			connWait = min(2*connWait, maxConnBackoff)
			if logger != nil {
				logger.Debug("authdb: the server has no free connection; waiting", "wait", d, "error", err)
			}
		} else if isRetryable(err) && !IsTransient(err) && !isDialError(err) && lost < maxLostAttempts {
			// A connection lost by an attempt that certainly did not apply:
			// the pool may hold many a restarted server closed; each such
			// attempt discards one. No back-off: a new connection is tried.
			lost++
			attempt--
			if logger != nil {
				logger.Debug("authdb: retrying after a lost connection", "error", err)
			}
			continue
		} else {
			if attempt >= MaxAttempts || !(IsTransient(err) || isRetryable(err)) {
				if attempt > 1 {
					return fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
				}
				return err
			}
			d = wait/2 + jitter(wait/2)
			wait *= 2
			if logger != nil {
				logger.Debug("authdb: retrying after a transient error", "attempt", attempt, "wait", d, "error", err)
			}
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("authdb: %w (retrying after: %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// retry runs fn with the backend's policy (Retry, and on SQLite the busy
// budget), logging retries on the backend's logger and reporting each to
// the context's backend.Observer (observeRetries).
func (b *Backend) retry(ctx context.Context, fn func() error) error {
	return retry(ctx, b.busyBudget, b.opts.Logger, observeRetries(ctx, fn))
}

// busyWait bounds one sleep while SQLite is busy.
const busyWait = 10 * time.Millisecond

// retryable marks an error after which the operation may run again: its
// connection died before anything it did was committed.
type retryable struct{ error }

func (r retryable) Unwrap() error { return r.error }

func isRetryable(err error) bool {
	var r retryable
	return errors.As(err, &r)
}

// safeToRetry marks err retryable when it says the connection was lost.
// Callers use it only where running the operation again cannot do
// anything twice: reads, idempotent writes, and transactions that had not
// sent COMMIT.
func safeToRetry(err error) error {
	if err != nil && isConnLost(err) && !errors.Is(err, backend.ErrOutcomeUnknown) {
		return retryable{err}
	}
	return err
}

// isConnLost reports whether err says the connection to the server died
// (a killed session, a restarted server, a reset socket).
func isConnLost(err error) bool {
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, errSentLost) || errors.Is(err, mysql.ErrInvalidConn) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		// connection_exception, admin_shutdown, crash_shutdown, cannot_connect_now
		return pqErr.Code.Class() == "08" || pqErr.Code == "57P01" || pqErr.Code == "57P02" || pqErr.Code == "57P03"
	}
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) {
		// ER_SERVER_SHUTDOWN, ER_CONNECTION_KILLED (MariaDB)
		return myErr.Number == 1053 || myErr.Number == 1927
	}
	var opErr *net.OpError
	return errors.As(err, &opErr)
}

// isDialError reports whether err is a failure to connect (the server is
// down or refuses): retried with back-off, not at once.
func isDialError(err error) bool {
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}

// jitter returns a uniformly drawn duration in [0, max] (crypto/rand: the
// project draws every random value from it).
func jitter(max time.Duration) time.Duration {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil || max <= 0 {
		return max
	}
	return time.Duration(binary.LittleEndian.Uint64(b[:]) % uint64(max+1))
}
