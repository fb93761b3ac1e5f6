package conformance

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
)

func badInputTests() []testCase {
	return []testCase{
		{"DeviceFlow", testBadDeviceFlow},
		{"AuthorizationFlow", testBadAuthFlow},
		{"RefreshToken", testBadRefreshToken},
		{"DeviceFlowIDToken", testBadDeviceIDToken},
		{"AuthorizationFlowIDToken", testBadAuthIDToken},
		{"ValidationBeforeState", testValidationBeforeState},
	}
}

func stringTests() []testCase {
	return []testCase{
		{"BoundaryLengthsDeviceFlow", testBoundaryDeviceFlow},
		{"BoundaryLengthsAuthorizationFlow", testBoundaryAuthFlow},
		{"BoundaryLengthsRefreshToken", testBoundaryRefreshToken},
		{"RoundTripDeviceFlow", testRoundTripDeviceFlow},
		{"RoundTripAuthorizationFlow", testRoundTripAuthFlow},
		{"RoundTripRefreshToken", testRoundTripRefreshToken},
		{"RoundTripIDToken", testRoundTripIDToken},
		{"SubjectsMatchExactly", testSubjectsMatchExactly},
		{"EmptyOptionalFields", testEmptyOptionalFields},
	}
}

// n returns a string of exactly count code points made of unit repeated.
func n(unit string, count int) string {
	out := strings.Repeat(unit, count/utf8.RuneCountInString(unit))
	for utf8.RuneCountInString(out) < count {
		out += "a"
	}
	return out
}

// badString is a value for a field that must be rejected.
type badString struct {
	name, value string
}

// badStrings returns over-long, NUL-bearing and invalid-UTF-8 values for a
// field of at most max characters; empty too when required.
func badStrings(max int, required bool) []badString {
	out := []badString{
		{fmt.Sprintf("%d ASCII characters", max+1), n("a", max+1)},
		{fmt.Sprintf("%d two-byte characters", max+1), n("é", max+1)},
		{"NUL", "ab\x00cd"},
		{"invalid UTF-8", "ab\xff\xfecd"},
	}
	if required {
		out = append(out, badString{"empty", ""})
	}
	return out
}

func testBadDeviceFlow(t *testing.T, s *suite) {
	h := s.open(t)
	for _, b := range badStrings(backend.MaxClientIDLen, true) {
		_, _, err := h.b.InsertDeviceFlow(h.ctx, b.value, "openid")
		t.Run("client_id "+b.name, func(t *testing.T) { wantInvalid(t, err, "client_id") })
	}
	for _, b := range badStrings(backend.MaxScopeLen, false) {
		_, _, err := h.b.InsertDeviceFlow(h.ctx, "client", b.value)
		t.Run("scope "+b.name, func(t *testing.T) { wantInvalid(t, err, "scope") })
	}
	if got := h.countDeviceFlows(); got != 0 {
		t.Errorf("%d device flows written by refused calls, want 0", got)
	}
}

func testBadAuthFlow(t *testing.T, s *suite) {
	h := s.open(t)
	type args struct{ clientID, scope, challenge, method, redirect string }
	good := args{"client", "openid", "challenge", "S256", "https://app.example/cb"}
	fields := []struct {
		field    string
		max      int
		required bool
		set      func(a *args, v string)
	}{
		{"client_id", backend.MaxClientIDLen, true, func(a *args, v string) { a.clientID = v }},
		{"scope", backend.MaxScopeLen, false, func(a *args, v string) { a.scope = v }},
		{"code_challenge_method", backend.MaxCodeChallengeMethodLen, false, func(a *args, v string) { a.method = v }},
		{"code_challenge", backend.MaxCodeChallengeLen, false, func(a *args, v string) { a.challenge = v }},
		{"redirect_uri", backend.MaxRedirectURILen, false, func(a *args, v string) { a.redirect = v }},
	}
	for _, f := range fields {
		for _, b := range badStrings(f.max, f.required) {
			a := good
			f.set(&a, b.value)
			_, err := h.b.InsertAuthorizationFlow(h.ctx, a.clientID, a.scope, a.challenge, a.method, a.redirect)
			t.Run(f.field+" "+b.name, func(t *testing.T) { wantInvalid(t, err, f.field) })
		}
	}
	if got := h.countAuthFlows(); got != 0 {
		t.Errorf("%d authorization flows written by refused calls, want 0", got)
	}
}

