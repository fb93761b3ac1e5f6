package sqlbackend

import (
	"context"
	"errors"
	"fmt"
	"time"

	"entgo.io/ent/dialect"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/internal/sqldialect"
)

// errRaced is returned by one attempt of an operation whose conditional
// write lost to a concurrent call that the attempt's read did not see yet;
// the operation runs again (at most MaxAttempts times).
var errRaced = errors.New("authdb: concurrent change, try again")

// start checks the context before an operation does anything.
func start(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("authdb: %s: %w", op, err)
	}
	return nil
}

// InsertDeviceFlow implements backend.Backend: one INSERT per user code
// tried (PostgreSQL and SQLite: ON CONFLICT DO NOTHING, a taken code
// affects no row; MySQL: a duplicate-key error), at most
// backend.MaxUserCodeAttempts codes, then backend.ErrCodeCollision.
func (b *Backend) InsertDeviceFlow(ctx context.Context, clientID, scope string) (string, string, error) {
	const op = "insert device flow"
	if err := start(ctx, op); err != nil {
		return "", "", err
	}
	if err := backend.CheckDeviceFlow(clientID, scope); err != nil {
		return "", "", fmt.Errorf("authdb: %s: %w", op, err)
	}
	if err := b.checkColumns("DeviceFlows", "ClientID", "client_id", clientID, "Scope", "scope", scope); err != nil {
		return "", "", fmt.Errorf("authdb: %s: %w", op, err)
	}
	var userCode, deviceCode string
	err := b.retryWrite(ctx, op, func() error {
		for range backend.MaxUserCodeAttempts {
			uc, err := b.opts.UserCodeGenerator()
			if err != nil {
				return fmt.Errorf("authdb: %s: %w", op, err)
			}
			dc, err := backend.GenerateCode()
			if err != nil {
				return fmt.Errorf("authdb: %s: %w", op, err)
			}
			pctx, p := withProbe(ctx)
			hash := backend.HashCode(dc)
			n, err := b.write(pctx, b.q.insertDevice, uc, b.timeArg(b.now()), clientID, scope, hash)
			if err != nil {
				if sqldialect.IsDuplicate(err) && ctx.Err() == nil {
					continue // the user code (or, by a miracle, the device code) is taken
				}
				// A lost reply: the flow is read back. Inserting again (new
				// codes) at worst leaves an orphan flow nobody has the codes of.
				err = b.settle(ctx, op, p, err, true, b.existsVerdict(b.q.deviceStatus, hash))
				if err != nil {
					return b.wrap(ctx, op, err)
				}
				n = 1
			}
			if n == 0 {
				continue
			}
			userCode, deviceCode = uc, dc
			return nil
		}
		return fmt.Errorf("authdb: %s: %d user codes tried, all taken: %w", op, backend.MaxUserCodeAttempts, backend.ErrCodeCollision)
	})
	if err != nil {
		return "", "", err
	}
	return userCode, deviceCode, nil
}

// DeviceFlowValidateUserCode implements backend.Backend: one SELECT.
func (b *Backend) DeviceFlowValidateUserCode(ctx context.Context, userCode string, maxValidity time.Duration) (string, error) {
	const op = "validate user code"
	if err := start(ctx, op); err != nil {
		return "", err
	}
	code := backend.NormalizeUserCode(userCode)
	if backend.CheckString("user_code", code, backend.UserCodeLength, true) != nil {
		return "", fmt.Errorf("authdb: %s %q: %w", op, code, backend.ErrNotFound)
	}
	since := b.timeArg(liveSince(b.now(), maxValidity))
	var scope string
	found, err := b.readRow(ctx, op, b.q.validateUserCode, []any{code, since}, &scope)
	if err == nil && !found {
		err = fmt.Errorf("authdb: %s %q: %w", op, code, backend.ErrNotFound)
	}
	return scope, err
}

