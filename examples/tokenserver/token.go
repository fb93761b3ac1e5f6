package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
)

// tokenResponse is a successful token response (RFC 6749 §5.1).
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope,omitempty"`
}

// token is the token endpoint (RFC 6749 §4.1.3, §6; RFC 8628 §3.4).
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	clientID, err := s.formClient(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var resp tokenResponse
	switch r.PostForm.Get("grant_type") {
	case "":
		err = badRequest("invalid_request", "grant_type is required")
	case grantDeviceCode:
		resp, err = s.deviceCodeGrant(r.Context(), clientID, r.PostForm)
	case grantAuthorizationCode:
		resp, err = s.authorizationCodeGrant(r.Context(), clientID, r.PostForm)
	case grantRefreshToken:
		resp, err = s.refreshTokenGrant(r.Context(), clientID, r.PostForm)
	default:
		err = badRequest("unsupported_grant_type", "the grant_type is not supported")
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// required returns the form's parameter name; a missing (or empty, RFC 6749
// §3.1) one is invalid_request (§5.2), not a failed grant.
func required(form url.Values, name string) (string, error) {
	if v := form.Get(name); v != "" {
		return v, nil
	}
	return "", badRequest("invalid_request", "%s is required", name)
}

// subject is the sub of a flow's ID token (set by the identity provider).
func subject(idToken map[string]any) (string, error) {
	if sub, _ := idToken["sub"].(string); sub != "" {
		return sub, nil
	}
	return "", errors.New("tokenserver: the flow's ID token has no sub")
}

// startSession stores the first refresh token of a login session (a new
// family, whose id is jti) and answers with it.
func (s *Server) startSession(ctx context.Context, jti uuid.UUID, clientID string, idToken map[string]any, scope string) (tokenResponse, error) {
	sub, err := subject(idToken)
	if err != nil {
		return tokenResponse{}, err
	}
	if err := s.cfg.Store.InsertRefreshToken(ctx, jti, sub, scope); err != nil {
		return tokenResponse{}, err
	}
	return s.respond(sub, clientID, scope, jti, jti)
}

// pollRecord is a device code's polling pace (RFC 8628 §3.5).
type pollRecord struct {
	last     time.Time     // the last poll
	interval time.Duration // the interval the client must keep now
	tooFast  bool          // the last poll came before the interval was over
}

// deviceCodeGrant redeems a device code (RFC 8628 §3.4-3.5).
func (s *Server) deviceCodeGrant(ctx context.Context, clientID string, form url.Values) (tokenResponse, error) {
	deviceCode, err := required(form, "device_code")
	if err != nil {
		return tokenResponse{}, err
	}
	flow, err := s.cfg.Store.GetDeviceFlow(ctx, deviceCode)
	if errors.Is(err, backend.ErrNotFound) || (err == nil && flow.ClientID != clientID) {
		return tokenResponse{}, badRequest("invalid_grant", "unknown device code")
	}
	if err != nil {
		return tokenResponse{}, err
	}
	flow, err = s.cfg.Store.ConsumeDeviceFlow(ctx, deviceCode, s.cfg.DeviceFlowValidity)
	switch {
	case errors.Is(err, backend.ErrAuthorizationPending):
		return tokenResponse{}, s.pending(deviceCode)
	case errors.Is(err, backend.ErrExpired):
		return tokenResponse{}, badRequest("expired_token", "the device code expired")
	case errors.Is(err, backend.ErrFlowFailed):
		return tokenResponse{}, badRequest("access_denied", "the login failed")
	case errors.Is(err, backend.ErrAlreadyUsed), errors.Is(err, backend.ErrNotFound):
		return tokenResponse{}, badRequest("invalid_grant", "the device code was already used")
	case err != nil:
		return tokenResponse{}, err
	}
	jti, err := backend.NewUUIDv7()
	if err != nil {
		return tokenResponse{}, err
	}
	return s.startSession(ctx, jti, clientID, flow.IDToken, flow.Scope)
}

// pending answers a poll of a device flow the user has not approved yet:
// authorization_pending, or slow_down (RFC 8628 §3.5) when the device code
// was polled again before its interval was over. Each slow_down adds 5
// seconds to that code's interval, as the client must from then on. A tenth
// of the interval is slack for timers and the network. Codes are kept by
// their sha256, as the store keeps them.
func (s *Server) pending(deviceCode string) error {
	rec := s.polls.update(backend.HashCode(deviceCode), func(now time.Time, p pollRecord, live bool) pollRecord {
		if !live {
			return pollRecord{last: now, interval: s.cfg.PollInterval}
		}
		p.tooFast = now.Sub(p.last) < p.interval-p.interval/10
		if p.tooFast {
			p.interval += 5 * time.Second
		}
		p.last = now
		return p
	})
	if rec.tooFast {
		return badRequest("slow_down", "polling too fast: keep an interval of %d seconds", int(rec.interval/time.Second))
	}
	return badRequest("authorization_pending", "the user has not logged in yet")
}

// authorizationCodeGrant redeems an authorization code after checking the
// client, the redirect URI and the PKCE code_verifier (RFC 7636 §4.6). The
// checks come before ConsumeAuthorizationFlow, so a request with a wrong
// verifier does not burn the code; the atomic consume then makes sure the
// code is redeemed once. The session it starts (its refresh-token family)
// has the flow's id as its id: see codeReplayed.
func (s *Server) authorizationCodeGrant(ctx context.Context, clientID string, form url.Values) (tokenResponse, error) {
	code, err := required(form, "code")
	if err != nil {
		return tokenResponse{}, err
	}
	redirectURI, err := required(form, "redirect_uri") // /authorize requires it, so §4.1.3 does here
	if err != nil {
		return tokenResponse{}, err
	}
	verifier, err := required(form, "code_verifier") // every flow has a challenge
	if err != nil {
		return tokenResponse{}, err
	}
	flow, err := s.cfg.Store.GetAuthorizationFlow(ctx, code, s.cfg.AuthorizationFlowValidity)
	if errors.Is(err, backend.ErrNotFound) {
		return tokenResponse{}, badRequest("invalid_grant", "unknown or expired code")
	}
	if err != nil {
		return tokenResponse{}, err
	}
	if flow.Status == backend.StatusDone {
		return tokenResponse{}, s.codeReplayed(ctx, flow)
	}
	if flow.ClientID != clientID || flow.RedirectURI != redirectURI {
		return tokenResponse{}, badRequest("invalid_grant", "client_id or redirect_uri do not match the code")
	}
	if !verifyS256(verifier, flow.CodeChallenge) {
		return tokenResponse{}, badRequest("invalid_grant", "code_verifier does not match the code_challenge")
	}
	consumed, err := s.cfg.Store.ConsumeAuthorizationFlow(ctx, code, s.cfg.AuthorizationFlowValidity)
	switch {
	case errors.Is(err, backend.ErrAlreadyUsed): // a concurrent redemption won
		return tokenResponse{}, s.codeReplayed(ctx, flow)
	case errors.Is(err, backend.ErrNotFound), errors.Is(err, backend.ErrFlowFailed):
		return tokenResponse{}, badRequest("invalid_grant", "the code is expired or not ready")
	case err != nil:
		return tokenResponse{}, err
	}
	family, err := uuid.Parse(consumed.UUID)
	if err != nil {
		return tokenResponse{}, err
	}
	resp, err := s.startSession(ctx, family, clientID, consumed.IDToken, consumed.Scope)
	if errors.Is(err, backend.ErrAlreadyExists) { // a replay got there first: see codeReplayed
		return tokenResponse{}, badRequest("invalid_grant", "the code was used twice; its session is revoked")
	}
	return resp, err
}

// codeReplayed answers a code presented after it was redeemed: RFC 6749
// §4.1.2 says deny it and revoke the tokens issued from it, as the code may
// have been stolen and redeemed by the thief (or the other way round).
//
// Which session to revoke: the first refresh token of a code's session has
// the authorization flow's id as its JTI, and a family's id is its first
// JTI, so the family is found from the flow alone, with no table of its own.
// GetAuthorizationFlow finds a redeemed flow as long as it is live
// (AuthorizationFlowValidity); a code replayed later is refused like any
// expired code.
//
// A replay can race the redemption and arrive before the winner stored its
// token: then there is no family yet, and the replay stores that JTI itself,
// revoked, so the winner's InsertRefreshToken fails with ErrAlreadyExists and
// it hands out nothing. (If the winner stored it in between, the second turn
// of the loop revokes its family.)
func (s *Server) codeReplayed(ctx context.Context, flow backend.AuthorizationFlow) error {
	family, err := uuid.Parse(flow.UUID)
	if err != nil {
		return err
	}
	for range 2 {
		_, err = s.cfg.Store.RevokeRefreshTokenFamily(ctx, family)
		if !errors.Is(err, backend.ErrNotFound) {
			break // revoked, or a real error
		}
		var sub string
		if sub, err = subject(flow.IDToken); err != nil {
			break
		}
		if err = s.cfg.Store.InsertRefreshToken(ctx, family, sub, flow.Scope); err == nil {
			err = s.cfg.Store.RevokeRefreshToken(ctx, family)
			break
		}
		if !errors.Is(err, backend.ErrAlreadyExists) {
			break
		}
	}
	if err != nil {
		return err
	}
	s.cfg.Logger.Warn("authorization code replayed: its session is revoked", "family", family, "client_id", flow.ClientID)
	return badRequest("invalid_grant", "the code was already used; its session is revoked")
}

// verifyS256 reports whether verifier is a valid code_verifier (43 to 128
// unreserved characters, RFC 7636 §4.1) whose S256 challenge is challenge.
func verifyS256(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	for _, c := range verifier {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.ContainsRune("-._~", c)) {
			return false
		}
	}
	sum := sha256.Sum256([]byte(verifier))
	got := base64.RawURLEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(got), []byte(challenge)) == 1
}

