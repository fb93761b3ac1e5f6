package sqlbackend

import (
	"fmt"
	"log/slog"
	"net/url"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"entgo.io/ent/dialect"
	"github.com/go-sql-driver/mysql"

	"github.com/authdb/authdb/backend"
)

// Default pool and driver settings.
const (
	// DefaultMaxIdleConns is the idle-connection limit when neither
	// WithMaxIdleConns nor max_idle_conns sets one (database/sql's own
	// default of 2 makes a busy server open and close a connection per call).
	DefaultMaxIdleConns = 16
	// DefaultSQLiteBusyTimeout is how long, in all, a SQLite operation waits
	// for the write lock before failing with SQLITE_BUSY (_busy_timeout, ms).
	DefaultSQLiteBusyTimeout = 10000
	// sqliteBusySlice is the longest SQLite's busy handler waits in one go.
	sqliteBusySlice = 50 * time.Millisecond
	// DefaultMySQLDialTimeout bounds connecting to a MySQL server unless the
	// URL's timeout says otherwise.
	DefaultMySQLDialTimeout = 10 * time.Second
)

// DefaultMaxOpenConns is the pool's bound on open connections when neither
// WithMaxOpenConns nor max_open_conns sets one: 4 per GOMAXPROCS, at least
// DefaultMaxIdleConns (16) and at most 64. An unbounded pool lets a burst of
// callers open more connections than the server accepts (MySQL's default
// max_connections is 151, PostgreSQL's 100, shared by every process), and
// the calls past the limit fail; a bounded pool makes them wait for a
// connection within their context instead. A server that still refuses
// ("too many connections": MySQL 1040, PostgreSQL 53300) is waited for too,
// within the caller's deadline (MaxConnWait without one).
func DefaultMaxOpenConns() int { return min(max(4*runtime.GOMAXPROCS(0), DefaultMaxIdleConns), 64) }

// poolParams are the query parameters every SQL URL accepts.
var poolParams = map[string]bool{"max_open_conns": true, "max_idle_conns": true, "conn_max_lifetime": true}

// passThrough lists, per dialect, the driver parameters a URL may carry
// besides the pool parameters; anything else is an error.
var passThrough = map[string]map[string]bool{
	dialect.SQLite: {"_busy_timeout": true, "_synchronous": true},
	dialect.Postgres: {
		"sslmode": true, "sslrootcert": true, "sslcert": true, "sslkey": true,
		"sslsni": true, "sslnegotiation": true, "connect_timeout": true,
		"application_name": true, "search_path": true, "target_session_attrs": true,
		"binary_parameters": true,
	},
	dialect.MySQL: {"tls": true, "timeout": true, "readTimeout": true, "writeTimeout": true, "wsrep_sync_wait": true,
		"ssl-mode": true, "ssl-ca": true, "ssl-cert": true, "ssl-key": true},
}

// config is a parsed backend URL: what Open needs to reach the database.
type config struct {
	dialect string // dialect.SQLite, dialect.Postgres or dialect.MySQL
	// where names the database in errors and logs: scheme and host (or the
	// SQLite path), never a password.
	where string
	// For SQLite and PostgreSQL, the DSN for sql.Open; for MySQL, the driver
	// configuration.
	dsn   string
	mysql *mysql.Config
	// memory: sqlite://:memory:, one connection so that the pool shares one
	// database.
	memory bool
	// file: a SQLite database file's path as the URL gives it (its write
	// gate is shared by the backends of this process on the same file).
	file string
	// busy: SQLite's _busy_timeout, the time an operation waits in all for
	// the write lock.
	busy    time.Duration
	sliceMS int // the _busy_timeout of the DSN: min(busy, sqliteBusySlice)
	// Pool settings from the URL; nil when the URL does not set them.
	maxOpen, maxIdle *int
	maxLifetime      *time.Duration
	// syncWait: the MySQL URL's wsrep_sync_wait (0-15), the session value
	// on a Galera node instead of DefaultGaleraSyncWait; nil when not set.
	syncWait *int
	// sessionInit: the statement each new MySQL pool connection runs (set
	// by OpenWrapped on a Galera node), or "".
	sessionInit string
	// reconnect: the URL's reconnect_budget (PostgreSQL, MySQL); nil when
	// not set. reconnectBudget is the resolved budget (OpenWrapped), armed
	// turns the waiting on once the backend is open (failover.go).
	reconnect       *time.Duration
	reconnectBudget time.Duration
	armed           *atomic.Bool
	logger          *slog.Logger
}

// parseURL turns a backend URL into a driver configuration. Errors wrap
// backend.ErrInvalidInput and never contain the URL's password.
func parseURL(rawURL string) (*config, error) {
	scheme := backend.Scheme(rawURL)
	switch scheme {
	case "sqlite":
		return parseSQLite(rawURL)
	case "postgres", "postgresql", "mysql":
		return parseServerURL(scheme, rawURL)
	case "":
		return nil, invalidURL("", "has no scheme (want sqlite, postgres, postgresql or mysql)")
	}
	return nil, invalidURL(scheme+"://", "unknown scheme %q for the SQL backend", scheme)
}

