package reliability

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/google/uuid"

	"github.com/authdb/authdb"
	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/conformance"
	"github.com/authdb/authdb/internal/sqldialect"
	"github.com/authdb/authdb/internal/testdb"
)

// The engines every test runs on; servers are the two with sessions to kill.
var (
	allEngines = []string{"memory", "sqlite", "postgres", "mysql"}
	sqlEngines = []string{"sqlite", "postgres", "mysql"}
	servers    = []string{"postgres", "mysql"}
)

// start is the instant the tests' clocks start at (a whole second: rows are
// compared with it byte for byte).
var start = time.Date(2026, time.March, 14, 9, 26, 53, 0, time.UTC)

const validity = 10 * time.Minute

// env is one engine's fresh database: the backend URL and, for SQL engines,
// a raw handle on the same database to inspect and disturb it.
type env struct {
	engine string
	url    string
	dbName string  // server database name ("" for memory and SQLite)
	raw    *sql.DB // nil for memory
	clock  *conformance.Clock
}

// newEnv makes a fresh, empty database of engine (dropped or removed when
// the test ends).
func newEnv(t *testing.T, engine string) *env {
	t.Helper()
	e := &env{engine: engine, clock: conformance.NewClock(start)}
	switch engine {
	case "memory":
		e.url = "memory://"
		return e
	case "sqlite":
		path := filepath.Join(t.TempDir(), "authdb.db")
		e.url = "sqlite://" + path
		db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=10000")
		if err != nil {
			t.Fatal(err)
		}
		e.raw = db
	case "postgres", "mysql":
		e.url = testdb.NewDatabase(t, serverEngine(engine))
		e.dbName = dbNameOf(t, e.url)
		db, err := testdb.AdminDB(e.url)
		if err != nil {
			t.Fatal(err)
		}
		e.raw = db
	default:
		t.Fatalf("unknown engine %q", engine)
	}
	// Registered after NewDatabase's cleanup, so it runs before the drop.
	t.Cleanup(func() { e.raw.Close() })
	return e
}

func serverEngine(engine string) testdb.Engine {
	if engine == "postgres" {
		return testdb.Postgres
	}
	return testdb.MySQL
}

func dbNameOf(t *testing.T, rawURL string) string {
	t.Helper()
	i := strings.LastIndex(rawURL, "/")
	name := rawURL[i+1:]
	if j := strings.IndexByte(name, '?'); j >= 0 {
		name = name[:j]
	}
	if !strings.HasPrefix(name, "authdb_test_") {
		t.Fatalf("unexpected test database name %q", name)
	}
	return name
}

// open opens a backend on the env's database with the env's clock (and
// opts after it), closed when the test ends.
func (e *env) open(t *testing.T, opts ...backend.Option) backend.Backend {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	all := append([]backend.Option{backend.WithClock(e.clock.Now)}, opts...)
	b, err := authdb.Open(ctx, e.url, all...)
	if err != nil {
		t.Fatalf("open %s: %v", e.engine, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// q rewrites a query written with "double-quoted" identifiers and ?
// placeholders for the env's engine.
func (e *env) q(s string) string { return sqldialect.Rewrite(e.engine, s) }

// count returns SELECT COUNT(*) FROM table, read with raw SQL.
func (e *env) count(t *testing.T, table string) int {
	t.Helper()
	var n int
	if err := e.raw.QueryRow(e.q(`SELECT COUNT(*) FROM "` + table + `"`)).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// killer is an admin connection to the server's default database (not the
// test database, so it never kills itself) that ends the test database's
// sessions.
type killer struct {
	engine, dbName string
	db             *sql.DB

	mu     sync.Mutex
	killed map[int64]bool // sessions killed and not yet seen gone (settle)
}

func newKiller(t *testing.T, e *env) *killer {
	t.Helper()
	db, err := testdb.AdminDB(testdb.ServerURL(t, serverEngine(e.engine)))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(2)
	t.Cleanup(func() { db.Close() })
	return &killer{engine: e.engine, dbName: e.dbName, db: db, killed: map[int64]bool{}}
}

// kill ends every session connected to the test database and returns how
// many it ended.
func (k *killer) kill(ctx context.Context) (int, error) {
	query := `SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`
	if k.engine == "mysql" {
		query = `SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()`
	}
	ids, err := k.ids(ctx, query, k.dbName)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		var err error
		if k.engine == "postgres" {
			var ok bool
			err = k.db.QueryRowContext(ctx, `SELECT pg_terminate_backend($1)`, id).Scan(&ok)
			if err == nil && !ok { // it ended on its own
				continue
			}
		} else {
			_, err = k.db.ExecContext(ctx, fmt.Sprintf("KILL CONNECTION %d", id))
			var me *mysql.MySQLError
			if errors.As(err, &me) && me.Number == 1094 { // unknown thread: it ended on its own
				continue
			}
		}
		if err != nil {
			return n, err
		}
		k.mu.Lock()
		k.killed[id] = true
		k.mu.Unlock()
		n++
	}
	return n, nil
}

func (k *killer) ids(ctx context.Context, query string, args ...any) ([]int64, error) {
	rows, err := k.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// settle waits until every session killed so far has ended on the server.
// A killed session may still be finishing a COMMIT after its client got an
// error; once it is gone, what it did is what the database holds.
func (k *killer) settle(ctx context.Context) error {
	k.mu.Lock()
	want := make(map[int64]bool, len(k.killed))
	for id := range k.killed {
		want[id] = true
	}
	k.mu.Unlock()
	query := `SELECT pid FROM pg_stat_activity WHERE datname = $1`
	if k.engine == "mysql" {
		query = `SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ?`
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ids, err := k.ids(ctx, query, k.dbName)
		if err != nil {
			return err
		}
		left := 0
		for _, id := range ids {
			if want[id] {
				left++
			}
		}
		if left == 0 {
			k.mu.Lock()
			for id := range want {
				delete(k.killed, id)
			}
			k.mu.Unlock()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d killed sessions still there after 30s", left)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// sessions returns how many sessions are connected to the test database.
func (k *killer) sessions(ctx context.Context) (int, error) {
	var n int
	var err error
	if k.engine == "postgres" {
		err = k.db.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1`, k.dbName).Scan(&n)
	} else {
		err = k.db.QueryRowContext(ctx, `SELECT count(*) FROM information_schema.PROCESSLIST WHERE DB = ?`, k.dbName).Scan(&n)
	}
	return n, err
}

// newJTI returns a UUIDv7 at the env's clock.
func (e *env) newJTI() uuid.UUID { return conformance.UUIDv7At(e.clock.Now()) }

// readyDeviceFlow stores a device flow with an ID token for sub, READY to
// be consumed, and returns its user code and device code.
func readyDeviceFlow(t *testing.T, ctx context.Context, b backend.Backend, sub string) (userCode, deviceCode string) {
	t.Helper()
	uc, dc, err := b.InsertDeviceFlow(ctx, "c", "s")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.DeviceFlowInsertIDToken(ctx, uc, map[string]any{"sub": sub}, validity); err != nil {
		t.Fatal(err)
	}
	return uc, dc
}
