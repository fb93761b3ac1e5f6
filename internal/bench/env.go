package bench

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/lib/pq"
	"github.com/mattn/go-sqlite3"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/backend/memory"
	"github.com/authdb/authdb/backend/sqlbackend"
	"github.com/authdb/authdb/internal/bench/baseline"
	"github.com/authdb/authdb/internal/testdb"
)

// Engine names, as the table prints them.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
	MySQL    = "mariadb" // the local server; MySQL 8 takes the same path
	Memory   = "memory"
)

// SQLEngines are the engines with a baseline.
var SQLEngines = []string{SQLite, Postgres, MySQL}

// PoolIdle is the idle-connection limit of both pools (sqlbackend's default).
const PoolIdle = sqlbackend.DefaultMaxIdleConns

// Clock is a settable clock: the wall clock unless Set. Each implementation
// has its own, so that clean-up benchmarks can move "now" call by call.
type Clock struct{ at atomic.Int64 } // UnixNano; 0 = the wall clock

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	if n := c.at.Load(); n != 0 {
		return time.Unix(0, n).UTC()
	}
	return time.Now()
}

// Set fixes the clock at t; the zero time gives it back the wall clock.
func (c *Clock) Set(t time.Time) {
	if t.IsZero() {
		c.at.Store(0)
		return
	}
	c.at.Store(t.UnixNano())
}

// Impl is one implementation under test: authdb or the baseline.
type Impl struct {
	Name    string // "authdb" or "baseline"
	B       backend.Backend
	Count   *Counter // nil when the round trips of B cannot be counted
	Clock   *Clock
	Dialect string // "" for memory
	// Shards, when set, are independent stores: goroutine w of a load run
	// (RunLoad) calls Shards[w%len(Shards)] instead of B (the memory
	// backend's ideal sharding: nothing shared between goroutines).
	Shards []backend.Backend
}

// Env is one engine's database with authdb and the baseline on it, sharing
// the tables (created by sqlbackend's migration).
type Env struct {
	Engine   string
	Dialect  string // as sqlbackend.Backend.Dialect reports it; "" for memory
	URL      string
	Admin    *sql.DB // plain pool, not counted: bulk loads, EXPLAIN
	Authdb   *Impl
	Baseline *Impl // nil for memory

	mu      sync.Mutex
	virtual time.Time       // next clean-up window (see virtualWindow)
	once    map[string]bool // Op.Once keys done
}

// Impls returns the implementations of the environment, authdb first.
func (e *Env) Impls() []*Impl {
	if e.Baseline == nil {
		return []*Impl{e.Authdb}
	}
	return []*Impl{e.Authdb, e.Baseline}
}

// NewURL returns the URL of a new, empty database of engine, removed when
// tb ends: a SQLite file in a temporary directory, or a database made by
// testdb on the local PostgreSQL or MariaDB server.
func NewURL(tb testing.TB, engine string) string {
	tb.Helper()
	switch engine {
	case SQLite:
		return "sqlite://" + filepath.Join(tb.TempDir(), "bench.db")
	case Postgres:
		return testdb.NewDatabase(tb, testdb.Postgres)
	case MySQL:
		return testdb.NewDatabase(tb, testdb.MySQL)
	}
	tb.Fatalf("bench: unknown engine %q", engine)
	return ""
}

// Connector returns a driver connector for an authdb URL with exactly the
// driver settings sqlbackend.Open uses (sqlbackend.DSN: PostgreSQL
// binary_parameters=yes; MySQL parseTime, UTC, utf8mb4, interpolateParams,
// clientFoundRows; SQLite WAL, synchronous NORMAL, busy timeout,
// _txlock=immediate), and the dialect name.
func Connector(rawURL string) (driver.Connector, string, error) {
	name, dsn, err := sqlbackend.DSN(rawURL)
	if err != nil {
		return nil, "", err
	}
	switch name {
	case "sqlite3":
		return DSNConnector(&sqlite3.SQLiteDriver{}, dsn), baseline.SQLite, nil
	case "postgres":
		c, err := pq.NewConnector(dsn)
		return c, baseline.Postgres, err
	case "mysql":
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			return nil, "", err
		}
		c, err := mysql.NewConnector(cfg)
		return c, baseline.MySQL, err
	}
	return nil, "", fmt.Errorf("bench: unsupported driver %q", name)
}

// Pool opens a pool on a connector counted by c (nil: not counted), with
// the pool settings sqlbackend.Open uses by default (the baseline's pool).
func Pool(connector driver.Connector, c *Counter) *sql.DB {
	if c != nil {
		connector = Count(connector, c)
	}
	db := sql.OpenDB(connector)
	db.SetMaxIdleConns(PoolIdle)
	return db
}

