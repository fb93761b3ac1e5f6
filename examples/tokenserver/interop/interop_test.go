// Package interop drives examples/tokenserver with two real third-party
// clients, unchanged and from discovery: zitadel/oidc v3's relying party
// (Go, here) and openid-client 6 (Node, node/interop.test.mjs). It is its own
// module so that zitadel/oidc stays out of authdb's go.mod.
//
// run.sh builds the server and the Node client and runs this test, which
// starts the server binary (TOKENSERVER_BIN) once per store: a SQLite file,
// and fresh PostgreSQL and MariaDB databases from internal/testdb (the same
// variables and rules as authdb's own tests: AUTHDB_TEST_POSTGRES_URL,
// AUTHDB_TEST_MYSQL_URL, AUTHDB_TEST_REQUIRE_DBS).
package interop

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"golang.org/x/oauth2"

	"github.com/authdb/authdb/internal/testdb"
)

const (
	clientID = "interop"
	redirect = "http://127.0.0.1:9999/callback"
)

func TestInterop(t *testing.T) {
	bin := os.Getenv("TOKENSERVER_BIN")
	if bin == "" {
		t.Fatal("TOKENSERVER_BIN is not set: run examples/tokenserver/interop/run.sh")
	}
	for _, store := range []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "interop.db") }},
		{"postgres", func(t *testing.T) string { return testdb.NewDatabase(t, testdb.Postgres) }},
		{"mysql", func(t *testing.T) string { return testdb.NewDatabase(t, testdb.MySQL) }},
	} {
		t.Run(store.name, func(t *testing.T) {
			issuer := startServer(t, bin, store.url(t))
			t.Run("zitadel-oidc", func(t *testing.T) { zitadel(t, issuer) })
			t.Run("openid-client", func(t *testing.T) { openidClient(t, issuer) })
		})
	}
}

// startServer runs the token server on a free loopback port with a key file,
// as an operator would, and returns its issuer once discovery answers.
func startServer(t *testing.T, bin, dbURL string) string {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // a tiny race with other processes for the port; good enough for a test
	issuer := "http://" + addr
	var logs bytes.Buffer
	cmd := exec.Command(bin, "--addr", addr, "--issuer", issuer, "--db", dbURL, "--key-file", keyFile,
		"--client", clientID+"="+redirect, "--poll-interval", "1s", "--refresh-grace", "5s")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(issuer + "/.well-known/oauth-authorization-server")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return issuer
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server did not answer within 30 s: %v\n%s", err, logs.String())
		}
	}
}

