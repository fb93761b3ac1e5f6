//go:build cgo

package sqlbackend

import (
	"context"
	"database/sql/driver"

	"github.com/mattn/go-sqlite3" // also registers the sqlite3 driver
)

// newSQLiteConnector opens SQLite connections as sql.Open("sqlite3", dsn)
// does. SQLite is built only with cgo (sqlite_nocgo.go).
func newSQLiteConnector(dsn string) (driver.Connector, error) { return sqliteConnector{dsn}, nil }

type sqliteConnector struct{ dsn string }

func (c sqliteConnector) Connect(context.Context) (driver.Conn, error) {
	return (&sqlite3.SQLiteDriver{}).Open(c.dsn)
}

func (sqliteConnector) Driver() driver.Driver { return &sqlite3.SQLiteDriver{} }
