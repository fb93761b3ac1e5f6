package sqlbackend

import (
	"context"
	"fmt"

	"entgo.io/ent/dialect"
	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/internal/sqldialect"
)

// InsertRefreshToken implements backend.Backend: one INSERT. A duplicate
// key is backend.ErrAlreadyExists, unless the stored row is identical
// (CREATED, same subject and scope): a retry of one's own insert, a
// success. A lost reply is settled by reading the token back (outcome.go).
func (b *Backend) InsertRefreshToken(ctx context.Context, jti uuid.UUID, sub, scope string) error {
	const op = "insert refresh token"
	if err := start(ctx, op); err != nil {
		return err
	}
	if err := backend.CheckRefreshToken(jti, sub, scope); err != nil {
		return fmt.Errorf("authdb: %s: %w", op, err)
	}
	opj, arg := fmt.Sprintf("%s %s", op, jti), b.idArg(jti)
	return b.retry(ctx, func() error {
		pctx, p := withProbe(ctx)
		_, err := b.write(pctx, b.q.insertToken, arg, scope, sub)
		if err != nil && sqldialect.IsDuplicate(err) {
			return b.ownInsert(ctx, opj, arg, sub, scope, err)
		}
		err = b.settle(ctx, opj, p, err, true, func(rctx context.Context) (verdict, error) {
			return b.tokenVerdict(rctx, arg, sub, scope)
		})
		if err != nil {
			return b.wrap(ctx, opj, err)
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
	arg := b.idArg(jti)
	return b.retry(ctx, func() error {
		pctx, p := withProbe(ctx)
		n, err := b.write(pctx, b.q.revokeToken, arg)
		if err != nil {
			if err = b.settle(ctx, op, p, err, true, b.revokeVerdict(arg)); err != nil {
				return b.wrap(ctx, op, err)
			}
			return nil
		}
		if n == 0 {
			return fmt.Errorf("authdb: %s %s: %w", op, jti, backend.ErrNotFound)
		}
		return nil
	})
}

// RevokeUserRefreshTokens implements backend.Backend: one UPDATE of the
// subject's CREATED tokens, whose count it returns. When the reply is lost
// and the subject is then found with no live token, the call succeeds with
// a count of 0 (the count was in the lost reply).
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
		pctx, p := withProbe(ctx)
		var err error
		if n, err = b.write(pctx, b.q.revokeUser, b.subArgs(sub)...); err != nil {
			n = 0
			if err = b.settle(ctx, op, p, err, true, b.revokeUserVerdict(sub)); err != nil {
				return b.wrap(ctx, op, err)
			}
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
	pctx, p := withProbe(ctx)
	switch b.dialect {
	case dialect.Postgres:
		found, err := queryRow(pctx, b.pool, b.q.rotate, []any{oldArg, newArg}, &out.Scope, &out.Sub)
		if err != nil {
			if sqldialect.IsDuplicate(err) {
				return dupAsExists(op, newJTI, err)
			}
			return b.settle(ctx, op, p, err, true, func(rctx context.Context) (verdict, error) {
				return b.rotationVerdict(rctx, oldArg, newArg, out)
			})
		}
		if found {
			return nil
		}
		return b.rotateRefused(ctx, op, oldArg, newArg, out)
	case dialect.SQLite:
		tx, err := b.beginTx(pctx, b.q.rotate, b.q.rotateInsert) // BEGIN IMMEDIATE (_txlock=immediate)
		if err != nil {
			return safeToRetry(err)
		}
		found, err := queryRow(pctx, tx, b.q.rotate, []any{oldArg}, &out.Scope, &out.Sub)
		if err == nil && found {
			_, err = exec(pctx, tx, b.q.rotateInsert, newArg, out.Scope, out.Sub)
			if err == nil {
				return b.commitRotation(ctx, op, p, tx, oldArg, newArg, out)
			}
		}
		if err := rollback(tx, op, newJTI, err); err != nil {
			return err
		}
		return b.rotateRefused(ctx, op, oldArg, newArg, out)
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
			return b.refuse(ctx, op, oldArg, newArg, found, out)
		}
		tx, err := b.beginTx(pctx, b.q.rotate, b.q.rotateInsert)
		if err != nil {
			return safeToRetry(err)
		}
		n, err := exec(pctx, tx, b.q.rotate, oldArg)
		if err == nil && n == 1 {
			_, err = exec(pctx, tx, b.q.rotateInsert, newArg, out.Scope, out.Sub)
			if err == nil {
				return b.commitRotation(ctx, op, p, tx, oldArg, newArg, out)
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
	pctx, p := withProbe(ctx)
	tx, err := b.beginTx(pctx, b.q.rotate, b.q.rotateInsert)
	if err != nil {
		return safeToRetry(err)
	}
	n, err := exec(pctx, tx, b.q.rotate, oldArg)
	if err == nil && n == 1 {
		var found bool
		found, err = queryRow(pctx, tx, b.q.rotateInsert, []any{newArg, oldArg}, &out.Scope, &out.Sub)
		if err == nil && found {
			return b.commitRotation(ctx, op, p, tx, oldArg, newArg, out)
		}
		if err == nil {
			err = fmt.Errorf("authdb: %s: the revoked token vanished before the copy", op)
		}
	}
	if err := rollback(tx, op, newJTI, err); err != nil {
		return err
	}
	return b.rotateRefused(ctx, op, oldArg, newArg, out)
}

// rotateRefused reads the old token after a rotation's conditional update
// matched nothing and returns why.
func (b *Backend) rotateRefused(ctx context.Context, op, oldArg, newArg string, out *backend.RefreshToken) error {
	var status string
	found, err := queryRow(ctx, b.pool, b.q.getTokenForRot, []any{oldArg}, &status, &out.Scope, &out.Sub)
	if err != nil {
		return safeToRetry(err)
	}
	if found && status != string(backend.TokenRevoked) {
		return errRaced // inserted after the update's snapshot
	}
	return b.refuse(ctx, op, oldArg, newArg, found, out)
}

// refuse ends a rotation of an unknown (found false) or revoked token
// (oldArg, newArg as idArg writes them; out holds the old token's subject
// and scope): ErrNotFound; a success when newArg is stored with the old
// token's subject and scope (the rotation happened: this is the caller's
// own retry); else the replay's revocation of every token of the subject,
// reported (reused), and ErrTokenReused.
func (b *Backend) refuse(ctx context.Context, op, oldArg, newArg string, found bool, out *backend.RefreshToken) error {
	if !found {
		return fmt.Errorf("authdb: %s: %w", op, backend.ErrNotFound)
	}
	own, err := b.ownRotation(ctx, newArg, out.Scope, out.Sub)
	if err != nil {
		return safeToRetry(err)
	}
	if own {
		return nil
	}
	n, err := b.write(ctx, b.q.revokeUser, b.subArgs(out.Sub)...)
	if err != nil {
		return safeToRetry(err) // revoking again does no harm
	}
	jti, _ := uuid.Parse(oldArg) // dashed or 32 hex digits
	b.reused(ctx, backend.ReuseEvent{Sub: out.Sub, JTI: jti, Scope: backend.RevokeSubject, Revoked: n})
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

// commitRotation commits a rotation's transaction (p: the probe of its
// statements). A COMMIT that lost its reply is settled by reading the
// rotation back (outcome.go): applied is a success, so that a client is
// not told a rotation failed that landed (its retry with the old token
// would be taken for a replay).
func (b *Backend) commitRotation(ctx context.Context, op string, p *probe, tx txQuerier, oldArg, newArg string, out *backend.RefreshToken) error {
	return b.settle(ctx, op, p, tx.Commit(), true, func(rctx context.Context) (verdict, error) {
		return b.rotationVerdict(rctx, oldArg, newArg, out)
	})
}

// RevokeRefreshTokenFamily implements backend.Backend.
// TODO(families): not implemented yet.
func (b *Backend) RevokeRefreshTokenFamily(ctx context.Context, jti uuid.UUID) (int64, error) {
	return 0, fmt.Errorf("authdb: revoke refresh token family %s: %w", jti, backend.ErrUnsupported)
}
