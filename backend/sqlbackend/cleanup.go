package sqlbackend

import (
	"context"
	"fmt"
	"time"

	"github.com/authdb/authdb/backend"
)

// CleanExpiredDeviceFlows implements backend.Backend: deletes device flows
// with CreationTime < now-maxRetention (index ix_DeviceFlows_CreationTime)
// in batches (see cleanup).
func (b *Backend) CleanExpiredDeviceFlows(ctx context.Context, maxRetention time.Duration) (int64, error) {
	return b.cleanup(ctx, "clean expired device flows", "DeviceFlows", b.q.cleanDevices,
		b.timeArg(cleanBefore(b.now(), maxRetention)))
}

// CleanExpiredAuthorizationFlows implements backend.Backend, as
// CleanExpiredDeviceFlows (index ix_AuthorizationFlows_CreationTime).
func (b *Backend) CleanExpiredAuthorizationFlows(ctx context.Context, maxRetention time.Duration) (int64, error) {
	return b.cleanup(ctx, "clean expired authorization flows", "AuthorizationFlows", b.q.cleanAuths,
		b.timeArg(cleanBefore(b.now(), maxRetention)))
}

// CleanExpiredRefreshTokens implements backend.Backend: deletes tokens with
// JTI < LowestUUIDv7(now-maxRetention), a range on the primary key (on
// MySQL the statement touches only the partitions below the bound).
func (b *Backend) CleanExpiredRefreshTokens(ctx context.Context, maxRetention time.Duration) (int64, error) {
	return b.cleanup(ctx, "clean expired refresh tokens", "RefreshTokens", b.q.cleanTokens,
		b.idArg(backend.LowestUUIDv7(b.now().Add(-maxRetention))))
}

// cleanup deletes in batches of at most Options.CleanupBatchSize rows per
// statement, each its own transaction, so that no statement holds locks
// for long, until a batch deletes fewer rows; after each batch it calls
// Options.CleanupProgress, and before the next one it waits
// Options.CleanupPause (backend.WithCleanupPause) with no connection held.
// On error, or when ctx ends during a wait, it returns the rows deleted so
// far with the error (the deleted batches stay deleted).
func (b *Backend) cleanup(ctx context.Context, op, table, query string, bound any) (int64, error) {
	if err := start(ctx, op); err != nil {
		return 0, err
	}
	batch := b.opts.CleanupBatchSize
	if batch <= 0 {
		batch = backend.DefaultCleanupBatchSize
	}
	var total int64
	for {
		var n int64
		err := b.retry(ctx, func() error {
			pctx, p := withProbe(ctx)
			var err error
			if n, err = b.write(pctx, query, bound, batch); err != nil {
				n = 0
				// Deleting again does no harm; a batch lost with the context
				// is ErrOutcomeUnknown (its count is unknown).
				return b.wrap(ctx, op, b.settle(ctx, op, p, err, true, nil))
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += n
		if b.opts.CleanupProgress != nil {
			b.opts.CleanupProgress(table, total)
		}
		if n < int64(batch) {
			return total, nil
		}
		if err := pause(ctx, b.opts.CleanupPause); err != nil {
			return total, fmt.Errorf("authdb: %s: %w", op, err)
		}
	}
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
