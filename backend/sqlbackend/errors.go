package sqlbackend

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/lib/pq"
	"github.com/mattn/go-sqlite3"

	"github.com/authdb/authdb/backend"
)

// Retry policy for transient conflicts (see IsTransient).
const (
	// MaxAttempts is how many times an operation runs in all when it keeps
	// failing with a transient conflict; the last error is then returned,
	// wrapped.
	MaxAttempts = 5
	// retryBase is the first back-off; each attempt doubles it, and the wait
	// is drawn uniformly from [base/2, base] (jitter).
	retryBase = 4 * time.Millisecond
)

// IsTransient reports whether err is a conflict that the same operation,
// run again, may not meet: a serialization failure or deadlock on
// PostgreSQL (SQLSTATE 40001, 40P01), a deadlock or lock-wait timeout on
// MySQL/MariaDB (1213, 1205), or a busy or locked SQLite database.
func IsTransient(err error) bool {
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		return pqErr.Code == "40001" || pqErr.Code == "40P01"
	}
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) {
		return myErr.Number == 1213 || myErr.Number == 1205
	}
	var liteErr sqlite3.Error
	if errors.As(err, &liteErr) {
		return liteErr.Code == sqlite3.ErrBusy || liteErr.Code == sqlite3.ErrLocked
	}
	return false
}

// isDuplicate reports whether err is a primary-key or unique violation.
func isDuplicate(err error) bool {
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		return pqErr.Code == "23505"
	}
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) {
		return myErr.Number == 1062
	}
	var liteErr sqlite3.Error
	if errors.As(err, &liteErr) {
		return liteErr.ExtendedCode == sqlite3.ErrConstraintPrimaryKey ||
			liteErr.ExtendedCode == sqlite3.ErrConstraintUnique
	}
	return false
}

// wrap turns a driver error into the backend's: the context's own error when
// ctx is done (drivers report a cancelled statement in their own words),
// backend.ErrAlreadyExists for a duplicate key, else the driver error
// wrapped with the operation's name.
func (b *Backend) wrap(ctx context.Context, op string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("authdb: %s: %w", op, ctxErr)
	}
	if isDuplicate(err) {
		return fmt.Errorf("authdb: %s: %w (%v)", op, backend.ErrAlreadyExists, err)
	}
	return fmt.Errorf("authdb: %s on %s: %w", op, b.where, err)
}

// Retry runs fn until it succeeds, returns an error that is not transient
// (IsTransient), the context is done, or MaxAttempts attempts were made;
// between attempts it waits an exponentially growing, jittered back-off.
// fn must be safe to run again after a transient failure: a failed statement
// or transaction left nothing behind. The error returned is fn's last one,
// or the context's error (wrapped, errors.Is-comparable) when ctx is done.
func Retry(ctx context.Context, fn func() error) error {
	wait := retryBase
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil {
			return nil
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			if errors.Is(err, ctxErr) {
				return err
			}
			return fmt.Errorf("authdb: %w (after: %v)", ctxErr, err)
		}
		if attempt >= MaxAttempts || !IsTransient(err) {
			if attempt > 1 && IsTransient(err) {
				return fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
			}
			return err
		}
		d := wait/2 + jitter(wait/2)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("authdb: %w (retrying after: %v)", ctx.Err(), err)
		case <-t.C:
		}
		wait *= 2
	}
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