// Migrate creates the schema on rawURL with sqlbackend's migration (on a
// plain, uncounted connection: on MySQL this also partitions RefreshTokens).
func Migrate(ctx context.Context, rawURL string) error {
	b, err := sqlbackend.Open(ctx, rawURL)
	if err != nil {
		return err
	}
	return b.Close()
}

// Options is what both implementations are opened with.
func implOptions(c *Clock, extra ...backend.Option) []backend.Option {
	return append([]backend.Option{backend.WithClock(c.Now)}, extra...)
}

// familyOptions are the refresh-token family options make bench measures
// with -families (and TestRoundTripsFamilies counts): a replay revokes one
// family, a one-minute grace window, a one-day family lifetime.
var familyOptions = []backend.Option{backend.WithReuseScope(backend.RevokeFamily),
	backend.WithRotationGrace(time.Minute), backend.WithFamilyLifetime(24 * time.Hour)}

// EnvConfig changes how NewEnvConfig sets an environment up.
type EnvConfig struct {
	// MaxOpenConns bounds both implementations' pools (0: sqlbackend's
	// default, unbounded, for authdb and database/sql's, also unbounded,
	// for the baseline).
	MaxOpenConns int
	// Unpartitioned: on MySQL/MariaDB, RefreshTokens stays unpartitioned
	// (the migration's partitioning is removed while the table is empty).
	Unpartitioned bool
	// Options are given to both implementations (after the clock).
	Options []backend.Option
}

// NewEnv makes an engine's environment with the default configuration
// (NewEnvConfig).
func NewEnv(tb testing.TB, engine string, mode baseline.Mode) *Env {
	tb.Helper()
	return NewEnvConfig(tb, engine, mode, EnvConfig{})
}

// NewEnvConfig makes an engine's environment: a new database, migrated, with
// authdb and the baseline (statements in mode) opened on it, each on its
// own counted pool. Everything is closed and dropped when tb ends.
func NewEnvConfig(tb testing.TB, engine string, mode baseline.Mode, cfg EnvConfig) *Env {
	tb.Helper()
	ctx := context.Background()
	if engine == Memory {
		clock := &Clock{}
		m := memory.New(implOptions(clock, cfg.Options...)...)
		tb.Cleanup(func() { m.Close() })
		return &Env{Engine: Memory, Authdb: &Impl{Name: "authdb", B: m, Clock: clock}}
	}
	rawURL := NewURL(tb, engine)
	if err := Migrate(ctx, rawURL); err != nil {
		tb.Fatalf("bench: migrate %s: %v", engine, err)
	}
	connector, dialect, err := Connector(rawURL)
	if err != nil {
		tb.Fatal(err)
	}
	env := &Env{Engine: engine, Dialect: dialect, URL: rawURL, Admin: Pool(connector, nil)}
	tb.Cleanup(func() { env.Admin.Close() })
	if cfg.Unpartitioned && dialect == baseline.MySQL {
		if _, err := env.Admin.ExecContext(ctx, "ALTER TABLE `RefreshTokens` REMOVE PARTITIONING"); err != nil {
			tb.Fatalf("bench: unpartition %s: %v", engine, err)
		}
	}
	var poolOpts []backend.Option
	if cfg.MaxOpenConns > 0 {
		poolOpts = append(poolOpts, backend.WithMaxOpenConns(cfg.MaxOpenConns))
	}

	// authdb exactly as Open makes it (driver and pool settings, MySQL
	// kill-on-cancel, SQLite busy handling), its connector counted.
	a := &Impl{Name: "authdb", Clock: &Clock{}, Count: &Counter{}, Dialect: dialect}
	a.B, err = sqlbackend.OpenWrapped(ctx, rawURL, func(c driver.Connector) driver.Connector { return Count(c, a.Count) },
		implOptions(a.Clock, append(append(poolOpts, backend.WithoutMigration()), cfg.Options...)...)...)
	if err != nil {
		tb.Fatalf("bench: open authdb on %s: %v", engine, err)
	}
	tb.Cleanup(func() { a.B.Close() })

	bl := &Impl{Name: "baseline", Clock: &Clock{}, Count: &Counter{}, Dialect: dialect}
	pool := Pool(connector, bl.Count)
	if cfg.MaxOpenConns > 0 {
		pool.SetMaxOpenConns(cfg.MaxOpenConns)
	}
	st, err := baseline.New(ctx, pool, dialect, mode, implOptions(bl.Clock, cfg.Options...)...)
	if err != nil {
		tb.Fatalf("bench: open baseline on %s: %v", engine, err)
	}
	bl.B = st
	tb.Cleanup(func() { st.Close() })
	env.Authdb, env.Baseline = a, bl
	return env
}
