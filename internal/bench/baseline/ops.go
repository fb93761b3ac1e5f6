package baseline

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/internal/sqldialect"
)

// errAgain marks an attempt that lost a race its read did not see; the
// operation runs again.
var errAgain = errors.New("baseline: concurrent change, again")

// ---- device flows ----

// InsertDeviceFlow implements backend.Backend: one INSERT per user code tried.
func (st *Store) InsertDeviceFlow(ctx context.Context, clientID, scope string) (string, string, error) {
	const op = "insert device flow"
	if err := begin(ctx, op); err != nil {
		return "", "", err
	}
	if err := backend.CheckDeviceFlow(clientID, scope); err != nil {
		return "", "", fmt.Errorf("baseline: %s: %w", op, err)
	}
	for range backend.MaxUserCodeAttempts {
		uc, err := st.opts.UserCodeGenerator()
		if err != nil {
			return "", "", err
		}
		dc, err := backend.GenerateCode()
		if err != nil {
			return "", "", err
		}
		var n int64
		err = retry(ctx, func() error {
			var err error
			n, err = st.exec(ctx, nil, &st.s.insertDevice, uc, st.timeArg(st.now()), clientID, scope, backend.HashCode(dc))
			return err
		})
		if err != nil {
			if sqldialect.IsDuplicate(err) && ctx.Err() == nil {
				continue
			}
			return "", "", fail(ctx, op, err)
		}
		if n == 1 {
			return uc, dc, nil
		}
	}
	return "", "", fmt.Errorf("baseline: %s: %w", op, backend.ErrCodeCollision)
}

// DeviceFlowValidateUserCode implements backend.Backend: one SELECT.
func (st *Store) DeviceFlowValidateUserCode(ctx context.Context, userCode string, maxValidity time.Duration) (string, error) {
	const op = "validate user code"
	if err := begin(ctx, op); err != nil {
		return "", err
	}
	code := backend.NormalizeUserCode(userCode)
	var scope string
	found, err := st.row(ctx, nil, &st.s.validateUserCode, []any{code, st.timeArg(liveSince(st.now(), maxValidity))}, &scope)
	if err != nil {
		return "", fail(ctx, op, err)
	}
	if !found {
		return "", fmt.Errorf("baseline: %s: %w", op, backend.ErrNotFound)
	}
	return scope, nil
}

// DeviceFlowInsertIDToken implements backend.Backend: one conditional UPDATE.
func (st *Store) DeviceFlowInsertIDToken(ctx context.Context, userCode string, idToken map[string]any, maxValidity time.Duration) error {
	const op = "insert device flow id token"
	if err := begin(ctx, op); err != nil {
		return err
	}
	tok, err := backend.EncodeIDToken(idToken)
	if err != nil {
		return fmt.Errorf("baseline: %s: %w", op, err)
	}
	code := backend.NormalizeUserCode(userCode)
	var n int64
	err = retry(ctx, func() error {
		var err error
		n, err = st.exec(ctx, nil, &st.s.deviceIDToken, string(tok), code, st.timeArg(liveSince(st.now(), maxValidity)))
		return err
	})
	if err != nil {
		return fail(ctx, op, err)
	}
	if n == 0 {
		return fmt.Errorf("baseline: %s: %w", op, backend.ErrNotPending)
	}
	return nil
}

type deviceRow struct {
	f  backend.DeviceFlow
	id []byte
}

func (r *deviceRow) dest() []any {
	return []any{&r.f.UserCode, &r.f.ClientID, &r.f.Scope, &r.f.DeviceCode, (*string)(&r.f.Status),
		timeDest{&r.f.CreationTime}, &r.id}
}

func (r *deviceRow) flow() (backend.DeviceFlow, error) {
	var err error
	r.f.IDToken, err = backend.DecodeIDToken(r.id)
	return r.f, err
}

