// Command tokenserver is a small OAuth2 authorization server built on authdb
// and net/http: the example of what a token service does with the Backend.
//
// Endpoints:
//
//	POST /device_authorization  RFC 8628 device authorization: device_code, user_code
//	GET  /authorize             RFC 6749 §4.1 with PKCE S256 (RFC 7636), required
//	POST /token                 grant types urn:ietf:params:oauth:grant-type:device_code,
//	                            authorization_code (with code_verifier) and refresh_token
//	                            (rotation; a replayed token revokes the subject's tokens)
//	GET  /device, GET /login    where a real server would send the user to the identity provider
//	POST /simulate/login        the simulated login: ?user_code=...&sub=... approves a device
//	                            flow; ?flow=...&state=...&sub=... finishes an authorization
//	                            flow and redirects to the client with the code
//
// Errors are JSON in the form of RFC 6749 §5.2 and RFC 8628 §3.5
// ({"error": "invalid_grant", "error_description": "..."}).
//
// What it leaves out, to stay small: client secrets (clients are public and
// identified by client_id), signed JWTs (access tokens are opaque random
// strings that nothing checks here; refresh tokens are the JTI with an HMAC,
// see refreshToken), consent screens, ID tokens in the response, and
// down-scoping on refresh. The /simulate/login endpoint stands for the
// identity provider: never expose it in a real deployment.
//
// Run it with: go run ./examples/tokenserver --addr 127.0.0.1:8080 --db memory://
package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
)

// Grant types of the token endpoint.
const (
	grantDeviceCode        = "urn:ietf:params:oauth:grant-type:device_code"
	grantAuthorizationCode = "authorization_code"
	grantRefreshToken      = "refresh_token"
)

// Client is a registered public client.
type Client struct {
	// RedirectURIs are the exact redirect URIs the client may use in
	// /authorize. A device-only client has none.
	RedirectURIs []string
}

// Config configures a Server. Store and Clients are required.
type Config struct {
	Store   backend.Backend
	Clients map[string]Client // by client_id
	// Clock must be the clock the Store was opened with (backend.WithClock);
	// it dates refresh tokens for their lifetime check. Default time.Now.
	Clock func() time.Time
	// Key signs refresh tokens (HMAC-SHA256). Default: 32 random bytes, so
	// refresh tokens do not survive a restart; give a fixed key to keep them.
	Key []byte
	// DeviceFlowValidity and AuthorizationFlowValidity are how long a flow
	// may be completed (default 10 minutes each).
	DeviceFlowValidity        time.Duration
	AuthorizationFlowValidity time.Duration
	// RefreshTokenLifetime is how long a refresh token can be used, counted
	// from its JTI's time (default 30 days). Keep 'authdb cleanup
	// --refresh-retention' and partition retention longer than this.
	RefreshTokenLifetime time.Duration
	// AccessTokenLifetime is the expires_in of access tokens (default 1 hour).
	AccessTokenLifetime time.Duration
	// PollInterval is the device flow's polling interval (RFC 8628 "interval",
	// whole seconds, default 5s, at least 1s).
	PollInterval time.Duration
	Logger       *slog.Logger // default: discard
}

// Server is the authorization server, an http.Handler. It is safe for
// concurrent use: all state lives in the Store.
type Server struct {
	cfg Config
	mux *http.ServeMux
}