// refreshTokenGrant rotates a refresh token (RFC 6749 §6). The token must
// have been issued to the requesting client (its MAC covers the client id).
// The store does the rest (StoreOptions): a token rotated less than the
// grace window ago gets the successor handed out before, so concurrent
// refreshes converge on one live token; a token presented after that is a
// replay and revokes its session (family), not the user's other sessions.
//
// A scope parameter may narrow the new access token's scope; asking for
// anything not granted is invalid_scope, and the refresh token keeps the
// original scope either way (§6: "identical to that of the refresh token").
func (s *Server) refreshTokenGrant(ctx context.Context, clientID string, form url.Values) (tokenResponse, error) {
	tok, err := required(form, "refresh_token")
	if err != nil {
		return tokenResponse{}, err
	}
	oldJTI, ok := s.parseRefreshToken(tok, clientID)
	if !ok {
		return tokenResponse{}, badRequest("invalid_grant", "the refresh token is malformed or was issued to another client")
	}
	if backend.UUIDv7Time(oldJTI).Add(s.cfg.RefreshTokenLifetime).Before(s.cfg.Clock()) {
		return tokenResponse{}, badRequest("invalid_grant", "the refresh token expired")
	}
	var narrowed string
	if _, asked := form["scope"]; asked {
		// Checked before rotating: a refused request leaves the token usable.
		if narrowed, err = s.narrowScope(ctx, oldJTI, form.Get("scope")); err != nil {
			return tokenResponse{}, err
		}
	}
	newJTI, err := backend.NewUUIDv7()
	if err != nil {
		return tokenResponse{}, err
	}
	old, err := s.cfg.Store.RotateRefreshToken(ctx, oldJTI, newJTI)
	switch {
	case errors.Is(err, backend.ErrTokenReused):
		s.cfg.Logger.Warn("refresh token replayed: its session is revoked", "jti", oldJTI, "client_id", clientID)
		return tokenResponse{}, badRequest("invalid_grant", "the refresh token was already used; its session is revoked")
	case errors.Is(err, backend.ErrExpired): // WithFamilyLifetime, if the store has one
		return tokenResponse{}, badRequest("invalid_grant", "the session is over its lifetime")
	case errors.Is(err, backend.ErrNotFound):
		return tokenResponse{}, badRequest("invalid_grant", "unknown refresh token")
	case err != nil:
		return tokenResponse{}, err
	}
	next := newJTI
	if old.ReplacedBy != uuid.Nil { // within the grace window: the successor handed out before
		next = old.ReplacedBy
	}
	scope := old.Scope
	if narrowed != "" {
		scope = narrowed
	}
	return s.respond(old.Sub, clientID, scope, familyOf(old), next)
}

// narrowScope returns the requested scope if the refresh token jti was
// granted all of it, else invalid_scope.
func (s *Server) narrowScope(ctx context.Context, jti uuid.UUID, requested string) (string, error) {
	want, err := checkScope(requested)
	if err != nil {
		return "", err
	}
	tok, err := s.cfg.Store.GetRefreshToken(ctx, jti)
	if errors.Is(err, backend.ErrNotFound) {
		return "", badRequest("invalid_grant", "unknown refresh token")
	}
	if err != nil {
		return "", err
	}
	granted := strings.Fields(tok.Scope)
	for w := range strings.FieldsSeq(want) {
		if !slices.Contains(granted, w) {
			return "", badRequest("invalid_scope", "the scope asked for is wider than the one granted")
		}
	}
	return want, nil
}

// familyOf is the id of t's session: its FamilyID, or for a row without one
// (written by DiracX) its own JTI, as authdb reads such rows.
func familyOf(t backend.RefreshToken) uuid.UUID {
	if t.FamilyID != uuid.Nil {
		return t.FamilyID
	}
	return t.JTI
}