func testBadRefreshToken(t *testing.T, s *suite) {
	h := s.open(t)
	for _, b := range badStrings(backend.MaxSubLen, true) {
		err := h.b.InsertRefreshToken(h.ctx, h.newJTI(), b.value, "openid")
		t.Run("sub "+b.name, func(t *testing.T) { wantInvalid(t, err, "sub") })
	}
	for _, b := range badStrings(backend.MaxScopeLen, false) {
		err := h.b.InsertRefreshToken(h.ctx, h.newJTI(), "alice", b.value)
		t.Run("scope "+b.name, func(t *testing.T) { wantInvalid(t, err, "scope") })
	}
	for name, jti := range map[string]uuid.UUID{"nil": uuid.Nil, "v4": uuid.New()} {
		err := h.b.InsertRefreshToken(h.ctx, jti, "alice", "openid")
		t.Run("jti "+name, func(t *testing.T) { wantInvalid(t, err, "jti") })
	}
	h.wantList("")
}

// badIDTokens are maps that do not encode as a JSON object.
func badIDTokens() map[string]map[string]any {
	return map[string]map[string]any{
		"nil map":        nil,
		"chan value":     {"sub": "alice", "c": make(chan int)},
		"NaN":            {"sub": "alice", "n": math.NaN()},
		"+Inf nested":    {"sub": "alice", "nested": map[string]any{"x": math.Inf(1)}},
		"func in a list": {"sub": "alice", "l": []any{"ok", func() {}}},
	}
}

func testBadDeviceIDToken(t *testing.T, s *suite) {
	h := s.open(t)
	uc, dc := h.insertDeviceFlow("c", "")
	for name, tok := range badIDTokens() {
		err := h.b.DeviceFlowInsertIDToken(h.ctx, uc, tok, validity)
		t.Run(name, func(t *testing.T) { wantInvalid(t, err, "id_token") })
	}
	f := h.getDeviceFlow(dc)
	if f.Status != backend.StatusPending || f.IDToken != nil {
		t.Errorf("after refused ID tokens: status %s, IDToken %v; want PENDING, nil", f.Status, f.IDToken)
	}
}

func testBadAuthIDToken(t *testing.T, s *suite) {
	h := s.open(t)
	id := h.pendingAuthFlow()
	for name, tok := range badIDTokens() {
		code, _, err := h.b.AuthorizationFlowInsertIDToken(h.ctx, id, tok, validity)
		t.Run(name, func(t *testing.T) {
			wantInvalid(t, err, "id_token")
			if code != "" {
				t.Errorf("a code %q was returned with the error", code)
			}
		})
	}
	// Nothing written: the flow is still PENDING.
	_, _, err := h.b.AuthorizationFlowInsertIDToken(h.ctx, id, sampleIDToken(), validity)
	noErr(t, err, "AuthorizationFlowInsertIDToken after the refused ones")
}

func testValidationBeforeState(t *testing.T, s *suite) {
	h := s.open(t)
	existing := h.insertToken("alice", "s")
	t.Run("InsertRefreshToken existing JTI, empty sub", func(t *testing.T) {
		wantInvalid(t, h.b.InsertRefreshToken(h.ctx, existing, "", "s"), "sub")
	})
	t.Run("DeviceFlowInsertIDToken unknown code, bad token", func(t *testing.T) {
		wantInvalid(t, h.b.DeviceFlowInsertIDToken(h.ctx, "BCDFGHJK", map[string]any{"n": math.NaN()}, validity), "id_token")
	})
	t.Run("AuthorizationFlowInsertIDToken unknown id, bad token", func(t *testing.T) {
		_, _, err := h.b.AuthorizationFlowInsertIDToken(h.ctx, h.newJTI().String(), nil, validity)
		wantInvalid(t, err, "id_token")
	})
	t.Run("RotateRefreshToken unknown old, bad new", func(t *testing.T) {
		_, err := h.b.RotateRefreshToken(h.ctx, h.newJTI(), uuid.New())
		wantInvalid(t, err, "jti")
	})
	t.Run("UpdateDeviceFlowStatus unknown code, bad status", func(t *testing.T) {
		wantInvalid(t, h.b.UpdateDeviceFlowStatus(h.ctx, "nope", "NOPE"), "status")
	})
	t.Run("UpdateAuthorizationFlowStatus unknown code, bad status", func(t *testing.T) {
		wantInvalid(t, h.b.UpdateAuthorizationFlowStatus(h.ctx, "nope", "NOPE"), "status")
	})
	h.wantList("", created(existing, "alice", "s"))
}

