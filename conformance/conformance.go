package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
)

// start is the instant every suite clock starts at. It is deliberately far
// from the wall clock (a backend that reads the database's NOW() or
// time.Now instead of its injected clock fails the suite) and has a
// fractional second (a backend that does not truncate creation times to
// whole seconds fails too).
var start = time.Date(2025, time.June, 15, 10, 20, 30, 750_000_000, time.UTC)

// Durations the suite passes as maxValidity and maxRetention.
const (
	validity  = 10 * time.Minute
	retention = time.Hour
)

// Run runs the conformance suite against the backends newBackend makes.
//
// newBackend must return a new, empty backend (no flows, no tokens) built
// with every option it is given, in order (the suite passes at least
// backend.WithClock, and sometimes backend.WithUserCodeGenerator); it may add
// options of its own before them. It is called once per subtest with that
// subtest's t; it may register t.Cleanup functions for its own resources
// (they run after the suite has closed the backend) and should call
// t.Fatal or t.Skip when it cannot make a backend. The suite closes every
// backend it got; newBackend must not.
func Run(t *testing.T, newBackend func(t *testing.T, opts ...backend.Option) backend.Backend) {
	t.Helper()
	if newBackend == nil {
		t.Fatal("conformance.Run: newBackend is nil")
	}
	s := &suite{newBackend: newBackend}
	for _, g := range groups() {
		t.Run(g.name, func(t *testing.T) {
			for _, c := range g.cases {
				t.Run(c.name, func(t *testing.T) {
					defer failOnPanic(t)
					c.fn(t, s)
				})
			}
		})
	}
}

// failOnPanic turns a panic of a subtest's own goroutine (a check that
// trips over what a misbehaving backend returned) into the subtest's
// failure, so that one bad answer does not kill the whole test binary.
// The checks themselves never rely on it: they test what they read first.
func failOnPanic(t *testing.T) {
	if r := recover(); r != nil {
		t.Fatalf("panic (a backend returned something the suite did not expect): %v\n%s", r, debug.Stack())
	}
}

type testCase struct {
	name string
	fn   func(t *testing.T, s *suite)
}

type group struct {
	name  string
	cases []testCase
}

func groups() []group {
	return []group{
		{"DeviceFlow", deviceFlowTests()},
		{"ConsumeDeviceFlow", consumeDeviceFlowTests()},
		{"AuthorizationFlow", authorizationFlowTests()},
		{"ConsumeAuthorizationFlow", consumeAuthorizationFlowTests()},
		{"FlowCleanup", flowCleanupTests()},
		{"RefreshToken", refreshTokenTests()},
		{"RotateRefreshToken", rotateTests()},
		{"StreamRefreshTokens", streamTests()},
		{"Families", familyTests()},
		{"CleanExpiredRefreshTokens", refreshCleanupTests()},
		{"BadInput", badInputTests()},
		{"Strings", stringTests()},
		{"Limits", limitTests()},
		{"Copies", copyTests()},
		{"Context", contextTests()},
		{"Lifecycle", lifecycleTests()},
		{"Load", loadTests()},
	}
}

type suite struct {
	newBackend func(t *testing.T, opts ...backend.Option) backend.Backend
}

// harness is one subtest's backend, clock and context.
type harness struct {
	t      *testing.T
	b      backend.Backend
	clock  *Clock
	ctx    context.Context
	closed bool
}

