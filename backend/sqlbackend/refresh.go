package sqlbackend

import (
	"context"
	"fmt"

	"entgo.io/ent/dialect"
	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/internal/sqldialect"
)

// InsertRefreshToken implements backend.Backend: one INSERT; a duplicate
// key is backend.ErrAlreadyExists.
func (b *Backend) InsertRefreshToken(ctx context.Context, jti uuid.UUID, sub, scope string) error {
	const op = "insert refresh token"
	if err := start(ctx, op); err != nil {
		return err
	}
	if err := backend.CheckRefreshToken(jti, sub, scope); err != nil {
		return fmt.Errorf("authdb: %s: %w", op, err)
	}
	return b.retry(ctx, func() error {
		if _, err := b.write(ctx, b.q.insertToken, b.idArg(jti), scope, sub); err != nil {
			return b.wrap(ctx, fmt.Sprintf("%s %s", op, jti), err)
		}
		return nil
	})
}

// GetRefreshToken implements backend.Backend: one SELECT by primary key.
func (b *Backend) GetRefreshToken(ctx context.Context, jti uuid.UUID) (backend.RefreshToken, error) {
	const op = "get refresh token"
	if err := start(ctx, op); err != nil {
		return backend.RefreshToken{}, err
	}
	var r tokenRow
	found, err := b.readRow(ctx, op, b.q.getToken, []any{b.idArg(jti)}, r.dest()...)
	if err != nil {
		return backend.RefreshToken{}, err
	}
	if !found {
		return backend.RefreshToken{}, fmt.Errorf("authdb: %s %s: %w", op, jti, backend.ErrNotFound)
	}
	return r.t, nil
}

