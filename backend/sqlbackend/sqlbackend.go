package sqlbackend

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/go-sql-driver/mysql"
	"github.com/lib/pq"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/ent"
	"github.com/authdb/authdb/partition"
)

// The URL schemes this package registers with backend.Register.
var Schemes = []string{"sqlite", "postgres", "postgresql", "mysql"}

func init() {
	opener := func(ctx context.Context, rawURL string, opts ...backend.Option) (backend.Backend, error) {
		b, err := Open(ctx, rawURL, opts...)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return b, nil
	}
	for _, s := range Schemes {
		backend.Register(s, opener)
	}
}

// Backend is the SQL implementation of backend.Backend on SQLite, PostgreSQL
// and MySQL/MariaDB. It is safe for concurrent use; Close releases the pool.
type Backend struct {
	client  *ent.Client
	db      *sql.DB
	dialect string
	where   string // scheme and host, for errors
	opts    backend.Options
	mariaDB bool // MySQL dialect on MariaDB (INSERT ... RETURNING)
	// killer, on MySQL and PostgreSQL opened by Open, connects outside the
	// pool to end a session: a cancelled MySQL write's (Backend.write), or
	// one whose reply was lost (fence); the pool's connections know their
	// server ids and report their statements to probes (idConn).
	killer driver.Connector
	probes bool // the pool's connections are idConns (killer != nil)
	// killQueryFn is b.killQuery, made once (write hands it to probes).
	killQueryFn func(id uint64, server string)
	// busyBudget is how long SQLite operations wait, in all, for the write
	// lock (the URL's _busy_timeout).
	busyBudget time.Duration
	// gate queues this backend's SQLite writers (writegate.go) and ckpt
	// checkpoints the file's WAL outside it (checkpoint.go): both only on
	// a SQLite file opened by Open, nil otherwise.
	gate     writeGate
	dropGate func() // gives the shared gate back (Close); nil without a gate
	ckpt     *checkpointer
	// galera: a MariaDB Galera node (wsrep_on=ON at open); Ping then
	// also checks wsrep_ready (see galera.go).
	galera bool
	q      *queries
	stmts  *stmtCache          // q's statements, prepared on first use
	pool   pool                // autocommit statements through stmts
	desc   backend.Description // Describe's namespace, host and port
	// charsets, on MySQL, are the tables' text columns' character sets
	// (mysqlsession.go); nil elsewhere.
	charsets charsets
}

var (
	_ backend.Backend             = (*Backend)(nil)
	_ backend.PartitionMaintainer = (*Backend)(nil)
)

// Open opens the database a sqlite://, postgres://, postgresql:// or
// mysql:// URL names (see the package documentation for the forms and
// query parameters), pings it, and, unless backend.WithoutMigration is
// given, creates or upgrades the schema (Migrate).
//
// A malformed URL or an unknown query parameter is an error wrapping
// backend.ErrInvalidInput; a server that cannot be reached fails here, with
// an error naming the scheme and host. No error contains the password.
func Open(ctx context.Context, rawURL string, opts ...backend.Option) (*Backend, error) {
	return OpenWrapped(ctx, rawURL, nil, opts...)
}

// OpenWrapped is Open with the driver's connector passed through wrap, for
// instrumentation (a driver.Connector that counts or traces statements):
// the same driver settings, pool settings, MySQL kill-on-cancel and SQLite
// busy handling as Open. wrap must return a connector whose connections
// forward every optional driver interface they are given; a nil wrap is
// Open.
func OpenWrapped(ctx context.Context, rawURL string, wrap func(driver.Connector) driver.Connector, opts ...backend.Option) (*Backend, error) {
	cfg, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	o := backend.NewOptions(opts...)
	if cfg.mysql != nil {
		cfg.mysql.Logger = driverLogger{o.Logger}
	}
	if cfg.mysql != nil {
		// Is it a Galera node? Asked once, on a connection of its own,
		// before the pool opens: then every pool connection sets its
		// session's wsrep_sync_wait (galera.go).
		if cfg.sessionInit, err = galeraSessionInit(ctx, cfg); err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("authdb: open %s: %w", cfg.where, ctx.Err())
			}
			return nil, fmt.Errorf("authdb: open %s: cannot reach the database: %w", cfg.where, err)
		}
	}
	cfg.reconnectBudget = DefaultReconnectBudget
	if o.ReconnectBudget != 0 {
		cfg.reconnectBudget = o.ReconnectBudget
	}
	if cfg.reconnect != nil {
		cfg.reconnectBudget = *cfg.reconnect
	}
	cfg.armed, cfg.logger = new(atomic.Bool), o.Logger
	db, killer, err := openDB(cfg, wrap)
	if err != nil {
		return nil, fmt.Errorf("authdb: open %s: %w", cfg.where, err)
	}
	configurePool(db, cfg, o)
	b, err := newBackend(ctx, db, cfg.dialect, cfg.where, o, killer, cfg.busy)
	if err != nil {
		return nil, err
	}
	b.desc = describeURL(cfg, rawURL)
	if cfg.dialect == dialect.SQLite && !cfg.memory {
		b.gate, b.dropGate = shareWriteGate(cfg.file)
		b.ckpt = startCheckpointer(db, b.gate, o.Logger)
	}
	cfg.armed.Store(true) // from now on, a refused connection waits (reconnector)
	return b, nil
}

