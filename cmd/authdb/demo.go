package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
)

const demoUsage = `Usage: authdb [--db URL] demo

Runs, against the database, what a token service does with authdb, printing
each step and what the store then holds:
  1. a device flow (RFC 8628): the device gets a user code, polls (pending),
     the user types the code and logs in, the device polls again and gets its
     tokens once, and only once;
  2. an authorization-code flow with PKCE S256 (RFC 7636): a wrong
     code_verifier is refused, the right one redeems the code once;
  3. a refresh-token rotation: the old token is revoked, a new one issued;
  4. a replay of the old refresh token: detected as reuse, every token of the
     subject is revoked.

It creates the schema if needed (like migrate) and only adds rows; it can run
again on the same database. 'make demo' runs it on a fresh SQLite file.
`

// demoValidity is the flows' maximum validity in the demo.
const demoValidity = 10 * time.Minute

func runDemo(ctx context.Context, a *app, args []string) error {
	fs := a.newFlagSet("demo", demoUsage)
	if err := parse(fs, args); err != nil {
		return err
	}
	b, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer b.Close()
	d := &demo{w: a.stdout, b: b, sub: "alice"}
	fmt.Fprintf(d.w, "authdb demo on %s\n", target(a.dbURL))
	for _, part := range []func(context.Context) error{d.deviceFlow, d.authorizationFlow, d.refreshTokens} {
		if err := part(ctx); err != nil {
			return schemaHint(err)
		}
	}
	fmt.Fprintln(d.w, "\ndemo complete")
	return nil
}

// demo holds the state of one run.
type demo struct {
	w    io.Writer
	b    backend.Backend
	sub  string
	jtis []uuid.UUID // tokens made by this run
}

func (d *demo) section(title string) { fmt.Fprintf(d.w, "\n== %s ==\n", title) }

// step prints one step: who does what, and the store call with its outcome.
func (d *demo) step(who, format string, args ...any) {
	fmt.Fprintf(d.w, "%-24s %s\n", who, fmt.Sprintf(format, args...))
}

// holds prints a row as the store holds it.
func (d *demo) holds(format string, args ...any) {
	fmt.Fprintf(d.w, "  store: %s\n", fmt.Sprintf(format, args...))
}

// expect checks that err is want (a sentinel), else fails the demo.
func expect(err, want error, what string) error {
	if !errors.Is(err, want) {
		return fmt.Errorf("demo: %s: want %v, got %v", what, want, err)
	}
	return nil
}

func (d *demo) deviceFlow(ctx context.Context) error {
	d.section("1. Device flow (RFC 8628)")
	userCode, deviceCode, err := d.b.InsertDeviceFlow(ctx, "demo-cli", "openid profile")
	if err != nil {
		return fmt.Errorf("demo: insert device flow: %w", err)
	}
	typed := strings.ToLower(userCode[:4] + "-" + userCode[4:])
	d.step("device asks for a code", "InsertDeviceFlow(client demo-cli, scope %q)", "openid profile")
	d.step("", "-> user code %s, device code %s…", userCode, deviceCode[:12])
	flow, err := d.b.GetDeviceFlow(ctx, deviceCode)
	if err != nil {
		return fmt.Errorf("demo: get device flow: %w", err)
	}
	d.holdsDevice(flow)

	_, err = d.b.ConsumeDeviceFlow(ctx, deviceCode, demoValidity)
	if err := expect(err, backend.ErrAuthorizationPending, "first poll"); err != nil {
		return err
	}
	d.step("device polls", "ConsumeDeviceFlow -> %s (RFC 8628 authorization_pending)", sentinel(err))

	scope, err := d.b.DeviceFlowValidateUserCode(ctx, typed, demoValidity)
	if err != nil {
		return fmt.Errorf("demo: validate user code: %w", err)
	}
	d.step("user types "+typed, "DeviceFlowValidateUserCode -> scope %q", scope)
	idToken := map[string]any{"sub": d.sub, "preferred_username": "Alice", "iss": "https://idp.example"}
	if err := d.b.DeviceFlowInsertIDToken(ctx, typed, idToken, demoValidity); err != nil {
		return fmt.Errorf("demo: insert id token: %w", err)
	}
	d.step("user logs in at the IdP", "DeviceFlowInsertIDToken(sub %s)", d.sub)
	if flow, err = d.b.GetDeviceFlow(ctx, deviceCode); err != nil {
		return fmt.Errorf("demo: get device flow: %w", err)
	}
	d.holdsDevice(flow)

	flow, err = d.b.ConsumeDeviceFlow(ctx, deviceCode, demoValidity)
	if err != nil {
		return fmt.Errorf("demo: consume device flow: %w", err)
	}
	d.step("device polls", "ConsumeDeviceFlow -> %s, ID token of %v: issue tokens", flow.Status, flow.IDToken["sub"])
	_, err = d.b.ConsumeDeviceFlow(ctx, deviceCode, demoValidity)
	if err := expect(err, backend.ErrAlreadyUsed, "second redemption"); err != nil {
		return err
	}
	d.step("device polls again", "ConsumeDeviceFlow -> %s (tokens are issued once)", sentinel(err))
	if flow, err = d.b.GetDeviceFlow(ctx, deviceCode); err != nil {
		return fmt.Errorf("demo: get device flow: %w", err)
	}
	d.holdsDevice(flow)
	return nil
}

