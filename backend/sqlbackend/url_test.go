package sqlbackend

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"entgo.io/ent/dialect"

	"github.com/authdb/authdb/backend"
)

const secret = "s3cretPW"

func TestParseURL(t *testing.T) {
	sqliteParams := "_busy_timeout=50&_foreign_keys=1&_journal_mode=WAL&_synchronous=NORMAL&_txlock=immediate"
	for _, tc := range []struct {
		url     string
		dialect string
		dsn     string // SQLite, PostgreSQL
		where   string
		check   func(t *testing.T, c *config)
	}{
		{url: "sqlite:///var/lib/authdb.db", dialect: dialect.SQLite, dsn: "file:/var/lib/authdb.db?" + sqliteParams, where: "sqlite:///var/lib/authdb.db"},
		{url: "sqlite://data/authdb.db", dialect: dialect.SQLite, dsn: "file:data/authdb.db?" + sqliteParams},
		{url: "sqlite:///x.db?_busy_timeout=20", dialect: dialect.SQLite,
			dsn: "file:/x.db?_busy_timeout=20&_foreign_keys=1&_journal_mode=WAL&_synchronous=NORMAL&_txlock=immediate"},
		{url: "sqlite:///tmp/a%20b%3Fc.db", dialect: dialect.SQLite, dsn: "file:/tmp/a%20b%3Fc.db?" + sqliteParams},
		{url: "sqlite://:memory:", dialect: dialect.SQLite, dsn: ":memory:?_busy_timeout=50&_foreign_keys=1&_txlock=immediate",
			check: func(t *testing.T, c *config) {
				if !c.memory || c.busy != 10*time.Second {
					t.Errorf("memory = %v, busy = %v", c.memory, c.busy)
				}
			}},
		{url: "sqlite:///x.db?_busy_timeout=500&_synchronous=full&max_open_conns=4&conn_max_lifetime=1m", dialect: dialect.SQLite,
			dsn: "file:/x.db?_busy_timeout=50&_foreign_keys=1&_journal_mode=WAL&_synchronous=FULL&_txlock=immediate",
			check: func(t *testing.T, c *config) {
				if c.busy != 500*time.Millisecond {
					t.Errorf("busy = %v", c.busy)
				}
				if c.maxOpen == nil || *c.maxOpen != 4 || c.maxLifetime == nil || *c.maxLifetime != time.Minute || c.maxIdle != nil {
					t.Errorf("pool = %v %v %v", c.maxOpen, c.maxIdle, c.maxLifetime)
				}
			}},
		{url: "postgres://u:" + secret + "@db.example:5432/auth?sslmode=disable", dialect: dialect.Postgres,
			dsn: "postgres://u:" + secret + "@db.example:5432/auth?binary_parameters=yes&sslmode=disable", where: "postgres://db.example:5432"},
		{url: "postgresql://u@h/auth?binary_parameters=no&max_idle_conns=7&application_name=x", dialect: dialect.Postgres,
			dsn: "postgresql://u@h/auth?application_name=x&binary_parameters=no",
			check: func(t *testing.T, c *config) {
				if c.maxIdle == nil || *c.maxIdle != 7 {
					t.Errorf("maxIdle = %v", c.maxIdle)
				}
			}},
		{url: "mysql://root:" + secret + "@127.0.0.1:3306/test", dialect: dialect.MySQL, where: "mysql://127.0.0.1:3306",
			check: func(t *testing.T, c *config) {
				m := c.mysql
				if m.User != "root" || m.Passwd != secret || m.Addr != "127.0.0.1:3306" || m.DBName != "test" ||
					!m.ParseTime || m.Loc != time.UTC || !m.InterpolateParams || !m.ClientFoundRows ||
					m.Collation != "utf8mb4_general_ci" || m.Timeout != DefaultMySQLDialTimeout {
					t.Errorf("mysql config = %+v", m)
				}
			}},
		// Passwords with URL delimiters, unencoded (issue 10).
		{url: "postgres://postgres:s3cretpw?x#y@127.0.0.1:5450/adv?sslmode=disable", dialect: dialect.Postgres,
			dsn: "postgres://postgres:s3cretpw%3Fx%23y@127.0.0.1:5450/adv?binary_parameters=yes&sslmode=disable", where: "postgres://127.0.0.1:5450"},
		{url: "postgres://u:" + secret + "%zz@h/db", dialect: dialect.Postgres, dsn: "postgres://u:" + secret + "%25zz@h/db?binary_parameters=yes"},
		{url: "mysql://root:p@ss/w?rd#1@127.0.0.1:3306/test?ssl-mode=VERIFY_CA", dialect: dialect.MySQL, where: "mysql://127.0.0.1:3306",
			check: func(t *testing.T, c *config) {
				m := c.mysql
				if m.User != "root" || m.Passwd != "p@ss/w?rd#1" || m.Addr != "127.0.0.1:3306" || m.DBName != "test" {
					t.Errorf("mysql config = %+v", m)
				}
				if m.TLS == nil || !m.TLS.InsecureSkipVerify || m.TLS.VerifyConnection == nil {
					t.Errorf("ssl-mode VERIFY_CA: TLS config %+v", m.TLS)
				}
			}},
		{url: "mysql://u@db.example:3306/auth?ssl-mode=VERIFY_IDENTITY", dialect: dialect.MySQL,
			check: func(t *testing.T, c *config) {
				if tc := c.mysql.TLS; tc == nil || tc.InsecureSkipVerify || tc.ServerName != "db.example" {
					t.Errorf("ssl-mode VERIFY_IDENTITY: TLS config %+v", tc)
				}
			}},
		{url: "mysql://u@db/auth?ssl-mode=preferred", dialect: dialect.MySQL,
			check: func(t *testing.T, c *config) {
				if tc := c.mysql.TLS; tc == nil || !tc.InsecureSkipVerify || !c.mysql.AllowFallbackToPlaintext {
					t.Errorf("ssl-mode PREFERRED: TLS config %+v", tc)
				}
			}},
		{url: "mysql://u@db/auth?ssl-mode=DISABLED", dialect: dialect.MySQL,
			check: func(t *testing.T, c *config) {
				if c.mysql.TLS != nil || c.mysql.TLSConfig != "false" {
					t.Errorf("ssl-mode DISABLED: TLS config %+v %q", c.mysql.TLS, c.mysql.TLSConfig)
				}
			}},
		{url: "mysql://u@db/auth?tls=skip-verify&timeout=5s&readTimeout=1m&max_open_conns=10", dialect: dialect.MySQL,
			check: func(t *testing.T, c *config) {
				m := c.mysql
				if m.TLSConfig != "skip-verify" || m.Timeout != 5*time.Second || m.ReadTimeout != time.Minute || *c.maxOpen != 10 {
					t.Errorf("mysql config = %+v", m)
				}
			}},
	} {
		t.Run(tc.url, func(t *testing.T) {
			c, err := parseURL(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			if c.dialect != tc.dialect {
				t.Errorf("dialect = %q, want %q", c.dialect, tc.dialect)
			}
			if tc.dsn != "" && c.dsn != tc.dsn {
				t.Errorf("dsn = %q\n want %q", c.dsn, tc.dsn)
			}
			if tc.where != "" && c.where != tc.where {
				t.Errorf("where = %q, want %q", c.where, tc.where)
			}
			if strings.Contains(c.where, secret) {
				t.Errorf("where %q shows the password", c.where)
			}
			if tc.check != nil {
				tc.check(t, c)
			}
		})
	}
}

func TestParseURLErrors(t *testing.T) {
	for _, raw := range []string{
		"",
		"authdb",
		"sqlite://",
		"sqlite://?_busy_timeout=1",
		"sqlite:///x.db?foo=1",
		"sqlite:///x.db?_busy_timeout=abc",
		"sqlite:///x.db?_synchronous=sometimes",
		"sqlite:///x.db#frag",
		"sqlite:///x%zz.db",
		"sqlite://u:" + secret + "@x.db?nope=1",
		"redis://u:" + secret + "@h/0",
		"postgres://u:" + secret + "@h:badport/db",
		"postgres://u:" + secret + "@h/db?password=x",
		"postgres://u:" + secret + "@h/db?max_open_conns=-1",
		"postgres://u:" + secret + "@h/db?max_idle_conns=many",
		"postgres://u:" + secret + "@h/db?conn_max_lifetime=forever",
		"postgres://u:" + secret + "@h/db?sslmode=disable&sslmode=require",
		"postgres://u:" + secret + "@h/db#frag",
		"postgres://u:" + secret + "@h:5432",
		"postgres://u:" + secret + "@h:5432/?sslmode=disable",
		"postgresql://u:" + secret + "@h1:5432,h2:5433/",
		"postgres://u:" + secret + "@h/db?ssl-mode=REQUIRED",
		"mysql://u:" + secret + "@h/db?ssl-mode=REQUIRED&tls=true",
		"mysql://u:" + secret + "@h/db?ssl-mode=sometimes",
		"mysql://u:" + secret + "@h/db?ssl-ca=/nonexistent/ca.pem",
		"mysql://u:" + secret + "@h/db?ssl-key=/nonexistent/k.pem",
		"mysql://u:" + secret + "?@bad host/db",
		"postgres:u:" + secret + "@h/db",
		"mysql://u:" + secret + "@h",
		"mysql://u:" + secret + "@h/",
		"mysql://u:" + secret + "@/db",
		"mysql://u:" + secret + "@h/db/extra",
		"mysql://u:" + secret + "@h/db?tls=maybe",
		"mysql://u:" + secret + "@h/db?timeout=soon",
		"mysql://u:" + secret + "@h/db?parseTime=false",
		"mysql://u:" + secret + "@h/db?max_idle_conns=1&max_idle_conns=2",
	} {
		t.Run(raw, func(t *testing.T) {
			c, err := parseURL(raw)
			if err == nil {
				t.Fatalf("parseURL = %+v, want an error", c)
			}
			if !errors.Is(err, backend.ErrInvalidInput) {
				t.Errorf("error %v does not wrap ErrInvalidInput", err)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

// TestOpenUnreachable: a server that does not answer fails at Open with an
// error naming the scheme and host, never the password.
func TestOpenUnreachable(t *testing.T) {
	for _, raw := range []string{
		"postgres://u:" + secret + "@127.0.0.1:1/db?sslmode=disable&connect_timeout=5",
		"mysql://u:" + secret + "@127.0.0.1:1/db?timeout=5s",
		"sqlite:///nonexistent-dir-authdb/sub/x.db",
	} {
		t.Run(backend.Scheme(raw), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			b, err := Open(ctx, raw)
			if err == nil {
				b.Close()
				t.Fatal("Open succeeded")
			}
			msg := err.Error()
			if strings.Contains(msg, secret) {
				t.Errorf("error shows the password: %v", err)
			}
			want := backend.Scheme(raw) + "://127.0.0.1:1"
			if backend.Scheme(raw) == "sqlite" {
				want = "sqlite:///nonexistent-dir-authdb/sub/x.db"
			}
			if !strings.Contains(msg, want) {
				t.Errorf("error %q does not name %q", msg, want)
			}
		})
	}
}

// FuzzParseURL: parsing a URL and building its driver never panics, and no
// error shows the password of a URL written as scheme://user:password@rest.
func FuzzParseURL(f *testing.F) {
	for _, seed := range []struct {
		scheme   uint8
		password string
		rest     string
	}{
		{0, "pw", "/tmp/x.db"},
		{0, "", ":memory:"},
		{1, secret, "h:5432/db?sslmode=disable"},
		{1, "p@ss:w/rd?#", "h/db"},
		{2, secret, "h:1/db?binary_parameters=yes&max_open_conns=3"},
		{3, secret, "127.0.0.1:3306/test?tls=true&timeout=1s"},
		{3, "x", "h/db?max_idle_conns=1&max_idle_conns=2"},
		{3, secret, "[::1]:3306/db"},
		{1, secret, "h:99999999999/db"},
		{2, "ünïcödé", "%zz/db"},
		{4, secret, "h/db"},
		{1, "s3cretpw?x", "127.0.0.1:5450/adv?sslmode=disable"},
		{3, "p#ss@w/rd", "h:3306/db?nope=1"},
	} {
		f.Add(seed.scheme, seed.password, seed.rest)
		f.Add(seed.scheme, seed.password, seed.password+"@"+seed.rest)
	}
	schemes := []string{"sqlite", "postgres", "postgresql", "mysql", "oracle"}
	f.Fuzz(func(t *testing.T, scheme uint8, password, rest string) {
		s := schemes[int(scheme)%len(schemes)]
		raw := s + "://" + rest
		if password != "" {
			raw = s + "://" + url.UserPassword("user", password).String() + "@" + rest
		}
		c, err := parseURL(raw)
		if err == nil {
			if db, _, oerr := openDB(c, nil); oerr == nil {
				db.Close()
			} else {
				err = oerr
			}
		}
		if err == nil || len(password) < 4 {
			return
		}
		escaped := url.UserPassword("", password).String()[len(":"):]
		without := strings.Replace(raw, escaped, "", 1)
		for _, p := range []string{password, escaped} {
			if strings.Contains(err.Error(), p) && !strings.Contains(without, p) && !strings.Contains(s, p) {
				t.Errorf("error for %q shows the password %q: %v", raw, p, err)
			}
		}
		// The password as people paste it: unencoded (issue 10).
		raw = s + "://user:" + password + "@" + rest
		if _, err := parseURL(raw); err != nil && strings.Contains(err.Error(), password) &&
			!strings.Contains(s+"://user:@"+rest, password) {
			t.Errorf("error for %q shows the unencoded password %q: %v", raw, password, err)
		}
		if red := backend.Redact(raw); strings.Contains(red, password) && !strings.Contains(s+"://user:@"+rest, password) {
			t.Errorf("Redact(%q) = %q shows the password", raw, red)
		}
	})
}

func TestDSN(t *testing.T) {
	for _, tc := range []struct{ url, driver, dsn string }{
		{"sqlite:///x.db", "sqlite3", "file:/x.db?_busy_timeout=10000&_foreign_keys=1&_journal_mode=WAL&_synchronous=NORMAL&_txlock=immediate"},
		{"sqlite:///x.db?_busy_timeout=20", "sqlite3", "file:/x.db?_busy_timeout=20&_foreign_keys=1&_journal_mode=WAL&_synchronous=NORMAL&_txlock=immediate"},
		{"postgres://u@h/db?max_open_conns=2", "postgres", "postgres://u@h/db?binary_parameters=yes"},
		{"mysql://u:pw@h:3306/db", "mysql", "u:pw@tcp(h:3306)/db?clientFoundRows=true&charset=utf8mb4&collation=utf8mb4_general_ci&interpolateParams=true&parseTime=true&timeout=10s&sql_mode=%27STRICT_ALL_TABLES%2CNO_ZERO_IN_DATE%2CNO_ZERO_DATE%2CERROR_FOR_DIVISION_BY_ZERO%2CNO_ENGINE_SUBSTITUTION%27"},
	} {
		driver, dsn, err := DSN(tc.url)
		if err != nil || driver != tc.driver || dsn != tc.dsn {
			t.Errorf("DSN(%s) = %q, %q, %v\nwant %q, %q", tc.url, driver, dsn, err, tc.driver, tc.dsn)
		}
	}
}
