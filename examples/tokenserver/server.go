// Command tokenserver is a small OAuth2 authorization server built on authdb
// and net/http: the example of what a token service does with the Backend,
// written to be copied. Every choice is commented where it is made.
//
// Endpoints (the issuer is Config.Issuer, e.g. https://auth.example.org):
//
//	GET  /.well-known/oauth-authorization-server  RFC 8414 metadata (discovery)
//	POST /device_authorization  RFC 8628 device authorization: device_code, user_code
//	GET  /authorize             RFC 6749 §4.1 with PKCE S256 (RFC 7636), required;
//	                            the redirect carries iss (RFC 9207)
//	POST /token                 grant types urn:ietf:params:oauth:grant-type:device_code,
//	                            authorization_code (with code_verifier) and refresh_token
//	                            (rotation, bound to the client; see refreshTokenGrant)
//	POST /revoke                RFC 7009: revoking a token signs out its session
//	POST /introspect            RFC 7662 for the access tokens
//	GET  /device, GET /login    where a real server sends the user to the identity provider
//	POST /simulate/login        the simulated identity provider: user_code=...&sub=...
//	                            approves a device flow; flow=...&sub=... finishes an
//	                            authorization flow and redirects to the client with the code
//
// Sessions are authdb's refresh-token families: the first refresh token of a
// login starts one, every rotation continues it, a replay outside the grace
// window revokes it (and only it), and /revoke ends it. The store must be
// opened with StoreOptions for that.
//
// Errors are JSON in the form of RFC 6749 §5.2 and RFC 8628 §3.5
// ({"error": "invalid_grant", "error_description": "..."}); descriptions are
// fixed texts, never internal errors or request input.
//
// What it leaves out, to stay small: confidential clients (every client is
// public: it has no secret and proves nothing but its client_id, which is
// why PKCE is required), ID tokens and so OpenID Connect (the scope openid is
// refused, and /.well-known/openid-configuration is not served), consent
// screens, and signed JWTs (access and refresh tokens are opaque strings with
// an HMAC, see tokens.go). /simulate/login stands for the identity provider:
// replace it, and never expose it in a real deployment.
//
// Run it with: go run ./examples/tokenserver --dev
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/authdb/authdb/backend"
)

// Grant types of the token endpoint.
const (
	grantDeviceCode        = "urn:ietf:params:oauth:grant-type:device_code"
	grantAuthorizationCode = "authorization_code"
	grantRefreshToken      = "refresh_token"
)

// maxBody bounds every request body: the largest legitimate form here is a
// few hundred bytes, so 64 KiB is generous and stops a client from making the
// server buffer megabytes (net/http's own form limit is 10 MB).
const maxBody = 64 << 10

// Client is a registered public client.
type Client struct {
	// RedirectURIs are the exact redirect URIs the client may use in
	// /authorize. A device-only client has none.
	RedirectURIs []string
}

// Config configures a Server. Store, Issuer, Clients and Keys are required.
type Config struct {
	// Store must be opened with StoreOptions (families and a grace window).
	Store backend.Backend
	// Issuer is the server's public URL (RFC 8414 §2: https, no query or
	// fragment; here also no path), as clients reach it. Discovery, the
	// verification URI and the iss of authorization responses are built from
	// it, never from the request's Host header, which the client controls.
	Issuer  string
	Clients map[string]Client // by client_id
	// Keys are the HMAC-SHA256 keys of the tokens, each at least 32 bytes:
	// the first signs, all verify. To rotate, put a new key first and keep
	// the old one until the tokens it signed have expired.
	Keys [][]byte
	// Clock must be the clock the Store was opened with (backend.WithClock);
	// it dates tokens for their lifetime checks. Default time.Now.
	Clock func() time.Time
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
	// PollInterval is the device flow's first polling interval (RFC 8628
	// "interval", whole seconds, default 5s, at least 1s). Each slow_down
	// adds 5 seconds for that device code.
	PollInterval time.Duration
	Logger       *slog.Logger // default: discard
}

// StoreOptions are the options the server's store is opened with: a replay
// revokes the replayed token's family, one login session, instead of every
// session of the user (RFC 9700 §4.14.2); and a refresh token rotated less
// than grace ago may be presented again and gets the same successor, so that
// concurrent refreshes (two tabs, a retry after a lost reply) all succeed and
// converge on one live token. What the window concedes: a thief replaying
// within it gets the successor too. Keep it to a few seconds; 0 turns it off.
func StoreOptions(grace time.Duration) []backend.Option {
	return []backend.Option{
		backend.WithReuseScope(backend.RevokeFamily),
		backend.WithRotationGrace(grace),
	}
}