// DSN returns the database/sql driver name ("sqlite3", "postgres" or
// "mysql") and data source name that Open uses for rawURL, for callers that
// open the pool themselves (a driver wrapper that counts statements, for
// instance) and hand it to OpenDB. The DSN contains the password. The
// URL's pool parameters are not part of it. For SQLite, its busy timeout is
// the whole _busy_timeout: SQLite waits for the write lock itself, which no
// context interrupts (Open's pools wait in short slices and in Go).
func DSN(rawURL string) (driverName, dsn string, err error) {
	cfg, err := parseURL(rawURL)
	if err != nil {
		return "", "", err
	}
	switch cfg.dialect {
	case dialect.MySQL:
		return "mysql", cfg.mysql.FormatDSN(), nil
	case dialect.Postgres:
		return "postgres", cfg.dsn, nil
	}
	// A pool opened from this DSN is not driven by Open's retry loop, which
	// waits out a busy database in Go: SQLite itself waits the whole
	// _busy_timeout.
	full := strconv.Itoa(int(cfg.busy / time.Millisecond))
	return "sqlite3", strings.Replace(cfg.dsn, "_busy_timeout="+strconv.Itoa(cfg.sliceMS), "_busy_timeout="+full, 1), nil
}

// OpenDB makes a backend on a pool the caller opened, with the dialect's
// name ("sqlite3", "postgres" or "mysql"), as Open does after opening its
// own: ping, then Migrate unless backend.WithoutMigration. The pool must
// reach the database with the driver settings Open uses (see DSN): MySQL
// needs parseTime, UTC and clientFoundRows; SQLite needs _txlock=immediate
// and a busy timeout. The pool settings are the caller's. Close closes db.
func OpenDB(ctx context.Context, db *sql.DB, dialectName string, opts ...backend.Option) (*Backend, error) {
	switch dialectName {
	case dialect.SQLite, dialect.Postgres, dialect.MySQL:
	default:
		return nil, fmt.Errorf("authdb: open: %w: dialect %q is not sqlite3, postgres or mysql", backend.ErrInvalidInput, dialectName)
	}
	busy := time.Duration(0)
	if dialectName == dialect.SQLite {
		busy = DefaultSQLiteBusyTimeout * time.Millisecond
	}
	return newBackend(ctx, db, dialectName, dialectName, backend.NewOptions(opts...), nil, busy)
}