// New returns a Server for cfg, with defaults filled in.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("tokenserver: Config.Store is required")
	}
	if len(cfg.Clients) == 0 {
		return nil, errors.New("tokenserver: Config.Clients is empty")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if len(cfg.Key) == 0 {
		cfg.Key = make([]byte, 32)
		if _, err := rand.Read(cfg.Key); err != nil {
			return nil, fmt.Errorf("tokenserver: key: %w", err)
		}
	}
	setDefault(&cfg.DeviceFlowValidity, 10*time.Minute)
	setDefault(&cfg.AuthorizationFlowValidity, 10*time.Minute)
	setDefault(&cfg.RefreshTokenLifetime, 30*24*time.Hour)
	setDefault(&cfg.AccessTokenLifetime, time.Hour)
	setDefault(&cfg.PollInterval, 5*time.Second)
	if cfg.PollInterval < time.Second {
		cfg.PollInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	s.mux.HandleFunc("POST /device_authorization", s.deviceAuthorization)
	s.mux.HandleFunc("GET /device", s.devicePage)
	s.mux.HandleFunc("GET /authorize", s.authorize)
	s.mux.HandleFunc("GET /login", s.loginPage)
	s.mux.HandleFunc("POST /simulate/login", s.simulateLogin)
	s.mux.HandleFunc("POST /token", s.token)
	return s, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// oauthError is an error response of RFC 6749 §5.2 / RFC 8628 §3.5.
type oauthError struct {
	status      int
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func (e *oauthError) Error() string { return e.Code + ": " + e.Description }

func errorf(status int, code, format string, args ...any) *oauthError {
	return &oauthError{status: status, Code: code, Description: fmt.Sprintf(format, args...)}
}

// writeJSON writes v with the no-store headers of RFC 6749 §5.1.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// fail writes err: an *oauthError as is, anything else as server_error
// (logged, its text not shown to the client).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var oe *oauthError
	if !errors.As(err, &oe) {
		s.cfg.Logger.Error("request failed", "path", r.URL.Path, "err", err)
		oe = errorf(http.StatusInternalServerError, "server_error", "internal error")
	}
	writeJSON(w, oe.status, oe)
}

// clientID returns the request's client_id (form or HTTP Basic user name)
// if it is registered.
func (s *Server) clientID(r *http.Request) (string, Client, error) {
	id := r.PostForm.Get("client_id")
	if user, _, ok := r.BasicAuth(); ok && id == "" {
		id, _ = url.QueryUnescape(user)
	}
	c, ok := s.cfg.Clients[id]
	if id == "" || !ok {
		return "", Client{}, errorf(http.StatusUnauthorized, "invalid_client", "unknown client %q", id)
	}
	return id, c, nil
}

// deviceAuthorization is RFC 8628 §3.1-3.2.
func (s *Server) deviceAuthorization(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.fail(w, r, errorf(http.StatusBadRequest, "invalid_request", "bad form: %v", err))
		return
	}
	clientID, _, err := s.clientID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	userCode, deviceCode, err := s.cfg.Store.InsertDeviceFlow(r.Context(), clientID, r.PostForm.Get("scope"))
	if errors.Is(err, backend.ErrInvalidInput) {
		s.fail(w, r, errorf(http.StatusBadRequest, "invalid_request", "%v", err))
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	display := userCode[:4] + "-" + userCode[4:]
	base := baseURL(r)
	writeJSON(w, http.StatusOK, map[string]any{
		"device_code":               deviceCode,
		"user_code":                 display,
		"verification_uri":          base + "/device",
		"verification_uri_complete": base + "/device?user_code=" + display,
		"expires_in":                int(s.cfg.DeviceFlowValidity.Seconds()),
		"interval":                  int(s.cfg.PollInterval.Seconds()),
	})
}

func (s *Server) devicePage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "Enter your user code. (Simulated: POST /simulate/login?user_code=%s&sub=<user>)\n",
		url.QueryEscape(r.URL.Query().Get("user_code")))
}

