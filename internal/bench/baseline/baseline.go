// Package baseline is the hand-written database/sql client the benchmarks
// of package bench compare authdb's SQL backend with: the same contract
// (backend.Backend, checked by the conformance suite), the same tables, and
// the minimal sequence of statements a careful engineer writes by hand for
// each operation on each engine, with no library in between.
//
// Statements are plain (db.ExecContext / db.QueryContext with arguments)
// unless New is given Prepared, which prepares every statement once on the
// pool and runs it with *sql.Stmt. With the drivers configured as authdb
// configures them (lib/pq binary_parameters=yes, go-sql-driver
// interpolateParams=true), a plain statement with arguments is one round
// trip on every engine, as is a prepared one.
//
// Round trips per operation, the success path:
//
//	operation                        PostgreSQL  SQLite  MySQL/MariaDB
//	ConsumeDeviceFlow/Authorization  1 (CTE)     1       2 (SELECT, conditional UPDATE)
//	AuthorizationFlowInsertIDToken   1           1       2 (conditional UPDATE, SELECT)
//	RotateRefreshToken               1 (CTE)     4       MariaDB 4 (BEGIN, UPDATE, INSERT ... SELECT ... RETURNING, COMMIT)
//	                                                     MySQL 8 5 (BEGIN, UPDATE, SELECT, INSERT, COMMIT)
//	every other operation            1           1       1
//
// MySQL/MariaDB have no UPDATE ... RETURNING, hence the second statement of
// the consume and ID-token calls. This package exists for benchmarks and
// their tests; it is not part of authdb's API.
package baseline

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/internal/sqldialect"
)

// Dialect names, as entgo.io/ent/dialect (and sqlbackend.Backend.Dialect) spell them.
const (
	SQLite   = sqldialect.SQLite
	Postgres = sqldialect.Postgres
	MySQL    = sqldialect.MySQL
)

// Mode says how statements are sent.
type Mode int

// The two statement modes.
const (
	Plain    Mode = iota // db.ExecContext / QueryContext with arguments
	Prepared             // prepared once per pool (and per connection by database/sql)
)

func (m Mode) String() string {
	if m == Prepared {
		return "prepared"
	}
	return "plain"
}

// Store is the hand-written client. It implements backend.Backend on a pool
// whose tables exist (created by sqlbackend's migration); it never creates
// or changes the schema. Safe for concurrent use.
type Store struct {
	db      *sql.DB
	dialect string
	opts    backend.Options
	mariadb bool // MariaDB 10.5+: INSERT ... RETURNING
	s       stmts
}

var _ backend.Backend = (*Store)(nil)

// stmt is one statement: its SQL and, in Prepared mode, the prepared form.
type stmt struct {
	q string
	p *sql.Stmt
}

type stmts struct {
	insertDevice, validateUserCode, deviceIDToken, getDevice, updateDevice, consumeDevice stmt
	insertAuth, authIDToken, authRedirect, getAuth, updateAuth, consumeAuth               stmt
	insertToken, getToken, listTokens, listAll, revokeToken, revokeUser                   stmt
	rotate, rotateInsert, tokenState, tokenScope, familyOf, revokeFamily                  stmt
	cleanDevices, cleanAuths, cleanTokens                                                 stmt
}

func (s *stmts) all() []*stmt {
	return []*stmt{&s.insertDevice, &s.validateUserCode, &s.deviceIDToken, &s.getDevice, &s.updateDevice,
		&s.consumeDevice, &s.insertAuth, &s.authIDToken, &s.authRedirect, &s.getAuth, &s.updateAuth,
		&s.consumeAuth, &s.insertToken, &s.getToken, &s.listTokens, &s.listAll, &s.revokeToken,
		&s.revokeUser, &s.rotate, &s.rotateInsert, &s.tokenState, &s.tokenScope, &s.familyOf, &s.revokeFamily,
		&s.cleanDevices, &s.cleanAuths,
		&s.cleanTokens}
}

