package main

import (
	"bytes"
	"context"
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
)

const (
	testClientID = "cli"
	testRedirect = "http://127.0.0.1:9999/callback"
)

// env is a running token server with an oauth2 client configured for it.
type env struct {
	t       *testing.T
	store   backend.Backend
	clock   *conformance.Clock // shared by the store and the server
	srv     *Server
	ts      *httptest.Server
	conf    *oauth2.Config
	pending chan struct{} // gets a value after each authorization_pending answer
}

// backends are the stores the tests run on: the memory backend and a SQLite file.
var backends = []struct {
	name string
	url  func(t *testing.T) string
}{
	{"memory", func(*testing.T) string { return "memory://" }},
	{"sqlite", func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "authdb.db") }},
}

// forEachBackend runs test on every backend, each subtest with a fresh server.
func forEachBackend(t *testing.T, test func(t *testing.T, e *env)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel() // the device-flow tests mostly wait for the poll interval
			test(t, newEnv(t, b.url(t)))
		})
	}
}

func newEnv(t *testing.T, dbURL string) *env {
	t.Helper()
	clk := conformance.NewClock(time.Now().UTC())
	store, err := authdb.Open(context.Background(), dbURL, backend.WithClock(clk.Now))
	if err != nil {
		t.Fatalf("open %s: %v", dbURL, err)
	}
	t.Cleanup(func() { store.Close() })
	srv, err := New(Config{
		Store:        store,
		Clients:      map[string]Client{testClientID: {RedirectURIs: []string{testRedirect}}},
		Clock:        clk.Now,
		PollInterval: time.Second, // the shortest RFC 8628 allows
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, store: store, clock: clk, srv: srv, pending: make(chan struct{}, 16)}
	// The middleware tells the test when the server answered authorization_pending.
	e.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w}
		srv.ServeHTTP(rec, r)
		if r.URL.Path == "/token" && bytes.Contains(rec.body.Bytes(), []byte(`"authorization_pending"`)) {
			select {
			case e.pending <- struct{}{}:
			default:
			}
		}
	}))
	t.Cleanup(e.ts.Close)
	e.conf = &oauth2.Config{
		ClientID:    testClientID,
		RedirectURL: testRedirect,
		Scopes:      []string{"openid", "profile"},
		Endpoint: oauth2.Endpoint{
			AuthURL:       e.ts.URL + "/authorize",
			TokenURL:      e.ts.URL + "/token",
			DeviceAuthURL: e.ts.URL + "/device_authorization",
			AuthStyle:     oauth2.AuthStyleInParams,
		},
	}
	return e
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

// post sends a form to the server without following redirects.
func (e *env) post(path string, form url.Values) *http.Response {
	e.t.Helper()
	c := e.ts.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.PostForm(e.ts.URL+path, form)
	if err != nil {
		e.t.Fatalf("POST %s: %v", path, err)
	}
	e.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// get fetches rawURL without following redirects.
func (e *env) get(rawURL string) *http.Response {
	e.t.Helper()
	c := e.ts.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Get(rawURL)
	if err != nil {
		e.t.Fatalf("GET %s: %v", rawURL, err)
	}
	e.t.Cleanup(func() { resp.Body.Close() })
	return resp
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

// jti returns the JTI of one of the server's refresh tokens.
func (e *env) jti(refreshToken string) uuid.UUID {
	e.t.Helper()
	jti, ok := e.srv.parseRefreshToken(refreshToken)
	if !ok {
		e.t.Fatalf("refresh token %q is not one of the server's", refreshToken)
	}
	return jti
}

func TestDeviceFlow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := e.ctx()
		da, err := e.conf.DeviceAuth(ctx)
		if err != nil {
			t.Fatalf("DeviceAuth: %v", err)
		}
		if da.UserCode == "" || da.DeviceCode == "" || !strings.HasSuffix(da.VerificationURI, "/device") || da.Interval != 1 {
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
		if tok.AccessToken == "" || tok.RefreshToken == "" || tok.TokenType != "Bearer" {
			t.Fatalf("token: %+v", tok)
		}
		if n := e.liveTokens("alice"); n != 1 {
			t.Fatalf("alice has %d live tokens, want 1", n)
		}
		// The device code is redeemed once.
		resp := e.post("/token", url.Values{"grant_type": {grantDeviceCode}, "client_id": {testClientID}, "device_code": {da.DeviceCode}})
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusBadRequest || !bytes.Contains(body, []byte(`"invalid_grant"`)) {
			t.Fatalf("second redemption: %d %s", resp.StatusCode, body)
		}
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
		resp := e.post("/simulate/login", url.Values{"user_code": {da.UserCode}, "sub": {"alice"}})
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("late login: status %d, want 400", resp.StatusCode)
		}
	})
}