// GetDeviceFlow implements backend.Backend: one SELECT.
func (st *Store) GetDeviceFlow(ctx context.Context, deviceCode string) (backend.DeviceFlow, error) {
	const op = "get device flow"
	if err := begin(ctx, op); err != nil {
		return backend.DeviceFlow{}, err
	}
	var r deviceRow
	found, err := st.row(ctx, nil, &st.s.getDevice, []any{backend.HashCode(deviceCode)}, r.dest()...)
	if err != nil {
		return backend.DeviceFlow{}, fail(ctx, op, err)
	}
	if !found {
		return backend.DeviceFlow{}, fmt.Errorf("baseline: %s: %w", op, backend.ErrNotFound)
	}
	return r.flow()
}

// UpdateDeviceFlowStatus implements backend.Backend: one UPDATE.
func (st *Store) UpdateDeviceFlowStatus(ctx context.Context, deviceCode string, status backend.FlowStatus) error {
	const op = "update device flow status"
	if err := begin(ctx, op); err != nil {
		return err
	}
	if err := backend.CheckFlowStatus(status); err != nil {
		return fmt.Errorf("baseline: %s: %w", op, err)
	}
	var n int64
	err := retry(ctx, func() error {
		var err error
		n, err = st.exec(ctx, nil, &st.s.updateDevice, string(status), backend.HashCode(deviceCode))
		return err
	})
	if err != nil {
		return fail(ctx, op, err)
	}
	if n == 0 {
		return fmt.Errorf("baseline: %s: %w", op, backend.ErrNotFound)
	}
	return nil
}

// ConsumeDeviceFlow implements backend.Backend. PostgreSQL: one CTE;
// SQLite: UPDATE ... RETURNING (a SELECT when refused); MySQL: SELECT, then
// the conditional UPDATE when the flow reads READY and live.
func (st *Store) ConsumeDeviceFlow(ctx context.Context, deviceCode string, maxValidity time.Duration) (backend.DeviceFlow, error) {
	const op = "consume device flow"
	if err := begin(ctx, op); err != nil {
		return backend.DeviceFlow{}, err
	}
	hash := backend.HashCode(deviceCode)
	sinceT := liveSince(st.now(), maxValidity)
	since := st.timeArg(sinceT)
	var r deviceRow
	err := retry(ctx, func() error {
		for {
			r = deviceRow{}
			err := st.consumeDeviceOnce(ctx, hash, since, sinceT, &r)
			if !errors.Is(err, errAgain) {
				return err
			}
		}
	})
	if err != nil {
		if isOutcome(err) {
			return backend.DeviceFlow{}, err
		}
		return backend.DeviceFlow{}, fail(ctx, op, err)
	}
	return r.flow()
}

func (st *Store) consumeDeviceOnce(ctx context.Context, hash string, since any, sinceT time.Time, r *deviceRow) error {
	switch st.dialect {
	case Postgres:
		var done bool
		found, err := st.row(ctx, nil, &st.s.consumeDevice, []any{hash, since, hash}, append([]any{&done}, r.dest()...)...)
		if err != nil || (found && done) {
			return err
		}
		if !found {
			return fmt.Errorf("baseline: consume device flow: %w", backend.ErrNotFound)
		}
		return whyDevice(r, sinceT)
	case SQLite:
		found, err := st.row(ctx, nil, &st.s.consumeDevice, []any{hash, since}, r.dest()...)
		if err != nil || found {
			return err
		}
		found, err = st.row(ctx, nil, &st.s.getDevice, []any{hash}, r.dest()...)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("baseline: consume device flow: %w", backend.ErrNotFound)
		}
		return whyDevice(r, sinceT)
	}
	found, err := st.row(ctx, nil, &st.s.getDevice, []any{hash}, r.dest()...)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("baseline: consume device flow: %w", backend.ErrNotFound)
	}
	if err := whyDevice(r, sinceT); !errors.Is(err, errAgain) {
		return err
	}
	n, err := st.exec(ctx, nil, &st.s.consumeDevice, hash, since)
	if err != nil {
		return err
	}
	if n == 0 {
		return errAgain
	}
	r.f.Status = backend.StatusDone
	return nil
}