const (
	devCols   = `"UserCode","ClientID","Scope","DeviceCode","Status","CreationTime","IDToken"`
	authCols  = `"UUID","ClientID","Scope","CodeChallenge","CodeChallengeMethod","RedirectURI","Code","Status","CreationTime","IDToken"`
	tokenCols = `"JTI","Status","Scope","Sub","FamilyID","ReplacedBy"`
)

// New returns a Store on db, an open pool of the given dialect configured
// like authdb's (see package bench). In Prepared mode every statement is
// prepared now. Close closes db.
func New(ctx context.Context, db *sql.DB, dialect string, mode Mode, opts ...backend.Option) (*Store, error) {
	st := &Store{db: db, dialect: dialect, opts: backend.NewOptions(opts...)}
	s := &st.s
	set := func(p *stmt, q string) { p.q = q }
	set(&s.insertDevice, `INSERT INTO "DeviceFlows" ("UserCode","Status","CreationTime","ClientID","Scope","DeviceCode") VALUES (?,'PENDING',?,?,?,?)`)
	set(&s.validateUserCode, `SELECT "Scope" FROM "DeviceFlows" WHERE "UserCode"=? AND "Status"='PENDING' AND "CreationTime">=?`)
	set(&s.deviceIDToken, `UPDATE "DeviceFlows" SET "IDToken"=?,"Status"='READY' WHERE "UserCode"=? AND "Status"='PENDING' AND "CreationTime">=?`)
	set(&s.getDevice, `SELECT `+devCols+` FROM "DeviceFlows" WHERE "DeviceCode"=?`)
	set(&s.updateDevice, `UPDATE "DeviceFlows" SET "Status"=? WHERE "DeviceCode"=?`)
	set(&s.consumeDevice, `UPDATE "DeviceFlows" SET "Status"='DONE' WHERE "DeviceCode"=? AND "Status"='READY' AND "CreationTime">=?`)
	set(&s.insertAuth, `INSERT INTO "AuthorizationFlows" ("UUID","Status","ClientID","CreationTime","Scope","CodeChallenge","CodeChallengeMethod","RedirectURI") VALUES (?,'PENDING',?,?,?,?,?,?)`)
	set(&s.authIDToken, `UPDATE "AuthorizationFlows" SET "Code"=?,"IDToken"=?,"Status"='READY' WHERE "UUID"=? AND "Status"='PENDING' AND "CreationTime">=?`)
	set(&s.authRedirect, `SELECT "RedirectURI" FROM "AuthorizationFlows" WHERE "UUID"=?`)
	set(&s.getAuth, `SELECT `+authCols+` FROM "AuthorizationFlows" WHERE "Code"=? AND "CreationTime">=?`)
	set(&s.updateAuth, `UPDATE "AuthorizationFlows" SET "Status"=? WHERE "Code"=?`)
	set(&s.consumeAuth, `UPDATE "AuthorizationFlows" SET "Status"='DONE' WHERE "Code"=? AND "Status"='READY' AND "CreationTime">=?`)
	set(&s.insertToken, `INSERT INTO "RefreshTokens" ("JTI","Status","Scope","Sub","FamilyID") VALUES (?,'CREATED',?,?,?)`)
	set(&s.getToken, `SELECT `+tokenCols+` FROM "RefreshTokens" WHERE "JTI"=?`)
	set(&s.listTokens, `SELECT `+tokenCols+` FROM "RefreshTokens" WHERE "Status"='CREATED' AND "Sub"=? ORDER BY "JTI"`)
	set(&s.listAll, `SELECT `+tokenCols+` FROM "RefreshTokens" ORDER BY "JTI"`)
	set(&s.revokeToken, `UPDATE "RefreshTokens" SET "Status"='REVOKED' WHERE "JTI"=?`)
	set(&s.revokeUser, `UPDATE "RefreshTokens" SET "Status"='REVOKED' WHERE "Status"='CREATED' AND "Sub"=?`)
	// Families: the rotation names the successor and gives it the old
	// token's family; a family is "FamilyID"=f OR "JTI"=f (a DiracX-written
	// first token has no FamilyID).
	set(&s.rotate, `UPDATE "RefreshTokens" SET "Status"='REVOKED',"ReplacedBy"=?,"FamilyID"=COALESCE("FamilyID","JTI") WHERE "JTI"=? AND "Status"='CREATED'`)
	if st.opts.FamilyLifetime > 0 {
		s.rotate.q += ` AND COALESCE("FamilyID","JTI")>=?`
	}
	set(&s.rotateInsert, `INSERT INTO "RefreshTokens" ("JTI","Status","Scope","Sub","FamilyID") VALUES (?,'CREATED',?,?,?)`)
	set(&s.tokenState, `SELECT t."Status",t."Scope",t."Sub",COALESCE(t."FamilyID",t."JTI"),t."FamilyID",t."ReplacedBy",s."Status" FROM "RefreshTokens" t LEFT JOIN "RefreshTokens" s ON s."JTI"=t."ReplacedBy" WHERE t."JTI"=?`)
	set(&s.tokenScope, `SELECT "Scope","Sub","FamilyID" FROM "RefreshTokens" WHERE "JTI"=?`)
	set(&s.familyOf, `SELECT COALESCE("FamilyID","JTI") FROM "RefreshTokens" WHERE "JTI"=?`)
	set(&s.revokeFamily, `UPDATE "RefreshTokens" SET "Status"='REVOKED' WHERE "Status"='CREATED' AND ("FamilyID"=? OR "JTI"=?)`)
	switch dialect {
	case MySQL:
		// Subjects compare exactly (a case-folding or PAD SPACE collation
		// would match "Alice" or "alice "); the collated equality keeps the index.
		bin := ` AND CAST("Sub" AS BINARY)=CAST(? AS BINARY)`
		s.listTokens.q = strings.Replace(s.listTokens.q, ` ORDER BY`, bin+` ORDER BY`, 1)
		s.revokeUser.q += bin
		var version string
		if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
			return nil, fmt.Errorf("baseline: server version: %w", err)
		}
		if st.mariadb = strings.Contains(strings.ToLower(version), "mariadb"); st.mariadb {
			// No UPDATE ... RETURNING, but INSERT ... RETURNING: the new
			// token copies the old one's subject and scope and returns them.
			s.rotateInsert.q = `INSERT INTO "RefreshTokens" ("JTI","Status","Scope","Sub","FamilyID") SELECT ?,'CREATED',"Scope","Sub","FamilyID" FROM "RefreshTokens" WHERE "JTI"=? RETURNING "Scope","Sub","FamilyID"`
		}
		s.cleanDevices.q = `DELETE FROM "DeviceFlows" WHERE "CreationTime"<? ORDER BY "CreationTime","UserCode" LIMIT ?`
		s.cleanAuths.q = `DELETE FROM "AuthorizationFlows" WHERE "CreationTime"<? ORDER BY "CreationTime","UUID" LIMIT ?`
		s.cleanTokens.q = `DELETE FROM "RefreshTokens" WHERE "JTI"<? ORDER BY "JTI" LIMIT ?`
	default:
		s.insertDevice.q += ` ON CONFLICT ("UserCode") DO NOTHING`
		s.cleanDevices.q = `DELETE FROM "DeviceFlows" WHERE "UserCode" IN (SELECT "UserCode" FROM "DeviceFlows" WHERE "CreationTime"<? LIMIT ?)`
		s.cleanAuths.q = `DELETE FROM "AuthorizationFlows" WHERE "UUID" IN (SELECT "UUID" FROM "AuthorizationFlows" WHERE "CreationTime"<? LIMIT ?)`
		s.cleanTokens.q = `DELETE FROM "RefreshTokens" WHERE "JTI" IN (SELECT "JTI" FROM "RefreshTokens" WHERE "JTI"<? ORDER BY "JTI" LIMIT ?)`
	}
	switch dialect {
	case SQLite:
		s.consumeDevice.q += ` RETURNING ` + devCols
		s.consumeAuth.q += ` RETURNING ` + authCols
		s.authIDToken.q += ` RETURNING "RedirectURI"`
		s.rotate.q += ` RETURNING "Scope","Sub","FamilyID"`
	case Postgres:
		// One statement on every path: the conditional update, or, when it
		// matched nothing, the row from the same snapshot to say why.
		s.consumeDevice.q = `WITH u AS (` + s.consumeDevice.q + ` RETURNING ` + devCols + `) ` +
			`SELECT true,` + devCols + ` FROM u UNION ALL ` +
			`SELECT false,` + devCols + ` FROM "DeviceFlows" WHERE "DeviceCode"=? AND NOT EXISTS (SELECT 1 FROM u)`
		s.consumeAuth.q = `WITH u AS (` + s.consumeAuth.q + ` RETURNING ` + authCols + `) ` +
			`SELECT true,` + authCols + ` FROM u UNION ALL ` +
			`SELECT false,` + authCols + ` FROM "AuthorizationFlows" WHERE "Code"=? AND "CreationTime">=? AND NOT EXISTS (SELECT 1 FROM u)`
		s.authIDToken.q += ` RETURNING "RedirectURI"`
		// As authdb's (sqlbackend/queries.go): a status test no index
		// serves keeps the look-up on the primary key before the table's
		// first ANALYZE.
		s.rotate.q = strings.Replace(s.rotate.q, ` AND "Status"='CREATED'`, ` AND ("Status"='CREATED') IS TRUE`, 1)
		s.rotate.q = `WITH old AS (` + s.rotate.q + ` RETURNING "Scope","Sub","FamilyID"), ` +
			`ins AS (INSERT INTO "RefreshTokens" ("JTI","Status","Scope","Sub","FamilyID") SELECT CAST(? AS uuid),'CREATED',"Scope","Sub","FamilyID" FROM old) ` +
			`SELECT "Scope","Sub","FamilyID" FROM old`
	case MySQL:
	default:
		return nil, fmt.Errorf("baseline: unknown dialect %q", dialect)
	}
	for _, p := range s.all() {
		p.q = sqldialect.Rewrite(dialect, p.q)
		if mode == Prepared {
			var err error
			if p.p, err = db.PrepareContext(ctx, p.q); err != nil {
				st.closeStmts()
				return nil, fmt.Errorf("baseline: prepare %s: %w", p.q, err)
			}
		}
	}
	return st, nil
}

