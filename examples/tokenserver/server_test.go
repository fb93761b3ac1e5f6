package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/oauth2"

	"github.com/authdb/authdb"
	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/conformance"
	"github.com/authdb/authdb/internal/testdb"
)

const (
	testClientID  = "cli"
	testRedirect  = "http://127.0.0.1:9999/callback"
	otherClientID = "other" // a second registered client
	otherRedirect = "http://127.0.0.1:9999/other"
	testGrace     = 5 * time.Second
)

// testKey is the token key of the test servers (32 bytes).
var testKey = []byte("0123456789abcdef0123456789abcdef")

// env is a running token server with an oauth2 client configured for it.
type env struct {
	t       *testing.T
	dbURL   string
	store   backend.Backend
	clock   *conformance.Clock // shared by the store and the server
	srv     *Server
	ts      *httptest.Server
	conf    *oauth2.Config
	pending chan struct{} // gets a value after each authorization_pending answer
}

// backends are the stores the tests run on: the memory backend, a SQLite
// file, and PostgreSQL and MariaDB/MySQL when their test servers are set
// (internal/testdb: skipped with the variable's name when unset, a failure
// under AUTHDB_TEST_REQUIRE_DBS=1 as in CI).
var backends = []struct {
	name string
	url  func(t *testing.T) string
}{
	{"memory", func(*testing.T) string { return "memory://" }},
	{"sqlite", func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "authdb.db") }},
	{"postgres", func(t *testing.T) string { return testdb.NewDatabase(t, testdb.Postgres) }},
	{"mysql", func(t *testing.T) string { return testdb.NewDatabase(t, testdb.MySQL) }},
}

// forEachBackend runs test on every backend, each subtest with a fresh server.
func forEachBackend(t *testing.T, test func(t *testing.T, e *env)) {
	forEachBackendWith(t, nil, test)
}

// forEachBackendWith is forEachBackend with edit applied to each server's Config.
func forEachBackendWith(t *testing.T, edit func(*Config), test func(t *testing.T, e *env)) {
	t.Parallel() // most time goes to creating the SQL databases and to poll intervals
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			test(t, newEnv(t, b.url(t), edit))
		})
	}
}

// newEnv starts a server on dbURL; edit, if not nil, changes its Config.
func newEnv(t *testing.T, dbURL string, edit func(*Config)) *env {
	t.Helper()
	clk := conformance.NewClock(time.Now().UTC())
	store, err := authdb.Open(context.Background(), dbURL, append(StoreOptions(testGrace), backend.WithClock(clk.Now))...)
	if err != nil {
		t.Fatalf("open %s: %v", backend.Redact(dbURL), err)
	}
	t.Cleanup(func() { store.Close() })
	e := &env{t: t, dbURL: dbURL, store: store, clock: clk, pending: make(chan struct{}, 16)}
	// The middleware tells the test when the server answered authorization_pending.
	e.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w}
		e.srv.ServeHTTP(rec, r)
		if r.URL.Path == "/token" && bytes.Contains(rec.body.Bytes(), []byte(`"authorization_pending"`)) {
			select {
			case e.pending <- struct{}{}:
			default:
			}
		}
	}))
	t.Cleanup(e.ts.Close)
	cfg := Config{
		Store:  store,
		Issuer: e.ts.URL, // http://127.0.0.1:port
		Clients: map[string]Client{
			testClientID:  {RedirectURIs: []string{testRedirect}},
			otherClientID: {RedirectURIs: []string{otherRedirect}},
		},
		Keys:         [][]byte{testKey},
		Clock:        clk.Now,
		PollInterval: time.Second, // the shortest RFC 8628 allows
	}
	if edit != nil {
		edit(&cfg)
	}
	if e.srv, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	e.conf = e.oauth2Config(testClientID, testRedirect)
	return e
}

// oauth2Config is a golang.org/x/oauth2 client of the server.
func (e *env) oauth2Config(clientID, redirect string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:    clientID,
		RedirectURL: redirect,
		Scopes:      []string{"profile", "email"},
		Endpoint: oauth2.Endpoint{
			AuthURL:       e.ts.URL + "/authorize",
			TokenURL:      e.ts.URL + "/token",
			DeviceAuthURL: e.ts.URL + "/device_authorization",
			AuthStyle:     oauth2.AuthStyleInParams,
		},
	}
}

type recorder struct {
	http.ResponseWriter
	body bytes.Buffer
}

func (r *recorder) Write(b []byte) (int, error) {
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}

// ctx returns a context for the oauth2 client that uses the test server's client.
func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	e.t.Cleanup(cancel)
	return context.WithValue(ctx, oauth2.HTTPClient, e.ts.Client())
}

// do sends req without following redirects and returns the response with
// its body read.
func (e *env) do(req *http.Request) (*http.Response, []byte) {
	e.t.Helper()
	c := e.ts.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// postRaw sends body as a form to path; edit, if not nil, changes the request.
func (e *env) postRaw(path, body string, edit func(*http.Request)) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.ts.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if edit != nil {
		edit(req)
	}
	return e.do(req)
}