// noRedirects is an HTTP client that stops at the first redirect.
var noRedirects = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// approveDevice is the user logging in for a device flow (the simulated
// identity provider).
func approveDevice(t *testing.T, issuer, userCode, sub string) {
	t.Helper()
	resp, err := noRedirects.PostForm(issuer+"/simulate/login", url.Values{"user_code": {userCode}, "sub": {sub}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("approve device: status %d", resp.StatusCode)
	}
}

// browse is the browser: it follows authURL to the login page, logs in as
// sub, and returns the redirect to the client.
func browse(t *testing.T, issuer, authURL, sub string) *url.URL {
	t.Helper()
	resp, err := noRedirects.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	login, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound || login.Query().Get("flow") == "" {
		t.Fatalf("/authorize: %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, err = noRedirects.PostForm(issuer+"/simulate/login", url.Values{"flow": {login.Query().Get("flow")}, "sub": {sub}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cb, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("login: %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return cb
}

// zitadel runs zitadel/oidc's relying party, set up from discovery, through
// the device flow, code + PKCE, refresh and revocation. It is an OpenID
// Connect relying party and this server issues no ID token, so its
// CodeExchange says ErrMissingIDToken and still returns the OAuth2 tokens,
// which is what an OAuth2-only use of it gets; discovery is RFC 8414's URL
// (WithCustomDiscoveryUrl), as there is no openid-configuration.
func zitadel(t *testing.T, issuer string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	party, err := rp.NewRelyingPartyOIDC(ctx, issuer, clientID, "", redirect, []string{"profile"},
		rp.WithCustomDiscoveryUrl(issuer+"/.well-known/oauth-authorization-server"))
	if err != nil {
		t.Fatalf("relying party from discovery: %v", err)
	}

	// Device flow (RFC 8628), its endpoint from discovery.
	da, err := rp.DeviceAuthorization(ctx, []string{"profile"}, party, nil)
	if err != nil {
		t.Fatalf("DeviceAuthorization: %v", err)
	}
	if da.VerificationURI != issuer+"/device" {
		t.Errorf("verification_uri %q", da.VerificationURI)
	}
	approveDevice(t, issuer, da.UserCode, "zitadel-user")
	// zitadel bounds each poll by the interval itself (a poll slower than
	// that fails the flow), so poll a little slower than the server's 1 s
	// on a loaded machine: a client may always poll slower.
	interval := max(time.Duration(da.Interval)*time.Second, 3*time.Second)
	dt, err := rp.DeviceAccessToken(ctx, da.DeviceCode, interval, party)
	if err != nil {
		t.Fatalf("DeviceAccessToken: %v", err)
	}
	if dt.AccessToken == "" || dt.RefreshToken == "" || dt.Scope.String() != "profile" {
		t.Fatalf("device tokens: %+v", dt)
	}

	// Authorization code with PKCE; state and iss come back.
	verifier := oauth2.GenerateVerifier()
	cb := browse(t, issuer, rp.AuthURL("zitadel-state", party, rp.WithCodeChallenge(oidc.NewSHACodeChallenge(verifier))), "zitadel-user")
	if cb.Query().Get("state") != "zitadel-state" || cb.Query().Get("iss") != issuer {
		t.Fatalf("authorization response %s: want state and iss", cb)
	}
	tokens, err := rp.CodeExchange[*oidc.IDTokenClaims](ctx, cb.Query().Get("code"), party, rp.WithCodeVerifier(verifier))
	if !errors.Is(err, rp.ErrMissingIDToken) || tokens == nil || tokens.RefreshToken == "" {
		t.Fatalf("CodeExchange: %+v, %v; want the OAuth2 tokens and ErrMissingIDToken", tokens, err)
	}

	// Refresh (rotation), then revocation of the session.
	refreshed, err := rp.RefreshTokens[*oidc.IDTokenClaims](ctx, party, tokens.RefreshToken, "", "")
	if err != nil {
		t.Fatalf("RefreshTokens: %v", err)
	}
	if refreshed.RefreshToken == "" || refreshed.RefreshToken == tokens.RefreshToken {
		t.Fatalf("refresh did not rotate")
	}
	if err := rp.RevokeToken(ctx, party, refreshed.RefreshToken, "refresh_token"); err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	_, err = rp.RefreshTokens[*oidc.IDTokenClaims](ctx, party, refreshed.RefreshToken, "", "")
	var oe *oidc.Error
	if !errors.As(err, &oe) || oe.ErrorType != oidc.InvalidGrant {
		t.Fatalf("refresh after revocation: %v, want invalid_grant", err)
	}
	// The device login is another session of the same user: still live.
	if _, err := rp.RefreshTokens[*oidc.IDTokenClaims](ctx, party, dt.RefreshToken, "", ""); err != nil {
		t.Fatalf("refresh of the device session: %v", err)
	}
}

// openidClient runs the Node client (node/interop.test.mjs) with Node's test
// runner against the server.
func openidClient(t *testing.T, issuer string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := os.Stat("node/node_modules/openid-client"); err != nil {
		t.Fatal("node/node_modules is missing: run.sh installs it (npm ci)")
	}
	cmd := exec.CommandContext(ctx, "node", "--test", "--test-reporter=spec", "interop.test.mjs")
	cmd.Dir = "node"
	cmd.Env = append(os.Environ(), "TOKENSERVER_ISSUER="+issuer, "TOKENSERVER_CLIENT_ID="+clientID,
		"TOKENSERVER_REDIRECT_URI="+redirect, "TOKENSERVER_RUN="+strconv.FormatInt(time.Now().UnixNano(), 36))
	out, err := cmd.CombinedOutput()
	t.Logf("node --test:\n%s", out)
	if err != nil {
		t.Fatalf("openid-client: %v", err)
	}
}