// Server is the authorization server, an http.Handler. It is safe for
// concurrent use. Tokens and flows live in the Store; two small things the
// store has no column for live in this process (see ephemeral.go): the
// client's state of a pending authorization and the polling pace of a device
// code. A deployment of several instances needs them shared (or sticky
// sessions); everything else already is.
type Server struct {
	cfg    Config
	keys   keys
	mux    *http.ServeMux
	states *ephemeral[string]     // authorization flow id -> the client's state
	polls  *ephemeral[pollRecord] // sha256 of a device code -> its polling pace
}

// New returns a Server for cfg, with defaults filled in.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("tokenserver: Config.Store is required")
	}
	if len(cfg.Clients) == 0 {
		return nil, errors.New("tokenserver: Config.Clients is empty")
	}
	issuer, err := ParseIssuer(cfg.Issuer)
	if err != nil {
		return nil, err
	}
	cfg.Issuer = issuer
	ks, err := newKeys(cfg.Keys)
	if err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	setDefault(&cfg.DeviceFlowValidity, 10*time.Minute)
	setDefault(&cfg.AuthorizationFlowValidity, 10*time.Minute)
	setDefault(&cfg.RefreshTokenLifetime, 30*24*time.Hour)
	setDefault(&cfg.AccessTokenLifetime, time.Hour)
	setDefault(&cfg.PollInterval, 5*time.Second)
	cfg.PollInterval = max(cfg.PollInterval.Truncate(time.Second), time.Second)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:    cfg,
		keys:   ks,
		mux:    http.NewServeMux(),
		states: newEphemeral[string](cfg.AuthorizationFlowValidity),
		polls:  newEphemeral[pollRecord](cfg.DeviceFlowValidity),
	}
	s.mux.HandleFunc("GET /.well-known/oauth-authorization-server", s.metadata)
	s.mux.HandleFunc("POST /device_authorization", s.deviceAuthorization)
	s.mux.HandleFunc("GET /device", s.devicePage)
	s.mux.HandleFunc("GET /authorize", s.authorize)
	s.mux.HandleFunc("GET /login", s.loginPage)
	s.mux.HandleFunc("POST /simulate/login", s.simulateLogin)
	s.mux.HandleFunc("POST /token", s.token)
	s.mux.HandleFunc("POST /revoke", s.revoke)
	s.mux.HandleFunc("POST /introspect", s.introspect)
	return s, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// ParseIssuer checks an issuer URL and returns it in the form the server
// announces: scheme://host[:port], without a trailing slash (zitadel/oidc
// compares the discovered issuer with the configured one byte for byte).
// RFC 8414 §2 requires https; plain http is accepted for loopback hosts only,
// for development and tests. A path would need the well-known URL to move
// (RFC 8414 §3.1); this example serves at the root and refuses one.
func ParseIssuer(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.TrimSuffix(u.Path, "/") != "" {
		return "", fmt.Errorf("tokenserver: issuer %q: want https://host[:port] without path, query or fragment", raw)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	default:
		return "", fmt.Errorf("tokenserver: issuer %q: must be https (http only on a loopback host)", raw)
	}
	return u.Scheme + "://" + u.Host, nil
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// ServeHTTP implements http.Handler. Every request body is limited to
// maxBody bytes (a larger form fails to parse, see parseForm).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	s.mux.ServeHTTP(w, r)
}

// metadata is the RFC 8414 authorization server metadata. openid-client's
// discovery(..., {algorithm: 'oauth2'}) and zitadel/oidc's relying party
// (with WithCustomDiscoveryUrl) read it.
func (s *Server) metadata(w http.ResponseWriter, r *http.Request) {
	iss := s.cfg.Issuer
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                           iss,
		"authorization_endpoint":           iss + "/authorize",
		"token_endpoint":                   iss + "/token",
		"device_authorization_endpoint":    iss + "/device_authorization",
		"revocation_endpoint":              iss + "/revoke",
		"introspection_endpoint":           iss + "/introspect",
		"response_types_supported":         []string{"code"},
		"response_modes_supported":         []string{"query"},
		"grant_types_supported":            []string{grantAuthorizationCode, grantRefreshToken, grantDeviceCode},
		"code_challenge_methods_supported": []string{"S256"},
		// Public clients only: they send their client_id and nothing else
		// (Basic with an empty password is accepted too, see clientID).
		"token_endpoint_auth_methods_supported":         []string{"none"},
		"revocation_endpoint_auth_methods_supported":    []string{"none"},
		"introspection_endpoint_auth_methods_supported": []string{"none"},
		// RFC 9207: the authorization response carries iss, so a client
		// talking to several servers can tell which one answered.
		"authorization_response_iss_parameter_supported": true,
	})
}