func (d *demo) holdsDevice(f backend.DeviceFlow) {
	d.holds("DeviceFlows[%s] status=%s client=%s created=%s device_code=sha256:%s… id_token=%s",
		f.UserCode, f.Status, f.ClientID, f.CreationTime.Format(time.RFC3339), f.DeviceCode[:12], jsonOf(f.IDToken))
}

func (d *demo) authorizationFlow(ctx context.Context) error {
	d.section("2. Authorization code with PKCE S256 (RFC 7636)")
	verifier, err := backend.GenerateCode() // 43 characters of base64url: a valid code_verifier
	if err != nil {
		return err
	}
	challenge := s256(verifier)
	const redirect = "http://127.0.0.1:8000/callback"
	id, err := d.b.InsertAuthorizationFlow(ctx, "demo-web", "openid", challenge, "S256", redirect)
	if err != nil {
		return fmt.Errorf("demo: insert authorization flow: %w", err)
	}
	d.step("client: /authorize", "InsertAuthorizationFlow(client demo-web, challenge %s…, S256) -> flow %s", challenge[:12], id)
	code, gotRedirect, err := d.b.AuthorizationFlowInsertIDToken(ctx, id, map[string]any{"sub": d.sub}, demoValidity)
	if err != nil {
		return fmt.Errorf("demo: authorization flow id token: %w", err)
	}
	d.step("user logs in at the IdP", "AuthorizationFlowInsertIDToken(flow, sub %s) -> code %s…, redirect to %s", d.sub, code[:12], gotRedirect)
	flow, err := d.b.GetAuthorizationFlow(ctx, code, demoValidity)
	if err != nil {
		return fmt.Errorf("demo: get authorization flow: %w", err)
	}
	d.holdsAuth(flow)

	// The token endpoint checks the verifier against the stored challenge
	// before it consumes the code, so a wrong verifier does not burn it.
	wrong, err := backend.GenerateCode()
	if err != nil {
		return err
	}
	if s256(wrong) == flow.CodeChallenge {
		return errors.New("demo: a random verifier matched the challenge")
	}
	d.step("attacker: /token", "GetAuthorizationFlow(code): S256(wrong verifier) != stored challenge -> invalid_grant, code not consumed")
	if flow, err = d.b.GetAuthorizationFlow(ctx, code, demoValidity); err != nil {
		return fmt.Errorf("demo: get authorization flow: %w", err)
	}
	if s256(verifier) != flow.CodeChallenge {
		return errors.New("demo: the right verifier does not match the stored challenge")
	}
	if flow, err = d.b.ConsumeAuthorizationFlow(ctx, code, demoValidity); err != nil {
		return fmt.Errorf("demo: consume authorization flow: %w", err)
	}
	d.step("client: /token", "S256(verifier) == stored challenge; ConsumeAuthorizationFlow -> %s: issue tokens", flow.Status)
	_, err = d.b.ConsumeAuthorizationFlow(ctx, code, demoValidity)
	if err := expect(err, backend.ErrAlreadyUsed, "second redemption"); err != nil {
		return err
	}
	d.step("client: /token again", "ConsumeAuthorizationFlow -> %s (invalid_grant)", sentinel(err))
	if flow, err = d.b.GetAuthorizationFlow(ctx, code, demoValidity); err != nil {
		return fmt.Errorf("demo: get authorization flow: %w", err)
	}
	d.holdsAuth(flow)
	return nil
}

