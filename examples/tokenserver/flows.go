package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/authdb/authdb/backend"
)

// maxState bounds the client's state, which this server keeps in memory
// until the login finishes (RFC 6749 sets no limit; 512 bytes is plenty for
// the random value or short token a client puts there).
const maxState = 512

// checkScope checks a requested scope (RFC 6749 §3.3) and returns it
// normalised: tokens of the allowed characters, duplicates removed, in the
// order given. Any scope is granted as requested except openid: this server
// issues no ID token, and granting openid without one would tell an OpenID
// Connect client that it speaks OpenID Connect (the choice to refuse rather
// than drop it: a client that needs an ID token learns it at once).
func checkScope(raw string) (string, error) {
	if len(raw) > 1024 { // the store's limit on Scope
		return "", badRequest("invalid_scope", "the scope is over 1024 characters")
	}
	var toks []string
	for tok := range strings.FieldsSeq(raw) {
		for _, c := range tok {
			if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
				return "", badRequest("invalid_scope", "the scope has a character RFC 6749 does not allow")
			}
		}
		if tok == "openid" {
			return "", badRequest("invalid_scope", "this server issues no ID tokens: openid is not granted")
		}
		if !slices.Contains(toks, tok) {
			toks = append(toks, tok)
		}
	}
	return strings.Join(toks, " "), nil
}

// deviceAuthorization is RFC 8628 §3.1-3.2.
func (s *Server) deviceAuthorization(w http.ResponseWriter, r *http.Request) {
	clientID, err := s.formClient(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	scope, err := checkScope(r.PostForm.Get("scope"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	userCode, deviceCode, err := s.cfg.Store.InsertDeviceFlow(r.Context(), clientID, scope)
	if err != nil {
		// Input was checked above, so anything left is the server's
		// problem: fail logs it and answers server_error, no internal text.
		s.fail(w, r, fmt.Errorf("insert device flow: %w", err))
		return
	}
	display := userCode[:4] + "-" + userCode[4:]
	writeJSON(w, http.StatusOK, map[string]any{
		"device_code": deviceCode,
		"user_code":   display,
		// From the configured issuer, never the Host header: a client
		// that reached the server under another name would otherwise
		// send its user there.
		"verification_uri":          s.cfg.Issuer + "/device",
		"verification_uri_complete": s.cfg.Issuer + "/device?user_code=" + display,
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
// authorization flow, keeps the client's state on the server, and sends the
// user to the identity provider (here the simulated login page) with the
// flow id only.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	clientID, redirectURI := q.Get("client_id"), q.Get("redirect_uri")
	client, ok := s.cfg.Clients[clientID]
	// RFC 6749 §4.1.2.1: with a bad client or redirect URI, never redirect.
	if !ok || !slices.Contains(client.RedirectURIs, redirectURI) || len(q["client_id"]) > 1 || len(q["redirect_uri"]) > 1 {
		http.Error(w, "unknown client_id or unregistered redirect_uri", http.StatusBadRequest)
		return
	}
	state := q.Get("state")
	redirectError := func(e *oauthError) {
		v := url.Values{"error": {e.Code}, "error_description": {e.Description}, "iss": {s.cfg.Issuer}}
		if state != "" && len(q["state"]) == 1 {
			v.Set("state", state)
		}
		http.Redirect(w, r, withQuery(redirectURI, v), http.StatusFound)
	}
	if err := singleValued(q); err != nil {
		redirectError(err.(*oauthError))
		return
	}
	switch rt := q.Get("response_type"); {
	case rt == "":
		redirectError(badRequest("invalid_request", "response_type is required"))
		return
	case rt != "code":
		redirectError(badRequest("unsupported_response_type", "response_type must be code"))
		return
	}
	if len(state) > maxState {
		redirectError(badRequest("invalid_request", "state is over %d bytes", maxState))
		return
	}
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	if challenge == "" || method != "S256" {
		redirectError(badRequest("invalid_request", "PKCE is required: code_challenge with code_challenge_method=S256"))
		return
	}
	if len(challenge) != 43 { // base64url of a sha256 sum, no padding
		redirectError(badRequest("invalid_request", "code_challenge is not an S256 challenge"))
		return
	}
	scope, err := checkScope(q.Get("scope"))
	if err != nil {
		redirectError(err.(*oauthError))
		return
	}
	id, err := s.cfg.Store.InsertAuthorizationFlow(r.Context(), clientID, scope, challenge, method, redirectURI)
	if err != nil {
		s.cfg.Logger.Error("authorize", "err", err)
		redirectError(errorf(http.StatusInternalServerError, "server_error", "internal error"))
		return
	}
	// The state stays here, keyed by the flow id, and is put back on the
	// redirect to the client after the login: the browser carries only the
	// flow id through the identity provider, so nothing there can change
	// the state the client will check.
	s.states.put(id, state)
	http.Redirect(w, r, withQuery("/login", url.Values{"flow": {id}}), http.StatusFound)
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "Identity provider. (Simulated: POST /simulate/login?flow=%s&sub=<user>)\n",
		url.QueryEscape(r.URL.Query().Get("flow")))
}

// simulateLogin stands for the identity provider's callback after the user
// logged in as sub: it stores the ID token on the flow. For a device flow
// (user_code) it answers 200; for an authorization flow (flow) it redirects
// to the client's redirect URI with the code, the state kept by authorize
// and iss (RFC 9207). Any other parameter (a state, say) is ignored.
func (s *Server) simulateLogin(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
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
	flow := r.Form.Get("flow")
	code, redirectURI, err := s.cfg.Store.AuthorizationFlowInsertIDToken(ctx, flow, idToken, s.cfg.AuthorizationFlowValidity)
	if errors.Is(err, backend.ErrNotPending) || errors.Is(err, backend.ErrNotFound) || errors.Is(err, backend.ErrInvalidInput) {
		http.Error(w, "unknown, expired or finished authorization flow", http.StatusBadRequest)
		return
	}
	if err != nil {
		s.cfg.Logger.Error("simulated login", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	v := url.Values{"code": {code}, "iss": {s.cfg.Issuer}}
	if state, ok := s.states.take(flow); ok && state != "" {
		v.Set("state", state)
	}
	http.Redirect(w, r, withQuery(redirectURI, v), http.StatusFound)
}
