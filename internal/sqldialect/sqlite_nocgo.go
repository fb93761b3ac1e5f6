//go:build !cgo

package sqldialect

// HasSQLite reports whether this binary has SQLite: built without cgo, it
// has not (github.com/mattn/go-sqlite3 needs cgo).
const HasSQLite = false

func isSQLiteBusy(error) bool { return false }

func isSQLiteDuplicate(error) bool { return false }

func isSQLiteError(error) bool { return false }