// whyDevice says why a flow cannot be consumed, in the contract's order;
// errAgain when it reads READY and live.
func whyDevice(r *deviceRow, since time.Time) error {
	switch {
	case r.f.Status == backend.StatusDone:
		return fmt.Errorf("baseline: consume device flow: %w", backend.ErrAlreadyUsed)
	case r.f.CreationTime.Before(since):
		return fmt.Errorf("baseline: consume device flow: %w", backend.ErrExpired)
	case r.f.Status == backend.StatusPending:
		return fmt.Errorf("baseline: consume device flow: %w", backend.ErrAuthorizationPending)
	case r.f.Status == backend.StatusReady:
		return errAgain
	}
	return fmt.Errorf("baseline: consume device flow: %w", backend.ErrFlowFailed)
}

var outcomes = []error{backend.ErrNotFound, backend.ErrExpired, backend.ErrNotPending,
	backend.ErrAuthorizationPending, backend.ErrAlreadyUsed, backend.ErrFlowFailed,
	backend.ErrAlreadyExists, backend.ErrTokenReused, backend.ErrInvalidInput}

func isOutcome(err error) bool {
	for _, o := range outcomes {
		if errors.Is(err, o) {
			return true
		}
	}
	return false
}

// ---- authorization flows ----

// InsertAuthorizationFlow implements backend.Backend: one INSERT.
func (st *Store) InsertAuthorizationFlow(ctx context.Context, clientID, scope, codeChallenge, codeChallengeMethod, redirectURI string) (string, error) {
	const op = "insert authorization flow"
	if err := begin(ctx, op); err != nil {
		return "", err
	}
	if err := backend.CheckAuthorizationFlow(clientID, scope, codeChallenge, codeChallengeMethod, redirectURI); err != nil {
		return "", fmt.Errorf("baseline: %s: %w", op, err)
	}
	id, err := backend.NewUUIDv7()
	if err != nil {
		return "", err
	}
	err = retry(ctx, func() error {
		_, err := st.exec(ctx, nil, &st.s.insertAuth, st.idArg(id), clientID, st.timeArg(st.now()),
			scope, codeChallenge, codeChallengeMethod, redirectURI)
		return err
	})
	if err != nil {
		return "", fail(ctx, op, err)
	}
	return id.String(), nil
}

// AuthorizationFlowInsertIDToken implements backend.Backend: one
// conditional UPDATE ... RETURNING; MySQL: the UPDATE, then a SELECT of
// the redirect URI.
func (st *Store) AuthorizationFlowInsertIDToken(ctx context.Context, flowID string, idToken map[string]any, maxValidity time.Duration) (string, string, error) {
	const op = "insert authorization flow id token"
	if err := begin(ctx, op); err != nil {
		return "", "", err
	}
	tok, err := backend.EncodeIDToken(idToken)
	if err != nil {
		return "", "", fmt.Errorf("baseline: %s: %w", op, err)
	}
	id, err := backend.ParseStoredUUID(flowID)
	if err != nil {
		return "", "", fmt.Errorf("baseline: %s: %w", op, backend.ErrNotPending)
	}
	code, err := backend.GenerateCode()
	if err != nil {
		return "", "", err
	}
	args := []any{backend.HashCode(code), string(tok), st.idArg(id), st.timeArg(liveSince(st.now(), maxValidity))}
	var redirect string
	var found bool
	err = retry(ctx, func() error {
		var err error
		if st.dialect != MySQL {
			found, err = st.row(ctx, nil, &st.s.authIDToken, args, &redirect)
			return err
		}
		var n int64
		if n, err = st.exec(ctx, nil, &st.s.authIDToken, args...); err != nil || n == 0 {
			found = false
			return err
		}
		found, err = st.row(ctx, nil, &st.s.authRedirect, []any{st.idArg(id)}, &redirect)
		return err
	})
	if err != nil {
		return "", "", fail(ctx, op, err)
	}
	if !found {
		return "", "", fmt.Errorf("baseline: %s: %w", op, backend.ErrNotPending)
	}
	return code, redirect, nil
}

