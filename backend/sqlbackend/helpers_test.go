package sqlbackend_test

import (
	"bytes"
	"context"
	"database/sql"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/backend/sqlbackend"
	"github.com/authdb/authdb/internal/testdb"
)

// engine is one of the three SQL engines the tests run on.
type engine struct {
	name    string // sqlite, postgres, mysql
	dialect string // as Backend.Dialect reports it
	ddl     string // DiracX's DDL fixture
}

var engines = []engine{
	{"sqlite", "sqlite3", "testdata/diracx_sqlite.sql"},
	{"postgres", "postgres", "testdata/diracx_postgres.sql"},
	{"mysql", "mysql", "testdata/diracx_mysql.sql"},
}

// newURL returns the URL of a new, empty database of e, dropped (or
// removed) when the test ends.
func newURL(t testing.TB, e engine) string {
	t.Helper()
	switch e.name {
	case "sqlite":
		return "sqlite://" + filepath.Join(t.TempDir(), "authdb.db")
	case "postgres":
		return testdb.NewDatabase(t, testdb.Postgres)
	}
	return testdb.NewDatabase(t, testdb.MySQL)
}

// open opens a backend on rawURL and closes it when the test ends.
func open(t testing.TB, rawURL string, opts ...backend.Option) *sqlbackend.Backend {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := sqlbackend.Open(ctx, rawURL, opts...)
	if err != nil {
		t.Fatalf("Open(%s): %v", backend.Redact(rawURL), err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// rawDB opens a plain database/sql handle on rawURL, closed when the test ends.
func rawDB(t testing.TB, e engine, rawURL string) *sql.DB {
	t.Helper()
	var db *sql.DB
	var err error
	if e.name == "sqlite" {
		db, err = sql.Open("sqlite3", "file:"+strings.TrimPrefix(rawURL, "sqlite://")+"?_busy_timeout=10000")
	} else {
		db, err = testdb.AdminDB(rawURL)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// loadDDL runs a DDL fixture, statement by statement.
func loadDDL(t testing.TB, db *sql.DB, file string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range strings.Split(string(b), ";") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v\n%s", file, err, stmt)
		}
	}
}

// logBuffer is a goroutine-safe buffer for a test logger.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newLogger() (*slog.Logger, *logBuffer) {
	lb := &logBuffer{}
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

// tables are authdb's (and DiracX's) three tables.
var tables = []string{"DeviceFlows", "AuthorizationFlows", "RefreshTokens"}

// quote quotes an identifier for e.
func quote(e engine, name string) string {
	if e.name == "mysql" {
		return "`" + name + "`"
	}
	return `"` + name + `"`
}

// emptyTables deletes every row of the three tables.
func emptyTables(t testing.TB, e engine, db *sql.DB) {
	t.Helper()
	for _, table := range tables {
		if _, err := db.Exec("DELETE FROM " + quote(e, table)); err != nil {
			t.Fatalf("empty %s: %v", table, err)
		}
	}
}
