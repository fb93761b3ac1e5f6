// Package sqlbackend is authdb's SQL backend: the backend.Backend contract
// on SQLite, PostgreSQL and MySQL/MariaDB, on the three tables of the DiracX
// Auth DB (schema in ent/schema, generated ent code in ent/). It registers
// the URL schemes sqlite, postgres, postgresql and mysql with
// backend.Register; import it (or the root package authdb) and call
// authdb.Open, or call Open here for the concrete *Backend.
//
// # URLs
//
//	sqlite:///abs/path.db         SQLite file (github.com/mattn/go-sqlite3, cgo)
//	sqlite://relative/path.db     relative to the working directory
//	sqlite://:memory:             a private in-memory database
//	postgres://user:pass@host:5432/db?sslmode=disable   (or postgresql://; github.com/lib/pq)
//	mysql://user:pass@host:3306/db                      MySQL 8, MariaDB 10.5+ (github.com/go-sql-driver/mysql)
//
// Every URL accepts the pool parameters max_open_conns, max_idle_conns
// (integers) and conn_max_lifetime (a Go duration such as 30m); they win
// over backend.WithMaxOpenConns, WithMaxIdleConns and WithConnMaxLifetime.
// When neither sets the idle limit it is DefaultMaxIdleConns; when neither
// sets the open limit it is DefaultMaxOpenConns() (4 per GOMAXPROCS, 16 to
// 64); max_open_conns=0 (or a negative WithMaxOpenConns) is unbounded. A
// server refusing connections (MySQL 1040, PostgreSQL 53300) is retried
// within the caller's deadline: nothing was sent. Besides those,
// each engine accepts only the driver parameters below; any other query
// parameter is an error wrapping backend.ErrInvalidInput, as is a malformed
// URL. Errors name the scheme and host (or the SQLite path), never the
// password.
//
//   - SQLite: _busy_timeout (milliseconds, default 10000: how long an
//     operation waits in all for the write lock; SQLite's own busy handler,
//     which no context can interrupt, waits at most 50 ms at a time and the
//     backend waits out the rest in Go, returning as soon as the context
//     ends) and _synchronous (OFF, NORMAL, FULL, EXTRA; default NORMAL). Files are opened in WAL mode
//     with _txlock=immediate (a transaction takes the write lock at BEGIN,
//     so concurrent writers wait for each other instead of failing with
//     "database is locked") and foreign keys on (ent's migration wants it).
//     sqlite://:memory: uses one connection that never expires, so the pool
//     shares one database; the pool parameters are ignored for it.
//   - PostgreSQL: sslmode, sslrootcert, sslcert, sslkey, sslsni,
//     sslnegotiation, connect_timeout, application_name, search_path,
//     target_session_attrs, binary_parameters (default yes: one round trip
//     per statement with arguments instead of two). Several hosts, each
//     with its own port (postgres://h1:5432,h2:5433/db), are tried in
//     order; with several hosts target_session_attrs defaults to
//     read-write, so that the primary is found (failover.go).
//   - MySQL: ssl-mode (DISABLED, PREFERRED, REQUIRED, VERIFY_CA,
//     VERIFY_IDENTITY), ssl-ca, ssl-cert, ssl-key (the mysql client's
//     names; see mysqltls.go), or the Go driver's tls (true, false,
//     skip-verify, preferred); timeout (dial, default 10s), readTimeout,
//     writeTimeout, wsrep_sync_wait (0-15: the session value on a Galera
//     node, default DefaultGaleraSyncWait; see galera.go). The connection
//     always uses parseTime with UTC, client-side interpolated arguments
//     (one round trip per statement) and found-rows counts; every session
//     sets SET NAMES utf8mb4 and a strict sql_mode, and the tables'
//     character sets are checked at open (mysqlsession.go).
//   - PostgreSQL and MySQL: reconnect_budget (a Go duration, default
//     DefaultReconnectBudget = 10s; 0 or negative: no waiting), as
//     backend.WithReconnectBudget: how long a call waits, in all, for a
//     connection the server refuses (a failover, a restart), never past
//     its context.
//
// Passwords may hold any character, percent-encoded or not: the user
// information runs to the last '@' followed by a host (backend.ParseURL).
//
// Open pings the database, so an unreachable server fails there. Open on
// a PostgreSQL server in recovery (a standby) fails, naming it. On a
// Galera node Open sets wsrep_sync_wait on each connection, so that every
// read is causal, and Ping fails while the node is outside the primary
// component. See docs/clusters.md.
//
// # Schema
//
// Unless backend.WithoutMigration is given, Open runs Migrate: ent's
// migration creates the tables exactly as DiracX's SQLAlchemy models do
// (names, types, defaults, the indexes ix_RefreshTokens_Sub and
// index_status_sub), plus authdb's own indexes (ix_DeviceFlows_CreationTime,
// ix_AuthorizationFlows_CreationTime, ix_AuthorizationFlows_Code). On a
// database DiracX created it only adds those indexes: it never alters a
// column or index that exists. On MySQL the tables authdb creates use
// utf8mb4_bin; a table DiracX created keeps its collation, and subjects
// are compared in binary whatever the collation. On MySQL/MariaDB, the
// migration that creates RefreshTokens also partitions it by month
// (package partition).
//
// Stored forms, as DiracX writes them: statuses by name; device and
// authorization codes as their sha256 hex; UUID and JTI as 32 lowercase hex
// digits in CHAR(32) (MySQL, SQLite) or native uuid (PostgreSQL);
// CreationTime in UTC whole seconds from the backend's clock (SQLite:
// text "YYYY-MM-DD HH:MM:SS", the form of DATETIME('now')); ID tokens as
// JSON text.
//
// # Concurrency and statements
//
// Each operation is one statement where the engine allows it: single-row
// reads and conditional updates take one round trip. The statements are
// written once per dialect when the backend opens and prepared on the pool
// at first use (database/sql then keeps them prepared on each connection),
// so PostgreSQL and SQLite parse and plan them once per connection, not at
// every call; internal/bench measures this at up to 2x on short calls. A
// MySQL autocommit write whose context can end runs as a plain
// (client-interpolated) statement, the connection running it armed to kill
// its own session on the server should the context end. Prepared
// statements need session state: behind a PostgreSQL pooler in
// transaction mode (PgBouncer < 1.21 without max_prepared_statements) they
// fail; connect authdb directly or in session mode.
// Exactly-once redemption and rotation come from conditional UPDATEs
// ("Status"='READY' / 'CREATED') whose affected row decides the one winner,
// never from SELECT ... FOR UPDATE:
//
//	operation                       PostgreSQL   SQLite                 MySQL/MariaDB
//	ConsumeDeviceFlow/Authorization 1 (CTE)      1 (+1 when refused)    2 (1 when refused)
//	AuthorizationFlowInsertIDToken  1            1                      2 (1 when refused)
//	RotateRefreshToken              1 (CTE)      4 (BEGIN..COMMIT)      MariaDB 4, MySQL 5 (see below)
//	  refused (unknown/replayed)    +1 / +3      +1 / +3                MariaDB +1 / +3, MySQL 1 / 3
//	InsertDeviceFlow                1 per user code tried (ON CONFLICT DO NOTHING; MySQL: error 1062)
//	every other operation           1
//	CleanExpired*                   1 per batch of Options.CleanupBatchSize rows
//
// A rotation on MariaDB is BEGIN, the conditional UPDATE, INSERT ... SELECT
// ... RETURNING (the new token copies the old one's subject and scope),
// COMMIT; MySQL 8, which has no RETURNING, reads the old token first, then
// BEGIN, UPDATE, INSERT, COMMIT (its failure paths need only that read).
//
// Connections that die (a killed session, a restarted server) are
// discarded. A call whose connection died before its write could apply
// runs again; a write whose reply was lost, or whose context ended after
// the statement was sent, is settled by the rules of outcome.go: the lost
// session is ended on the server (KILL CONNECTION, pg_terminate_backend;
// each pool connection learns its session id once, with SELECT
// CONNECTION_ID() or SELECT pg_backend_pid()), the write's effect is read
// back on a context of its own (ReadBackTimeout), and the call returns
// success, runs again, or returns an error wrapping
// backend.ErrOutcomeUnknown. lib/pq's driver.ErrBadConn after a sent
// statement, which database/sql would answer by running the statement
// again on another connection, is turned into a non-retryable error first.
// None of this adds a statement to a call that gets its reply.
//
// MySQL's driver does not stop a statement on the server when its context
// ends; the backend does: it knows each connection's server id and kills
// the session of a cancelled autocommit write (KILL CONNECTION), so that a
// write refused to the caller is not applied later (Backend.write). Each new
// MySQL connection of Open's pool asks for its id once (SELECT
// CONNECTION_ID()); a pool handed to OpenDB has no ids and no such kill.
//
// Serialization failures and deadlocks (PostgreSQL 40001/40P01, MySQL
// 1213/1205, SQLite BUSY/LOCKED) are retried up to MaxAttempts times in all
// with jittered exponential back-off (Retry, IsTransient), then returned
// wrapped. A cancelled or expired context is returned as the context's
// error (errors.Is works), whatever the driver said.
package sqlbackend
