//go:build cgo

package sqlbackend

import (
	"context"
	"database/sql/driver"
	"fmt"

	"github.com/mattn/go-sqlite3" // also registers the sqlite3 driver
)

// newSQLiteConnector opens SQLite connections as sql.Open("sqlite3", dsn)
// does; with manualCheckpoint, each connection also turns SQLite's
// automatic checkpoints off (PRAGMA wal_autocheckpoint=0): the backend's
// checkpointer runs them instead (checkpoint.go). SQLite is built only with
// cgo (sqlite_nocgo.go).
func newSQLiteConnector(dsn string, manualCheckpoint bool) (driver.Connector, error) {
	return sqliteConnector{dsn, manualCheckpoint}, nil
}

type sqliteConnector struct {
	dsn              string
	manualCheckpoint bool
}

func (c sqliteConnector) Connect(context.Context) (driver.Conn, error) {
	cn, err := (&sqlite3.SQLiteDriver{}).Open(c.dsn)
	if err != nil || !c.manualCheckpoint {
		return cn, err
	}
	if _, err := cn.(*sqlite3.SQLiteConn).Exec("PRAGMA wal_autocheckpoint=0", nil); err != nil {
		cn.Close()
		return nil, fmt.Errorf("sqlite: PRAGMA wal_autocheckpoint=0: %w", err)
	}
	return cn, nil
}

func (sqliteConnector) Driver() driver.Driver { return &sqlite3.SQLiteDriver{} }
