// Package sqldialect holds the small, engine-specific helpers that authdb's
// SQL clients share: the SQL backend (backend/sqlbackend), the benchmarks'
// hand-written baseline (internal/bench/baseline) and the reliability tests.
// It writes no SQL of its own: it rewrites a statement template for an
// engine and classifies driver errors.
package sqldialect

import (
	"errors"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/lib/pq"
)

// Dialect names, as entgo.io/ent/dialect spells them.
const (
	SQLite   = "sqlite3"
	Postgres = "postgres"
	MySQL    = "mysql"
)

// Rewrite turns a statement template, written with "double-quoted"
// identifiers and ? placeholders, into the dialect's SQL: `backquoted`
// identifiers on MySQL, $1, $2, ... on PostgreSQL, unchanged on SQLite.
// Templates must contain no string literal with a double quote or a
// question mark.
func Rewrite(dialect, s string) string {
	switch dialect {
	case MySQL:
		return strings.ReplaceAll(s, `"`, "`")
	case Postgres:
		var b strings.Builder
		n := 0
		for _, r := range s {
			if r == '?' {
				n++
				b.WriteString("$" + strconv.Itoa(n))
				continue
			}
			b.WriteRune(r)
		}
		return b.String()
	}
	return s
}

// IsTransient reports whether err is a conflict that the same operation,
// run again, may not meet: a serialization failure or deadlock on
// PostgreSQL (SQLSTATE 40001, 40P01), a deadlock or lock-wait timeout on
// MySQL/MariaDB (1213, 1205), a MySQL/MariaDB prepared statement refused
// before it ran because its table's definition changed while the server
// re-prepared it (1615, ER_NEED_REPREPARE: partition maintenance's ALTER
// TABLE statements, back to back), or a busy or locked SQLite database.
func IsTransient(err error) bool {
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		return pqErr.Code == "40001" || pqErr.Code == "40P01"
	}
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) {
		return myErr.Number == 1213 || myErr.Number == 1205 || myErr.Number == 1615
	}
	return IsBusy(err)
}

// IsLockWaitTimeout reports whether err is MySQL/MariaDB's 1205: a row
// lock, or for a DDL statement the table's metadata lock, waited for
// longer than the session allows.
func IsLockWaitTimeout(err error) bool {
	var myErr *mysql.MySQLError
	return errors.As(err, &myErr) && myErr.Number == 1205
}

// IsTooManyConnections reports whether err is the server refusing a new
// connection because it has too many (MySQL/MariaDB 1040, PostgreSQL
// SQLSTATE 53300 too_many_connections). The refusal comes before any
// statement is sent, so the operation may always run again; callers wait
// for a free connection within their deadline.
func IsTooManyConnections(err error) bool {
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		return pqErr.Code == "53300"
	}
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) {
		return myErr.Number == 1040
	}
	return false
}

// IsSQLiteError reports whether err is an error of SQLite itself (any
// code): SQLite runs in the process, so its error is the statement's
// definite outcome.
func IsSQLiteError(err error) bool { return isSQLiteError(err) }

// IsBusy reports whether err is SQLite's busy or locked database (always
// false in a binary built without cgo, which has no SQLite: sqlite_cgo.go).
func IsBusy(err error) bool { return isSQLiteBusy(err) }

// IsDuplicate reports whether err is a primary-key or unique violation
// (PostgreSQL 23505, MySQL 1062, SQLite's primary-key or unique constraint).
func IsDuplicate(err error) bool {
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		return pqErr.Code == "23505"
	}
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) {
		return myErr.Number == 1062
	}
	return isSQLiteDuplicate(err)
}