// DeviceFlowInsertIDToken implements backend.Backend: one conditional
// UPDATE (PENDING and live) that also sets READY.
func (b *Backend) DeviceFlowInsertIDToken(ctx context.Context, userCode string, idToken map[string]any, maxValidity time.Duration) error {
	const op = "insert device flow id token"
	if err := start(ctx, op); err != nil {
		return err
	}
	tok, err := backend.EncodeIDToken(idToken)
	if err == nil {
		err = b.checkColumns("DeviceFlows", "IDToken", "id_token", string(tok))
	}
	if err != nil {
		return fmt.Errorf("authdb: %s: %w", op, err)
	}
	code := backend.NormalizeUserCode(userCode)
	if backend.CheckString("user_code", code, backend.UserCodeLength, true) != nil {
		return fmt.Errorf("authdb: %s %q: %w", op, code, backend.ErrNotPending)
	}
	since := b.timeArg(liveSince(b.now(), maxValidity))
	own := b.idTokenVerdict(code, tok)
	lost := false // an attempt lost its reply: a flow found READY may be this call's
	return b.retryWrite(ctx, op, func() error {
		pctx, p := withProbe(ctx)
		n, err := b.write(pctx, b.q.deviceInsertIDToken, string(tok), code, since)
		if err != nil {
			if err = b.settle(ctx, op, p, err, true, own); err != nil {
				lost = lost || isRetryable(err)
				return b.wrap(ctx, op, err)
			}
			return nil
		}
		if n == 0 {
			if lost {
				if v, err := own(ctx); err == nil && v == applied {
					return nil
				}
			}
			return fmt.Errorf("authdb: %s %q: %w", op, code, backend.ErrNotPending)
		}
		return nil
	})
}

// GetDeviceFlow implements backend.Backend: one SELECT by the hashed code.
func (b *Backend) GetDeviceFlow(ctx context.Context, deviceCode string) (backend.DeviceFlow, error) {
	const op = "get device flow"
	if err := start(ctx, op); err != nil {
		return backend.DeviceFlow{}, err
	}
	var r deviceRow
	found, err := b.readRow(ctx, op, b.q.getDevice, []any{backend.HashCode(deviceCode)}, r.dest()...)
	if err != nil {
		return backend.DeviceFlow{}, err
	}
	if !found {
		return backend.DeviceFlow{}, fmt.Errorf("authdb: %s: %w", op, backend.ErrNotFound)
	}
	return r.flow()
}

// readRow runs a read of at most one row into dest with the backend's
// retry policy (a lost connection is retried: a read does nothing twice);
// found is false when there is no row. Driver errors are wrapped with op.
func (b *Backend) readRow(ctx context.Context, op, query string, args []any, dest ...any) (found bool, err error) {
	err = b.retry(ctx, func() error {
		var err error
		if found, err = queryRow(ctx, b.pool, query, args, dest...); err != nil {
			return b.wrap(ctx, op, safeToRetry(err))
		}
		return nil
	})
	return found, err
}

// UpdateDeviceFlowStatus implements backend.Backend: one UPDATE.
func (b *Backend) UpdateDeviceFlowStatus(ctx context.Context, deviceCode string, status backend.FlowStatus) error {
	return b.updateFlowStatus(ctx, "update device flow status", b.q.updateDeviceStatus, b.q.deviceStatus, deviceCode, status)
}

// updateFlowStatus sets the status of the flow whose code hashes to the
// stored one, with query (updateDeviceStatus or updateAuthStatus): one
// UPDATE, run again after a lost connection since it is idempotent.
func (b *Backend) updateFlowStatus(ctx context.Context, op, query, statusQuery, code string, status backend.FlowStatus) error {
	if err := start(ctx, op); err != nil {
		return err
	}
	if err := backend.CheckFlowStatus(status); err != nil {
		return fmt.Errorf("authdb: %s: %w", op, err)
	}
	hash := backend.HashCode(code)
	return b.retryWrite(ctx, op, func() error {
		pctx, p := withProbe(ctx)
		n, err := b.write(pctx, query, string(status), hash)
		if err != nil {
			if err = b.settle(ctx, op, p, err, true, b.statusVerdict(statusQuery, hash, status)); err != nil {
				return b.wrap(ctx, op, err) // idempotent
			}
			return nil
		}
		if n == 0 {
			return fmt.Errorf("authdb: %s: %w", op, backend.ErrNotFound)
		}
		return nil
	})
}

// ConsumeDeviceFlow implements backend.Backend. Exactly-once comes from a
// conditional UPDATE (READY and live -> DONE) whose affected row decides the
// winner:
//   - PostgreSQL: one statement on every path (UPDATE ... RETURNING in a
//     CTE, with the unchanged row read from the same snapshot when the
//     update matched nothing);
//   - SQLite: UPDATE ... RETURNING, and one SELECT on the failure path;
//   - MySQL: a SELECT (which alone answers the failure paths, such as the
//     polling client's authorization_pending), then the conditional UPDATE.
func (b *Backend) ConsumeDeviceFlow(ctx context.Context, deviceCode string, maxValidity time.Duration) (backend.DeviceFlow, error) {
	const op = "consume device flow"
	if err := start(ctx, op); err != nil {
		return backend.DeviceFlow{}, err
	}
	hash := backend.HashCode(deviceCode)
	sinceT := liveSince(b.now(), maxValidity)
	since := b.timeArg(sinceT)
	var r deviceRow
	err := b.retryRaced(ctx, opName(op), func() error {
		r = deviceRow{}
		return b.consumeDeviceOnce(ctx, hash, since, sinceT, &r)
	})
	if err != nil {
		return backend.DeviceFlow{}, err
	}
	return r.flow()
}