// open makes a fresh backend whose clock starts at start; extra options are
// applied after WithClock.
func (s *suite) open(t *testing.T, opts ...backend.Option) *harness {
	t.Helper()
	h := &harness{t: t, clock: NewClock(start), ctx: t.Context()}
	all := append([]backend.Option{backend.WithClock(h.clock.Now)}, opts...)
	h.b = s.newBackend(t, all...)
	if h.b == nil {
		t.Fatal("newBackend returned a nil backend")
	}
	t.Cleanup(func() {
		if h.closed {
			return
		}
		if err := h.b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return h
}

// close closes the backend now; the cleanup will not close it again.
func (h *harness) close() error {
	h.closed = true
	return h.b.Close()
}

// now is the clock's time as every backend stores it.
func (h *harness) now() time.Time { return h.clock.Now().UTC().Truncate(time.Second) }

// newJTI returns a UUIDv7 made at the clock's current time.
func (h *harness) newJTI() uuid.UUID { return UUIDv7At(h.clock.Now()) }

// ---- device flows ----

func (h *harness) insertDeviceFlow(clientID, scope string) (userCode, deviceCode string) {
	h.t.Helper()
	uc, dc, err := h.b.InsertDeviceFlow(h.ctx, clientID, scope)
	if err != nil {
		h.t.Fatalf("InsertDeviceFlow(%q, %q): %v", clientID, scope, err)
	}
	return uc, dc
}

// readyDeviceFlow inserts a device flow and its ID token (status READY).
func (h *harness) readyDeviceFlow(idToken map[string]any) (userCode, deviceCode string) {
	h.t.Helper()
	uc, dc := h.insertDeviceFlow("client-ready", "openid profile")
	if err := h.b.DeviceFlowInsertIDToken(h.ctx, uc, idToken, validity); err != nil {
		h.t.Fatalf("DeviceFlowInsertIDToken(%q): %v", uc, err)
	}
	return uc, dc
}

// deviceFlowWithStatus inserts a device flow and sets its status (READY via
// an ID token, the others via UpdateDeviceFlowStatus).
func (h *harness) deviceFlowWithStatus(status backend.FlowStatus) (userCode, deviceCode string) {
	h.t.Helper()
	uc, dc := h.insertDeviceFlow("client-"+strings.ToLower(string(status)), "openid")
	switch status {
	case backend.StatusPending:
	case backend.StatusReady:
		if err := h.b.DeviceFlowInsertIDToken(h.ctx, uc, sampleIDToken(), validity); err != nil {
			h.t.Fatalf("DeviceFlowInsertIDToken: %v", err)
		}
	default:
		h.setDeviceStatus(dc, status)
	}
	return uc, dc
}

func (h *harness) setDeviceStatus(deviceCode string, status backend.FlowStatus) {
	h.t.Helper()
	if err := h.b.UpdateDeviceFlowStatus(h.ctx, deviceCode, status); err != nil {
		h.t.Fatalf("UpdateDeviceFlowStatus(%s): %v", status, err)
	}
}

func (h *harness) getDeviceFlow(deviceCode string) backend.DeviceFlow {
	h.t.Helper()
	f, err := h.b.GetDeviceFlow(h.ctx, deviceCode)
	if err != nil {
		h.t.Fatalf("GetDeviceFlow: %v", err)
	}
	return f
}

func (h *harness) wantDeviceStatus(deviceCode string, want backend.FlowStatus) {
	h.t.Helper()
	if got := h.getDeviceFlow(deviceCode).Status; got != want {
		h.t.Errorf("device flow status = %s, want %s", got, want)
	}
}

// countDeviceFlows returns how many device flows exist, destructively: it
// moves the clock far ahead and cleans them all. Call it last.
func (h *harness) countDeviceFlows() int64 {
	h.t.Helper()
	h.clock.Advance(100 * 24 * time.Hour)
	n, err := h.b.CleanExpiredDeviceFlows(h.ctx, time.Second)
	if err != nil {
		h.t.Fatalf("CleanExpiredDeviceFlows: %v", err)
	}
	return n
}

// ---- authorization flows ----

func (h *harness) insertAuthFlow(clientID, scope, challenge, method, redirect string) string {
	h.t.Helper()
	id, err := h.b.InsertAuthorizationFlow(h.ctx, clientID, scope, challenge, method, redirect)
	if err != nil {
		h.t.Fatalf("InsertAuthorizationFlow: %v", err)
	}
	return id
}

func (h *harness) pendingAuthFlow() string {
	h.t.Helper()
	return h.insertAuthFlow("client-auth", "openid email", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "S256", "https://app.example/callback")
}

// readyAuthFlow inserts an authorization flow and its ID token (READY).
func (h *harness) readyAuthFlow(idToken map[string]any) (id, code string) {
	h.t.Helper()
	id = h.pendingAuthFlow()
	code, _, err := h.b.AuthorizationFlowInsertIDToken(h.ctx, id, idToken, validity)
	if err != nil {
		h.t.Fatalf("AuthorizationFlowInsertIDToken(%s): %v", id, err)
	}
	return id, code
}

func (h *harness) getAuthFlow(code string) backend.AuthorizationFlow {
	h.t.Helper()
	f, err := h.b.GetAuthorizationFlow(h.ctx, code, validity)
	if err != nil {
		h.t.Fatalf("GetAuthorizationFlow: %v", err)
	}
	return f
}

func (h *harness) setAuthStatus(code string, status backend.FlowStatus) {
	h.t.Helper()
	if err := h.b.UpdateAuthorizationFlowStatus(h.ctx, code, status); err != nil {
		h.t.Fatalf("UpdateAuthorizationFlowStatus(%s): %v", status, err)
	}
}

func (h *harness) wantAuthStatus(code string, want backend.FlowStatus) {
	h.t.Helper()
	if got := h.getAuthFlow(code).Status; got != want {
		h.t.Errorf("authorization flow status = %s, want %s", got, want)
	}
}

// countAuthFlows returns how many authorization flows exist, destructively
// (see countDeviceFlows). Call it last.
func (h *harness) countAuthFlows() int64 {
	h.t.Helper()
	h.clock.Advance(100 * 24 * time.Hour)
	n, err := h.b.CleanExpiredAuthorizationFlows(h.ctx, time.Second)
	if err != nil {
		h.t.Fatalf("CleanExpiredAuthorizationFlows: %v", err)
	}
	return n
}

// ---- refresh tokens ----

// insertToken inserts a token with a JTI made at the clock's time.
func (h *harness) insertToken(sub, scope string) uuid.UUID {
	h.t.Helper()
	jti := h.newJTI()
	h.insertTokenJTI(jti, sub, scope)
	return jti
}

func (h *harness) insertTokenJTI(jti uuid.UUID, sub, scope string) {
	h.t.Helper()
	if err := h.b.InsertRefreshToken(h.ctx, jti, sub, scope); err != nil {
		h.t.Fatalf("InsertRefreshToken(%s, %q): %v", jti, sub, err)
	}
}

func (h *harness) getToken(jti uuid.UUID) backend.RefreshToken {
	h.t.Helper()
	tok, err := h.b.GetRefreshToken(h.ctx, jti)
	if err != nil {
		h.t.Fatalf("GetRefreshToken(%s): %v", jti, err)
	}
	return tok
}

func (h *harness) wantTokenStatus(jti uuid.UUID, want backend.TokenStatus) {
	h.t.Helper()
	if got := h.getToken(jti).Status; got != want {
		h.t.Errorf("token %s status = %s, want %s", jti, got, want)
	}
}

func (h *harness) wantNoToken(jti uuid.UUID) {
	h.t.Helper()
	_, err := h.b.GetRefreshToken(h.ctx, jti)
	wantErr(h.t, err, backend.ErrNotFound)
}

func (h *harness) list(sub string) []backend.RefreshToken {
	h.t.Helper()
	toks, err := h.b.GetUserRefreshTokens(h.ctx, sub)
	if err != nil {
		h.t.Fatalf("GetUserRefreshTokens(%q): %v", sub, err)
	}
	return toks
}

// wantList checks GetUserRefreshTokens(sub) returns exactly want, in order.
func (h *harness) wantList(sub string, want ...backend.RefreshToken) {
	h.t.Helper()
	got := h.list(sub)
	if len(got) != len(want) {
		h.t.Errorf("GetUserRefreshTokens(%q) returned %d tokens, want %d:\ngot  %v\nwant %v", sub, len(got), len(want), got, want)
		return
	}
	for i := range want {
		if got[i] != want[i] {
			h.t.Errorf("GetUserRefreshTokens(%q)[%d] = %+v, want %+v", sub, i, got[i], want[i])
		}
	}
}

// ---- assertions ----

// wantErr fails unless errors.Is(err, target).
func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("error = %v, want errors.Is(err, %v)", err, target)
	}
}

