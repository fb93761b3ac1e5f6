package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/lib/pq"

	"github.com/authdb/authdb"
	"github.com/authdb/authdb/backend"
)

// openTimeout bounds opening and pinging the database, so that an
// unreachable server is one clear error rather than a hang.
const openTimeout = 15 * time.Second

// migrator is implemented by backends with a schema (the SQL backend). The
// CLI asserts it rather than importing the backend's package.
type migrator interface {
	Migrate(ctx context.Context) error
}

// sqlIntrospector is implemented by the SQL backend: its database handle and
// its dialect ("sqlite3", "postgres" or "mysql"), used to report what
// migrate did.
type sqlIntrospector interface {
	DB() *sql.DB
	Dialect() string
}

// resolveURL returns the database URL: --db, else $AUTHDB_URL, else the
// default SQLite file.
func (a *app) resolveURL() string {
	if a.dbURL == "" {
		a.dbURL = os.Getenv(envURL)
	}
	if a.dbURL == "" {
		a.dbURL = defaultURL
	}
	return a.dbURL
}

// open opens the backend of the resolved URL and pings it. Any failure is
// one line naming the scheme and the host (or file), never the password.
//
// Every server URL must name a database. The commands that do not create the
// schema (all but migrate and demo) never create a database either: on
// SQLite a missing file is an error, not a new empty database.
func (a *app) open(ctx context.Context, opts ...backend.Option) (backend.Backend, error) {
	raw := a.resolveURL()
	if err := checkURL(raw, a.cmd != "migrate" && a.cmd != "demo"); err != nil {
		return nil, err
	}
	opts = append([]backend.Option{backend.WithLogger(a.setupLogger())}, opts...)
	a.setupLogger().Debug("opening database", "url", backend.Redact(raw))
	ctx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	b, err := authdb.Open(ctx, raw, opts...)
	if err == nil {
		if err = b.Ping(ctx); err != nil {
			b.Close()
		}
	}
	if err != nil {
		return nil, a.openError(err)
	}
	return b, nil
}

// checkURL refuses, before anything is opened, a server URL without a
// database name and, when mustExist, a SQLite file that does not exist.
func checkURL(raw string, mustExist bool) error {
	switch backend.Scheme(raw) {
	case "postgres", "postgresql", "mysql":
		u, err := backend.ParseURL(raw)
		if err != nil || u.Host == "" {
			return nil // authdb.Open says what is wrong with it
		}
		if strings.Trim(u.Path, "/") == "" {
			return &exitError{code: exitUsage, err: fmt.Errorf(
				"%s: the URL names no database: add it to the path (%s://host:port/DBNAME)", target(raw), backend.Scheme(raw))}
		}
	case "sqlite", "sqlite3":
		path := raw[strings.Index(raw, "://")+3:]
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
		path = strings.TrimPrefix(path, "file:")
		if !mustExist || path == "" || strings.HasPrefix(path, ":memory:") {
			return nil
		}
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: no such file; this command never creates a database (check the path, or create it with 'authdb migrate')", target(raw))
		}
	}
	return nil
}

// openError turns an error of authdb.Open into the CLI's one-line message.
func (a *app) openError(err error) error {
	raw := a.dbURL
	var pqErr *pq.Error
	var myErr *mysql.MySQLError
	if errors.As(err, &pqErr) && pqErr.Code == "3D000" || errors.As(err, &myErr) && myErr.Number == 1049 {
		return fmt.Errorf("%s: the database does not exist; create it first (authdb creates tables, not databases)", target(raw))
	}
	scheme := backend.Scheme(raw)
	cause := a.errLine(err)
	known := false
	for _, s := range backend.Schemes() {
		known = known || s == scheme
	}
	switch {
	case scheme == "":
		return fmt.Errorf("cannot open database: URL %q has no scheme (want one of %s)",
			backend.Redact(raw), strings.Join(backend.Schemes(), ", "))
	case !known:
		return fmt.Errorf("cannot open database: unknown scheme %q in %q (known: %s)",
			scheme, backend.Redact(raw), strings.Join(backend.Schemes(), ", "))
	}
	if strings.HasPrefix(cause, "open ") {
		// The backend's error names the engine and host already
		// ("open postgres://host:5432: cannot reach the database: ...").
		return errors.New(cause)
	}
	return fmt.Errorf("cannot open %s: %s", target(raw), cause)
}

// target describes a database URL for messages: the engine and the host
// (or file) and database name, never the user's password.
func target(raw string) string {
	scheme := backend.Scheme(raw)
	rest := raw
	if i := strings.Index(raw, "://"); i >= 0 {
		rest = raw[i+3:]
	}
	switch scheme {
	case "memory":
		return "memory store"
	case "sqlite", "sqlite3":
		file := rest
		if i := strings.IndexByte(file, '?'); i >= 0 {
			file = file[:i]
		}
		return "sqlite " + file
	case "":
		return fmt.Sprintf("database %q", backend.Redact(raw))
	}
	// backend.ParseURL: a password may hold '?', '#', '/' or '@' unencoded.
	u, err := backend.ParseURL(raw)
	if err != nil || u.Host == "" {
		// Never echo an unparseable URL: it may hold a password.
		return scheme + " database (URL not parseable)"
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" {
		return fmt.Sprintf("%s on %s", scheme, u.Host)
	}
	return fmt.Sprintf("%s %s/%s", scheme, u.Host, db)
}

// schemaHint adds a hint when err looks like a missing table: the commands
// other than migrate and demo do not create the schema.
func schemaHint(err error) error {
	if err == nil {
		return nil
	}
	m := strings.ToLower(err.Error())
	if strings.Contains(m, "no such table") || strings.Contains(m, "doesn't exist") ||
		(strings.Contains(m, "relation") && strings.Contains(m, "does not exist")) {
		return fmt.Errorf("%w (is the schema there? run 'authdb migrate' first)", err)
	}
	return err
}
