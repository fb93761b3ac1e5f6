package main

// Sessions are the store's refresh-token families (StoreOptions): rotation,
// the grace window, a replay after it, revocation, and a replayed
// authorization code.

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/authdb/authdb/backend"
)

func TestRefreshRotation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		first := e.codeLogin("carol")
		second, err := e.refresh(e.conf, first.RefreshToken)
		if err != nil {
			t.Fatalf("refresh: %v", err)
		}
		if second.RefreshToken == "" || second.RefreshToken == first.RefreshToken {
			t.Fatalf("refresh did not rotate: old %q, new %q", first.RefreshToken, second.RefreshToken)
		}
		old, err := e.store.GetRefreshToken(t.Context(), e.jti(first.RefreshToken))
		if err != nil || old.Status != backend.TokenRevoked {
			t.Fatalf("old token after rotation: %+v, %v; want REVOKED", old, err)
		}
		if n := e.liveTokens("carol"); n != 1 {
			t.Fatalf("carol has %d live tokens after rotation, want 1", n)
		}
	})
}

// 8 concurrent refreshes of one token through golang.org/x/oauth2 all
// succeed, all get the same new token, and one token is live afterwards.
func TestConcurrentRefreshesConverge(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		tok := e.codeLogin("jack")
		const n = 8
		var wg sync.WaitGroup
		got := make([]string, n)
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				nt, err := e.refresh(e.conf, tok.RefreshToken)
				if err == nil {
					got[i] = nt.RefreshToken
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("refresh %d of %d: %v", i+1, n, errs[i])
			}
			if got[i] != got[0] {
				t.Fatalf("refreshes %d and 1 got different tokens", i+1)
			}
		}
		if live := e.liveTokens("jack"); live != 1 {
			t.Fatalf("jack has %d live tokens, want 1", live)
		}
		if _, err := e.refresh(e.conf, got[0]); err != nil {
			t.Fatalf("the converged token does not refresh: %v", err)
		}
	})
}

// A replay after the grace window (the injected clock moved past it)
// revokes that session only; the user's other session stays live.
func TestReplayAfterGraceRevokesSessionOnly(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		other := e.deviceLogin(e.conf, "kim") // another session of the same user
		first := e.codeLogin("kim")
		second, err := e.refresh(e.conf, first.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		// Within the window the old token gets the same successor (a retry).
		again, err := e.refresh(e.conf, first.RefreshToken)
		if err != nil || again.RefreshToken != second.RefreshToken {
			t.Fatalf("replay within the grace window: %v, same token %v", err, err == nil && again.RefreshToken == second.RefreshToken)
		}
		e.clock.Advance(testGrace + time.Minute)
		_, err = e.refresh(e.conf, first.RefreshToken)
		wantOAuthError(t, err, "invalid_grant")
		_, err = e.refresh(e.conf, second.RefreshToken) // the session is over
		wantOAuthError(t, err, "invalid_grant")
		if n := e.liveTokens("kim"); n != 1 {
			t.Fatalf("kim has %d live tokens after the replay, want 1 (the other session)", n)
		}
		if _, err := e.refresh(e.conf, other.RefreshToken); err != nil {
			t.Fatalf("the other session no longer refreshes: %v", err)
		}
	})
}

// RFC 7009: revoking a refresh or access token ends its session (and its
// access tokens, by introspection); another client's revocation and an
// invalid token change nothing and get 200.
func TestRevocation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		a := e.codeLogin("lea")
		b := e.deviceLogin(e.conf, "lea")
		revoke := func(clientID, token string) {
			t.Helper()
			resp, body := e.post("/revoke", url.Values{"client_id": {clientID}, "token": {token}})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("revoke: %d %s", resp.StatusCode, body)
			}
		}
		active := func(token string) bool {
			t.Helper()
			_, body := e.post("/introspect", url.Values{"client_id": {testClientID}, "token": {token}})
			var m map[string]any
			json.Unmarshal(body, &m)
			return m["active"] == true
		}
		revoke(otherClientID, a.RefreshToken) // not its token: nothing happens
		revoke(testClientID, "not-a-token")
		if n := e.liveTokens("lea"); n != 2 || !active(a.AccessToken) {
			t.Fatalf("after revocations that do nothing: %d live tokens, access active %v", n, active(a.AccessToken))
		}
		revoke(testClientID, a.RefreshToken)
		_, err := e.refresh(e.conf, a.RefreshToken)
		wantOAuthError(t, err, "invalid_grant")
		if active(a.AccessToken) {
			t.Fatal("the revoked session's access token is still active")
		}
		if n := e.liveTokens("lea"); n != 1 || !active(b.AccessToken) {
			t.Fatalf("the other session: %d live tokens, access active %v; want 1, true", n, active(b.AccessToken))
		}
		revoke(testClientID, b.AccessToken) // an access token ends its session too
		if n := e.liveTokens("lea"); n != 0 {
			t.Fatalf("lea has %d live tokens after revoking the last session's access token", n)
		}
		resp, body := e.post("/revoke", url.Values{"client_id": {testClientID}})
		wantError(t, resp, body, http.StatusBadRequest, "invalid_request")
	})
}

// RFC 6749 §4.1.2: a replayed authorization code revokes the session it
// started, even after that session rotated; other sessions stay.
func TestCodeReplayRevokesSession(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		other := e.deviceLogin(e.conf, "mia")
		verifier := oauth2.GenerateVerifier()
		code := e.authorizationCode(verifier, "mia")
		tok, err := e.conf.Exchange(e.ctx(), code, oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		rotated, err := e.refresh(e.conf, tok.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.conf.Exchange(e.ctx(), code, oauth2.VerifierOption(verifier))
		wantOAuthError(t, err, "invalid_grant")
		_, err = e.refresh(e.conf, rotated.RefreshToken)
		wantOAuthError(t, err, "invalid_grant")
		if n := e.liveTokens("mia"); n != 1 {
			t.Fatalf("mia has %d live tokens, want 1 (the device session)", n)
		}
		if _, err := e.refresh(e.conf, other.RefreshToken); err != nil {
			t.Fatalf("the other session: %v", err)
		}
	})
}