func (d *demo) holdsAuth(f backend.AuthorizationFlow) {
	d.holds("AuthorizationFlows[%s] status=%s client=%s method=%s code=sha256:%s… id_token=%s",
		f.UUID, f.Status, f.ClientID, f.CodeChallengeMethod, f.Code[:12], jsonOf(f.IDToken))
}

func (d *demo) refreshTokens(ctx context.Context) error {
	d.section("3. Refresh-token rotation")
	first, err := d.newJTI()
	if err != nil {
		return err
	}
	if err := d.b.InsertRefreshToken(ctx, first, d.sub, "openid profile"); err != nil {
		return fmt.Errorf("demo: insert refresh token: %w", err)
	}
	d.step("token endpoint", "InsertRefreshToken(%s, sub %s)", first, d.sub)
	if err := d.holdsTokens(ctx); err != nil {
		return err
	}
	second, err := d.newJTI()
	if err != nil {
		return err
	}
	old, err := d.b.RotateRefreshToken(ctx, first, second)
	if err != nil {
		return fmt.Errorf("demo: rotate: %w", err)
	}
	d.step("client refreshes", "RotateRefreshToken(%s -> %s): old is now %s", first, second, old.Status)
	if err := d.holdsTokens(ctx); err != nil {
		return err
	}

	d.section("4. Replay of a rotated refresh token")
	third, err := d.newJTI()
	if err != nil {
		return err
	}
	_, err = d.b.RotateRefreshToken(ctx, first, third)
	if err := expect(err, backend.ErrTokenReused, "replay"); err != nil {
		return err
	}
	d.step("thief replays the old", "RotateRefreshToken(%s) -> %s (invalid_grant)", first, sentinel(err))
	d.step("", "every token of %s is revoked (RFC 6749 §10.4, OAuth 2.0 Security BCP)", d.sub)
	live, err := d.b.GetUserRefreshTokens(ctx, d.sub)
	if err != nil {
		return fmt.Errorf("demo: list tokens: %w", err)
	}
	d.holds("live tokens of %s: %d", d.sub, len(live))
	if len(live) != 0 {
		return fmt.Errorf("demo: %s still has %d live token(s) after the replay", d.sub, len(live))
	}
	return d.holdsTokens(ctx)
}

// holdsTokens prints the tokens this run made, as stored.
func (d *demo) holdsTokens(ctx context.Context) error {
	for _, jti := range d.jtis {
		t, err := d.b.GetRefreshToken(ctx, jti)
		if errors.Is(err, backend.ErrNotFound) {
			continue // not inserted (the replay's would-be new token)
		}
		if err != nil {
			return fmt.Errorf("demo: get refresh token: %w", err)
		}
		d.holds("RefreshTokens[%s] status=%s sub=%s scope=%q", t.JTI, t.Status, t.Sub, t.Scope)
	}
	return nil
}

func (d *demo) newJTI() (uuid.UUID, error) {
	id, err := backend.NewUUIDv7()
	if err == nil {
		d.jtis = append(d.jtis, id)
	}
	return id, err
}

// sentinel names the backend sentinel err wraps, for the demo's output.
func sentinel(err error) string {
	for _, s := range []struct {
		err  error
		name string
	}{
		{backend.ErrAuthorizationPending, "ErrAuthorizationPending"},
		{backend.ErrAlreadyUsed, "ErrAlreadyUsed"},
		{backend.ErrTokenReused, "ErrTokenReused"},
		{backend.ErrExpired, "ErrExpired"},
		{backend.ErrNotFound, "ErrNotFound"},
	} {
		if errors.Is(err, s.err) {
			return s.name
		}
	}
	return fmt.Sprint(err)
}

// s256 is the PKCE S256 code challenge of a verifier:
// BASE64URL-NOPAD(SHA256(ASCII(verifier))).
func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func jsonOf(m map[string]any) string {
	if m == nil {
		return "null"
	}
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Sprint(m)
	}
	return string(b)
}
