package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// The tokens this server hands out are opaque to clients and carry an
// HMAC-SHA256 tag under the server's keys, so that nobody can make one from
// a JTI or a subject alone. Each kind of token has its own MAC label, so one
// can never be passed off as the other.
//
//	refresh token: base64url(JTI) "." base64url(HMAC(key, "refresh\x00" JTI client_id))
//	access token:  base64url(claims JSON) "." base64url(HMAC(key, "access\x00" claims JSON))
//
// The refresh token's row in the store (authdb's RefreshTokens) has no
// column for the client, so the client is bound by the MAC: only the client
// it was issued to can present it, since the MAC is checked with the
// presenting client's id (RFC 6749 §6, §10.4). The store's family of the JTI
// is the login session.
//
// Access tokens are self-contained (no row): a resource server asks
// /introspect, which checks the MAC, the expiry and that the session the
// token belongs to still has a live refresh token, so revoking the session
// ends its access tokens too.
const (
	labelRefresh = "refresh\x00"
	labelAccess  = "access\x00"
)

// minKeyLen is the shortest key accepted: as long as the HMAC-SHA256 output.
const minKeyLen = 32

// keys are the server's MAC keys: the first signs, every one verifies.
type keys [][]byte

func newKeys(ks [][]byte) (keys, error) {
	if len(ks) == 0 {
		return nil, errors.New("tokenserver: no token key (Config.Keys)")
	}
	for i, k := range ks {
		if len(k) < minKeyLen {
			return nil, fmt.Errorf("tokenserver: token key %d has %d bytes, want at least %d", i+1, len(k), minKeyLen)
		}
	}
	return keys(ks), nil
}

func mac(key []byte, label string, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// sign returns payload "." tag under the first key, both base64url.
func (ks keys) sign(label string, payload []byte, extra ...[]byte) string {
	return b64(payload) + "." + b64(mac(ks[0], label, append([][]byte{payload}, extra...)...))
}

// verify splits a token made by sign and returns its payload if some key's
// tag matches (hmac.Equal: constant time for each key).
func (ks keys) verify(label, token string, extra ...[]byte) ([]byte, bool) {
	p, t, ok := strings.Cut(token, ".")
	if !ok {
		return nil, false
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(p)
	tag, err2 := base64.RawURLEncoding.DecodeString(t)
	if err1 != nil || err2 != nil {
		return nil, false
	}
	for _, k := range ks {
		if hmac.Equal(tag, mac(k, label, append([][]byte{payload}, extra...)...)) {
			return payload, true
		}
	}
	return nil, false
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// refreshToken is the refresh token for jti, bound to clientID.
func (s *Server) refreshToken(jti uuid.UUID, clientID string) string {
	return s.keys.sign(labelRefresh, jti[:], []byte(clientID))
}

// parseRefreshToken returns the JTI of a refresh token made by refreshToken
// for clientID; ok is false for anything else, including a token of another
// client.
func (s *Server) parseRefreshToken(tok, clientID string) (uuid.UUID, bool) {
	raw, ok := s.keys.verify(labelRefresh, tok, []byte(clientID))
	if !ok || len(raw) != 16 {
		return uuid.Nil, false
	}
	return uuid.UUID(raw), true
}

// accessClaims are what an access token says, and what /introspect answers.
type accessClaims struct {
	Sub      string    `json:"sub"`
	ClientID string    `json:"client_id"`
	Scope    string    `json:"scope,omitempty"`
	Family   uuid.UUID `json:"fam"` // the session: the refresh-token family
	IssuedAt int64     `json:"iat"`
	Expires  int64     `json:"exp"`
}

func (s *Server) accessToken(c accessClaims) (string, error) {
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	return s.keys.sign(labelAccess, payload), nil
}

// parseAccessToken returns the claims of an access token made by
// accessToken that has not expired.
func (s *Server) parseAccessToken(tok string) (accessClaims, bool) {
	payload, ok := s.keys.verify(labelAccess, tok)
	if !ok {
		return accessClaims{}, false
	}
	var c accessClaims
	if json.Unmarshal(payload, &c) != nil || s.cfg.Clock().Unix() >= c.Expires {
		return accessClaims{}, false
	}
	return c, true
}

// respond is the token endpoint's answer after any grant: a fresh access
// token of the session and the refresh token refreshJTI, both for clientID.
func (s *Server) respond(sub, clientID, scope string, family, refreshJTI uuid.UUID) (tokenResponse, error) {
	now := s.cfg.Clock()
	access, err := s.accessToken(accessClaims{
		Sub: sub, ClientID: clientID, Scope: scope, Family: family,
		IssuedAt: now.Unix(), Expires: now.Add(s.cfg.AccessTokenLifetime).Unix(),
	})
	if err != nil {
		return tokenResponse{}, err
	}
	return tokenResponse{
		AccessToken:  access,
		TokenType:    "Bearer",
		ExpiresIn:    int(s.cfg.AccessTokenLifetime / time.Second),
		RefreshToken: s.refreshToken(refreshJTI, clientID),
		Scope:        scope,
	}, nil
}
