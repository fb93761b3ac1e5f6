// Package testdb gives tests a fresh, empty database on a real PostgreSQL or
// MySQL/MariaDB server, and drops it when the test ends.
//
// The server of each engine comes, in this order, from
//
//   - AUTHDB_TEST_POSTGRES_URL / AUTHDB_TEST_MYSQL_URL (a URL to any database
//     on the server, e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable
//     and mysql://root@127.0.0.1:3306/test); a URL whose server cannot be
//     reached, or that names a database that does not exist, fails the test
//     with one clear line;
//   - the local server on its default address, when it answers there
//     (DefaultPostgresURLs, DefaultMySQLURLs: user postgres or root, with no
//     password or the password "test", database test or the engine's own);
//   - a container started once per test binary with testcontainers-go, when a
//     Docker engine is running (container.go);
//   - else the test is skipped with a message that begins SkipPrefix and
//     names the engine, why, and how to enable it, unless
//     AUTHDB_TEST_REQUIRE_DBS=1, which turns the skip into a failure (CI sets
//     it). internal/testsummary counts these skips by engine.
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/lib/pq" // PostgreSQL driver
)

// Environment variables read by this package.
const (
	EnvPostgres   = "AUTHDB_TEST_POSTGRES_URL"
	EnvMySQL      = "AUTHDB_TEST_MYSQL_URL"
	EnvRequireDBs = "AUTHDB_TEST_REQUIRE_DBS"
)

// Engine names a server kind.
type Engine string

// The two server engines.
const (
	Postgres Engine = "postgres"
	MySQL    Engine = "mysql"
)

func (e Engine) env() string {
	if e == Postgres {
		return EnvPostgres
	}
	return EnvMySQL
}

// SkipPrefix begins the message of every test skipped because a server is
// missing: "testdb: no postgres server (...)".
const SkipPrefix = "testdb: no "

// DefaultPostgresURLs and DefaultMySQLURLs are tried, in order, when the
// engine's variable is unset: the local servers on their default addresses.
var (
	DefaultPostgresURLs = []string{
		"postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
		"postgres://postgres:test@127.0.0.1:5432/test?sslmode=disable",
		"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		"postgres://postgres:test@127.0.0.1:5432/postgres?sslmode=disable",
	}
	DefaultMySQLURLs = []string{
		"mysql://root@127.0.0.1:3306/test",
		"mysql://root:test@127.0.0.1:3306/test",
		"mysql://root@127.0.0.1:3306/mysql",
		"mysql://root:test@127.0.0.1:3306/mysql",
	}
)

func (e Engine) defaults() []string {
	if e == Postgres {
		return DefaultPostgresURLs
	}
	return DefaultMySQLURLs
}

func (e Engine) product() string {
	if e == Postgres {
		return "PostgreSQL"
	}
	return "MariaDB or MySQL"
}

// ServerURL returns the URL of the test server of engine (any database on
// it), from the environment, the local default address or a container; it
// skips or fails the test when there is none (see the package doc).
func ServerURL(t testing.TB, e Engine) string {
	t.Helper()
	u, err := serverURL(e)
	if err == nil {
		return u
	}
	var cfg *configError
	if errors.As(err, &cfg) {
		t.Fatal(cfg.Error())
	}
	if os.Getenv(EnvRequireDBs) == "1" {
		t.Fatalf("%s; %s=1 makes this a failure", err, EnvRequireDBs)
	}
	t.Skip(err.Error())
	return ""
}

// configError is a server named by a variable that does not work: a
// failure, never a skip.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

var (
	serverMu   sync.Mutex
	serverURLs = map[Engine]string{}
	serverErrs = map[Engine]error{}
)

// serverURL finds engine's server once per test binary.
func serverURL(e Engine) (string, error) {
	serverMu.Lock()
	defer serverMu.Unlock()
	if u, ok := serverURLs[e]; ok {
		return u, nil
	}
	if err, ok := serverErrs[e]; ok {
		return "", err
	}
	u, err := findServer(e)
	if err != nil {
		serverErrs[e] = err
		return "", err
	}
	serverURLs[e] = u
	return u, nil
}

