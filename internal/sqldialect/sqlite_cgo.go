//go:build cgo

package sqldialect

import (
	"errors"

	"github.com/mattn/go-sqlite3"
)

// HasSQLite reports whether this binary has SQLite (github.com/mattn/go-sqlite3
// needs cgo).
const HasSQLite = true

func isSQLiteBusy(err error) bool {
	var liteErr sqlite3.Error
	return errors.As(err, &liteErr) && (liteErr.Code == sqlite3.ErrBusy || liteErr.Code == sqlite3.ErrLocked)
}

func isSQLiteDuplicate(err error) bool {
	var liteErr sqlite3.Error
	return errors.As(err, &liteErr) && (liteErr.ExtendedCode == sqlite3.ErrConstraintPrimaryKey ||
		liteErr.ExtendedCode == sqlite3.ErrConstraintUnique)
}

func isSQLiteError(err error) bool {
	var liteErr sqlite3.Error
	return errors.As(err, &liteErr)
}
