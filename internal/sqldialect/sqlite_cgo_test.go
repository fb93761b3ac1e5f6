//go:build cgo

package sqldialect

import "github.com/mattn/go-sqlite3"

func init() {
	sqliteClassifyCases = []classifyCase{
		{sqlite3.Error{Code: sqlite3.ErrBusy}, true, false},
		{sqlite3.Error{Code: sqlite3.ErrLocked}, true, false},
		{sqlite3.Error{Code: sqlite3.ErrConstraint, ExtendedCode: sqlite3.ErrConstraintPrimaryKey}, false, true},
		{sqlite3.Error{Code: sqlite3.ErrConstraint, ExtendedCode: sqlite3.ErrConstraintUnique}, false, true},
		{sqlite3.Error{Code: sqlite3.ErrConstraint, ExtendedCode: sqlite3.ErrConstraintNotNull}, false, false},
	}
}