type authRow struct {
	f    backend.AuthorizationFlow
	id   uuid.UUID
	code sql.NullString
	tok  []byte
}

func (r *authRow) dest() []any {
	return []any{uuidDest{&r.id}, &r.f.ClientID, &r.f.Scope, &r.f.CodeChallenge, &r.f.CodeChallengeMethod,
		&r.f.RedirectURI, &r.code, (*string)(&r.f.Status), timeDest{&r.f.CreationTime}, &r.tok}
}

func (r *authRow) flow() (backend.AuthorizationFlow, error) {
	var err error
	r.f.UUID, r.f.Code = r.id.String(), r.code.String
	r.f.IDToken, err = backend.DecodeIDToken(r.tok)
	return r.f, err
}

// GetAuthorizationFlow implements backend.Backend: one SELECT.
func (st *Store) GetAuthorizationFlow(ctx context.Context, code string, maxValidity time.Duration) (backend.AuthorizationFlow, error) {
	const op = "get authorization flow"
	if err := begin(ctx, op); err != nil {
		return backend.AuthorizationFlow{}, err
	}
	var r authRow
	found, err := st.row(ctx, nil, &st.s.getAuth, []any{backend.HashCode(code), st.timeArg(liveSince(st.now(), maxValidity))}, r.dest()...)
	if err != nil {
		return backend.AuthorizationFlow{}, fail(ctx, op, err)
	}
	if !found {
		return backend.AuthorizationFlow{}, fmt.Errorf("baseline: %s: %w", op, backend.ErrNotFound)
	}
	return r.flow()
}

// UpdateAuthorizationFlowStatus implements backend.Backend: one UPDATE.
func (st *Store) UpdateAuthorizationFlowStatus(ctx context.Context, code string, status backend.FlowStatus) error {
	const op = "update authorization flow status"
	if err := begin(ctx, op); err != nil {
		return err
	}
	if err := backend.CheckFlowStatus(status); err != nil {
		return fmt.Errorf("baseline: %s: %w", op, err)
	}
	var n int64
	err := retry(ctx, func() error {
		var err error
		n, err = st.exec(ctx, nil, &st.s.updateAuth, string(status), backend.HashCode(code))
		return err
	})
	if err != nil {
		return fail(ctx, op, err)
	}
	if n == 0 {
		return fmt.Errorf("baseline: %s: %w", op, backend.ErrNotFound)
	}
	return nil
}

// ConsumeAuthorizationFlow implements backend.Backend, as ConsumeDeviceFlow.
func (st *Store) ConsumeAuthorizationFlow(ctx context.Context, code string, maxValidity time.Duration) (backend.AuthorizationFlow, error) {
	const op = "consume authorization flow"
	if err := begin(ctx, op); err != nil {
		return backend.AuthorizationFlow{}, err
	}
	hash := backend.HashCode(code)
	since := st.timeArg(liveSince(st.now(), maxValidity))
	var r authRow
	err := retry(ctx, func() error {
		for {
			r = authRow{}
			err := st.consumeAuthOnce(ctx, hash, since, &r)
			if !errors.Is(err, errAgain) {
				return err
			}
		}
	})
	if err != nil {
		if isOutcome(err) {
			return backend.AuthorizationFlow{}, err
		}
		return backend.AuthorizationFlow{}, fail(ctx, op, err)
	}
	return r.flow()
}

