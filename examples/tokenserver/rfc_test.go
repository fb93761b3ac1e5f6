package main

// Tests of the points of issue 12, one or more per point; each fails on the
// server as it was before (the point's number is in the test's comment).

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// 1. A refresh token is bound to its client: another client presenting it
// gets invalid_grant, and the token still works for its own client.
func TestRefreshTokenBoundToClient(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		tok := e.codeLogin("erin")
		other := e.oauth2Config(otherClientID, otherRedirect)
		_, err := e.refresh(other, tok.RefreshToken)
		wantOAuthError(t, err, "invalid_grant")
		if n := e.liveTokens("erin"); n != 1 {
			t.Fatalf("erin has %d live tokens after another client's attempt, want 1", n)
		}
		if _, err := e.refresh(e.conf, tok.RefreshToken); err != nil {
			t.Fatalf("refresh by its own client: %v", err)
		}
	})
}

// 3. RFC 8414 metadata, with the configured issuer whatever the Host header
// says; no OpenID Connect discovery, since no ID tokens are issued.
func TestDiscovery(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		req, _ := http.NewRequest(http.MethodGet, e.ts.URL+"/.well-known/oauth-authorization-server", nil)
		req.Host = "attacker.example"
		resp, body := e.do(req)
		var md map[string]any
		if err := json.Unmarshal(body, &md); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("metadata: %d %s", resp.StatusCode, body)
		}
		iss := e.ts.URL
		for k, want := range map[string]any{
			"issuer":                        iss,
			"authorization_endpoint":        iss + "/authorize",
			"token_endpoint":                iss + "/token",
			"device_authorization_endpoint": iss + "/device_authorization",
			"revocation_endpoint":           iss + "/revoke",
			"introspection_endpoint":        iss + "/introspect",
			"authorization_response_iss_parameter_supported": true,
		} {
			if md[k] != want {
				t.Errorf("metadata %s = %v, want %v", k, md[k], want)
			}
		}
		if got, _ := json.Marshal(md["code_challenge_methods_supported"]); string(got) != `["S256"]` {
			t.Errorf("code_challenge_methods_supported = %s", got)
		}
		if resp := e.get(e.ts.URL + "/.well-known/openid-configuration"); resp.StatusCode != http.StatusNotFound {
			t.Errorf("openid-configuration: status %d, want 404 (no ID tokens, no OpenID Connect)", resp.StatusCode)
		}
	})
}

// 4. RFC 6749 §5.2: invalid_request for missing and repeated parameters and
// for two client authentication methods; invalid_client (401 with
// WWW-Authenticate) for an unknown client and for a public client's secret.
func TestTokenEndpointErrors(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		basic := func(user, pass string) func(*http.Request) {
			return func(r *http.Request) { r.SetBasicAuth(user, pass) }
		}
		for _, c := range []struct {
			name, body string
			edit       func(*http.Request)
			status     int
			code       string
		}{
			{"no grant_type", "client_id=cli", nil, 400, "invalid_request"},
			{"unknown grant_type", "client_id=cli&grant_type=password", nil, 400, "unsupported_grant_type"},
			{"no code", "client_id=cli&grant_type=authorization_code&redirect_uri=x&code_verifier=y", nil, 400, "invalid_request"},
			{"no device_code", "client_id=cli&grant_type=" + url.QueryEscape(grantDeviceCode), nil, 400, "invalid_request"},
			{"no refresh_token", "client_id=cli&grant_type=refresh_token", nil, 400, "invalid_request"},
			{"empty refresh_token", "client_id=cli&grant_type=refresh_token&refresh_token=", nil, 400, "invalid_request"},
			{"repeated grant_type", "client_id=cli&grant_type=refresh_token&grant_type=refresh_token&refresh_token=x", nil, 400, "invalid_request"},
			{"repeated client_id", "client_id=cli&client_id=other&grant_type=refresh_token&refresh_token=x", nil, 400, "invalid_request"},
			{"Basic and client_secret", "grant_type=refresh_token&refresh_token=x&client_secret=s", basic("cli", ""), 400, "invalid_request"},
			{"Basic and another client_id", "client_id=other&grant_type=refresh_token&refresh_token=x", basic("cli", ""), 400, "invalid_request"},
			{"Basic password of a public client", "grant_type=refresh_token&refresh_token=x", basic("cli", "secret"), 401, "invalid_client"},
			{"client_secret of a public client", "client_id=cli&client_secret=s&grant_type=refresh_token&refresh_token=x", nil, 401, "invalid_client"},
			{"Basic unknown client", "grant_type=refresh_token&refresh_token=x", basic("nobody", ""), 401, "invalid_client"},
			{"unknown client", `client_id=%22nobody%22&grant_type=refresh_token&refresh_token=x`, nil, 401, "invalid_client"},
			{"no client", "grant_type=refresh_token&refresh_token=x", nil, 401, "invalid_client"},
			{"Basic, empty password, same client_id", "client_id=cli&grant_type=refresh_token&refresh_token=x", basic("cli", ""), 400, "invalid_grant"},
		} {
			t.Run(c.name, func(t *testing.T) {
				resp, body := e.postRaw("/token", c.body, c.edit)
				wantError(t, resp, body, c.status, c.code)
				if c.status == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
					t.Errorf("401 without WWW-Authenticate: %v", resp.Header)
				}
				if resp.Header.Get("Cache-Control") != "no-store" {
					t.Errorf("error without Cache-Control: no-store")
				}
			})
		}
	})
}