// Boundary values: exactly the column's length in code points, with
// multi-byte characters so that a backend counting bytes fails.
var (
	maxClientID  = n("é", backend.MaxClientIDLen)
	maxScope     = n("数", backend.MaxScopeLen-2) + "🔑é"
	maxChallenge = n("ü", backend.MaxCodeChallengeLen)
	maxMethod    = "数é🔑'%_\\x"
	maxRedirect  = "https://app.example/" + n("路", backend.MaxRedirectURILen-20)
	maxSub       = n("é", backend.MaxSubLen-1) + "🚀"
)

func testBoundaryDeviceFlow(t *testing.T, s *suite) {
	h := s.open(t)
	uc, dc := h.insertDeviceFlow(maxClientID, maxScope)
	if f := h.getDeviceFlow(dc); f.ClientID != maxClientID || f.Scope != maxScope {
		t.Errorf("boundary values not read back verbatim: client %d chars, scope %d chars",
			utf8.RuneCountInString(f.ClientID), utf8.RuneCountInString(f.Scope))
	}
	scope, err := h.b.DeviceFlowValidateUserCode(h.ctx, uc, validity)
	noErr(t, err, "DeviceFlowValidateUserCode")
	if scope != maxScope {
		t.Errorf("scope not verbatim (%d chars)", utf8.RuneCountInString(scope))
	}
}

func testBoundaryAuthFlow(t *testing.T, s *suite) {
	if utf8.RuneCountInString(maxMethod) != backend.MaxCodeChallengeMethodLen {
		t.Fatalf("test bug: method has %d characters", utf8.RuneCountInString(maxMethod))
	}
	h := s.open(t)
	id := h.insertAuthFlow(maxClientID, maxScope, maxChallenge, maxMethod, maxRedirect)
	code, redirect, err := h.b.AuthorizationFlowInsertIDToken(h.ctx, id, sampleIDToken(), validity)
	noErr(t, err, "AuthorizationFlowInsertIDToken")
	if redirect != maxRedirect {
		t.Errorf("redirect URI not verbatim")
	}
	f := h.getAuthFlow(code)
	if f.ClientID != maxClientID || f.Scope != maxScope || f.CodeChallenge != maxChallenge ||
		f.CodeChallengeMethod != maxMethod || f.RedirectURI != maxRedirect {
		t.Errorf("boundary values not read back verbatim: %+v", f)
	}
}

func testBoundaryRefreshToken(t *testing.T, s *suite) {
	h := s.open(t)
	jti := h.insertToken(maxSub, maxScope)
	if got := h.getToken(jti); got != created(jti, maxSub, maxScope) {
		t.Errorf("boundary values not read back verbatim: sub %d chars, scope %d chars",
			utf8.RuneCountInString(got.Sub), utf8.RuneCountInString(got.Scope))
	}
	h.wantList(maxSub, created(jti, maxSub, maxScope))
	next := h.newJTI()
	_, err := h.b.RotateRefreshToken(h.ctx, jti, next)
	noErr(t, err, "RotateRefreshToken")
	h.wantList(maxSub, of(created(next, maxSub, maxScope), jti))
	cnt, err := h.b.RevokeUserRefreshTokens(h.ctx, maxSub)
	noErr(t, err, "RevokeUserRefreshTokens")
	if cnt != 1 {
		t.Errorf("RevokeUserRefreshTokens = %d, want 1", cnt)
	}
}