func (st *Store) consumeAuthOnce(ctx context.Context, hash string, since any, r *authRow) error {
	switch st.dialect {
	case Postgres:
		var done bool
		found, err := st.row(ctx, nil, &st.s.consumeAuth, []any{hash, since, hash, since}, append([]any{&done}, r.dest()...)...)
		if err != nil || (found && done) {
			return err
		}
		if !found {
			return fmt.Errorf("baseline: consume authorization flow: %w", backend.ErrNotFound)
		}
		return whyAuth(r)
	case SQLite:
		found, err := st.row(ctx, nil, &st.s.consumeAuth, []any{hash, since}, r.dest()...)
		if err != nil || found {
			return err
		}
		found, err = st.row(ctx, nil, &st.s.getAuth, []any{hash, since}, r.dest()...)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("baseline: consume authorization flow: %w", backend.ErrNotFound)
		}
		return whyAuth(r)
	}
	found, err := st.row(ctx, nil, &st.s.getAuth, []any{hash, since}, r.dest()...)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("baseline: consume authorization flow: %w", backend.ErrNotFound)
	}
	if err := whyAuth(r); !errors.Is(err, errAgain) {
		return err
	}
	n, err := st.exec(ctx, nil, &st.s.consumeAuth, hash, since)
	if err != nil {
		return err
	}
	if n == 0 {
		return errAgain
	}
	r.f.Status = backend.StatusDone
	return nil
}

func whyAuth(r *authRow) error {
	switch r.f.Status {
	case backend.StatusDone:
		return fmt.Errorf("baseline: consume authorization flow: %w", backend.ErrAlreadyUsed)
	case backend.StatusReady:
		return errAgain
	}
	return fmt.Errorf("baseline: consume authorization flow: %w", backend.ErrFlowFailed)
}

// ---- refresh tokens ----

// InsertRefreshToken implements backend.Backend: one INSERT.
func (st *Store) InsertRefreshToken(ctx context.Context, jti uuid.UUID, sub, scope string) error {
	const op = "insert refresh token"
	if err := begin(ctx, op); err != nil {
		return err
	}
	if err := backend.CheckRefreshToken(jti, sub, scope); err != nil {
		return fmt.Errorf("baseline: %s: %w", op, err)
	}
	err := retry(ctx, func() error {
		_, err := st.exec(ctx, nil, &st.s.insertToken, st.idArg(jti), scope, sub, st.idArg(jti))
		return err
	})
	if err != nil && sqldialect.IsDuplicate(err) {
		// An identical row (CREATED, same subject and scope) is the
		// caller's own retry: a success (the contract's idempotent insert).
		var r tokenRow
		if found, rerr := st.row(ctx, nil, &st.s.getToken, []any{st.idArg(jti)}, r.dest()...); rerr == nil && found &&
			r.t.Status == backend.TokenCreated && r.t.Sub == sub && r.t.Scope == scope {
			return nil
		}
	}
	if err != nil {
		return fail(ctx, op, err)
	}
	return nil
}

type tokenRow struct{ t backend.RefreshToken }

func (r *tokenRow) dest() []any {
	return []any{uuidDest{&r.t.JTI}, (*string)(&r.t.Status), &r.t.Scope, &r.t.Sub,
		nullUUIDDest{&r.t.FamilyID}, nullUUIDDest{&r.t.ReplacedBy}}
}

// GetRefreshToken implements backend.Backend: one SELECT.
func (st *Store) GetRefreshToken(ctx context.Context, jti uuid.UUID) (backend.RefreshToken, error) {
	const op = "get refresh token"
	if err := begin(ctx, op); err != nil {
		return backend.RefreshToken{}, err
	}
	var r tokenRow
	found, err := st.row(ctx, nil, &st.s.getToken, []any{st.idArg(jti)}, r.dest()...)
	if err != nil {
		return backend.RefreshToken{}, fail(ctx, op, err)
	}
	if !found {
		return backend.RefreshToken{}, fmt.Errorf("baseline: %s: %w", op, backend.ErrNotFound)
	}
	return r.t, nil
}

