//go:build !cgo

package sqlbackend

import (
	"database/sql/driver"
	"fmt"

	"github.com/authdb/authdb/backend"
)

// errNoSQLite is what opening a sqlite:// URL returns in a binary built
// without cgo: github.com/mattn/go-sqlite3 needs it.
var errNoSQLite = fmt.Errorf("%w: SQLite needs cgo, and this binary was built without it (CGO_ENABLED=0): rebuild with CGO_ENABLED=1 and a C compiler, or use PostgreSQL or MySQL/MariaDB", backend.ErrUnsupported)

func newSQLiteConnector(string, bool) (driver.Connector, error) { return nil, errNoSQLite }