func (b *Backend) consumeDeviceOnce(ctx context.Context, hash string, since any, sinceT time.Time, r *deviceRow) error {
	pctx, p := withProbe(ctx)
	lost := func(err error) error {
		return b.settle(ctx, "consume device flow", p, err, false, b.consumeVerdict(b.q.deviceStatus, hash))
	}
	switch b.dialect {
	case dialect.Postgres:
		var done bool
		found, err := queryRow(pctx, b.pool, b.q.consumeDevice, []any{hash, since, hash}, append([]any{&done}, r.dest()...)...)
		if err != nil {
			return lost(err)
		}
		if !found {
			return fmt.Errorf("authdb: consume device flow: %w", backend.ErrNotFound)
		}
		if done {
			return nil
		}
		return deviceFailure(r, sinceT)
	case dialect.SQLite:
		found, err := queryRow(pctx, b.pool, b.q.consumeDevice, []any{hash, since}, r.dest()...)
		if err != nil {
			return lost(err)
		}
		if found {
			return nil
		}
		found, err = queryRow(ctx, b.pool, b.q.getDevice, []any{hash}, r.dest()...)
		if err != nil {
			return safeToRetry(err)
		}
		if !found {
			return fmt.Errorf("authdb: consume device flow: %w", backend.ErrNotFound)
		}
		return deviceFailure(r, sinceT)
	default: // MySQL
		found, err := queryRow(ctx, b.pool, b.q.getDevice, []any{hash}, r.dest()...)
		if err != nil {
			return safeToRetry(err)
		}
		if !found {
			return fmt.Errorf("authdb: consume device flow: %w", backend.ErrNotFound)
		}
		if err := deviceFailure(r, sinceT); !errors.Is(err, errRaced) {
			return err // not READY and live: nothing to update
		}
		n, err := b.write(pctx, b.q.consumeDevice, hash, since)
		if err != nil {
			return lost(err)
		}
		if n == 0 {
			return errRaced
		}
		r.f.Status = backend.StatusDone
		return nil
	}
}

// deviceFailure says why a device flow that the conditional update did
// not match cannot be consumed, in the contract's order; errRaced when it
// reads as consumable (a concurrent call changed it since, or, on MySQL,
// it is the row to update).
func deviceFailure(r *deviceRow, since time.Time) error {
	const op = "authdb: consume device flow %s"
	switch {
	case r.f.Status == backend.StatusDone:
		return fmt.Errorf(op+": %w", r.f.UserCode, backend.ErrAlreadyUsed)
	case r.f.CreationTime.Before(since):
		return fmt.Errorf(op+": %w", r.f.UserCode, backend.ErrExpired)
	case r.f.Status == backend.StatusPending:
		return fmt.Errorf(op+": %w", r.f.UserCode, backend.ErrAuthorizationPending)
	case r.f.Status == backend.StatusReady:
		if err := unreadableIDToken(r.idToken, &r.f.IDToken); err != nil {
			return fmt.Errorf(op+": %w: %w", r.f.UserCode, backend.ErrFlowFailed, err)
		}
		return errRaced
	}
	return fmt.Errorf(op+" (status %s): %w", r.f.UserCode, r.f.Status, backend.ErrFlowFailed)
}

// opName is a constant operation name as retryRaced takes it (a
// fmt.Stringer, so that a rotation can name itself only when an error
// needs it): converting a constant to it allocates nothing.
type opName string

func (o opName) String() string { return string(o) }

// retryRaced runs once, one attempt of a conditional write (a consume, a
// rotation), again while it reports errRaced, at most MaxAttempts times in
// all, within the backend's retry policy (b.retry), each attempt inside
// the write gate (writegate.go). Sentinel errors are returned as they are
// (once wraps them with their context), any other error is a driver error
// and is wrapped with op.
func (b *Backend) retryRaced(ctx context.Context, op fmt.Stringer, once func() error) error {
	if b.gate != nil {
		once = b.gated(ctx, op.String(), once)
	}
	return b.retry(ctx, func() error {
		for range MaxAttempts {
			err := once()
			if !errors.Is(err, errRaced) {
				if err != nil && !backend.IsSentinel(err) {
					return b.wrap(ctx, op.String(), err)
				}
				return err
			}
		}
		return fmt.Errorf("authdb: %s: %w", op, errRaced)
	})
}