// GetUserRefreshTokens implements backend.Backend: one SELECT.
func (st *Store) GetUserRefreshTokens(ctx context.Context, sub string) ([]backend.RefreshToken, error) {
	const op = "get user refresh tokens"
	if err := begin(ctx, op); err != nil {
		return nil, err
	}
	var rows *sql.Rows
	var err error
	if sub == "" {
		rows, err = st.query(ctx, &st.s.listAll)
	} else {
		if backend.CheckString("sub", sub, backend.MaxSubLen, true) != nil {
			return nil, nil
		}
		rows, err = st.query(ctx, &st.s.listTokens, st.subArgs(sub)...)
	}
	if err != nil {
		return nil, fail(ctx, op, err)
	}
	defer rows.Close()
	var out []backend.RefreshToken
	var r tokenRow
	dest := r.dest()
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, fail(ctx, op, err)
		}
		out = append(out, r.t)
	}
	if err := rows.Err(); err != nil {
		return nil, fail(ctx, op, err)
	}
	return out, nil
}

// RevokeRefreshToken implements backend.Backend: one UPDATE (MySQL counts
// matched rows: clientFoundRows).
func (st *Store) RevokeRefreshToken(ctx context.Context, jti uuid.UUID) error {
	const op = "revoke refresh token"
	if err := begin(ctx, op); err != nil {
		return err
	}
	var n int64
	err := retry(ctx, func() error {
		var err error
		n, err = st.exec(ctx, nil, &st.s.revokeToken, st.idArg(jti))
		return err
	})
	if err != nil {
		return fail(ctx, op, err)
	}
	if n == 0 {
		return fmt.Errorf("baseline: %s: %w", op, backend.ErrNotFound)
	}
	return nil
}

// RevokeUserRefreshTokens implements backend.Backend: one UPDATE.
func (st *Store) RevokeUserRefreshTokens(ctx context.Context, sub string) (int64, error) {
	const op = "revoke user refresh tokens"
	if err := begin(ctx, op); err != nil {
		return 0, err
	}
	if err := backend.CheckString("sub", sub, backend.MaxSubLen, true); err != nil {
		return 0, fmt.Errorf("baseline: %s: %w", op, err)
	}
	var n int64
	err := retry(ctx, func() error {
		var err error
		n, err = st.exec(ctx, nil, &st.s.revokeUser, st.subArgs(sub)...)
		return err
	})
	if err != nil {
		return 0, fail(ctx, op, err)
	}
	return n, nil
}

// RotateRefreshToken implements backend.Backend. PostgreSQL: one CTE
// statement; SQLite: BEGIN IMMEDIATE, UPDATE ... RETURNING, INSERT, COMMIT;
// MariaDB: BEGIN, conditional UPDATE, INSERT ... SELECT ... RETURNING,
// COMMIT; MySQL 8: BEGIN, conditional UPDATE, SELECT, INSERT, COMMIT. When the
// conditional update matches nothing, a SELECT of the old token and its
// successor says why (and a replay revokes the family or the subject).
func (st *Store) RotateRefreshToken(ctx context.Context, oldJTI, newJTI uuid.UUID) (backend.RefreshToken, error) {
	const op = "rotate refresh token"
	if err := begin(ctx, op); err != nil {
		return backend.RefreshToken{}, err
	}
	if err := backend.CheckJTI("new_jti", newJTI); err != nil {
		return backend.RefreshToken{}, fmt.Errorf("baseline: %s: %w", op, err)
	}
	bounds := st.opts.RotationBounds()
	var out backend.RefreshToken
	err := retry(ctx, func() error {
		for {
			out = backend.RefreshToken{JTI: oldJTI, Status: backend.TokenRevoked, ReplacedBy: newJTI}
			err := st.rotateOnce(ctx, oldJTI, newJTI, bounds, &out)
			if !errors.Is(err, errAgain) {
				return err
			}
		}
	})
	if err != nil {
		if isOutcome(err) {
			return backend.RefreshToken{}, err
		}
		return backend.RefreshToken{}, fail(ctx, op, err)
	}
	return out, nil
}