// post sends a form to the server without following redirects.
func (e *env) post(path string, form url.Values) (*http.Response, []byte) {
	e.t.Helper()
	return e.postRaw(path, form.Encode(), nil)
}

// get fetches rawURL without following redirects.
func (e *env) get(rawURL string) *http.Response {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	resp, _ := e.do(req)
	return resp
}

// oauthErr is an error response body.
type oauthErr struct {
	Code        string `json:"error"`
	Description string `json:"error_description"`
}

// wantError checks that a raw response is the error code with status.
func wantError(t *testing.T, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	var oe oauthErr
	if err := json.Unmarshal(body, &oe); err != nil || resp.StatusCode != status || oe.Code != code {
		t.Fatalf("got %d %s, want %d with error %q", resp.StatusCode, body, status, code)
	}
	if strings.ContainsAny(oe.Description, "\"\\") {
		t.Fatalf("error_description %q has a character RFC 6749 §5.2 forbids", oe.Description)
	}
}

// wantOAuthError checks that err is an oauth2 token error with code.
func wantOAuthError(t *testing.T, err error, code string) {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Fatalf("want oauth2 error %q, got %v", code, err)
	}
	if re.ErrorCode != code {
		t.Fatalf("want oauth2 error %q, got %q (%s)", code, re.ErrorCode, re.ErrorDescription)
	}
}

// liveTokens returns how many live refresh tokens sub has.
func (e *env) liveTokens(sub string) int {
	e.t.Helper()
	toks, err := e.store.GetUserRefreshTokens(context.Background(), sub)
	if err != nil {
		e.t.Fatal(err)
	}
	return len(toks)
}

// jti returns the JTI of one of the server's refresh tokens for the test client.
func (e *env) jti(refreshToken string) uuid.UUID {
	e.t.Helper()
	jti, ok := e.srv.parseRefreshToken(refreshToken, testClientID)
	if !ok {
		e.t.Fatalf("refresh token %q is not one of the server's", refreshToken)
	}
	return jti
}

// refresh refreshes tok with conf's client.
func (e *env) refresh(conf *oauth2.Config, refreshToken string) (*oauth2.Token, error) {
	return conf.TokenSource(e.ctx(), &oauth2.Token{RefreshToken: refreshToken}).Token()
}

// deviceLogin runs a device flow for sub to its end and returns the token.
func (e *env) deviceLogin(conf *oauth2.Config, sub string) *oauth2.Token {
	e.t.Helper()
	ctx := e.ctx()
	da, err := conf.DeviceAuth(ctx)
	if err != nil {
		e.t.Fatalf("DeviceAuth: %v", err)
	}
	// The user logs in before the device's first poll.
	if resp, body := e.post("/simulate/login", url.Values{"user_code": {da.UserCode}, "sub": {sub}}); resp.StatusCode != http.StatusOK {
		e.t.Fatalf("simulated login: %d %s", resp.StatusCode, body)
	}
	tok, err := conf.DeviceAccessToken(ctx, da)
	if err != nil {
		e.t.Fatalf("DeviceAccessToken: %v", err)
	}
	return tok
}

// authorizationCode runs /authorize with an S256 challenge and the simulated
// login as sub, and returns the code the client receives.
func (e *env) authorizationCode(verifier, sub string) string {
	e.t.Helper()
	cb := e.authorizationRedirect(e.conf.AuthCodeURL("xyz-state", oauth2.S256ChallengeOption(verifier)), sub, nil)
	if got := cb.Query().Get("state"); got != "xyz-state" {
		e.t.Fatalf("state %q, want xyz-state", got)
	}
	code := cb.Query().Get("code")
	if code == "" {
		e.t.Fatalf("no code in %s", cb)
	}
	return code
}

// authorizationRedirect follows authURL to the login page, logs in as sub
// with the extra form values, and returns the redirect to the client.
func (e *env) authorizationRedirect(authURL, sub string, extra url.Values) *url.URL {
	e.t.Helper()
	resp := e.get(authURL)
	if resp.StatusCode != http.StatusFound {
		e.t.Fatalf("/authorize: status %d", resp.StatusCode)
	}
	login, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || login.Path != "/login" {
		e.t.Fatalf("/authorize redirects to %q, want /login", resp.Header.Get("Location"))
	}
	form := login.Query()
	form.Set("sub", sub)
	for k, v := range extra {
		form[k] = v
	}
	resp, body := e.post("/simulate/login", form)
	if resp.StatusCode != http.StatusFound {
		e.t.Fatalf("simulated login: %d %s", resp.StatusCode, body)
	}
	cb, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		e.t.Fatal(err)
	}
	return cb
}

// codeLogin runs an authorization-code flow for sub and returns the token.
func (e *env) codeLogin(sub string) *oauth2.Token {
	e.t.Helper()
	verifier := oauth2.GenerateVerifier()
	tok, err := e.conf.Exchange(e.ctx(), e.authorizationCode(verifier, sub), oauth2.VerifierOption(verifier))
	if err != nil {
		e.t.Fatalf("Exchange: %v", err)
	}
	return tok
}

