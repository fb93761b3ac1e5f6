// Package testdb gives tests a fresh, empty database on a real PostgreSQL or
// MySQL/MariaDB server, and drops it when the test ends.
//
// The server comes from AUTHDB_TEST_POSTGRES_URL / AUTHDB_TEST_MYSQL_URL
// (a URL to any database on the server, e.g.
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable and
// mysql://root@127.0.0.1:3306/test). When a variable is unset and a Docker
// engine is healthy, a server is started once per test binary with
// testcontainers-go. When neither, the test is skipped with a message naming
// the variable, unless AUTHDB_TEST_REQUIRE_DBS=1, which turns the skip into a
// failure (CI sets it).
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
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/lib/pq" // PostgreSQL driver
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

// ServerURL returns the URL of the test server of engine (any database on
// it), from the environment or a container; it skips or fails the test when
// there is none (see the package doc).
func ServerURL(t testing.TB, e Engine) string {
	t.Helper()
	if u := os.Getenv(e.env()); u != "" {
		return u
	}
	u, err := containerURL(e)
	if err == nil {
		return u
	}
	msg := fmt.Sprintf("no %s server: set %s (%v)", e, e.env(), err)
	if os.Getenv(EnvRequireDBs) == "1" {
		t.Fatalf("%s; %s=1 makes this a failure", msg, EnvRequireDBs)
	}
	t.Skip(msg)
	return ""
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

var (
	containerMu   sync.Mutex
	containerURLs = map[Engine]string{}
	containerErrs = map[Engine]error{}
)

func containerURL(e Engine) (string, error) {
	containerMu.Lock()
	defer containerMu.Unlock()
	if u, ok := containerURLs[e]; ok {
		return u, nil
	}
	if err, ok := containerErrs[e]; ok {
		return "", err
	}
	u, err := startContainer(e)
	if err != nil {
		containerErrs[e] = err
		return "", err
	}
	containerURLs[e] = u
	return u, nil
}