// GetUserRefreshTokens implements backend.Backend: one SELECT. A subject's
// live tokens are read as "Status"='CREATED' AND "Sub"=?, the range of
// index_status_sub (the two statuses are CREATED and REVOKED, so this is
// "not revoked"), which skips the revoked tokens a long rotation chain
// leaves behind.
func (b *Backend) GetUserRefreshTokens(ctx context.Context, sub string) ([]backend.RefreshToken, error) {
	const op = "get user refresh tokens"
	if err := start(ctx, op); err != nil {
		return nil, err
	}
	query, args := b.q.listAllTokens, []any(nil)
	if sub != "" {
		if backend.CheckString("sub", sub, backend.MaxSubLen, true) != nil {
			return nil, nil // no token has such a subject
		}
		query, args = b.q.listTokens, b.subArgs(sub)
	}
	var out []backend.RefreshToken
	err := b.retry(ctx, func() error {
		out = out[:0]
		rows, err := b.pool.QueryContext(ctx, query, args...)
		if err != nil {
			return b.wrap(ctx, op, safeToRetry(err))
		}
		defer rows.Close()
		var r tokenRow
		dest := r.dest()
		for rows.Next() {
			if err := rows.Scan(dest...); err != nil {
				return b.wrap(ctx, op, err)
			}
			out = append(out, r.t)
		}
		if err := rows.Err(); err != nil {
			return b.wrap(ctx, op, safeToRetry(err))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RevokeRefreshToken implements backend.Backend: one UPDATE (idempotent;
// MySQL counts matched rows, so an already revoked token is found).
func (b *Backend) RevokeRefreshToken(ctx context.Context, jti uuid.UUID) error {
	const op = "revoke refresh token"
	if err := start(ctx, op); err != nil {
		return err
	}
	return b.retry(ctx, func() error {
		n, err := b.write(ctx, b.q.revokeToken, b.idArg(jti))
		if err != nil {
			return b.wrap(ctx, op, safeToRetry(err)) // idempotent
		}
		if n == 0 {
			return fmt.Errorf("authdb: %s %s: %w", op, jti, backend.ErrNotFound)
		}
		return nil
	})
}

// RevokeUserRefreshTokens implements backend.Backend: one UPDATE of the
// subject's CREATED tokens, whose count it returns.
func (b *Backend) RevokeUserRefreshTokens(ctx context.Context, sub string) (int64, error) {
	const op = "revoke user refresh tokens"
	if err := start(ctx, op); err != nil {
		return 0, err
	}
	if err := backend.CheckString("sub", sub, backend.MaxSubLen, true); err != nil {
		return 0, fmt.Errorf("authdb: %s: %w", op, err)
	}
	var n int64
	err := b.retry(ctx, func() error {
		var err error
		if n, err = b.write(ctx, b.q.revokeUser, b.subArgs(sub)...); err != nil {
			return b.wrap(ctx, op, err)
		}
		return nil
	})
	return n, err
}

// RotateRefreshToken implements backend.Backend. The winner of concurrent
// rotations is the one call whose conditional UPDATE ("Status"='CREATED')
// revokes the old token; the others find it revoked and revoke the
// subject's tokens (ErrTokenReused). Statements:
//   - PostgreSQL: one (a CTE: UPDATE ... RETURNING feeding the INSERT);
//     the failure paths add a SELECT (and the revocation);
//   - SQLite: BEGIN IMMEDIATE, UPDATE ... RETURNING, INSERT, COMMIT;
//   - MySQL: a SELECT (which alone answers unknown and replayed tokens),
//     then BEGIN, the conditional UPDATE, INSERT, COMMIT.
//
// A new JTI that exists fails the INSERT: the transaction (or the single
// statement) is rolled back and backend.ErrAlreadyExists returned.
func (b *Backend) RotateRefreshToken(ctx context.Context, oldJTI, newJTI uuid.UUID) (backend.RefreshToken, error) {
	op := "rotate refresh token " + oldJTI.String()
	if err := start(ctx, op); err != nil {
		return backend.RefreshToken{}, err
	}
	if err := backend.CheckJTI("new_jti", newJTI); err != nil {
		return backend.RefreshToken{}, fmt.Errorf("authdb: %s: %w", op, err)
	}
	out := backend.RefreshToken{JTI: oldJTI, Status: backend.TokenRevoked}
	err := b.retryRaced(ctx, op, func() error {
		return b.rotateOnce(ctx, op, oldJTI, newJTI, &out)
	})
	if err != nil {
		return backend.RefreshToken{}, err
	}
	return out, nil
}

func (b *Backend) rotateOnce(ctx context.Context, op string, oldJTI, newJTI uuid.UUID, out *backend.RefreshToken) error {
	oldArg, newArg := b.idArg(oldJTI), b.idArg(newJTI)
	switch b.dialect {
	case dialect.Postgres:
		found, err := queryRow(ctx, b.pool, b.q.rotate, []any{oldArg, newArg}, &out.Scope, &out.Sub)
		if err != nil {
			return dupAsExists(op, newJTI, err)
		}
		if found {
			return nil
		}
		return b.rotateRefused(ctx, op, oldArg)
	case dialect.SQLite:
		tx, err := b.beginTx(ctx, b.q.rotate, b.q.rotateInsert) // BEGIN IMMEDIATE (_txlock=immediate)
		if err != nil {
			return safeToRetry(err)
		}
		found, err := queryRow(ctx, tx, b.q.rotate, []any{oldArg}, &out.Scope, &out.Sub)
		if err == nil && found {
			_, err = exec(ctx, tx, b.q.rotateInsert, newArg, out.Scope, out.Sub)
			if err == nil {
				return b.commitRotation(ctx, tx, newArg, out)
			}
		}
		if err := rollback(tx, op, newJTI, err); err != nil {
			return err
		}
		return b.rotateRefused(ctx, op, oldArg)
	default: // MySQL
		if b.mariaDB {
			return b.rotateMariaDB(ctx, op, oldArg, newArg, newJTI, out)
		}
		var status string
		found, err := queryRow(ctx, b.pool, b.q.getTokenForRot, []any{oldArg}, &status, &out.Scope, &out.Sub)
		if err != nil {
			return safeToRetry(err)
		}
		if !found || status == string(backend.TokenRevoked) {
			return b.refuse(ctx, op, oldArg, found, out.Sub)
		}
		tx, err := b.beginTx(ctx, b.q.rotate, b.q.rotateInsert)
		if err != nil {
			return safeToRetry(err)
		}
		n, err := exec(ctx, tx, b.q.rotate, oldArg)
		if err == nil && n == 1 {
			_, err = exec(ctx, tx, b.q.rotateInsert, newArg, out.Scope, out.Sub)
			if err == nil {
				return b.commitRotation(ctx, tx, newArg, out)
			}
		}
		if err := rollback(tx, op, newJTI, err); err != nil {
			return err
		}
		return errRaced // revoked since the SELECT: read again
	}
}

// rotateMariaDB: BEGIN, the conditional UPDATE, INSERT ... SELECT ...
// RETURNING the subject and scope, COMMIT; when the update matches nothing,
// ROLLBACK and rotateRefused.
func (b *Backend) rotateMariaDB(ctx context.Context, op, oldArg, newArg string, newJTI uuid.UUID, out *backend.RefreshToken) error {
	tx, err := b.beginTx(ctx, b.q.rotate, b.q.rotateInsert)
	if err != nil {
		return safeToRetry(err)
	}
	n, err := exec(ctx, tx, b.q.rotate, oldArg)
	if err == nil && n == 1 {
		var found bool
		found, err = queryRow(ctx, tx, b.q.rotateInsert, []any{newArg, oldArg}, &out.Scope, &out.Sub)
		if err == nil && found {
			return b.commitRotation(ctx, tx, newArg, out)
		}
		if err == nil {
			err = fmt.Errorf("authdb: %s: the revoked token vanished before the copy", op)
		}
	}
	if err := rollback(tx, op, newJTI, err); err != nil {
		return err
	}
	return b.rotateRefused(ctx, op, oldArg)
}

// rotateRefused reads the old token after a rotation's conditional update
// matched nothing and returns why.
func (b *Backend) rotateRefused(ctx context.Context, op, oldArg string) error {
	var status, scope, sub string
	found, err := queryRow(ctx, b.pool, b.q.getTokenForRot, []any{oldArg}, &status, &scope, &sub)
	if err != nil {
		return safeToRetry(err)
	}
	if found && status != string(backend.TokenRevoked) {
		return errRaced // inserted after the update's snapshot
	}
	return b.refuse(ctx, op, oldArg, found, sub)
}

// refuse ends a rotation of an unknown (found false) or revoked token
// (oldArg, as idArg writes it): ErrNotFound, or the replay's revocation of
// every token of sub, reported (reused), and ErrTokenReused.
func (b *Backend) refuse(ctx context.Context, op, oldArg string, found bool, sub string) error {
	if !found {
		return fmt.Errorf("authdb: %s: %w", op, backend.ErrNotFound)
	}
	n, err := b.write(ctx, b.q.revokeUser, b.subArgs(sub)...)
	if err != nil {
		return safeToRetry(err) // revoking again does no harm
	}
	jti, _ := uuid.Parse(oldArg) // dashed or 32 hex digits
	b.reused(ctx, backend.ReuseEvent{Sub: sub, JTI: jti, Scope: backend.RevokeSubject, Revoked: n})
	return fmt.Errorf("authdb: %s: replayed, %d tokens of the subject revoked: %w", op, n, backend.ErrTokenReused)
}

// subArgs are the arguments of the statements that select a subject's
// tokens: MySQL's compare the subject twice (see buildQueries).
func (b *Backend) subArgs(sub string) []any {
	if b.dialect == dialect.MySQL {
		return []any{sub, sub}
	}
	return []any{sub}
}

// rollback ends a rotation's transaction that will not commit, after err
// (nil when the conditional update matched nothing). It returns err marked
// safe to retry (nothing was committed), with a duplicate new JTI as
// backend.ErrAlreadyExists; else the rollback's own error; nil when the
// caller goes on to say why the update matched nothing.
func rollback(tx txQuerier, op string, newJTI uuid.UUID, err error) error {
	rbErr := tx.Rollback()
	if err != nil {
		return safeToRetry(dupAsExists(op, newJTI, err)) // not committed
	}
	return rbErr
}

func dupAsExists(op string, newJTI uuid.UUID, err error) error {
	if sqldialect.IsDuplicate(err) {
		return fmt.Errorf("authdb: %s: new_jti %s: %w", op, newJTI, backend.ErrAlreadyExists)
	}
	return err
}

// commitRotation commits a rotation's transaction. A connection lost during
// COMMIT leaves the outcome unknown: the server may have committed. The new
// token is then read back on another connection; if it is there, CREATED,
// with the old token's subject, the rotation happened and the call
// succeeds, so that a client is not told a rotation failed that landed (its
// retry with the old token would be taken for a replay). Otherwise the
// COMMIT's error is returned as it is (never retried: the COMMIT may still
// land).
func (b *Backend) commitRotation(ctx context.Context, tx txQuerier, newArg string, out *backend.RefreshToken) error {
	err := tx.Commit()
	if err == nil || !isConnLost(err) || ctx.Err() != nil {
		return err
	}
	var r tokenRow
	found, rerr := queryRow(ctx, b.pool, b.q.getToken, []any{newArg}, r.dest()...)
	if rerr == nil && found && r.t.Status == backend.TokenCreated && r.t.Sub == out.Sub {
		b.opts.Logger.Debug("authdb: rotation committed although its COMMIT lost the connection", "error", err)
		return nil
	}
	return err
}

// RevokeRefreshTokenFamily implements backend.Backend.
// TODO(families): not implemented yet.
func (b *Backend) RevokeRefreshTokenFamily(ctx context.Context, jti uuid.UUID) (int64, error) {
	return 0, fmt.Errorf("authdb: revoke refresh token family %s: %w", jti, backend.ErrUnsupported)
}
