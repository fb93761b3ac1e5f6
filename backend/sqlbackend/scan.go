package sqlbackend

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"entgo.io/ent/dialect"
	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
)

// sqliteTimeLayout is how CreationTime is written on SQLite: the form of
// DATETIME('now'), DiracX's server default. SQLite compares DATETIME columns
// as text, and every form DiracX or a driver writes ("... HH:MM:SS",
// "... HH:MM:SS.ffffff", "... HH:MM:SS+00:00") starts with these 19
// characters, so "CreationTime">=? and "CreationTime"<? with an argument
// in this layout compare whole seconds correctly whatever wrote the row.
const sqliteTimeLayout = "2006-01-02 15:04:05"

// Bounds of the times authdb passes to the database (MySQL DATETIME starts at
// year 1000; no row predates the Unix epoch).
var (
	minTime = time.Unix(0, 0).UTC()
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

// timeArg is a time as the dialect's CreationTime column takes it.
func (b *Backend) timeArg(t time.Time) any {
	t = t.UTC()
	if t.Before(minTime) {
		t = minTime
	} else if t.After(maxTime) {
		t = maxTime
	}
	if b.dialect == dialect.SQLite {
		return t.Format(sqliteTimeLayout)
	}
	return t
}

// liveSince returns the first whole second after now-maxValidity: a flow is
// live while CreationTime > now-maxValidity, and since creation times are
// whole seconds (or read as truncated to them), that is CreationTime >=
// liveSince.
func liveSince(now time.Time, maxValidity time.Duration) time.Time {
	return now.Add(-maxValidity).Truncate(time.Second).Add(time.Second)
}

// cleanBefore returns the whole second from which rows are kept: a row is
// deleted when CreationTime < now-maxRetention, that is CreationTime <
// ceil(now-maxRetention) for whole-second times.
func cleanBefore(now time.Time, maxRetention time.Duration) time.Time {
	c := now.Add(-maxRetention)
	if t := c.Truncate(time.Second); !t.Equal(c) {
		return t.Add(time.Second)
	}
	return c
}

// idArg is a UUID as the dialect's UUID/JTI column takes it: the dashed
// form for PostgreSQL's uuid, 32 lowercase hex digits for CHAR(32).
func (b *Backend) idArg(id uuid.UUID) string {
	if b.dialect == dialect.Postgres {
		return id.String()
	}
	return backend.HexJTI(id)
}

// timeCol scans a CreationTime: a time.Time from the driver, or text in one
// of the layouts SQLite rows may hold. The result is UTC, whole seconds.
type timeCol struct{ t *time.Time }

var textTimeLayouts = []string{
	"2006-01-02 15:04:05.999999999-07:00",
	"2006-01-02T15:04:05.999999999-07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04",
	"2006-01-02T15:04",
	"2006-01-02",
}

func (c timeCol) Scan(v any) error {
	var s string
	switch v := v.(type) {
	case time.Time:
		*c.t = v.UTC().Truncate(time.Second)
		return nil
	case string:
		s = v
	case []byte:
		s = string(v)
	case nil:
		return fmt.Errorf("authdb: CreationTime is NULL")
	default:
		return fmt.Errorf("authdb: CreationTime: unexpected %T", v)
	}
	s = strings.TrimSuffix(strings.TrimSpace(s), "Z")
	for _, layout := range textTimeLayouts {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			*c.t = t.UTC().Truncate(time.Second)
			return nil
		}
	}
	return fmt.Errorf("authdb: CreationTime %q: not a date and time", s)
}

// uuidCol scans a UUID or JTI column: 32 hex digits (MySQL, SQLite) or the
// dashed form (PostgreSQL).
type uuidCol struct{ id *uuid.UUID }

func (c uuidCol) Scan(v any) error {
	var err error
	switch v := v.(type) {
	case string:
		*c.id, err = backend.ParseStoredUUID(v)
	case []byte:
		*c.id, err = backend.ParseStoredUUID(string(v))
	default:
		err = fmt.Errorf("authdb: stored uuid: unexpected %T", v)
	}
	return err
}

// deviceRow is a DeviceFlows row as scanned from deviceCols.
type deviceRow struct {
	f       backend.DeviceFlow
	idToken []byte
}

func (r *deviceRow) dest() []any {
	return []any{&r.f.UserCode, &r.f.ClientID, &r.f.Scope, &r.f.DeviceCode, (*string)(&r.f.Status),
		timeCol{&r.f.CreationTime}, &r.idToken}
}

