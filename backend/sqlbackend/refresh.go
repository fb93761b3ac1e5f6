package sqlbackend

import (
	"context"
	"database/sql"
	"fmt"

	"entgo.io/ent/dialect"
	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/internal/sqldialect"
)

// InsertRefreshToken implements backend.Backend: one INSERT, of a token
// that is its own family's first (FamilyID = JTI). A duplicate
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
	if err := b.checkColumns("RefreshTokens", "Sub", "sub", sub, "Scope", "scope", scope); err != nil {
		return fmt.Errorf("authdb: %s: %w", op, err)
	}
	arg := b.idArg(jti)
	return b.retryWrite(ctx, op, func() error {
		pctx, p := withProbe(ctx)
		_, err := b.write(pctx, b.q.insertToken, arg, scope, sub, arg)
		if err == nil {
			return nil
		}
		opj := op + " " + jti.String() // only on failure: the success path allocates no name
		if sqldialect.IsDuplicate(err) {
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
		if backend.CheckString("sub", sub, backend.MaxSubLen, true) != nil || !b.storableSub(sub) {
			return nil, nil // no token has such a subject
		}
		query, args = b.q.listTokens, b.subArgs(sub)
	}
	var out []backend.RefreshToken
	err := b.retry(ctx, func() error {
		var err error
		out, err = b.queryTokens(ctx, b.pool, op, query, args, out[:0])
		return err
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
	return b.retryWrite(ctx, op, func() error {
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
	if !b.storableSub(sub) {
		return 0, nil // no token has such a subject
	}
	var n int64
	err := b.retryWrite(ctx, op, func() error {
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
// rotations is the one call whose conditional UPDATE ("Status"='CREATED',
// and with WithFamilyLifetime a family id no older than the lifetime)
// revokes the old token and names its successor; the others read the old
// token (with its successor's status) and decide as rotationRefused says:
// a grace-window convergence, the caller's own retry, ErrExpired, or a
// replay that revokes the family or the subject (ErrTokenReused).
// Statements on the success path, unchanged by the family options:
//   - PostgreSQL: one (a CTE: UPDATE ... RETURNING feeding the INSERT);
//     the refused paths add a SELECT (and a replay the revocation);
//   - SQLite: BEGIN IMMEDIATE, UPDATE ... RETURNING, INSERT, COMMIT;
//   - MariaDB: BEGIN, the conditional UPDATE, INSERT ... SELECT ...
//     RETURNING, COMMIT;
//   - MySQL 8: a SELECT (which alone answers every refused case, a grace
//     convergence included), then BEGIN, the conditional UPDATE, INSERT,
//     COMMIT.
//
// A new JTI that exists fails the INSERT: the transaction (or the single
// statement) is rolled back and backend.ErrAlreadyExists returned.
func (b *Backend) RotateRefreshToken(ctx context.Context, oldJTI, newJTI uuid.UUID) (backend.RefreshToken, error) {
	r := &rotation{oldJTI: oldJTI, newJTI: newJTI}
	if ctx.Err() != nil {
		return backend.RefreshToken{}, start(ctx, r.String())
	}
	if err := backend.CheckJTI("new_jti", newJTI); err != nil {
		return backend.RefreshToken{}, fmt.Errorf("authdb: %s: %w", r, err)
	}
	r.bounds = b.opts.RotationBounds()
	r.oldArg, r.newArg = b.idArg(oldJTI), b.idArg(newJTI)
	r.oldAny, r.newAny = r.oldArg, r.newArg
	err := b.retryRaced(ctx, r, func() error {
		r.out = backend.RefreshToken{JTI: oldJTI, Status: backend.TokenRevoked, ReplacedBy: newJTI}
		return b.rotateOnce(ctx, r)
	})
	if err != nil {
		return backend.RefreshToken{}, err
	}
	return r.out, nil
}

// rotation is one RotateRefreshToken call's state. Its name in errors
// (String) is built only when an error needs it, and its statements'
// arguments are put in its own array (rotateArgs): the success path
// allocates neither.
type rotation struct {
	oldJTI, newJTI uuid.UUID
	oldArg, newArg string
	oldAny, newAny any // oldArg, newArg, converted once
	argv           [4]any
	bounds         backend.RotationBounds
	out            backend.RefreshToken // the old record after a success
}

// String is the rotation's name in errors: "rotate refresh token <old JTI>".
func (r *rotation) String() string { return "rotate refresh token " + r.oldJTI.String() }

// rotateArgs are the arguments of the conditional update (q.rotate):
// new, old[, family bound][, new on PostgreSQL, for the CTE's INSERT]. They
// live in r.argv, which each use overwrites (the statements of a rotation
// run one after another).
func (b *Backend) rotateArgs(r *rotation) []any {
	args := append(r.argv[:0], r.newAny, r.oldAny)
	if b.opts.FamilyLifetime > 0 {
		args = append(args, b.idArg(r.bounds.Family))
	}
	if b.dialect == dialect.Postgres {
		args = append(args, r.newAny)
	}
	return args
}

func (b *Backend) rotateOnce(ctx context.Context, r *rotation) error {
	out := &r.out
	fam := nullUUIDCol{&out.FamilyID}
	pctx, p := withProbe(ctx)
	switch b.dialect {
	case dialect.Postgres:
		found, err := queryRow(pctx, b.pool, b.q.rotate, b.rotateArgs(r), &out.Scope, &out.Sub, fam)
		if err != nil {
			if sqldialect.IsDuplicate(err) {
				return dupAsExists(r.String(), r.newJTI, err)
			}
			return b.settle(ctx, r.String(), p, err, true, func(rctx context.Context) (verdict, error) {
				return b.rotationVerdict(rctx, r)
			})
		}
		if found {
			return nil
		}
		return b.rotateRefused(ctx, r)
	case dialect.SQLite:
		tx, err := b.beginTx(pctx, b.q.rotate, b.q.rotateInsert) // BEGIN IMMEDIATE (_txlock=immediate)
		if err != nil {
			return safeToRetry(err)
		}
		found, err := queryRow(pctx, tx, b.q.rotate, b.rotateArgs(r), &out.Scope, &out.Sub, fam)
		if err == nil && found {
			_, err = exec(pctx, tx, b.q.rotateInsert, r.newArg, out.Scope, out.Sub, b.idArg(out.FamilyID))
			if err == nil {
				return b.commitRotation(ctx, p, tx, r)
			}
		}
		if err := rollback(tx, r.String(), r.newJTI, err); err != nil {
			return err
		}
		return b.rotateRefused(ctx, r)
	default: // MySQL
		if b.mariaDB {
			return b.rotateMariaDB(ctx, r)
		}
		st, err := b.readForRotation(ctx, r.oldArg)
		if err != nil {
			return safeToRetry(err)
		}
		if !st.found || st.status == string(backend.TokenRevoked) || r.bounds.Expired(st.fam) {
			return b.rotationRefused(ctx, r, st)
		}
		out.Scope, out.Sub, out.FamilyID = st.scope, st.sub, st.fam
		tx, err := b.beginTx(pctx, b.q.rotate, b.q.rotateInsert)
		if err != nil {
			return safeToRetry(err)
		}
		n, err := exec(pctx, tx, b.q.rotate, b.rotateArgs(r)...)
		if err == nil && n == 1 {
			_, err = exec(pctx, tx, b.q.rotateInsert, r.newArg, out.Scope, out.Sub, b.idArg(out.FamilyID))
			if err == nil {
				return b.commitRotation(ctx, p, tx, r)
			}
		}
		if err := rollback(tx, r.String(), r.newJTI, err); err != nil {
			return err
		}
		return errRaced // revoked since the SELECT: read again
	}
}

// rotateMariaDB: BEGIN, the conditional UPDATE, INSERT ... SELECT ...
// RETURNING the subject, scope and family, COMMIT; when the update matches
// nothing, ROLLBACK and rotateRefused.
func (b *Backend) rotateMariaDB(ctx context.Context, r *rotation) error {
	out := &r.out
	pctx, p := withProbe(ctx)
	tx, err := b.beginTx(pctx, b.q.rotate, b.q.rotateInsert)
	if err != nil {
		return safeToRetry(err)
	}
	n, err := exec(pctx, tx, b.q.rotate, b.rotateArgs(r)...)
	if err == nil && n == 1 {
		var found bool
		found, err = queryRow(pctx, tx, b.q.rotateInsert, append(r.argv[:0], r.newAny, r.oldAny), &out.Scope, &out.Sub, nullUUIDCol{&out.FamilyID})
		if err == nil && found {
			return b.commitRotation(ctx, p, tx, r)
		}
		if err == nil {
			err = fmt.Errorf("authdb: %s: the revoked token vanished before the copy", r.String())
		}
	}
	if err := rollback(tx, r.String(), r.newJTI, err); err != nil {
		return err
	}
	return b.rotateRefused(ctx, r)
}

// rotState is the old token as a refused rotation reads it.
type rotState struct {
	found              bool
	status, scope, sub string
	fam                uuid.UUID // COALESCE(FamilyID, JTI)
	familyID, replaced uuid.UUID // as stored (uuid.Nil for NULL)
	succCreated        bool      // the successor (ReplacedBy) exists and is CREATED
}

// readForRotation reads the old token and its successor's status.
func (b *Backend) readForRotation(ctx context.Context, oldArg string) (rotState, error) {
	var st rotState
	var succ sql.NullString
	found, err := queryRow(ctx, b.pool, b.q.getTokenForRot, []any{oldArg},
		&st.status, &st.scope, &st.sub, uuidCol{&st.fam}, nullUUIDCol{&st.familyID}, nullUUIDCol{&st.replaced}, &succ)
	st.found = found
	st.succCreated = succ.Valid && succ.String == string(backend.TokenCreated)
	return st, err
}

// rotateRefused reads the old token after a rotation's conditional update
// matched nothing and returns why (rotationRefused).
func (b *Backend) rotateRefused(ctx context.Context, r *rotation) error {
	st, err := b.readForRotation(ctx, r.oldArg)
	if err != nil {
		return safeToRetry(err)
	}
	if st.found && st.status != string(backend.TokenRevoked) && !r.bounds.Expired(st.fam) {
		return errRaced // inserted after the update's snapshot
	}
	return b.rotationRefused(ctx, r, st)
}

// rotationRefused decides a rotation that will not rotate, from the old
// token's state, in the contract's order: unknown (ErrNotFound); the
// caller's own rotation retried (ReplacedBy is newJTI: success, nothing
// written); a family older than the lifetime (ErrExpired, nothing
// written); a successor CREATED and made within the grace window (success,
// nothing written, out.ReplacedBy the successor); else a replay, answered
// by refuse.
func (b *Backend) rotationRefused(ctx context.Context, r *rotation, st rotState) error {
	if !st.found {
		return fmt.Errorf("authdb: %s: %w", r.String(), backend.ErrNotFound)
	}
	revokedOut := func() error {
		r.out = backend.RefreshToken{JTI: r.oldJTI, Status: backend.TokenRevoked, Scope: st.scope, Sub: st.sub,
			FamilyID: st.familyID, ReplacedBy: st.replaced}
		return nil
	}
	if st.status == string(backend.TokenRevoked) && st.replaced == r.newJTI {
		return revokedOut()
	}
	if r.bounds.Expired(st.fam) {
		return fmt.Errorf("authdb: %s: family %s older than the family lifetime: %w", r.String(), st.fam, backend.ErrExpired)
	}
	if st.succCreated && r.bounds.InGrace(st.replaced) {
		return revokedOut()
	}
	return b.refuse(ctx, r, st)
}

// refuse answers a replay of a revoked token: it revokes the token's family
// (WithReuseScope(RevokeFamily), when the family can be followed:
// backend.FamilyFollowable) or every token of its subject, and returns
// ErrTokenReused with the scope and the number of tokens revoked in its
// message, after reporting the replay once (reused: the Warn log and the
// context's Observer).
func (b *Backend) refuse(ctx context.Context, r *rotation, st rotState) error {
	scope := backend.RevokeSubject
	if b.opts.ReuseScope == backend.RevokeFamily &&
		backend.FamilyFollowable(backend.RefreshToken{FamilyID: st.familyID, ReplacedBy: st.replaced}) {
		scope = backend.RevokeFamily
	}
	var n int64
	var err error
	if scope == backend.RevokeFamily {
		n, err = b.revokeFamilyOf(ctx, st.fam)
	} else {
		n, err = b.write(ctx, b.q.revokeUser, b.subArgs(st.sub)...)
	}
	if err != nil {
		return safeToRetry(err) // revoking again does no harm
	}
	b.reused(ctx, backend.ReuseEvent{Sub: st.sub, JTI: r.oldJTI, FamilyID: st.fam, Scope: scope, Revoked: n})
	return fmt.Errorf("authdb: %s: replayed; %d tokens of the %s revoked: %w", r.String(), n, scope, backend.ErrTokenReused)
}

// revokeFamilyOf revokes the CREATED tokens of family fam and returns how
// many changed. The UPDATE runs until it changes nothing (at most
// MaxAttempts times): on PostgreSQL an UPDATE that waited for a concurrent
// rotation's row lock does not see the successor that rotation inserted
// (it is not in the statement's snapshot), and the next UPDATE does.
func (b *Backend) revokeFamilyOf(ctx context.Context, fam uuid.UUID) (int64, error) {
	arg := b.idArg(fam)
	var total int64
	for range MaxAttempts {
		n, err := b.write(ctx, b.q.revokeFamily, arg, arg)
		if err != nil {
			return total, err
		}
		total += n
		if n == 0 {
			break
		}
	}
	return total, nil
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
func (b *Backend) commitRotation(ctx context.Context, p *probe, tx txQuerier, r *rotation) error {
	err := tx.Commit()
	if err == nil {
		return nil // the success path builds no name and no read-back
	}
	return b.settle(ctx, r.String(), p, err, true, func(rctx context.Context) (verdict, error) {
		return b.rotationVerdict(rctx, r)
	})
}

// RevokeRefreshTokenFamily implements backend.Backend: a SELECT of the
// token's family id (ErrNotFound when there is no such token), then the
// UPDATE of the family's CREATED tokens ("FamilyID"=f OR "JTI"=f, on the
// FamilyID index and the primary key), repeated until it changes nothing
// (see revokeFamilyOf). A token DiracX wrote is its own family's first:
// its family is itself and the tokens authdb rotated from it.
func (b *Backend) RevokeRefreshTokenFamily(ctx context.Context, jti uuid.UUID) (int64, error) {
	op := "revoke refresh token family " + jti.String()
	if err := start(ctx, op); err != nil {
		return 0, err
	}
	var n int64
	err := b.retryWrite(ctx, op, func() error {
		var fam uuid.UUID
		found, err := queryRow(ctx, b.pool, b.q.familyOf, []any{b.idArg(jti)}, uuidCol{&fam})
		if err != nil {
			return b.wrap(ctx, op, safeToRetry(err))
		}
		if !found {
			return fmt.Errorf("authdb: %s: %w", op, backend.ErrNotFound)
		}
		if n, err = b.revokeFamilyOf(ctx, fam); err != nil {
			return b.wrap(ctx, op, safeToRetry(err)) // idempotent
		}
		return nil
	})
	return n, err
}