// 4. Widening the scope at a refresh is invalid_scope (and leaves the token
// usable); narrowing it narrows the access token only.
func TestRefreshScope(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		tok := e.codeLogin("frank") // scope "profile email"
		// golang.org/x/oauth2 sends no scope when it refreshes: by hand.
		refresh := func(refreshToken, scope string) (*http.Response, []byte) {
			return e.post("/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {testClientID}, "refresh_token": {refreshToken}, "scope": {scope}})
		}
		resp, body := refresh(tok.RefreshToken, "profile admin")
		wantError(t, resp, body, http.StatusBadRequest, "invalid_scope")

		resp, body = refresh(tok.RefreshToken, "email")
		var got struct {
			RefreshToken string `json:"refresh_token"`
			Scope        string `json:"scope"`
		}
		if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != http.StatusOK || got.Scope != "email" {
			t.Fatalf("narrowing refresh: %d %s; want scope email", resp.StatusCode, body)
		}
		stored, err := e.store.GetRefreshToken(t.Context(), e.jti(got.RefreshToken))
		if err != nil || stored.Scope != "profile email" {
			t.Fatalf("the new refresh token's scope: %+v, %v; want the original profile email", stored, err)
		}
	})
}

// 4. openid is neither granted nor echoed: no ID token is ever issued.
func TestOpenIDNotGranted(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		oidcConf := *e.conf
		oidcConf.Scopes = []string{"openid", "profile"}
		resp := e.get(oidcConf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || loc.Query().Get("error") != "invalid_scope" {
			t.Fatalf("/authorize with openid: %d %s, want a redirect with invalid_scope", resp.StatusCode, loc)
		}
		_, err := oidcConf.DeviceAuth(e.ctx())
		if err == nil || !strings.Contains(err.Error(), "invalid_scope") {
			t.Fatalf("DeviceAuth with openid: %v, want invalid_scope", err)
		}
	})
}

// 4. error_description never has a '"' (RFC 6749 §5.2), even where the
// request's input could end up in it.
func TestErrorDescriptionCharacters(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		for _, body := range []string{
			`client_id=%22x%22`,
			`client_id=cli&grant_type=%22pass%5Cword%22`,
			`client_id=cli&grant_type=refresh_token&refresh_token=%22x%22`,
			`client_id=cli&grant_type=refresh_token&refresh_token=x&%22p%22=1&%22p%22=2`,
		} {
			resp, b := e.postRaw("/token", body, nil)
			var oe oauthErr
			if json.Unmarshal(b, &oe) != nil || oe.Code == "" || strings.ContainsAny(oe.Description, "\"\\") {
				t.Errorf("%s: %d %s", body, resp.StatusCode, b)
			}
		}
	})
}

// 5. slow_down when a device code is polled faster than its interval, and
// a verification_uri from the issuer, not the Host header.
func TestDeviceSlowDownAndVerificationURI(t *testing.T) {
	// A 10 s interval: "at once" below must hold on a loaded machine too.
	forEachBackendWith(t, func(c *Config) { c.PollInterval = 10 * time.Second }, func(t *testing.T, e *env) {
		resp, body := e.postRaw("/device_authorization", "client_id=cli&scope=profile", func(r *http.Request) { r.Host = "attacker.example" })
		var da struct {
			DeviceCode      string `json:"device_code"`
			VerificationURI string `json:"verification_uri"`
			Complete        string `json:"verification_uri_complete"`
		}
		if err := json.Unmarshal(body, &da); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("device authorization: %d %s", resp.StatusCode, body)
		}
		if da.VerificationURI != e.ts.URL+"/device" || !strings.HasPrefix(da.Complete, e.ts.URL+"/device?") {
			t.Fatalf("verification URIs %q, %q: want them under the issuer %s", da.VerificationURI, da.Complete, e.ts.URL)
		}
		poll := url.Values{"grant_type": {grantDeviceCode}, "client_id": {testClientID}, "device_code": {da.DeviceCode}}
		resp, body = e.post("/token", poll)
		wantError(t, resp, body, http.StatusBadRequest, "authorization_pending")
		// Polled again at once (well within the interval): slow down, and
		// from then on the interval is 15 s.
		resp, body = e.post("/token", poll)
		wantError(t, resp, body, http.StatusBadRequest, "slow_down")
		resp, body = e.post("/token", poll)
		wantError(t, resp, body, http.StatusBadRequest, "slow_down")
		// Another device code has its own pace.
		da2, err := e.conf.DeviceAuth(e.ctx())
		if err != nil {
			t.Fatal(err)
		}
		resp, body = e.post("/token", url.Values{"grant_type": {grantDeviceCode}, "client_id": {testClientID}, "device_code": {da2.DeviceCode}})
		wantError(t, resp, body, http.StatusBadRequest, "authorization_pending")
	})
}