// wantInvalid fails unless err wraps ErrInvalidInput and its text names field.
func wantInvalid(t *testing.T, err error, field string) {
	t.Helper()
	if !errors.Is(err, backend.ErrInvalidInput) {
		t.Errorf("error = %v, want errors.Is(err, ErrInvalidInput) naming %q", err, field)
		return
	}
	if !strings.Contains(err.Error(), field) {
		t.Errorf("error %q does not name the field %q", err, field)
	}
}

func noErr(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// sameJSON fails unless got and want encode to the same JSON (numbers come
// back from a store as float64, so tokens are compared by their encoding).
func sameJSON(t *testing.T, what string, got, want map[string]any) {
	t.Helper()
	g, err := json.Marshal(got)
	if err != nil {
		t.Fatalf("%s: encode got: %v", what, err)
	}
	w, err := json.Marshal(want)
	if err != nil {
		t.Fatalf("%s: encode want: %v", what, err)
	}
	if string(g) != string(w) {
		t.Errorf("%s = %s, want %s", what, g, w)
	}
}

// wantTime fails unless got is want (already truncated) in UTC.
func wantTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
	if got.Location() != time.UTC {
		t.Errorf("%s location = %v, want UTC", what, got.Location())
	}
}

// sampleIDToken is an ID token with every JSON kind a store must keep.
func sampleIDToken() map[string]any {
	return map[string]any{
		"sub":            "b824d4dc-1f9d-4ee8-8df5-c0ae55d46041",
		"iss":            "https://idp.example.org",
		"email_verified": true,
		"iat":            float64(1718446830),
		"ratio":          0.25,
		"groups":         []any{"dirac_user", "lhcb_prod"},
		"nested":         map[string]any{"preferred_username": "chaen", "null": nil},
	}
}
