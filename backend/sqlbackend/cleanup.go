package sqlbackend

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
)

// CleanExpiredDeviceFlows implements backend.Backend: deletes device flows
// with CreationTime < now-maxRetention (index ix_DeviceFlows_CreationTime)
// in batches (see cleanup).
func (b *Backend) CleanExpiredDeviceFlows(ctx context.Context, maxRetention time.Duration) (int64, error) {
	if err := backend.CheckRetention(maxRetention); err != nil {
		return 0, fmt.Errorf("authdb: clean expired device flows: %w", err)
	}
	return b.cleanup(ctx, cleanSpec{op: "clean expired device flows", table: "DeviceFlows",
		del: b.q.cleanDevices, nth: b.q.nthDevice, lo: b.timeArg(minTime), bound: b.timeArg(cleanBefore(b.now(), maxRetention)),
		key: b.timeKey})
}

// CleanExpiredAuthorizationFlows implements backend.Backend, as
// CleanExpiredDeviceFlows (index ix_AuthorizationFlows_CreationTime).
func (b *Backend) CleanExpiredAuthorizationFlows(ctx context.Context, maxRetention time.Duration) (int64, error) {
	if err := backend.CheckRetention(maxRetention); err != nil {
		return 0, fmt.Errorf("authdb: clean expired authorization flows: %w", err)
	}
	return b.cleanup(ctx, cleanSpec{op: "clean expired authorization flows", table: "AuthorizationFlows",
		del: b.q.cleanAuths, nth: b.q.nthAuth, lo: b.timeArg(minTime), bound: b.timeArg(cleanBefore(b.now(), maxRetention)),
		key: b.timeKey})
}

// CleanExpiredRefreshTokens implements backend.Backend: deletes tokens with
// JTI < LowestUUIDv7(now-maxRetention), a range on the primary key (on
// MySQL the statement touches only the partitions below the bound).
func (b *Backend) CleanExpiredRefreshTokens(ctx context.Context, maxRetention time.Duration) (int64, error) {
	if err := backend.CheckRetention(maxRetention); err != nil {
		return 0, fmt.Errorf("authdb: clean expired refresh tokens: %w", err)
	}
	return b.cleanup(ctx, cleanSpec{op: "clean expired refresh tokens", table: "RefreshTokens",
		del: b.q.cleanTokens, nth: b.q.nthToken, lo: b.idArg(uuid.Nil), bound: b.idArg(backend.LowestUUIDv7(b.now().Add(-maxRetention))),
		key: stringKey})
}

// cleanSpec is one clean-up: its statements and the bounds of its key (a
// flow's CreationTime, a token's JTI).
type cleanSpec struct {
	op, table string
	// del deletes the next batch: (lower bound, bound, limit); nth reads the
	// key of the batch's last row: (lower bound, bound, offset).
	del, nth  string
	lo, bound any
	// key converts nth's column, as the driver returned it, to the next
	// lower bound.
	key func(raw any) (any, error)
}

// cleanup deletes, in key order, in batches of at most
// Options.CleanupBatchSize rows per statement, each its own transaction, so
// that no statement holds locks for long, until a batch deletes fewer rows;
// after each batch it calls Options.CleanupProgress, and before the next one
// it waits Options.CleanupPause (backend.WithCleanupPause) with no
// connection held. On error, or when ctx ends during a wait, it returns the
// rows deleted so far with the error (the deleted batches stay deleted).
//
// Keyset batches: before each batch but the first, one indexed read finds
// the key of the batch's last row (OFFSET batch-1 from the lower bound);
// the batch then deletes from that lower bound, and the next one starts at
// that key. The
// index entries of the rows already deleted (dead until the server's purge
// or vacuum removes them) are thus read again at most once (the first
// batch's, by the second batch's read): without the lower
// bound, each batch scanned them all from the bottom of the range, and a
// clean-up of n rows in batches of k read about n*n/(2k) dead entries
// (measured on PostgreSQL: a batch of 2,000 took 55 ms at first and 200 ms
// once 200,000 rows were gone). Rows inserted below the lower bound while
// the call runs are left to the next call.
func (b *Backend) cleanup(ctx context.Context, c cleanSpec) (int64, error) {
	if err := start(ctx, c.op); err != nil {
		return 0, err
	}
	batch := b.opts.CleanupBatchSize
	if batch <= 0 {
		batch = backend.DefaultCleanupBatchSize
	}
	lo := c.lo
	var total int64
	for {
		// From the second batch on, the key of the batch's last row: the
		// next batch's lower bound (the first batch goes without: a
		// clean-up of fewer rows than a batch stays one statement).
		var raw, next any
		found := false
		if total > 0 {
			var err error
			if found, err = b.readRow(ctx, c.op, c.nth, []any{lo, c.bound, batch - 1}, rawCol{&raw}); err != nil {
				return total, err
			}
			if found {
				if next, err = c.key(raw); err != nil {
					return total, fmt.Errorf("authdb: %s: %w", c.op, err)
				}
			}
		}
		var n int64
		err := b.retryWrite(ctx, c.op, func() error {
			pctx, p := withProbe(ctx)
			var err error
			if n, err = b.write(pctx, c.del, lo, c.bound, batch); err != nil {
				n = 0
				// Deleting again does no harm; a batch lost with the context
				// is ErrOutcomeUnknown (its count is unknown).
				return b.wrap(ctx, c.op, b.settle(ctx, c.op, p, err, true, nil))
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += n
		if b.opts.CleanupProgress != nil {
			b.opts.CleanupProgress(c.table, total)
		}
		if n < int64(batch) {
			return total, nil
		}
		if found {
			lo = next
		}
		if err := pause(ctx, b.opts.CleanupPause); err != nil {
			return total, fmt.Errorf("authdb: %s: %w", c.op, err)
		}
	}
}

// rawCol scans a column's driver value as it is (bytes copied).
type rawCol struct{ v *any }

func (c rawCol) Scan(v any) error {
	if bs, ok := v.([]byte); ok {
		v = string(bs)
	}
	*c.v = v
	return nil
}

// timeKey converts a CreationTime as the driver returned it (timeCol: a
// time.Time or SQLite text, truncated to the second, so never above the
// stored value) to a lower bound argument.
func (b *Backend) timeKey(raw any) (any, error) {
	var t time.Time
	if err := (timeCol{&t}).Scan(raw); err != nil {
		return nil, err
	}
	return b.timeArg(t), nil
}

// stringKey converts a JTI as the driver returned it (uuid text or
// CHAR(32) hex) to a lower bound argument.
func stringKey(raw any) (any, error) {
	s, ok := raw.(string)
	if !ok {
		return nil, fmt.Errorf("clean-up key: unexpected %T", raw)
	}
	return s, nil
}

// pause waits d (nothing when d <= 0), or until ctx ends: then it returns
// the context's error.
func pause(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
