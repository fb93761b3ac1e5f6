package sqlbackend_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/backend/sqlbackend"
	"github.com/authdb/authdb/internal/testserver"
)

// hostilePassword holds every URL delimiter, unencoded, an invalid
// percent-escape, a space and a non-ASCII letter.
const hostilePassword = "p?s#s@w/o:rd%zz é"

// tlsCase is one connection attempt of the TLS tests.
type tlsCase struct {
	name     string
	url      string
	ok       bool   // Open succeeds
	secret   string // must not appear in the error or the log
	checkTLS func(t *testing.T, b *sqlbackend.Backend)
}

func runTLSCases(t *testing.T, cases []tlsCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			logger, logs := newLogger()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			b, err := sqlbackend.Open(ctx, c.url, backend.WithLogger(logger))
			if c.secret != "" {
				for _, s := range []string{c.secret, url.QueryEscape(c.secret)} {
					if err != nil && strings.Contains(err.Error(), s) || strings.Contains(logs.String(), s) {
						t.Errorf("the password appears in the error or the log: %v\n%s", err, logs)
					}
				}
			}
			if !c.ok {
				if err == nil {
					b.Close()
					t.Fatalf("Open succeeded, want a refusal")
				}
				t.Logf("refused as expected: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer b.Close()
			if _, _, err := b.InsertDeviceFlow(ctx, "client", "openid"); err != nil {
				t.Fatalf("InsertDeviceFlow: %v", err)
			}
			if c.checkTLS != nil {
				c.checkTLS(t, b)
			}
		})
	}
}

// mysqlCipher returns the session's TLS cipher ("" without TLS).
func mysqlCipher(t *testing.T, b *sqlbackend.Backend) string {
	t.Helper()
	var name, cipher string
	if err := b.DB().QueryRow("SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher); err != nil {
		t.Fatal(err)
	}
	return cipher
}

func wantMySQLTLS(on bool) func(t *testing.T, b *sqlbackend.Backend) {
	return func(t *testing.T, b *sqlbackend.Backend) {
		if c := mysqlCipher(t, b); (c != "") != on {
			t.Errorf("Ssl_cipher = %q, want TLS %v", c, on)
		}
	}
}