func (r *deviceRow) flow() (backend.DeviceFlow, error) {
	if r.f.IDToken != nil {
		return r.f, nil // decoded by unreadableIDToken
	}
	var err error
	r.f.IDToken, err = backend.DecodeIDToken(r.idToken)
	return r.f, err
}

// authRow is an AuthorizationFlows row as scanned from authCols.
type authRow struct {
	f       backend.AuthorizationFlow
	id      uuid.UUID
	code    sql.NullString
	idToken []byte
}

func (r *authRow) dest() []any {
	return []any{uuidCol{&r.id}, &r.f.ClientID, &r.f.Scope, &r.f.CodeChallenge, &r.f.CodeChallengeMethod,
		&r.f.RedirectURI, &r.code, (*string)(&r.f.Status), timeCol{&r.f.CreationTime}, &r.idToken}
}

func (r *authRow) flow() (backend.AuthorizationFlow, error) {
	var err error
	r.f.UUID = r.id.String()
	r.f.Code = r.code.String
	if r.f.IDToken != nil {
		return r.f, nil // decoded by unreadableIDToken
	}
	r.f.IDToken, err = backend.DecodeIDToken(r.idToken)
	return r.f, err
}

// nullUUIDCol scans a nullable UUID column (FamilyID, ReplacedBy): NULL is uuid.Nil.
type nullUUIDCol struct{ id *uuid.UUID }

func (c nullUUIDCol) Scan(v any) error {
	if v == nil {
		*c.id = uuid.Nil
		return nil
	}
	return uuidCol(c).Scan(v)
}

// tokenRow is a RefreshTokens row as scanned from tokenCols.
type tokenRow struct{ t backend.RefreshToken }

func (r *tokenRow) dest() []any {
	return []any{uuidCol{&r.t.JTI}, (*string)(&r.t.Status), &r.t.Scope, &r.t.Sub,
		nullUUIDCol{&r.t.FamilyID}, nullUUIDCol{&r.t.ReplacedBy}}
}

// querier runs a statement: pool (autocommit, prepared statements) or
// txQuerier (in a transaction), or the ent client (its sql/execquery
// feature, in Migrate).
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// queryRow runs a query expected to return at most one row and scans it
// into dest; found is false when there is no row. Errors are the driver's,
// unwrapped.
func queryRow(ctx context.Context, q querier, query string, args []any, dest ...any) (found bool, err error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	if !rows.Next() {
		return false, rows.Err()
	}
	if err := rows.Scan(dest...); err != nil {
		return false, err
	}
	return true, rows.Close()
}

// queryTokens runs a query of refresh token rows (tokenCols) on q, one
// attempt, and appends the tokens to out. Errors are wrapped for op; a
// failed query or a failure while reading the rows is marked retryable
// when the connection was lost (safeToRetry: the statement only reads); a
// row that does not scan is not.
func (b *Backend) queryTokens(ctx context.Context, q querier, op, query string, args []any, out []backend.RefreshToken) ([]backend.RefreshToken, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return out, b.wrap(ctx, op, safeToRetry(err))
	}
	defer rows.Close()
	var r tokenRow
	dest := r.dest()
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return out, b.wrap(ctx, op, err)
		}
		out = append(out, r.t)
	}
	if err := rows.Err(); err != nil {
		return out, b.wrap(ctx, op, safeToRetry(err))
	}
	return out, nil
}

// exec runs a statement and returns the rows it affected (MySQL: matched,
// since the connection asks for found rows).
func exec(ctx context.Context, q querier, query string, args ...any) (int64, error) {
	res, err := q.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// unreadableIDToken says why a READY flow's stored ID token cannot be
// handed out (not a JSON object authdb can decode: written by another
// program), or nil. Consume checks it before the flow is marked DONE (in
// the statement on PostgreSQL and SQLite, which also match only JSON
// objects; before the update on MySQL), so the code is not burnt by a
// token nobody can read: the call fails with backend.ErrFlowFailed and
// the flow stays READY.
// The decoded token is kept in *decoded, so that the flow handed out
// does not decode it again.
func unreadableIDToken(b []byte, decoded *map[string]any) error {
	m, err := backend.DecodeIDToken(b)
	if err != nil {
		return fmt.Errorf("stored id token unreadable: %w", err)
	}
	if m == nil {
		return errors.New("stored id token is not a JSON object")
	}
	*decoded = m
	return nil
}