// SQL returns the statements, for tests (EXPLAIN) and documentation.
func (st *Store) SQL() map[string]string {
	s := &st.s
	return map[string]string{
		"listTokens": s.listTokens.q, "listAll": s.listAll.q, "cleanDevices": s.cleanDevices.q,
		"cleanAuths": s.cleanAuths.q, "cleanTokens": s.cleanTokens.q, "getAuth": s.getAuth.q,
		"getDevice": s.getDevice.q, "revokeUser": s.revokeUser.q,
	}
}

func (st *Store) closeStmts() {
	for _, p := range st.s.all() {
		if p.p != nil {
			p.p.Close()
		}
	}
}

// execer is a pool or a transaction.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func (st *Store) exec(ctx context.Context, tx *sql.Tx, p *stmt, args ...any) (int64, error) {
	var res sql.Result
	var err error
	switch {
	case p.p != nil && tx != nil:
		res, err = tx.StmtContext(ctx, p.p).ExecContext(ctx, args...)
	case p.p != nil:
		res, err = p.p.ExecContext(ctx, args...)
	case tx != nil:
		res, err = tx.ExecContext(ctx, p.q, args...)
	default:
		res, err = st.db.ExecContext(ctx, p.q, args...)
	}
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// row runs a query of at most one row and scans it; found is false when
// there is none.
func (st *Store) row(ctx context.Context, tx *sql.Tx, p *stmt, args []any, dest ...any) (found bool, err error) {
	var r *sql.Row
	switch {
	case p.p != nil && tx != nil:
		r = tx.StmtContext(ctx, p.p).QueryRowContext(ctx, args...)
	case p.p != nil:
		r = p.p.QueryRowContext(ctx, args...)
	case tx != nil:
		r = tx.QueryRowContext(ctx, p.q, args...)
	default:
		r = st.db.QueryRowContext(ctx, p.q, args...)
	}
	if err := r.Scan(dest...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

func (st *Store) query(ctx context.Context, p *stmt, args ...any) (*sql.Rows, error) {
	if p.p != nil {
		return p.p.QueryContext(ctx, args...)
	}
	return st.db.QueryContext(ctx, p.q, args...)
}

// ---- conversions ----

const sqliteTime = "2006-01-02 15:04:05"

func (st *Store) now() time.Time { return st.opts.Now() }

// timeArg is a CreationTime argument: text on SQLite (as DATETIME('now')
// writes it, so that text comparison is time order), time.Time elsewhere.
func (st *Store) timeArg(t time.Time) any {
	t = t.UTC()
	if t.Before(time.Unix(0, 0)) {
		t = time.Unix(0, 0).UTC()
	}
	if y := t.Year(); y > 9999 {
		t = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
	}
	if st.dialect == SQLite {
		return t.Format(sqliteTime)
	}
	return t
}

// idArg is a UUID argument: dashed for PostgreSQL's uuid, 32 hex elsewhere.
func (st *Store) idArg(id uuid.UUID) string {
	if st.dialect == Postgres {
		return id.String()
	}
	return backend.HexJTI(id)
}

func (st *Store) subArgs(sub string) []any {
	if st.dialect == MySQL {
		return []any{sub, sub}
	}
	return []any{sub}
}

// liveSince is the first whole second after now-maxValidity: live means
// CreationTime >= liveSince for whole-second times.
func liveSince(now time.Time, maxValidity time.Duration) time.Time {
	return now.Add(-maxValidity).Truncate(time.Second).Add(time.Second)
}

type timeDest struct{ t *time.Time }

func (d timeDest) Scan(v any) error {
	switch v := v.(type) {
	case time.Time:
		*d.t = v.UTC().Truncate(time.Second)
		return nil
	case string:
		return d.parse(v)
	case []byte:
		return d.parse(string(v))
	}
	return fmt.Errorf("baseline: CreationTime: unexpected %T", v)
}

func (d timeDest) parse(s string) error {
	t, err := time.ParseInLocation(sqliteTime, s, time.UTC)
	if err != nil {
		t, err = time.Parse(time.RFC3339Nano, s)
	}
	*d.t = t.UTC().Truncate(time.Second)
	return err
}

type uuidDest struct{ id *uuid.UUID }

// nullUUIDDest scans a nullable UUID (FamilyID, ReplacedBy): NULL is uuid.Nil.
type nullUUIDDest struct{ id *uuid.UUID }

func (d nullUUIDDest) Scan(v any) error {
	if v == nil {
		*d.id = uuid.Nil
		return nil
	}
	return uuidDest(d).Scan(v)
}

func (d uuidDest) Scan(v any) error {
	var err error
	switch v := v.(type) {
	case string:
		*d.id, err = backend.ParseStoredUUID(v)
	case []byte:
		*d.id, err = backend.ParseStoredUUID(string(v))
	default:
		err = fmt.Errorf("baseline: uuid: unexpected %T", v)
	}
	return err
}

// ---- errors ----

// retry runs fn again (at most 5 times in all) while it fails with a
// deadlock, serialization failure or busy database.
func retry(ctx context.Context, fn func() error) error {
	wait := 2 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || attempt == 5 || !sqldialect.IsTransient(err) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// fail wraps a driver error: the context's error when ctx is done, else
// ErrAlreadyExists for a duplicate key, else the driver's error.
func fail(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("baseline: %s: %w", op, ctx.Err())
	}
	if sqldialect.IsDuplicate(err) {
		return fmt.Errorf("baseline: %s: %w (%v)", op, backend.ErrAlreadyExists, err)
	}
	return fmt.Errorf("baseline: %s: %w", op, err)
}

func begin(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("baseline: %s: %w", op, err)
	}
	return nil
}

// Ping implements backend.Backend.
func (st *Store) Ping(ctx context.Context) error {
	if err := st.db.PingContext(ctx); err != nil {
		return fail(ctx, "ping", err)
	}
	return nil
}

// Close closes the prepared statements and the pool.
func (st *Store) Close() error {
	st.closeStmts()
	return st.db.Close()
}