func (st *Store) rotateOnce(ctx context.Context, oldJTI, newJTI uuid.UUID, bounds backend.RotationBounds, out *backend.RefreshToken) error {
	oldArg, newArg := st.idArg(oldJTI), st.idArg(newJTI)
	args := []any{newArg, oldArg}
	if st.opts.FamilyLifetime > 0 {
		args = append(args, st.idArg(bounds.Family))
	}
	fam := nullUUIDDest{&out.FamilyID}
	if st.dialect == Postgres {
		found, err := st.row(ctx, nil, &st.s.rotate, append(args, newArg), &out.Scope, &out.Sub, fam)
		if err != nil || found {
			return err
		}
		return st.refused(ctx, oldJTI, newJTI, bounds, out)
	}
	tx, err := st.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	var found bool
	if st.dialect == SQLite {
		found, err = st.row(ctx, tx, &st.s.rotate, args, &out.Scope, &out.Sub, fam)
		if err == nil && found {
			_, err = st.exec(ctx, tx, &st.s.rotateInsert, newArg, out.Scope, out.Sub, st.idArg(out.FamilyID))
		}
	} else {
		var n int64
		n, err = st.exec(ctx, tx, &st.s.rotate, args...)
		found = n == 1
		switch {
		case err != nil || !found:
		case st.mariadb:
			// INSERT ... SELECT ... RETURNING: the copy and its subject,
			// scope and family in one statement.
			_, err = st.row(ctx, tx, &st.s.rotateInsert, []any{newArg, oldArg}, &out.Scope, &out.Sub, fam)
		default:
			// MySQL 8 has no RETURNING: read the row the UPDATE locked.
			if _, err = st.row(ctx, tx, &st.s.tokenScope, []any{oldArg}, &out.Scope, &out.Sub, fam); err == nil {
				_, err = st.exec(ctx, tx, &st.s.rotateInsert, newArg, out.Scope, out.Sub, st.idArg(out.FamilyID))
			}
		}
	}
	if err == nil && found {
		return tx.Commit()
	}
	tx.Rollback()
	if err != nil {
		if sqldialect.IsDuplicate(err) {
			return fmt.Errorf("baseline: rotate refresh token: new_jti: %w", backend.ErrAlreadyExists)
		}
		return err
	}
	return st.refused(ctx, oldJTI, newJTI, bounds, out)
}

// refused reads the old token and its successor after the conditional
// update matched nothing and decides, in the contract's order:
// ErrNotFound; the caller's own retry (success); ErrExpired (family
// lifetime); a grace-window convergence (success, out.ReplacedBy the
// successor); a replay (ErrTokenReused after revoking the family or the
// subject); errAgain when it reads CREATED (inserted after the update's
// snapshot).
func (st *Store) refused(ctx context.Context, oldJTI, newJTI uuid.UUID, bounds backend.RotationBounds, out *backend.RefreshToken) error {
	var status, scope, sub string
	var fam, familyID, replaced uuid.UUID
	var succ sql.NullString
	found, err := st.row(ctx, nil, &st.s.tokenState, []any{st.idArg(oldJTI)},
		&status, &scope, &sub, uuidDest{&fam}, nullUUIDDest{&familyID}, nullUUIDDest{&replaced}, &succ)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("baseline: rotate refresh token: %w", backend.ErrNotFound)
	}
	revoked := status == string(backend.TokenRevoked)
	success := func() error {
		*out = backend.RefreshToken{JTI: oldJTI, Status: backend.TokenRevoked, Scope: scope, Sub: sub, FamilyID: familyID, ReplacedBy: replaced}
		return nil
	}
	switch {
	case revoked && replaced == newJTI:
		return success()
	case bounds.Expired(fam):
		return fmt.Errorf("baseline: rotate refresh token: %w", backend.ErrExpired)
	case !revoked:
		return errAgain
	case succ.String == string(backend.TokenCreated) && bounds.InGrace(replaced):
		return success()
	}
	if st.opts.ReuseScope == backend.RevokeFamily && (familyID != uuid.Nil || replaced != uuid.Nil) {
		_, err = st.revokeFamilyOf(ctx, fam)
	} else {
		_, err = st.exec(ctx, nil, &st.s.revokeUser, st.subArgs(sub)...)
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("baseline: rotate refresh token: %w", backend.ErrTokenReused)
}

