package main

import (
	"context"
	"errors"
	"net/http"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
)

// revoke is RFC 7009 token revocation. Revoking a refresh token revokes its
// whole session (its family: the token and every rotation of it), as §2.1
// suggests for the grant behind it; revoking an access token does the same,
// since access tokens have no row of their own and can only be ended with
// their session. token_type_hint is only a hint (§2.1), so both kinds are
// tried. A token that is invalid, expired or another client's is answered
// 200 and changes nothing (§2.2), so the endpoint tells nothing about tokens
// a client does not hold.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	clientID, err := s.formClient(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	tok, err := required(r.PostForm, "token")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	family, ok := s.parseRefreshToken(tok, clientID)
	if !ok {
		if c, isAccess := s.parseAccessToken(tok); isAccess && c.ClientID == clientID {
			family, ok = c.Family, true
		}
	}
	if ok {
		// Any JTI of a family names it; ErrNotFound: nothing to revoke.
		n, err := s.cfg.Store.RevokeRefreshTokenFamily(r.Context(), family)
		if err != nil && !errors.Is(err, backend.ErrNotFound) {
			s.fail(w, r, err)
			return
		}
		s.cfg.Logger.Info("session revoked", "jti", family, "client_id", clientID, "tokens", n)
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// introspect is RFC 7662 token introspection for the access tokens. An
// access token is active while its MAC is valid, it has not expired, and its
// session still has a live refresh token (so a revoked or replayed session
// ends its access tokens at once, not at their expiry). Refresh tokens are
// answered inactive: only the client that holds one may use it, at /token.
//
// The caller must be a registered client (RFC 7662 §2.1 wants the caller
// authorized); with public clients only, that is all it can show, and any
// of them may ask about any access token. Tokens cannot be guessed, so a
// caller learns only about tokens it already holds; a deployment with
// resource servers would give them confidential credentials instead.
func (s *Server) introspect(w http.ResponseWriter, r *http.Request) {
	if _, err := s.formClient(r); err != nil {
		s.fail(w, r, err)
		return
	}
	tok, err := required(r.PostForm, "token")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	c, ok := s.parseAccessToken(tok)
	if ok {
		if ok, err = s.sessionLive(r.Context(), c.Sub, c.Family); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	if !ok {
		writeJSON(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"active":     true,
		"scope":      c.Scope,
		"client_id":  c.ClientID,
		"sub":        c.Sub,
		"iat":        c.IssuedAt,
		"exp":        c.Expires,
		"token_type": "Bearer",
		"iss":        s.cfg.Issuer,
	})
}

// sessionLive reports whether the family has a live refresh token of sub.
func (s *Server) sessionLive(ctx context.Context, sub string, family uuid.UUID) (bool, error) {
	toks, err := s.cfg.Store.GetUserRefreshTokens(ctx, sub) // live tokens only
	if err != nil {
		return false, err
	}
	for _, t := range toks {
		if familyOf(t) == family {
			return true, nil
		}
	}
	return false, nil
}