// oauthError is an error response of RFC 6749 §5.2 / RFC 8628 §3.5.
type oauthError struct {
	status      int
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func (e *oauthError) Error() string { return e.Code + ": " + e.Description }

// errorf returns an oauthError. The description is a fixed text of the
// server's (format arguments only ever the server's own values, never
// request input or an internal error), and cleanDescription keeps it within
// RFC 6749 §5.2's character set whatever happens.
func errorf(status int, code, format string, args ...any) *oauthError {
	return &oauthError{status: status, Code: code, Description: cleanDescription(fmt.Sprintf(format, args...))}
}

func badRequest(code, format string, args ...any) *oauthError {
	return errorf(http.StatusBadRequest, code, format, args...)
}

// cleanDescription replaces what RFC 6749 §5.2 does not allow in
// error_description (anything outside printable ASCII, '"' and '\') by '?'.
func cleanDescription(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return '?'
		}
		return r
	}, s)
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
// (logged, its text not shown to the client). A 401 carries
// WWW-Authenticate (RFC 6749 §5.2, RFC 9110 §15.5.2).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var oe *oauthError
	if !errors.As(err, &oe) {
		s.cfg.Logger.Error("request failed", "path", r.URL.Path, "err", err)
		oe = errorf(http.StatusInternalServerError, "server_error", "internal error")
	}
	if oe.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="tokenserver"`)
	}
	writeJSON(w, oe.status, oe)
}

// parseForm parses a POST body into r.PostForm and applies RFC 6749 §3.1 and
// §3.2: no parameter may appear twice (a server that takes the first value
// and a proxy or client that reads the last would disagree about the
// request). Parameters in the URL's query are ignored: the endpoints here
// take their parameters from the body only.
func parseForm(r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return errorf(http.StatusRequestEntityTooLarge, "invalid_request", "the request body is over %d bytes", maxBody)
		}
		return badRequest("invalid_request", "the body is not a valid form")
	}
	return singleValued(r.PostForm)
}

// singleValued reports a parameter given more than once.
func singleValued(v url.Values) error {
	for name, vals := range v {
		if len(vals) > 1 {
			return badRequest("invalid_request", "parameter %s is repeated", name)
		}
	}
	return nil
}

// formClient parses the form of a request to a client endpoint (parseForm)
// and identifies its client (clientID), returning the first error of the two.
func (s *Server) formClient(r *http.Request) (string, error) {
	if err := parseForm(r); err != nil {
		return "", err
	}
	return s.clientID(r)
}

// clientID identifies the client of a request to /device_authorization,
// /token, /revoke or /introspect (RFC 6749 §2.3, §3.2.1). Every client here
// is public, so identification is all there is; what is checked:
//   - one method at a time (RFC 6749 §2.3): HTTP Basic together with a
//     client_secret or a client_assertion in the body is invalid_request; a
//     client_id in the body beside Basic must name the same client;
//   - the client is registered;
//   - a public client has no secret: a non-empty Basic password or
//     client_secret is invalid_client (it would otherwise be accepted
//     unchecked, and the client would believe it authenticates), and so is a
//     client_assertion (no keys are registered to check one).
//
// Basic with an empty password is accepted, as golang.org/x/oauth2 sends it.
// Empty parameters count as absent (RFC 6749 §3.1).
func (s *Server) clientID(r *http.Request) (string, error) {
	form := r.PostForm
	id := form.Get("client_id")
	user, pass, basic := r.BasicAuth()
	if basic {
		if form.Get("client_secret") != "" || form.Get("client_assertion") != "" {
			return "", badRequest("invalid_request", "more than one client authentication method")
		}
		// RFC 6749 §2.3.1: the Basic user and password are form-encoded first.
		u, err1 := url.QueryUnescape(user)
		p, err2 := url.QueryUnescape(pass)
		if err1 != nil || err2 != nil {
			return "", errorf(http.StatusUnauthorized, "invalid_client", "malformed Basic credentials")
		}
		if id != "" && id != u {
			return "", badRequest("invalid_request", "client_id differs from the Basic user")
		}
		id, pass = u, p
	}
	if _, ok := s.cfg.Clients[id]; id == "" || !ok {
		return "", errorf(http.StatusUnauthorized, "invalid_client", "unknown client")
	}
	if pass != "" || form.Get("client_secret") != "" {
		return "", errorf(http.StatusUnauthorized, "invalid_client", "the client is public and has no secret")
	}
	if form.Get("client_assertion") != "" {
		return "", errorf(http.StatusUnauthorized, "invalid_client", "client assertions are not supported")
	}
	return id, nil
}

// withQuery adds v to the query of rawURL.
func withQuery(rawURL string, v url.Values) string {
	sep := "?"
	if strings.Contains(rawURL, "?") {
		sep = "&"
	}
	return rawURL + sep + v.Encode()
}