// hostileStrings must be stored and read back verbatim in every string field.
func hostileStrings() []string {
	return []string{
		"'; DROP TABLE x; --",
		`Robert'); DROP TABLE "RefreshTokens";--`,
		`back\slash \\ \' \" \n`,
		"100%_done % _",
		`"double" 'single' ` + "`back`",
		"数据库 ünïcödé Ελληνικά עברית",
		"emoji 🔑🚀👩‍💻 ✓",
		"tab\tnew\nline\r\nend",
		"$1 ? :name @p1 %s %v",
		"NULL",
		"  leading and trailing  ",
		`{"json": [1, 2], "x": null}`,
		"e\u0301 vs é", // combining accent vs precomposed
	}
}

// shortHostile fits an 8-character column.
func shortHostile(s string) string {
	if utf8.RuneCountInString(s) <= backend.MaxCodeChallengeMethodLen {
		return s
	}
	return string([]rune(s)[:backend.MaxCodeChallengeMethodLen])
}

func testRoundTripDeviceFlow(t *testing.T, s *suite) {
	h := s.open(t)
	for _, v := range hostileStrings() {
		uc, dc := h.insertDeviceFlow(v, v+" scope")
		f := h.getDeviceFlow(dc)
		if f.ClientID != v || f.Scope != v+" scope" {
			t.Errorf("stored %q, read back client %q scope %q", v, f.ClientID, f.Scope)
		}
		scope, err := h.b.DeviceFlowValidateUserCode(h.ctx, uc, validity)
		if err != nil || scope != v+" scope" {
			t.Errorf("DeviceFlowValidateUserCode = %q, %v; want %q", scope, err, v+" scope")
		}
	}
}

func testRoundTripAuthFlow(t *testing.T, s *suite) {
	h := s.open(t)
	for _, v := range hostileStrings() {
		method := shortHostile(v)
		id := h.insertAuthFlow(v, v+"1", v+"2", method, v+"3")
		code, redirect, err := h.b.AuthorizationFlowInsertIDToken(h.ctx, id, sampleIDToken(), validity)
		noErr(t, err, "AuthorizationFlowInsertIDToken")
		if redirect != v+"3" {
			t.Errorf("redirect %q, want %q", redirect, v+"3")
		}
		f := h.getAuthFlow(code)
		if f.ClientID != v || f.Scope != v+"1" || f.CodeChallenge != v+"2" || f.CodeChallengeMethod != method || f.RedirectURI != v+"3" {
			t.Errorf("stored %q, read back %+v", v, f)
		}
	}
}

func testRoundTripRefreshToken(t *testing.T, s *suite) {
	h := s.open(t)
	var all []backend.RefreshToken
	for _, v := range hostileStrings() {
		jti := h.insertToken(v, v+" scope")
		want := created(jti, v, v+" scope")
		all = append(all, want)
		if got := h.getToken(jti); got != want {
			t.Errorf("stored %+v, read back %+v", want, got)
		}
		h.wantList(v, want)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].JTI.String() < all[j].JTI.String() })
	h.wantList("", all...)
	for _, tok := range all {
		n, err := h.b.RevokeUserRefreshTokens(h.ctx, tok.Sub)
		if err != nil || n != 1 {
			t.Errorf("RevokeUserRefreshTokens(%q) = %d, %v; want 1", tok.Sub, n, err)
		}
	}
}

func testRoundTripIDToken(t *testing.T, s *suite) {
	h := s.open(t)
	tok := map[string]any{}
	for i, v := range hostileStrings() {
		tok[v] = v
		tok[fmt.Sprintf("k%d", i)] = []any{v, map[string]any{v: v}}
	}
	uc, dc := h.insertDeviceFlow("c", "")
	noErr(t, h.b.DeviceFlowInsertIDToken(h.ctx, uc, tok, validity), "DeviceFlowInsertIDToken")
	sameJSON(t, "device flow IDToken", h.getDeviceFlow(dc).IDToken, tok)
	id := h.pendingAuthFlow()
	code, _, err := h.b.AuthorizationFlowInsertIDToken(h.ctx, id, tok, validity)
	noErr(t, err, "AuthorizationFlowInsertIDToken")
	sameJSON(t, "authorization flow IDToken", h.getAuthFlow(code).IDToken, tok)
}