func TestDeviceFlow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := e.ctx()
		da, err := e.conf.DeviceAuth(ctx)
		if err != nil {
			t.Fatalf("DeviceAuth: %v", err)
		}
		if da.UserCode == "" || da.DeviceCode == "" || da.VerificationURI != e.ts.URL+"/device" || da.Interval != 1 {
			t.Fatalf("device authorization response: %+v", da)
		}
		// The user logs in after the device's first poll was told to wait.
		approved := make(chan int, 1)
		go func() {
			<-e.pending
			resp, err := http.PostForm(e.ts.URL+"/simulate/login", url.Values{"user_code": {strings.ToLower(da.UserCode)}, "sub": {"alice"}})
			if err != nil {
				approved <- 0
				return
			}
			resp.Body.Close()
			approved <- resp.StatusCode
		}()
		tok, err := e.conf.DeviceAccessToken(ctx, da)
		if err != nil {
			t.Fatalf("DeviceAccessToken: %v", err)
		}
		if code := <-approved; code != http.StatusOK {
			t.Fatalf("simulated login: status %d", code)
		}
		if tok.AccessToken == "" || tok.RefreshToken == "" || tok.TokenType != "Bearer" || tok.Extra("scope") != "profile email" {
			t.Fatalf("token: %+v scope %v", tok, tok.Extra("scope"))
		}
		if n := e.liveTokens("alice"); n != 1 {
			t.Fatalf("alice has %d live tokens, want 1", n)
		}
		// The device code is redeemed once.
		resp, body := e.post("/token", url.Values{"grant_type": {grantDeviceCode}, "client_id": {testClientID}, "device_code": {da.DeviceCode}})
		wantError(t, resp, body, http.StatusBadRequest, "invalid_grant")
	})
}

func TestDeviceFlowExpires(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := e.ctx()
		da, err := e.conf.DeviceAuth(ctx)
		if err != nil {
			t.Fatalf("DeviceAuth: %v", err)
		}
		e.clock.Advance(11 * time.Minute) // past the 10-minute validity
		_, err = e.conf.DeviceAccessToken(ctx, da)
		wantOAuthError(t, err, "expired_token")
		// The user is too late as well.
		if resp, _ := e.post("/simulate/login", url.Values{"user_code": {da.UserCode}, "sub": {"alice"}}); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("late login: status %d, want 400", resp.StatusCode)
		}
	})
}

func TestAuthorizationCodePKCE(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := e.ctx()
		verifier := oauth2.GenerateVerifier()
		code := e.authorizationCode(verifier, "bob")

		_, err := e.conf.Exchange(ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier()))
		wantOAuthError(t, err, "invalid_grant")
		_, err = e.conf.Exchange(ctx, code)
		wantOAuthError(t, err, "invalid_request") // code_verifier is required
		if n := e.liveTokens("bob"); n != 0 {
			t.Fatalf("bob has %d live tokens after failed exchanges, want 0", n)
		}

		tok, err := e.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatalf("Exchange: %v", err)
		}
		if tok.AccessToken == "" || tok.RefreshToken == "" {
			t.Fatalf("token: %+v", tok)
		}
		if n := e.liveTokens("bob"); n != 1 {
			t.Fatalf("bob has %d live tokens, want 1", n)
		}
	})
}

func TestAuthorizeRequiresS256(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		for name, opts := range map[string][]oauth2.AuthCodeOption{
			"none":  nil,
			"plain": {oauth2.SetAuthURLParam("code_challenge", oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("code_challenge_method", "plain")},
		} {
			resp := e.get(e.conf.AuthCodeURL("s", opts...))
			loc, _ := url.Parse(resp.Header.Get("Location"))
			if resp.StatusCode != http.StatusFound || loc.Query().Get("error") != "invalid_request" || loc.Query().Get("state") != "s" {
				t.Errorf("%s: status %d, Location %q; want a redirect with error=invalid_request", name, resp.StatusCode, loc)
			}
		}
		bad := *e.conf
		bad.RedirectURL = "https://evil.example/cb"
		if resp := e.get(bad.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("unregistered redirect_uri: status %d, want 400 without redirect", resp.StatusCode)
		}
	})
}

func TestRefreshTokenChecks(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		tok := e.codeLogin("dave")
		// A forged token (the right JTI, a wrong MAC) is refused and changes nothing.
		idPart, _, _ := strings.Cut(tok.RefreshToken, ".")
		_, err := e.refresh(e.conf, idPart+".AAAA")
		wantOAuthError(t, err, "invalid_grant")
		if n := e.liveTokens("dave"); n != 1 {
			t.Fatalf("dave has %d live tokens after a forged refresh, want 1", n)
		}
		// Past its lifetime (30 days by default) the token is refused.
		e.clock.Advance(31 * 24 * time.Hour)
		_, err = e.refresh(e.conf, tok.RefreshToken)
		wantOAuthError(t, err, "invalid_grant")
	})
}

func TestUnknownClient(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		bad := *e.conf
		bad.ClientID = "nobody"
		_, err := bad.DeviceAuth(e.ctx())
		if err == nil || !strings.Contains(err.Error(), "invalid_client") {
			t.Fatalf("DeviceAuth with an unknown client: %v, want invalid_client", err)
		}
	})
}