func findServer(e Engine) (string, error) {
	if u := os.Getenv(e.env()); u != "" {
		if err := probe(u, 10*time.Second); err != nil {
			return "", &configError{fmt.Sprintf("testdb: %s: %v", e.env(), err)}
		}
		return u, nil
	}
	var local error
	for _, u := range e.defaults() {
		if local = probe(u, 2*time.Second); local == nil {
			return u, nil
		}
	}
	u, err := containerURL(e)
	if err == nil {
		return u, nil
	}
	host := "127.0.0.1:5432"
	if e == MySQL {
		host = "127.0.0.1:3306"
	}
	return "", fmt.Errorf("%s%s server (%s unset; %v; %v): set %s or start %s on %s",
		SkipPrefix, e, e.env(), local, err, e.env(), e.product(), host)
}

// probe connects to rawURL's server and database; its error says what is
// wrong in one line without the password: the server cannot be reached, or
// the database it names does not exist.
func probe(rawURL string, timeout time.Duration) error {
	u, err := parseURL(rawURL)
	if err != nil {
		return err
	}
	db, err := AdminDB(rawURL)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err = db.PingContext(ctx)
	if err == nil {
		return nil
	}
	name := strings.TrimPrefix(u.Path, "/")
	var pqErr *pq.Error
	var myErr *mysql.MySQLError
	switch {
	case errors.As(err, &pqErr) && pqErr.Code == "3D000", errors.As(err, &myErr) && myErr.Number == 1049:
		return fmt.Errorf("database %q does not exist on %s: name an existing database in the URL (any will do: each test creates its own)", name, u.Host)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("no answer from %s within %s", u.Host, timeout)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("nothing listens on %s", u.Host)
	}
	return fmt.Errorf("cannot connect to %s: %v", u.Host, err)
}

// NewDatabase creates a database with a random name authdb_test_<hex> on the
// test server of engine, drops it when the test ends, and returns its URL in
// authdb's form (postgres://... or mysql://...).
func NewDatabase(t testing.TB, e Engine) string {
	t.Helper()
	server := ServerURL(t, e)
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := "authdb_test_" + hex.EncodeToString(b[:])
	admin, err := AdminDB(server)
	if err != nil {
		t.Fatalf("testdb: connect to %s server: %v", e, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close()
		t.Fatalf("testdb: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		stmt := "DROP DATABASE IF EXISTS " + name
		if e == Postgres {
			stmt += " WITH (FORCE)"
		}
		if _, err := admin.ExecContext(ctx, stmt); err != nil {
			t.Errorf("testdb: drop database %s: %v", name, err)
		}
	})
	u, err := parseURL(server)
	if err != nil {
		t.Fatalf("testdb: %s: %v", e.env(), err)
	}
	u.Path = "/" + name
	return u.String()
}

// AdminDB opens a database/sql handle on an authdb-style server URL
// (postgres://, postgresql:// or mysql://) with the plain drivers, for tests
// that inspect or provoke the server directly.
func AdminDB(rawURL string) (*sql.DB, error) {
	driver, dsn, err := DSN(rawURL)
	if err != nil {
		return nil, err
	}
	return sql.Open(driver, dsn)
}

// DSN turns an authdb-style server URL into a database/sql driver name and DSN.
// Its errors never contain the URL, which may hold a password.
func DSN(rawURL string) (driver, dsn string, err error) {
	u, err := parseURL(rawURL)
	if err != nil {
		return "", "", err
	}
	switch u.Scheme {
	case "postgres", "postgresql":
		return "postgres", rawURL, nil
	case "mysql":
		cfg := mysql.NewConfig()
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
		cfg.Net = "tcp"
		cfg.Addr = u.Host
		cfg.DBName = strings.TrimPrefix(u.Path, "/")
		cfg.ParseTime = true
		cfg.Loc = time.UTC
		cfg.MultiStatements = true
		return "mysql", cfg.FormatDSN(), nil
	}
	return "", "", fmt.Errorf("testdb: unsupported scheme %q", u.Scheme)
}

// parseURL is url.Parse with an error that does not repeat the URL (and
// so its password).
func parseURL(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("testdb: malformed server URL: %w", err)
	}
	return u, nil
}

// containerURL starts engine's container (serverURL calls it once per
// engine and caches the outcome).
func containerURL(e Engine) (string, error) { return startContainer(e) }