func testSubjectsMatchExactly(t *testing.T, s *suite) {
	h := s.open(t)
	// Subjects (OIDC "sub") are case-sensitive opaque strings: no LIKE
	// wildcards, no case folding, no trailing-space padding, no Unicode folding.
	subs := []string{"alice", "Alice", "ALICE", "alice ", " alice", "al%", "al_ce", "a%", "é", "e\u0301", "ß", "ss"}
	toks := map[string]uuid.UUID{}
	for _, sub := range subs {
		toks[sub] = h.insertToken(sub, "s")
	}
	for _, sub := range subs {
		h.wantList(sub, created(toks[sub], sub, "s"))
	}
	for _, sub := range []string{"al%", "alice", "é"} {
		n, err := h.b.RevokeUserRefreshTokens(h.ctx, sub)
		if err != nil || n != 1 {
			t.Errorf("RevokeUserRefreshTokens(%q) = %d, %v; want 1", sub, n, err)
		}
	}
	for _, sub := range subs {
		want := backend.TokenCreated
		if sub == "al%" || sub == "alice" || sub == "é" {
			want = backend.TokenRevoked
		}
		if got := h.getToken(toks[sub]).Status; got != want {
			t.Errorf("token of %q: status %s, want %s", sub, got, want)
		}
	}
}

func testEmptyOptionalFields(t *testing.T, s *suite) {
	h := s.open(t)
	uc, dc := h.insertDeviceFlow("c", "")
	if f := h.getDeviceFlow(dc); f.Scope != "" {
		t.Errorf("device flow scope = %q, want empty", f.Scope)
	}
	if scope, err := h.b.DeviceFlowValidateUserCode(h.ctx, uc, validity); err != nil || scope != "" {
		t.Errorf("DeviceFlowValidateUserCode = %q, %v; want empty scope", scope, err)
	}
	id := h.insertAuthFlow("c", "", "", "", "")
	code, redirect, err := h.b.AuthorizationFlowInsertIDToken(h.ctx, id, sampleIDToken(), validity)
	noErr(t, err, "AuthorizationFlowInsertIDToken")
	if redirect != "" {
		t.Errorf("redirect URI = %q, want empty", redirect)
	}
	f := h.getAuthFlow(code)
	if f.Scope != "" || f.CodeChallenge != "" || f.CodeChallengeMethod != "" || f.RedirectURI != "" {
		t.Errorf("empty fields read back as %+v", f)
	}
	jti := h.insertToken("alice", "")
	if got := h.getToken(jti); got != created(jti, "alice", "") {
		t.Errorf("token with empty scope read back as %+v", got)
	}
}

func limitTests() []testCase {
	return []testCase{
		{"IDTokenAtTheLimits", testIDTokenAtLimits},
		{"IDTokenOverTheLimits", testIDTokenOverLimits},
		{"NegativeRetention", testNegativeRetention},
	}
}

// deepIDToken is an ID token of exactly depth levels as
// backend.MaxIDTokenDepth counts them: depth-1 objects and arrays nested in
// one another (the token itself the outermost), a string innermost.
func deepIDToken(depth int) map[string]any {
	var v any = "innermost"
	for range depth - 2 {
		v = []any{v}
	}
	return map[string]any{"sub": "alice", "deep": v}
}

// bigIDToken is an ID token whose JSON encoding is exactly n bytes.
func bigIDToken(n int) map[string]any {
	base := len(`{"pad":"","sub":"alice"}`)
	return map[string]any{"sub": "alice", "pad": strings.Repeat("x", n-base)}
}