// TestMySQLTLS runs a private MariaDB with a certificate from a private CA
// made in the test (for the name localhost only) and checks the mysql
// client's ssl-mode, ssl-ca, ssl-cert and ssl-key, and a password with
// unencoded URL delimiters.
func TestMySQLTLS(t *testing.T) {
	ca := testserver.NewCA(t)
	server := ca.Issue(t, "server", "localhost")
	client := ca.Issue(t, "certuser", "certuser")
	other := testserver.NewCA(t)
	s := testserver.Start(t, testserver.MariaDB, testserver.Config{TLS: &server})
	admin := s.AdminDB(t)
	for _, q := range []string{
		"CREATE USER 'pwuser'@'%' IDENTIFIED BY '" + hostilePassword + "'",
		"GRANT ALL ON *.* TO 'pwuser'@'%'",
		"CREATE USER 'certuser'@'%' REQUIRE X509",
		"GRANT ALL ON *.* TO 'certuser'@'%'",
	} {
		if _, err := admin.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	dbURL := s.NewDatabase(t)
	db := dbURL[strings.LastIndexByte(dbURL, '/')+1:]
	port := s.Port()
	u := func(user, host, query string) string {
		return fmt.Sprintf("mysql://%s@%s:%d/%s?%s", user, host, port, db, query)
	}
	caq := "ssl-ca=" + url.QueryEscape(ca.CAFile)
	runTLSCases(t, []tlsCase{
		{name: "VERIFY_IDENTITY by name", url: u("root", "localhost", "ssl-mode=VERIFY_IDENTITY&"+caq), ok: true, checkTLS: wantMySQLTLS(true)},
		{name: "VERIFY_IDENTITY by address the certificate does not name", url: u("root", "127.0.0.1", "ssl-mode=VERIFY_IDENTITY&"+caq)},
		{name: "ssl-ca alone is VERIFY_IDENTITY", url: u("root", "127.0.0.1", caq)},
		{name: "VERIFY_CA by address", url: u("root", "127.0.0.1", "ssl-mode=verify_ca&"+caq), ok: true, checkTLS: wantMySQLTLS(true)},
		{name: "VERIFY_CA another CA", url: u("root", "127.0.0.1", "ssl-mode=VERIFY_CA&ssl-ca="+url.QueryEscape(other.CAFile))},
		{name: "VERIFY_IDENTITY system roots", url: u("root", "localhost", "ssl-mode=VERIFY_IDENTITY")},
		{name: "REQUIRED", url: u("root", "127.0.0.1", "ssl-mode=REQUIRED"), ok: true, checkTLS: wantMySQLTLS(true)},
		{name: "PREFERRED", url: u("root", "127.0.0.1", "ssl-mode=PREFERRED"), ok: true, checkTLS: wantMySQLTLS(true)},
		{name: "DISABLED", url: u("root", "127.0.0.1", "ssl-mode=DISABLED"), ok: true, checkTLS: wantMySQLTLS(false)},
		{name: "client certificate", url: u("certuser", "localhost", "ssl-mode=VERIFY_IDENTITY&"+caq+
			"&ssl-cert="+url.QueryEscape(client.Cert)+"&ssl-key="+url.QueryEscape(client.Key)), ok: true, checkTLS: wantMySQLTLS(true)},
		{name: "X509 user without a certificate", url: u("certuser", "localhost", "ssl-mode=VERIFY_IDENTITY&"+caq)},
		{name: "ssl-cert without ssl-key", url: u("certuser", "localhost", "ssl-cert="+url.QueryEscape(client.Cert))},
		{name: "unknown ssl-mode", url: u("root", "localhost", "ssl-mode=SOMETIMES")},
		{name: "hostile password unencoded", url: u("pwuser:"+hostilePassword, "localhost", "ssl-mode=VERIFY_IDENTITY&"+caq), ok: true, secret: hostilePassword},
		{name: "hostile password encoded", url: u("pwuser:"+url.PathEscape(hostilePassword), "127.0.0.1", "ssl-mode=REQUIRED"), ok: true},
		{name: "wrong password", url: u("pwuser:"+hostilePassword+"x", "127.0.0.1", "ssl-mode=REQUIRED"), secret: hostilePassword},
	})
	// A server without TLS: REQUIRED refuses, PREFERRED falls back.
	plain := testserver.Shared(t, testserver.MariaDB, hostileMariaDBs[1].cfg)
	pu := plain.NewDatabase(t)
	runTLSCases(t, []tlsCase{
		{name: "REQUIRED without server TLS", url: pu + "?ssl-mode=REQUIRED"},
		{name: "PREFERRED without server TLS", url: pu + "?ssl-mode=PREFERRED", ok: true, checkTLS: wantMySQLTLS(false)},
	})
}

// TestPostgresTLS runs a private PostgreSQL with a certificate from a
// private CA (for localhost only), a password user and a certificate user,
// and checks libpq's sslmode, sslrootcert, sslcert and sslkey.
func TestPostgresTLS(t *testing.T) {
	ca := testserver.NewCA(t)
	server := ca.Issue(t, "server", "localhost")
	client := ca.Issue(t, "certuser", "certuser")
	other := testserver.NewCA(t)
	s := testserver.Start(t, testserver.Postgres, testserver.Config{TLS: &server, HBA: []string{
		"hostssl all certuser 127.0.0.1/32 cert",
		"hostssl all certuser ::1/128 cert",
		"host all pwuser 127.0.0.1/32 scram-sha-256",
		"host all pwuser ::1/128 scram-sha-256",
	}})
	admin := s.AdminDB(t)
	for _, q := range []string{
		"CREATE ROLE pwuser LOGIN SUPERUSER PASSWORD '" + hostilePassword + "'",
		"CREATE ROLE certuser LOGIN SUPERUSER",
	} {
		if _, err := admin.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	dbURL := s.NewDatabase(t)
	db := dbURL[strings.LastIndexByte(dbURL, '/')+1 : strings.IndexByte(dbURL, '?')]
	port := s.Port()
	u := func(user, host, query string) string {
		return fmt.Sprintf("postgres://%s@%s:%d/%s?%s", user, host, port, db, query)
	}
	wantSSL := func(on bool) func(t *testing.T, b *sqlbackend.Backend) {
		return func(t *testing.T, b *sqlbackend.Backend) {
			var ssl bool
			if err := b.DB().QueryRow("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil {
				t.Fatal(err)
			}
			if ssl != on {
				t.Errorf("pg_stat_ssl.ssl = %v, want %v", ssl, on)
			}
		}
	}
	root := "sslrootcert=" + url.QueryEscape(ca.CAFile)
	runTLSCases(t, []tlsCase{
		{name: "verify-full by name", url: u("postgres", "localhost", "sslmode=verify-full&"+root), ok: true, checkTLS: wantSSL(true)},
		{name: "verify-full by address the certificate does not name", url: u("postgres", "127.0.0.1", "sslmode=verify-full&"+root)},
		{name: "verify-ca by address", url: u("postgres", "127.0.0.1", "sslmode=verify-ca&"+root), ok: true, checkTLS: wantSSL(true)},
		{name: "verify-ca another CA", url: u("postgres", "127.0.0.1", "sslmode=verify-ca&sslrootcert="+url.QueryEscape(other.CAFile))},
		{name: "require", url: u("postgres", "127.0.0.1", "sslmode=require"), ok: true, checkTLS: wantSSL(true)},
		{name: "disable", url: u("postgres", "127.0.0.1", "sslmode=disable"), ok: true, checkTLS: wantSSL(false)},
		{name: "client certificate", url: u("certuser", "localhost", "sslmode=verify-full&"+root+
			"&sslcert="+url.QueryEscape(client.Cert)+"&sslkey="+url.QueryEscape(client.Key)), ok: true, checkTLS: wantSSL(true)},
		{name: "cert user without a certificate", url: u("certuser", "localhost", "sslmode=verify-full&"+root)},
		{name: "hostile password unencoded", url: u("pwuser:"+hostilePassword, "127.0.0.1", "sslmode=disable"), ok: true, secret: hostilePassword},
		{name: "hostile password encoded", url: u("pwuser:"+url.PathEscape(hostilePassword), "127.0.0.1", "sslmode=require"), ok: true},
		{name: "wrong password", url: u("pwuser:"+hostilePassword+"x", "127.0.0.1", "sslmode=disable"), secret: hostilePassword},
	})
}