// authorize is RFC 6749 §4.1.1 with PKCE (RFC 7636 §4.3): it starts an
// authorization flow and sends the user to the identity provider (here the
// simulated login page), carrying the flow id and the client's state.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	clientID, redirectURI := q.Get("client_id"), q.Get("redirect_uri")
	client, ok := s.cfg.Clients[clientID]
	// RFC 6749 §4.1.2.1: with a bad client or redirect URI, never redirect.
	if !ok || !slices.Contains(client.RedirectURIs, redirectURI) {
		http.Error(w, "unknown client_id or unregistered redirect_uri", http.StatusBadRequest)
		return
	}
	state := q.Get("state")
	redirectError := func(code, desc string) {
		v := url.Values{"error": {code}, "error_description": {desc}}
		if state != "" {
			v.Set("state", state)
		}
		http.Redirect(w, r, withQuery(redirectURI, v), http.StatusFound)
	}
	if q.Get("response_type") != "code" {
		redirectError("unsupported_response_type", "response_type must be code")
		return
	}
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	if challenge == "" || method != "S256" {
		redirectError("invalid_request", "PKCE is required: code_challenge with code_challenge_method=S256")
		return
	}
	if len(challenge) != 43 { // base64url of a sha256 sum, no padding
		redirectError("invalid_request", "code_challenge is not an S256 challenge")
		return
	}
	id, err := s.cfg.Store.InsertAuthorizationFlow(r.Context(), clientID, q.Get("scope"), challenge, method, redirectURI)
	if errors.Is(err, backend.ErrInvalidInput) {
		redirectError("invalid_request", err.Error())
		return
	}
	if err != nil {
		s.cfg.Logger.Error("authorize", "err", err)
		redirectError("server_error", "internal error")
		return
	}
	http.Redirect(w, r, withQuery("/login", url.Values{"flow": {id}, "state": {state}}), http.StatusFound)
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "Identity provider. (Simulated: POST /simulate/login?%s&sub=<user>)\n", r.URL.RawQuery)
}