// testIDTokenAtLimits stores ID tokens exactly at the documented limits
// (backend.MaxIDTokenDepth levels, backend.MaxIDTokenBytes bytes) on both
// flows, and consumes them: every backend accepts them and gives them back.
func testIDTokenAtLimits(t *testing.T, s *suite) {
	h := s.open(t)
	for name, tok := range map[string]map[string]any{
		"depth": deepIDToken(backend.MaxIDTokenDepth),
		"size":  bigIDToken(backend.MaxIDTokenBytes),
	} {
		t.Run(name, func(t *testing.T) {
			if b, err := backend.EncodeIDToken(tok); err != nil || (name == "size" && len(b) != backend.MaxIDTokenBytes) {
				t.Fatalf("fixture: %d bytes, %v", len(b), err)
			}
			_, dc := h.readyDeviceFlow(tok)
			f, err := h.b.ConsumeDeviceFlow(h.ctx, dc, validity)
			noErr(t, err, "ConsumeDeviceFlow")
			if !reflect.DeepEqual(f.IDToken, roundTrip(t, tok)) {
				t.Errorf("device flow: the consumed ID token differs from the stored one")
			}
			_, code := h.readyAuthFlow(tok)
			a, err := h.b.ConsumeAuthorizationFlow(h.ctx, code, validity)
			noErr(t, err, "ConsumeAuthorizationFlow")
			if !reflect.DeepEqual(a.IDToken, roundTrip(t, tok)) {
				t.Errorf("authorization flow: the consumed ID token differs from the stored one")
			}
		})
	}
}

// roundTrip is tok as it reads back: encoded and decoded as JSON.
func roundTrip(t *testing.T, tok map[string]any) map[string]any {
	t.Helper()
	b, err := backend.EncodeIDToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	m, err := backend.DecodeIDToken(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// testIDTokenOverLimits: one level deeper or one byte larger than the
// limits is ErrInvalidInput naming id_token on both flows, and nothing is
// written (the flows stay PENDING).
func testIDTokenOverLimits(t *testing.T, s *suite) {
	h := s.open(t)
	uc, dc := h.insertDeviceFlow("c", "")
	id := h.pendingAuthFlow()
	for name, tok := range map[string]map[string]any{
		fmt.Sprintf("depth %d", backend.MaxIDTokenDepth+1): deepIDToken(backend.MaxIDTokenDepth + 1),
		"depth 100000": deepIDToken(100000),
		fmt.Sprintf("size %d", backend.MaxIDTokenBytes+1): bigIDToken(backend.MaxIDTokenBytes + 1),
		"size 16 MiB": bigIDToken(16 << 20),
	} {
		t.Run(name, func(t *testing.T) {
			wantInvalid(t, h.b.DeviceFlowInsertIDToken(h.ctx, uc, tok, validity), "id_token")
			code, _, err := h.b.AuthorizationFlowInsertIDToken(h.ctx, id, tok, validity)
			wantInvalid(t, err, "id_token")
			if code != "" {
				t.Errorf("a code %q was returned with the error", code)
			}
		})
	}
	h.wantDeviceStatus(dc, backend.StatusPending)
	_, _, err := h.b.AuthorizationFlowInsertIDToken(h.ctx, id, sampleIDToken(), validity)
	noErr(t, err, "AuthorizationFlowInsertIDToken after the refused ones")
}

// testNegativeRetention: a negative maxRetention is ErrInvalidInput
// naming max_retention on the three clean-ups, and deletes nothing.
func testNegativeRetention(t *testing.T, s *suite) {
	h := s.open(t)
	_, dc := h.insertDeviceFlow("c", "")
	_, code := h.readyAuthFlow(sampleIDToken())
	jti := h.insertToken("alice", "s")
	for name, clean := range map[string]func(context.Context, time.Duration) (int64, error){
		"CleanExpiredDeviceFlows":        h.b.CleanExpiredDeviceFlows,
		"CleanExpiredAuthorizationFlows": h.b.CleanExpiredAuthorizationFlows,
		"CleanExpiredRefreshTokens":      h.b.CleanExpiredRefreshTokens,
	} {
		t.Run(name, func(t *testing.T) {
			n, err := clean(h.ctx, -time.Hour)
			wantInvalid(t, err, "max_retention")
			if n != 0 {
				t.Errorf("deleted %d rows", n)
			}
		})
	}
	h.getDeviceFlow(dc)
	h.getAuthFlow(code)
	h.getToken(jti)
}