// 6. The client's state is kept by the server: the login page never sees
// it, and a state forged at the login is not what the client gets back.
func TestServerSideState(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		verifier := oauth2.GenerateVerifier()
		authURL := e.conf.AuthCodeURL("the-real-state", oauth2.S256ChallengeOption(verifier))
		resp := e.get(authURL)
		if loc := resp.Header.Get("Location"); strings.Contains(loc, "the-real-state") {
			t.Fatalf("/authorize hands the state to the browser: %s", loc)
		}
		cb := e.authorizationRedirect(authURL, "gina", url.Values{"state": {"forged"}})
		if got := cb.Query().Get("state"); got != "the-real-state" {
			t.Fatalf("state %q at the client, want the-real-state", got)
		}
	})
}

// 7. /device_authorization errors say nothing of the server's internals.
func TestDeviceAuthorizationErrorsHideInternals(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		resp, body := e.post("/device_authorization", url.Values{"client_id": {testClientID}, "scope": {strings.Repeat("s", 1100)}})
		wantError(t, resp, body, http.StatusBadRequest, "invalid_scope")
		// A store that fails (here: closed) is a server_error without its text.
		e.store.Close()
		resp, body = e.post("/device_authorization", url.Values{"client_id": {testClientID}, "scope": {"profile"}})
		wantError(t, resp, body, http.StatusInternalServerError, "server_error")
		if strings.Contains(string(body), "authdb") || strings.Contains(string(body), "closed") {
			t.Fatalf("internal text in the answer: %s", body)
		}
	})
}

// RFC 9207: the authorization response, success or error, carries iss.
func TestAuthorizationResponseIss(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		cb := e.authorizationRedirect(e.conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), "hank", nil)
		if got := cb.Query().Get("iss"); got != e.ts.URL {
			t.Fatalf("iss %q in %s, want %s", got, cb, e.ts.URL)
		}
		resp := e.get(e.conf.AuthCodeURL("s")) // no PKCE: an error redirect
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if loc.Query().Get("error") == "" || loc.Query().Get("iss") != e.ts.URL {
			t.Fatalf("error redirect %s: want error and iss", loc)
		}
	})
}

// RFC 7662: access tokens are active until they expire; anything else is not.
func TestIntrospection(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		tok := e.codeLogin("ivan")
		introspect := func(token string) map[string]any {
			t.Helper()
			resp, body := e.post("/introspect", url.Values{"client_id": {otherClientID}, "token": {token}})
			var m map[string]any
			if err := json.Unmarshal(body, &m); err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("introspect: %d %s", resp.StatusCode, body)
			}
			return m
		}
		m := introspect(tok.AccessToken)
		if m["active"] != true || m["sub"] != "ivan" || m["client_id"] != testClientID || m["scope"] != "profile email" || m["iss"] != e.ts.URL {
			t.Fatalf("introspection of a fresh access token: %v", m)
		}
		for name, token := range map[string]string{
			"refresh token": tok.RefreshToken,
			"garbage":       "x.y",
			"forged":        strings.Split(tok.AccessToken, ".")[0] + ".AAAA",
		} {
			if m := introspect(token); m["active"] != false || len(m) != 1 {
				t.Errorf("%s: %v, want only active=false", name, m)
			}
		}
		resp, body := e.post("/introspect", url.Values{"token": {tok.AccessToken}})
		wantError(t, resp, body, http.StatusUnauthorized, "invalid_client")
		e.clock.Advance(61 * time.Minute) // past the access token's hour
		if m := introspect(tok.AccessToken); m["active"] != false {
			t.Fatalf("expired access token: %v", m)
		}
	})
}