// revokeFamilyOf revokes the CREATED tokens of family fam, repeating the
// UPDATE until it changes nothing (on PostgreSQL an UPDATE that waited for
// a concurrent rotation does not see the successor it inserted).
func (st *Store) revokeFamilyOf(ctx context.Context, fam uuid.UUID) (int64, error) {
	arg := st.idArg(fam)
	var total int64
	for range 5 {
		n, err := st.exec(ctx, nil, &st.s.revokeFamily, arg, arg)
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

// RevokeRefreshTokenFamily implements backend.Backend: a SELECT of the
// family id, then the family's UPDATE (until it changes nothing).
func (st *Store) RevokeRefreshTokenFamily(ctx context.Context, jti uuid.UUID) (int64, error) {
	const op = "revoke refresh token family"
	if err := begin(ctx, op); err != nil {
		return 0, err
	}
	var n int64
	err := retry(ctx, func() error {
		var fam uuid.UUID
		found, err := st.row(ctx, nil, &st.s.familyOf, []any{st.idArg(jti)}, uuidDest{&fam})
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("baseline: %s: %w", op, backend.ErrNotFound)
		}
		n, err = st.revokeFamilyOf(ctx, fam)
		return err
	})
	if err != nil {
		if isOutcome(err) {
			return 0, err
		}
		return 0, fail(ctx, op, err)
	}
	return n, nil
}

// ---- clean-up ----

// CleanExpiredDeviceFlows implements backend.Backend: batched DELETEs.
func (st *Store) CleanExpiredDeviceFlows(ctx context.Context, maxRetention time.Duration) (int64, error) {
	if err := backend.CheckRetention(maxRetention); err != nil {
		return 0, fmt.Errorf("baseline: clean device flows: %w", err)
	}
	return st.clean(ctx, "clean device flows", &st.s.cleanDevices, st.timeArg(cleanBefore(st.now(), maxRetention)))
}

// CleanExpiredAuthorizationFlows implements backend.Backend: batched DELETEs.
func (st *Store) CleanExpiredAuthorizationFlows(ctx context.Context, maxRetention time.Duration) (int64, error) {
	if err := backend.CheckRetention(maxRetention); err != nil {
		return 0, fmt.Errorf("baseline: clean authorization flows: %w", err)
	}
	return st.clean(ctx, "clean authorization flows", &st.s.cleanAuths, st.timeArg(cleanBefore(st.now(), maxRetention)))
}

// CleanExpiredRefreshTokens implements backend.Backend: batched DELETEs on
// the primary key's range.
func (st *Store) CleanExpiredRefreshTokens(ctx context.Context, maxRetention time.Duration) (int64, error) {
	if err := backend.CheckRetention(maxRetention); err != nil {
		return 0, fmt.Errorf("baseline: clean refresh tokens: %w", err)
	}
	return st.clean(ctx, "clean refresh tokens", &st.s.cleanTokens, st.idArg(backend.LowestUUIDv7(st.now().Add(-maxRetention))))
}

func cleanBefore(now time.Time, maxRetention time.Duration) time.Time {
	c := now.Add(-maxRetention)
	if t := c.Truncate(time.Second); !t.Equal(c) {
		return t.Add(time.Second)
	}
	return c
}

func (st *Store) clean(ctx context.Context, op string, p *stmt, bound any) (int64, error) {
	if err := begin(ctx, op); err != nil {
		return 0, err
	}
	batch := st.opts.CleanupBatchSize
	var total int64
	for {
		var n int64
		err := retry(ctx, func() error {
			var err error
			n, err = st.exec(ctx, nil, p, bound, batch)
			return err
		})
		if err != nil {
			return total, fail(ctx, op, err)
		}
		total += n
		if st.opts.CleanupProgress != nil {
			st.opts.CleanupProgress("", total)
		}
		if n < int64(batch) {
			return total, nil
		}
	}
}