func invalidURL(where, format string, args ...any) error {
	if where == "" {
		where = "URL"
	}
	return fmt.Errorf("authdb: open %s: %w: url: %s", where, backend.ErrInvalidInput, fmt.Sprintf(format, args...))
}

// parseSQLite handles sqlite:///abs/path.db, sqlite://relative.db and
// sqlite://:memory:, each optionally followed by ?query.
func parseSQLite(rawURL string) (*config, error) {
	rest := rawURL[len("sqlite://"):]
	rawQuery := ""
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		rest, rawQuery = rest[:i], rest[i+1:]
	}
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		return nil, invalidURL("sqlite://", "a fragment (#...) is not allowed")
	}
	path, err := url.PathUnescape(rest)
	if err != nil {
		return nil, invalidURL("sqlite://", "bad percent-encoding in the path")
	}
	if path == "" {
		return nil, invalidURL("sqlite://", "no database path (want sqlite:///abs/path.db, sqlite://relative.db or sqlite://:memory:)")
	}
	if strings.IndexByte(path, 0) >= 0 {
		return nil, invalidURL("sqlite://", "NUL in the path")
	}
	// A SQLite URL has no password, but one written by mistake
	// (sqlite://user:pw@file.db) is hidden all the same.
	cfg := &config{dialect: dialect.SQLite, where: backend.Redact("sqlite://" + rest)}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, invalidURL(cfg.where, "bad query string")
	}
	if err := cfg.takePool(q); err != nil {
		return nil, err
	}
	ms := DefaultSQLiteBusyTimeout
	sync := "NORMAL"
	for k, v := range q {
		if !passThrough[dialect.SQLite][k] {
			return nil, unknownParam(cfg.where, k, dialect.SQLite)
		}
		if len(v) != 1 {
			return nil, invalidURL(cfg.where, "parameter %s given %d times", k, len(v))
		}
		switch k {
		case "_busy_timeout":
			n, err := strconv.Atoi(v[0])
			if err != nil || n < 0 {
				return nil, invalidURL(cfg.where, "_busy_timeout %q is not a number of milliseconds", v[0])
			}
			ms = n
		case "_synchronous":
			switch s := strings.ToUpper(v[0]); s {
			case "OFF", "NORMAL", "FULL", "EXTRA":
				sync = s
			default:
				return nil, invalidURL(cfg.where, "_synchronous %q is not OFF, NORMAL, FULL or EXTRA", v[0])
			}
		}
	}
	cfg.busy = time.Duration(ms) * time.Millisecond
	params := url.Values{}
	// SQLite's own busy handler cannot be interrupted: it waits at most
	// sqliteBusySlice, and the backend waits for the rest of the budget in
	// Go, watching the context (retry).
	cfg.sliceMS = min(ms, int(sqliteBusySlice/time.Millisecond))
	params.Set("_busy_timeout", strconv.Itoa(cfg.sliceMS))
	params.Set("_txlock", "immediate") // writers take the lock at BEGIN: no deadlock on upgrade
	params.Set("_foreign_keys", "1")   // ent's migration insists on it; the schema has no FK
	if path == ":memory:" {
		cfg.memory = true
		cfg.dsn = ":memory:?" + params.Encode()
		return cfg, nil
	}
	params.Set("_journal_mode", "WAL")
	params.Set("_synchronous", sync)
	cfg.file = path
	// A file: URI, so that '?', '#' and '%' in the path are escaped.
	cfg.dsn = "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + params.Encode()
	return cfg, nil
}

// parseServerURL handles postgres://, postgresql:// and mysql:// URLs.
func parseServerURL(scheme, rawURL string) (*config, error) {
	// backend.ParseURL: a password may hold any character, encoded or not;
	// its errors never quote the URL.
	u, err := backend.ParseURL(rawURL)
	if err != nil {
		return nil, invalidURL(scheme+"://", "%v (check the host, port and path)", err)
	}
	if u.Opaque != "" {
		return nil, invalidURL(scheme+"://", "want %s://user:password@host:port/database", scheme)
	}
	if u.Fragment != "" {
		return nil, invalidURL(scheme+"://"+u.Host, "a fragment (#...) is not allowed")
	}
	cfg := &config{where: scheme + "://" + u.Host}
	q := u.Query()
	if err := cfg.takePool(q); err != nil {
		return nil, err
	}
	if v, ok := q["reconnect_budget"]; ok {
		delete(q, "reconnect_budget")
		d, err := time.ParseDuration(v[0])
		if len(v) != 1 || err != nil {
			return nil, invalidURL(cfg.where, "reconnect_budget %q is not a duration such as 10s (0 or negative: no waiting)", v[0])
		}
		cfg.reconnect = &d
	}
	if scheme == "mysql" {
		cfg.dialect = dialect.MySQL
		return cfg, cfg.mysqlConfig(u, q)
	}
	cfg.dialect = dialect.Postgres
	if strings.Trim(u.Path, "/") == "" {
		// libpq would fall back to a database named after the user: a
		// forgotten path would then migrate the server's default database.
		return nil, invalidURL(cfg.where, "want a database name in the path (%s://user:password@host:5432/database)", scheme)
	}
	if err := parsePostgresHosts(cfg.where, u, q); err != nil {
		return nil, err
	}
	for k, v := range q {
		if k == "host" || k == "port" {
			if !strings.Contains(cfg.where, ",") {
				return nil, unknownParam(cfg.where, k, dialect.Postgres)
			}
			continue // set by parsePostgresHosts
		}
		if !passThrough[dialect.Postgres][k] {
			return nil, unknownParam(cfg.where, k, dialect.Postgres)
		}
		if len(v) != 1 {
			return nil, invalidURL(cfg.where, "parameter %s given %d times", k, len(v))
		}
	}
	// One round trip per statement with arguments instead of two (lib/pq
	// otherwise prepares first). authdb sends no []byte arguments, the only
	// values whose encoding this changes.
	if !q.Has("binary_parameters") {
		q.Set("binary_parameters", "yes")
	}
	u.RawQuery = q.Encode()
	cfg.dsn = u.String()
	return cfg, nil
}