// simulateLogin stands for the identity provider's callback after the user
// logged in as sub: it stores the ID token on the flow. For a device flow
// (user_code) it answers 200; for an authorization flow (flow, state) it
// redirects to the client's redirect URI with the code and the state.
func (s *Server) simulateLogin(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	sub := r.Form.Get("sub")
	if sub == "" {
		http.Error(w, "sub is required", http.StatusBadRequest)
		return
	}
	idToken := map[string]any{"sub": sub, "iss": "simulated-idp"}
	ctx := r.Context()
	if userCode := r.Form.Get("user_code"); userCode != "" {
		if _, err := s.cfg.Store.DeviceFlowValidateUserCode(ctx, userCode, s.cfg.DeviceFlowValidity); err != nil {
			http.Error(w, "unknown or expired user code", http.StatusBadRequest)
			return
		}
		if err := s.cfg.Store.DeviceFlowInsertIDToken(ctx, userCode, idToken, s.cfg.DeviceFlowValidity); err != nil {
			http.Error(w, "the flow is no longer pending", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "Device approved; you can close this page.")
		return
	}
	code, redirectURI, err := s.cfg.Store.AuthorizationFlowInsertIDToken(ctx, r.Form.Get("flow"), idToken, s.cfg.AuthorizationFlowValidity)
	if err != nil {
		http.Error(w, "unknown, expired or finished authorization flow", http.StatusBadRequest)
		return
	}
	v := url.Values{"code": {code}}
	if state := r.Form.Get("state"); state != "" {
		v.Set("state", state)
	}
	http.Redirect(w, r, withQuery(redirectURI, v), http.StatusFound)
}

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
	if err := r.ParseForm(); err != nil {
		s.fail(w, r, errorf(http.StatusBadRequest, "invalid_request", "bad form: %v", err))
		return
	}
	clientID, _, err := s.clientID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var resp tokenResponse
	switch gt := r.PostForm.Get("grant_type"); gt {
	case grantDeviceCode:
		resp, err = s.deviceCodeGrant(r.Context(), clientID, r.PostForm)
	case grantAuthorizationCode:
		resp, err = s.authorizationCodeGrant(r.Context(), clientID, r.PostForm)
	case grantRefreshToken:
		resp, err = s.refreshTokenGrant(r.Context(), r.PostForm)
	default:
		err = errorf(http.StatusBadRequest, "unsupported_grant_type", "grant_type %q", gt)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// deviceCodeGrant redeems a device code (RFC 8628 §3.4-3.5).
func (s *Server) deviceCodeGrant(ctx context.Context, clientID string, form url.Values) (tokenResponse, error) {
	deviceCode := form.Get("device_code")
	flow, err := s.cfg.Store.GetDeviceFlow(ctx, deviceCode)
	if errors.Is(err, backend.ErrNotFound) || (err == nil && flow.ClientID != clientID) {
		return tokenResponse{}, errorf(http.StatusBadRequest, "invalid_grant", "unknown device code")
	}
	if err != nil {
		return tokenResponse{}, err
	}
	flow, err = s.cfg.Store.ConsumeDeviceFlow(ctx, deviceCode, s.cfg.DeviceFlowValidity)
	switch {
	case errors.Is(err, backend.ErrAuthorizationPending):
		return tokenResponse{}, errorf(http.StatusBadRequest, "authorization_pending", "the user has not logged in yet")
	case errors.Is(err, backend.ErrExpired):
		return tokenResponse{}, errorf(http.StatusBadRequest, "expired_token", "the device code expired")
	case errors.Is(err, backend.ErrFlowFailed):
		return tokenResponse{}, errorf(http.StatusBadRequest, "access_denied", "the login failed")
	case errors.Is(err, backend.ErrAlreadyUsed), errors.Is(err, backend.ErrNotFound):
		return tokenResponse{}, errorf(http.StatusBadRequest, "invalid_grant", "the device code was already used")
	case err != nil:
		return tokenResponse{}, err
	}
	return s.issue(ctx, flow.IDToken, flow.Scope)
}

// authorizationCodeGrant redeems an authorization code after checking the
// client, the redirect URI and the PKCE code_verifier (RFC 7636 §4.6). The
// checks come before ConsumeAuthorizationFlow, so a request with a wrong
// verifier does not burn the code; the atomic consume then makes sure the
// code is redeemed once.
func (s *Server) authorizationCodeGrant(ctx context.Context, clientID string, form url.Values) (tokenResponse, error) {
	code := form.Get("code")
	flow, err := s.cfg.Store.GetAuthorizationFlow(ctx, code, s.cfg.AuthorizationFlowValidity)
	if errors.Is(err, backend.ErrNotFound) {
		return tokenResponse{}, errorf(http.StatusBadRequest, "invalid_grant", "unknown or expired code")
	}
	if err != nil {
		return tokenResponse{}, err
	}
	if flow.ClientID != clientID || flow.RedirectURI != form.Get("redirect_uri") {
		return tokenResponse{}, errorf(http.StatusBadRequest, "invalid_grant", "client_id or redirect_uri do not match the code")
	}
	if !verifyS256(form.Get("code_verifier"), flow.CodeChallenge) {
		return tokenResponse{}, errorf(http.StatusBadRequest, "invalid_grant", "code_verifier does not match the code_challenge")
	}
	flow, err = s.cfg.Store.ConsumeAuthorizationFlow(ctx, code, s.cfg.AuthorizationFlowValidity)
	switch {
	case errors.Is(err, backend.ErrAlreadyUsed), errors.Is(err, backend.ErrNotFound), errors.Is(err, backend.ErrFlowFailed):
		return tokenResponse{}, errorf(http.StatusBadRequest, "invalid_grant", "the code was already used or is not ready")
	case err != nil:
		return tokenResponse{}, err
	}
	return s.issue(ctx, flow.IDToken, flow.Scope)
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

// refreshTokenGrant rotates a refresh token (RFC 6749 §6). A token presented
// after it was rotated is a replay: the store revokes every token of the
// subject, and the client gets invalid_grant.
func (s *Server) refreshTokenGrant(ctx context.Context, form url.Values) (tokenResponse, error) {
	oldJTI, ok := s.parseRefreshToken(form.Get("refresh_token"))
	if !ok {
		return tokenResponse{}, errorf(http.StatusBadRequest, "invalid_grant", "malformed refresh token")
	}
	if backend.UUIDv7Time(oldJTI).Add(s.cfg.RefreshTokenLifetime).Before(s.cfg.Clock()) {
		return tokenResponse{}, errorf(http.StatusBadRequest, "invalid_grant", "the refresh token expired")
	}
	newJTI, err := backend.NewUUIDv7()
	if err != nil {
		return tokenResponse{}, err
	}
	old, err := s.cfg.Store.RotateRefreshToken(ctx, oldJTI, newJTI)
	switch {
	case errors.Is(err, backend.ErrTokenReused):
		s.cfg.Logger.Warn("refresh token reused: the subject's tokens were revoked", "jti", oldJTI)
		return tokenResponse{}, errorf(http.StatusBadRequest, "invalid_grant", "the refresh token was already used; all tokens of the user are revoked")
	case errors.Is(err, backend.ErrNotFound):
		return tokenResponse{}, errorf(http.StatusBadRequest, "invalid_grant", "unknown refresh token")
	case err != nil:
		return tokenResponse{}, err
	}
	return s.response(newJTI, old.Scope)
}

// issue stores a new refresh token for the ID token's subject and answers
// with it and a fresh access token.
func (s *Server) issue(ctx context.Context, idToken map[string]any, scope string) (tokenResponse, error) {
	sub, _ := idToken["sub"].(string)
	if sub == "" {
		return tokenResponse{}, errors.New("tokenserver: the flow's ID token has no sub")
	}
	jti, err := backend.NewUUIDv7()
	if err != nil {
		return tokenResponse{}, err
	}
	if err := s.cfg.Store.InsertRefreshToken(ctx, jti, sub, scope); err != nil {
		return tokenResponse{}, err
	}
	return s.response(jti, scope)
}

func (s *Server) response(jti uuid.UUID, scope string) (tokenResponse, error) {
	access, err := backend.GenerateCode() // opaque: 32 random bytes
	if err != nil {
		return tokenResponse{}, err
	}
	return tokenResponse{
		AccessToken:  access,
		TokenType:    "Bearer",
		ExpiresIn:    int(s.cfg.AccessTokenLifetime.Seconds()),
		RefreshToken: s.refreshToken(jti),
		Scope:        scope,
	}, nil
}

// refreshToken is the refresh token handed to the client for jti:
// base64url(jti) "." base64url(HMAC-SHA256(key, jti)). The MAC makes it
// unguessable from a JTI alone; a real server would sign a JWT instead.
func (s *Server) refreshToken(jti uuid.UUID) string {
	mac := hmac.New(sha256.New, s.cfg.Key)
	mac.Write(jti[:])
	return base64.RawURLEncoding.EncodeToString(jti[:]) + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// parseRefreshToken returns the JTI of a refresh token made by refreshToken.
func (s *Server) parseRefreshToken(tok string) (uuid.UUID, bool) {
	idPart, macPart, ok := strings.Cut(tok, ".")
	if !ok {
		return uuid.Nil, false
	}
	raw, err1 := base64.RawURLEncoding.DecodeString(idPart)
	sig, err2 := base64.RawURLEncoding.DecodeString(macPart)
	if err1 != nil || err2 != nil || len(raw) != 16 {
		return uuid.Nil, false
	}
	jti := uuid.UUID(raw)
	mac := hmac.New(sha256.New, s.cfg.Key)
	mac.Write(jti[:])
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return uuid.Nil, false
	}
	return jti, true
}

// baseURL is the server's URL as the client reached it.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// withQuery adds v to the query of rawURL.
func withQuery(rawURL string, v url.Values) string {
	sep := "?"
	if strings.Contains(rawURL, "?") {
		sep = "&"
	}
	return rawURL + sep + v.Encode()
}