// newBackend pings db, makes the backend and migrates. killer: see Backend.
func newBackend(ctx context.Context, db *sql.DB, d, where string, o backend.Options, killer driver.Connector, busy time.Duration) (*Backend, error) {
	// On SQLite, a connection's first use sets the journal mode, which
	// waits for the write lock like any write: another process (or backend)
	// migrating or writing the same file makes it busy. The ping (and
	// Migrate, by itself) waits for it within the busy budget, as every
	// call does.
	sqliteBusy := func(fn func() error) error {
		if d != dialect.SQLite {
			return fn()
		}
		return retry(ctx, busy, o.Logger, fn)
	}
	if err := sqliteBusy(func() error { return db.PingContext(ctx) }); err != nil {
		db.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("authdb: open %s: %w", where, ctx.Err())
		}
		return nil, fmt.Errorf("authdb: open %s: cannot reach the database: %w", where, err)
	}
	mariaDB := false
	if d == dialect.MySQL {
		var version string
		if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
			db.Close()
			return nil, fmt.Errorf("authdb: open %s: %w", where, err)
		}
		mariaDB = strings.Contains(strings.ToLower(version), "mariadb")
	}
	if d == dialect.Postgres {
		var inRecovery bool
		if err := db.QueryRowContext(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
			db.Close()
			return nil, fmt.Errorf("authdb: open %s: %w", where, err)
		}
		if inRecovery {
			db.Close()
			return nil, fmt.Errorf("authdb: open %s: %w", where, errStandby)
		}
	}
	galera := false
	if mariaDB {
		var err error
		if galera, err = checkGalera(ctx, db, o.Logger); err != nil {
			db.Close()
			return nil, fmt.Errorf("authdb: open %s: %w", where, err)
		}
	}
	b := &Backend{
		client:     ent.NewClient(ent.Driver(entsql.OpenDB(d, db))),
		db:         db,
		dialect:    d,
		where:      where,
		opts:       o,
		mariaDB:    mariaDB,
		galera:     galera,
		killer:     killer,
		probes:     killer != nil,
		busyBudget: busy,
		q:          buildQueries(d, mariaDB, o.FamilyLifetime > 0, "utf8mb4"),
	}
	b.killQueryFn = b.killQuery
	b.stmts = newStmtCache(db, b.q)
	b.pool = pool{b.stmts}
	if o.Migrate {
		if err := b.Migrate(ctx); err != nil { // it waits for a busy SQLite itself
			db.Close()
			return nil, err
		}
	}
	if d == dialect.MySQL {
		// After the migration: the tables it found or created.
		cs, err := readCharsets(ctx, db, where)
		if err != nil {
			db.Close()
			return nil, err
		}
		b.charsets = cs
		b.q = buildQueries(d, mariaDB, o.FamilyLifetime > 0, cs.of("RefreshTokens", "Sub"))
		b.stmts = newStmtCache(db, b.q)
		b.pool = pool{b.stmts}
	}
	return b, nil
}

// openDB opens the pool (without connecting); on MySQL and PostgreSQL it
// also returns the plain connector the backend ends sessions with
// (Backend.write, fence). On MySQL each pool connection runs
// cfg.sessionInit when it is made (Galera, galera.go).
func openDB(cfg *config, wrap func(driver.Connector) driver.Connector) (*sql.DB, driver.Connector, error) {
	if wrap == nil {
		wrap = func(c driver.Connector) driver.Connector { return c }
	}
	if cfg.armed == nil {
		cfg.armed = new(atomic.Bool)
	}
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.DiscardHandler)
	}
	reconnect := func(c driver.Connector) driver.Connector {
		return reconnector{Connector: c, budget: cfg.reconnectBudget, armed: cfg.armed, logger: cfg.logger}
	}
	switch cfg.dialect {
	case dialect.MySQL:
		c, err := mysql.NewConnector(cfg.mysql)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: url: %v", backend.ErrInvalidInput, err)
		}
		return sql.OpenDB(idConnector{Connector: wrap(reconnect(c)), init: cfg.sessionInit}), c, nil
	case dialect.Postgres:
		c, err := pq.NewConnector(cfg.dsn)
		if err != nil {
			// lib/pq's parse errors name a setting, never the password.
			return nil, nil, fmt.Errorf("%w: url: %v", backend.ErrInvalidInput, err)
		}
		c.Dialer(pgDialer{}) // idle connections' liveness (sock.go)
		return sql.OpenDB(idConnector{Connector: wrap(reconnect(c)), pg: true}), c, nil
	}
	c, err := newSQLiteConnector(cfg.dsn, !cfg.memory)
	if err != nil {
		return nil, nil, err
	}
	return sql.OpenDB(wrap(c)), nil, nil
}

// configurePool applies the pool settings: the URL's parameters win over the
// options, which win over the defaults (DefaultMaxOpenConns,
// DefaultMaxIdleConns). max_open_conns=0 in the URL, or a negative
// WithMaxOpenConns, leaves the pool unbounded. sqlite://:memory: always uses one
// connection that never expires, since each connection would otherwise see
// its own empty database.
func configurePool(db *sql.DB, cfg *config, o backend.Options) {
	if cfg.memory {
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
		db.SetConnMaxLifetime(0)
		db.SetConnMaxIdleTime(0)
		return
	}
	maxOpen, maxIdle, lifetime := o.MaxOpenConns, o.MaxIdleConns, o.ConnMaxLifetime
	if cfg.maxOpen != nil {
		maxOpen = *cfg.maxOpen
	}
	if cfg.maxIdle != nil {
		maxIdle = *cfg.maxIdle
	} else if maxIdle == 0 {
		maxIdle = DefaultMaxIdleConns
	}
	if cfg.maxLifetime != nil {
		lifetime = *cfg.maxLifetime
	}
	switch {
	case cfg.maxOpen != nil && *cfg.maxOpen == 0, cfg.maxOpen == nil && maxOpen < 0:
		maxOpen = 0 // unlimited, asked for explicitly
	case maxOpen == 0:
		maxOpen = DefaultMaxOpenConns()
	}
	if maxOpen > 0 && maxIdle > maxOpen {
		maxIdle = maxOpen
	}
	db.SetMaxOpenConns(maxOpen)
	db.SetMaxIdleConns(maxIdle)
	db.SetConnMaxLifetime(lifetime)
}