// mysqlConfig builds the go-sql-driver configuration: parseTime with UTC
// times, utf8mb4, interpolated parameters (one round trip per statement),
// and found-rows counts (an UPDATE that changes nothing still reports the
// rows it matched).
func (cfg *config) mysqlConfig(u *url.URL, q url.Values) error {
	if u.Host == "" {
		return invalidURL(cfg.where, "no host (want mysql://user:password@host:3306/database)")
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" || strings.Contains(db, "/") {
		return invalidURL(cfg.where, "want one database name in the path (mysql://user:password@host:3306/database)")
	}
	m := mysql.NewConfig()
	if u.User != nil {
		m.User = u.User.Username()
		m.Passwd, _ = u.User.Password()
	}
	m.Net = "tcp"
	m.Addr = u.Host
	m.DBName = db
	m.ParseTime = true
	m.Loc = time.UTC
	if err := setSession(m); err != nil { // SET NAMES utf8mb4, a strict sql_mode
		return invalidURL(cfg.where, "%v", err)
	}
	m.InterpolateParams = true
	m.ClientFoundRows = true
	m.Timeout = DefaultMySQLDialTimeout
	for k, v := range q {
		if !passThrough[dialect.MySQL][k] {
			return unknownParam(cfg.where, k, dialect.MySQL)
		}
		if len(v) != 1 {
			return invalidURL(cfg.where, "parameter %s given %d times", k, len(v))
		}
		switch k {
		case "tls":
			switch v[0] {
			case "true", "false", "skip-verify", "preferred":
				m.TLSConfig = v[0]
			default:
				return invalidURL(cfg.where, "tls %q is not true, false, skip-verify or preferred", v[0])
			}
		case "wsrep_sync_wait":
			n, err := strconv.Atoi(v[0])
			if err != nil || n < 0 || n > 15 {
				return invalidURL(cfg.where, "wsrep_sync_wait %q is not an integer from 0 to 15", v[0])
			}
			cfg.syncWait = &n
		case "timeout", "readTimeout", "writeTimeout":
			d, err := time.ParseDuration(v[0])
			if err != nil || d < 0 {
				return invalidURL(cfg.where, "%s %q is not a duration such as 10s", k, v[0])
			}
			switch k {
			case "timeout":
				m.Timeout = d
			case "readTimeout":
				m.ReadTimeout = d
			default:
				m.WriteTimeout = d
			}
		}
	}
	if err := mysqlTLS(cfg.where, m, q); err != nil {
		return err
	}
	cfg.mysql = m
	return nil
}

// takePool removes the pool parameters from q into cfg.
func (cfg *config) takePool(q url.Values) error {
	for k := range poolParams {
		v, ok := q[k]
		if !ok {
			continue
		}
		delete(q, k)
		if len(v) != 1 {
			return invalidURL(cfg.where, "parameter %s given %d times", k, len(v))
		}
		if k == "conn_max_lifetime" {
			d, err := time.ParseDuration(v[0])
			if err != nil || d < 0 {
				return invalidURL(cfg.where, "conn_max_lifetime %q is not a duration such as 30m", v[0])
			}
			cfg.maxLifetime = &d
			continue
		}
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 0 {
			return invalidURL(cfg.where, "%s %q is not a non-negative integer", k, v[0])
		}
		if k == "max_open_conns" {
			cfg.maxOpen = &n
		} else {
			cfg.maxIdle = &n
		}
	}
	return nil
}

func unknownParam(where, key, d string) error {
	known := []string{"max_open_conns", "max_idle_conns", "conn_max_lifetime"}
	if d != dialect.SQLite {
		known = append(known, "reconnect_budget")
	}
	n := len(known)
	for k := range passThrough[d] {
		known = append(known, k)
	}
	sort.Strings(known[n:])
	return invalidURL(where, "unknown query parameter %q (known: %s)", key, strings.Join(known, ", "))
}