// authorizationCode runs /authorize with an S256 challenge and the simulated
// login as sub, and returns the code the client receives.
func (e *env) authorizationCode(verifier, sub string) string {
	e.t.Helper()
	const state = "xyz-state"
	resp := e.get(e.conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)))
	if resp.StatusCode != http.StatusFound {
		e.t.Fatalf("/authorize: status %d", resp.StatusCode)
	}
	login, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || login.Path != "/login" {
		e.t.Fatalf("/authorize redirects to %q, want /login", resp.Header.Get("Location"))
	}
	form := login.Query()
	form.Set("sub", sub)
	resp = e.post("/simulate/login", form)
	if resp.StatusCode != http.StatusFound {
		e.t.Fatalf("simulated login: status %d", resp.StatusCode)
	}
	cb, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(cb.String(), testRedirect+"?") {
		e.t.Fatalf("login redirects to %q, want %s", resp.Header.Get("Location"), testRedirect)
	}
	if got := cb.Query().Get("state"); got != state {
		e.t.Fatalf("state %q, want %q", got, state)
	}
	code := cb.Query().Get("code")
	if code == "" {
		e.t.Fatalf("no code in %s", cb)
	}
	return code
}

func TestAuthorizationCodePKCE(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := e.ctx()
		verifier := oauth2.GenerateVerifier()
		code := e.authorizationCode(verifier, "bob")

		_, err := e.conf.Exchange(ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier()))
		wantOAuthError(t, err, "invalid_grant")
		_, err = e.conf.Exchange(ctx, code)
		wantOAuthError(t, err, "invalid_grant")
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
		_, err = e.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
		wantOAuthError(t, err, "invalid_grant") // a code is redeemed once
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

func TestRefreshRotationAndReplay(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := e.ctx()
		verifier := oauth2.GenerateVerifier()
		first, err := e.conf.Exchange(ctx, e.authorizationCode(verifier, "carol"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatalf("Exchange: %v", err)
		}

		// A token source whose access token has expired refreshes it.
		second, err := e.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: first.RefreshToken}).Token()
		if err != nil {
			t.Fatalf("refresh: %v", err)
		}
		if second.RefreshToken == "" || second.RefreshToken == first.RefreshToken {
			t.Fatalf("refresh did not rotate: old %q, new %q", first.RefreshToken, second.RefreshToken)
		}
		old, err := e.store.GetRefreshToken(context.Background(), e.jti(first.RefreshToken))
		if err != nil || old.Status != backend.TokenRevoked {
			t.Fatalf("old token after rotation: %+v, %v; want REVOKED", old, err)
		}
		if n := e.liveTokens("carol"); n != 1 {
			t.Fatalf("carol has %d live tokens after rotation, want 1", n)
		}

		// The old refresh token is replayed (stolen): refused, and carol is
		// left with no live token, so the new one stops working too.
		_, err = e.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: first.RefreshToken}).Token()
		wantOAuthError(t, err, "invalid_grant")
		if n := e.liveTokens("carol"); n != 0 {
			t.Fatalf("carol has %d live tokens after the replay, want 0", n)
		}
		_, err = e.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: second.RefreshToken}).Token()
		wantOAuthError(t, err, "invalid_grant")
	})
}

func TestRefreshTokenChecks(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := e.ctx()
		verifier := oauth2.GenerateVerifier()
		tok, err := e.conf.Exchange(ctx, e.authorizationCode(verifier, "dave"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatalf("Exchange: %v", err)
		}
		// A forged token (the right JTI, a wrong MAC) is refused and changes nothing.
		idPart, _, _ := strings.Cut(tok.RefreshToken, ".")
		_, err = e.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: idPart + ".AAAA"}).Token()
		wantOAuthError(t, err, "invalid_grant")
		if n := e.liveTokens("dave"); n != 1 {
			t.Fatalf("dave has %d live tokens after a forged refresh, want 1", n)
		}
		// Past its lifetime (30 days by default) the token is refused.
		e.clock.Advance(31 * 24 * time.Hour)
		_, err = e.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
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