// DB returns the backend's connection pool, for tools that need raw SQL
// (the CLI, partition maintenance, benchmarks). Closing it closes the backend.
func (b *Backend) DB() *sql.DB { return b.db }

// Dialect returns the engine: "sqlite3", "postgres" or "mysql" (MariaDB
// included), as entgo.io/ent/dialect names them.
func (b *Backend) Dialect() string { return b.dialect }

// Client returns the generated ent client on the backend's pool, for
// read-only reporting queries; writes through it bypass the backend's
// invariants (hashing, statuses, clock).
func (b *Backend) Client() *ent.Client { return b.client }

// Ping reports whether the database answers. A pooled connection found dead
// (the server restarted, the session was killed) is discarded and the ping
// tried on another, as database/sql does for statements but not for pings:
// at most once per idle connection, plus twice.
//
// On a Galera node the ping is SHOW GLOBAL STATUS LIKE 'wsrep_ready' (one
// round trip as well), and a node that is not part of the primary
// component (wsrep_ready=OFF) fails: it would refuse every call.
func (b *Backend) Ping(ctx context.Context) error {
	ping := b.db.PingContext
	if b.galera {
		ping = b.galeraReady
	}
	err := ping(ctx)
	if err != nil && isConnLost(err) {
		// Each failed ping discards one dead connection: try at most once
		// per idle connection, and once more on a new one.
		for n := b.db.Stats().Idle + 1; n > 0 && err != nil && ctx.Err() == nil && isConnLost(err); n-- {
			err = ping(ctx)
		}
	}
	if err != nil {
		return b.wrap(ctx, "ping", err)
	}
	return nil
}

// Close closes the connection pool. Calls after Close fail.
func (b *Backend) Close() error {
	b.ckpt.stop()
	if b.dropGate != nil {
		b.dropGate()
	}
	b.stmts.close()
	if err := b.client.Close(); err != nil {
		return fmt.Errorf("authdb: close %s: %w", b.where, err)
	}
	return nil
}

// PlanRefreshTokenPartitions implements backend.PartitionMaintainer: on
// MySQL/MariaDB, what MaintainRefreshTokenPartitions would do now (the
// backend's clock); elsewhere backend.ErrUnsupported.
func (b *Backend) PlanRefreshTokenPartitions(ctx context.Context, retentionMonths, monthsAhead int) (backend.PartitionReport, error) {
	if b.dialect != dialect.MySQL {
		return backend.PartitionReport{}, fmt.Errorf("authdb: plan refresh token partitions on %s: monthly partitions need MySQL/MariaDB: %w", b.dialect, backend.ErrUnsupported)
	}
	return partition.PlanMaintenance(ctx, b.db, b.opts.Now(), retentionMonths, monthsAhead)
}

// MaintainRefreshTokenPartitions implements backend.PartitionMaintainer: on
// MySQL/MariaDB, adds partitions up to now+monthsAhead and drops those past
// retentionMonths (partition.MaintainPaced with the backend's clock, a
// statement per month, WithPartitionPause between two); elsewhere
// backend.ErrUnsupported. Dropped partitions take their tokens with them.
func (b *Backend) MaintainRefreshTokenPartitions(ctx context.Context, retentionMonths, monthsAhead int) (backend.PartitionReport, error) {
	if b.dialect != dialect.MySQL {
		return backend.PartitionReport{}, fmt.Errorf("authdb: maintain refresh token partitions on %s: monthly partitions need MySQL/MariaDB: %w", b.dialect, backend.ErrUnsupported)
	}
	pacing := partition.DefaultPacing
	pacing.Pause = b.opts.PartitionPause
	return partition.MaintainPaced(ctx, b.db, b.opts.Now(), retentionMonths, monthsAhead, pacing)
}

// now is the backend's clock in UTC whole seconds.
func (b *Backend) now() time.Time { return b.opts.Now() }

// driverLogger sends go-sql-driver/mysql's messages (such as "closing bad
// idle connection: EOF" after a server restart) to the backend's logger, at
// Warn, instead of the driver's default: the process's standard error.
type driverLogger struct{ l *slog.Logger }

func (d driverLogger) Print(v ...any) { d.l.Warn("authdb: mysql driver: " + fmt.Sprint(v...)) }
