package reliability

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
)

// hostileUnit is repeated to fill fields: SQL and LIKE metacharacters,
// quotes of every engine, escapes, placeholders, and 2-, 3- and 4-byte
// UTF-8 (a 4-byte character needs utf8mb4 on MySQL).
const hostileUnit = `'";--\%_` + "`" + `$1?:p@x{}[]é数🔑` + "\t\n\r\u2028\u00a0\ufeff/*x*/"

// hostileOf returns exactly n code points of hostileUnit, repeated.
func hostileOf(n int) string {
	unit := []rune(hostileUnit)
	out := make([]rune, n)
	for i := range out {
		out[i] = unit[i%len(unit)]
	}
	return string(out)
}

// hostileIDToken has hostile keys and values, nested.
func hostileIDToken() map[string]any {
	tok := map[string]any{
		"sub":                             hostileOf(256),
		hostileOf(40):                     hostileOf(300),
		`'); DROP TABLE "DeviceFlows";--`: `\u0000 is not a NUL, "quoted" 'single'`,
		"</script><script>":               []any{"🔑", "数据库", `\\`, 1e300, -0.5, true, nil},
		"nested":                          map[string]any{"$where": "1=1", "a.b": map[string]any{"%": "_"}},
		"":                                "empty key",
	}
	return tok
}

// TestHostileInputStoredVerbatim stores, in every string field, values of
// the maximum length made of SQL metacharacters and multi-byte characters,
// then reads the rows back with raw SQL and compares them byte for byte
// (and the stored ID tokens as JSON): no escaping, truncation or
// re-encoding on the way in.
func TestHostileInputStoredVerbatim(t *testing.T) {
	for _, engine := range sqlEngines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, engine)
			b := e.open(t)
			ctx := t.Context()

			clientID := hostileOf(backend.MaxClientIDLen)
			scope := hostileOf(backend.MaxScopeLen)
			challenge := hostileOf(backend.MaxCodeChallengeLen)
			method := hostileOf(backend.MaxCodeChallengeMethodLen)
			redirect := hostileOf(backend.MaxRedirectURILen)
			sub := hostileOf(backend.MaxSubLen)
			idToken := hostileIDToken()

			uc, dc, err := b.InsertDeviceFlow(ctx, clientID, scope)
			if err != nil {
				t.Fatalf("InsertDeviceFlow: %v", err)
			}
			if err := b.DeviceFlowInsertIDToken(ctx, uc, idToken, validity); err != nil {
				t.Fatalf("DeviceFlowInsertIDToken: %v", err)
			}
			id, err := b.InsertAuthorizationFlow(ctx, clientID, scope, challenge, method, redirect)
			if err != nil {
				t.Fatalf("InsertAuthorizationFlow: %v", err)
			}
			code, gotRedirect, err := b.AuthorizationFlowInsertIDToken(ctx, id, idToken, validity)
			if err != nil {
				t.Fatalf("AuthorizationFlowInsertIDToken: %v", err)
			}
			if gotRedirect != redirect {
				t.Errorf("returned redirect URI differs from the stored one")
			}
			jti := e.newJTI()
			if err := b.InsertRefreshToken(ctx, jti, sub, scope); err != nil {
				t.Fatalf("InsertRefreshToken: %v", err)
			}

			// Raw rows, by key.
			var dClient, dScope, dCode, dTok []byte
			if err := e.raw.QueryRowContext(ctx, e.q(`SELECT "ClientID","Scope","DeviceCode","IDToken" FROM "DeviceFlows" WHERE "UserCode"=?`), uc).
				Scan(&dClient, &dScope, &dCode, &dTok); err != nil {
				t.Fatalf("raw device flow: %v", err)
			}
			wantBytes(t, "DeviceFlows.ClientID", dClient, clientID)
			wantBytes(t, "DeviceFlows.Scope", dScope, scope)
			wantBytes(t, "DeviceFlows.DeviceCode", dCode, backend.HashCode(dc))
			wantJSON(t, "DeviceFlows.IDToken", dTok, idToken)

			var aClient, aScope, aChallenge, aMethod, aRedirect, aCode, aTok []byte
			if err := e.raw.QueryRowContext(ctx, e.q(`SELECT "ClientID","Scope","CodeChallenge","CodeChallengeMethod","RedirectURI","Code","IDToken" FROM "AuthorizationFlows" WHERE "UUID"=?`), uuidArg(e, id)).
				Scan(&aClient, &aScope, &aChallenge, &aMethod, &aRedirect, &aCode, &aTok); err != nil {
				t.Fatalf("raw authorization flow: %v", err)
			}
			wantBytes(t, "AuthorizationFlows.ClientID", aClient, clientID)
			wantBytes(t, "AuthorizationFlows.Scope", aScope, scope)
			wantBytes(t, "AuthorizationFlows.CodeChallenge", aChallenge, challenge)
			wantBytes(t, "AuthorizationFlows.CodeChallengeMethod", aMethod, method)
			wantBytes(t, "AuthorizationFlows.RedirectURI", aRedirect, redirect)
			wantBytes(t, "AuthorizationFlows.Code", aCode, backend.HashCode(code))
			wantJSON(t, "AuthorizationFlows.IDToken", aTok, idToken)

			var rSub, rScope []byte
			if err := e.raw.QueryRowContext(ctx, e.q(`SELECT "Sub","Scope" FROM "RefreshTokens" WHERE "JTI"=?`), jtiArg(e, jti)).
				Scan(&rSub, &rScope); err != nil {
				t.Fatalf("raw refresh token: %v", err)
			}
			wantBytes(t, "RefreshTokens.Sub", rSub, sub)
			wantBytes(t, "RefreshTokens.Scope", rScope, scope)

			// The same values find their rows, and only them.
			if toks, err := b.GetUserRefreshTokens(ctx, sub); err != nil || len(toks) != 1 || toks[0].JTI != jti {
				t.Errorf("GetUserRefreshTokens(hostile sub) = %v, %v", toks, err)
			}
			if n, err := b.RevokeUserRefreshTokens(ctx, string([]rune(sub)[:200])+"%"); err != nil || n != 0 {
				t.Errorf("RevokeUserRefreshTokens(prefix + %%) = %d, %v; want 0 (no pattern matching)", n, err)
			}
			if n, err := b.RevokeUserRefreshTokens(ctx, sub); err != nil || n != 1 {
				t.Errorf("RevokeUserRefreshTokens(hostile sub) = %d, %v; want 1", n, err)
			}
			if f, err := b.ConsumeAuthorizationFlow(ctx, code, validity); err != nil || f.ClientID != clientID || f.RedirectURI != redirect {
				t.Errorf("ConsumeAuthorizationFlow: %v (client %d chars)", err, utf8.RuneCountInString(f.ClientID))
			}
			if n := e.count(t, "DeviceFlows") + e.count(t, "AuthorizationFlows") + e.count(t, "RefreshTokens"); n != 3 {
				t.Errorf("%d rows in the three tables, want 3", n)
			}
		})
	}
}

// TestRefusedInputWritesNothing sends values one character too long (in
// multi-byte characters, so that a byte count would not catch them),
// malformed UTF-8, NUL, and ID tokens that are not JSON objects, to every
// method that writes them: each call returns ErrInvalidInput, and a raw
// COUNT(*) shows nothing written.
func TestRefusedInputWritesNothing(t *testing.T) {
	for _, engine := range sqlEngines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, engine)
			b := e.open(t)
			ctx := t.Context()
			type call struct {
				name string
				fn   func() error
			}
			over := func(max int) string { return hostileOf(max) + "🔑" }
			var calls []call
			for _, bad := range []struct{ name, v string }{
				{"over-long", over(backend.MaxClientIDLen)},
				{"invalid UTF-8", "ok\xc3\x28ok"},
				{"NUL", "a\x00b"},
				{"empty", ""},
			} {
				calls = append(calls,
					call{"InsertDeviceFlow client_id " + bad.name, func() error { _, _, err := b.InsertDeviceFlow(ctx, bad.v, "s"); return err }},
					call{"InsertAuthorizationFlow client_id " + bad.name, func() error {
						_, err := b.InsertAuthorizationFlow(ctx, bad.v, "s", "c", "S256", "https://x")
						return err
					}},
				)
				if bad.name != "over-long" { // sub's limit is 256: its over-long value is below
					calls = append(calls, call{"InsertRefreshToken sub " + bad.name, func() error { return b.InsertRefreshToken(ctx, e.newJTI(), bad.v, "s") }})
				}
			}
			for _, f := range []struct {
				name string
				max  int
				set  func(a *[5]string, v string)
			}{
				{"scope", backend.MaxScopeLen, func(a *[5]string, v string) { a[1] = v }},
				{"code_challenge", backend.MaxCodeChallengeLen, func(a *[5]string, v string) { a[2] = v }},
				{"code_challenge_method", backend.MaxCodeChallengeMethodLen, func(a *[5]string, v string) { a[3] = v }},
				{"redirect_uri", backend.MaxRedirectURILen, func(a *[5]string, v string) { a[4] = v }},
			} {
				for _, v := range []string{over(f.max), "\xff", "x\x00"} {
					a := [5]string{"client", "s", "c", "S256", "https://x"}
					f.set(&a, v)
					calls = append(calls, call{"InsertAuthorizationFlow " + f.name, func() error {
						_, err := b.InsertAuthorizationFlow(ctx, a[0], a[1], a[2], a[3], a[4])
						return err
					}})
				}
			}
			calls = append(calls,
				call{"InsertDeviceFlow scope over-long", func() error { _, _, err := b.InsertDeviceFlow(ctx, "c", over(backend.MaxScopeLen)); return err }},
				call{"InsertRefreshToken sub over-long", func() error { return b.InsertRefreshToken(ctx, e.newJTI(), over(backend.MaxSubLen), "s") }},
				call{"InsertRefreshToken scope over-long", func() error { return b.InsertRefreshToken(ctx, e.newJTI(), "s", over(backend.MaxScopeLen)) }},
				call{"InsertRefreshToken v4 JTI", func() error { return b.InsertRefreshToken(ctx, uuid.New(), "s", "s") }},
				call{"InsertRefreshToken nil JTI", func() error { return b.InsertRefreshToken(ctx, uuid.Nil, "s", "s") }},
			)
			for _, c := range calls {
				if err := c.fn(); !errors.Is(err, backend.ErrInvalidInput) {
					t.Errorf("%s: error = %v, want ErrInvalidInput", c.name, err)
				}
			}
			for _, table := range []string{"DeviceFlows", "AuthorizationFlows", "RefreshTokens"} {
				if n := e.count(t, table); n != 0 {
					t.Errorf("raw COUNT(*) of %s = %d after %d refused calls, want 0", table, n, len(calls))
				}
			}

			// Refused ID tokens leave the flows PENDING with no token.
			uc, _, err := b.InsertDeviceFlow(ctx, "c", "s")
			if err != nil {
				t.Fatal(err)
			}
			id, err := b.InsertAuthorizationFlow(ctx, "c", "s", "c", "S256", "https://x")
			if err != nil {
				t.Fatal(err)
			}
			for name, tok := range map[string]map[string]any{
				"nil": nil, "NaN": {"x": math.NaN()}, "Inf": {"x": []any{math.Inf(-1)}}, "chan": {"c": make(chan int)},
			} {
				if err := b.DeviceFlowInsertIDToken(ctx, uc, tok, validity); !errors.Is(err, backend.ErrInvalidInput) {
					t.Errorf("DeviceFlowInsertIDToken(%s) = %v, want ErrInvalidInput", name, err)
				}
				if _, _, err := b.AuthorizationFlowInsertIDToken(ctx, id, tok, validity); !errors.Is(err, backend.ErrInvalidInput) {
					t.Errorf("AuthorizationFlowInsertIDToken(%s) = %v, want ErrInvalidInput", name, err)
				}
			}
			for _, table := range []string{"DeviceFlows", "AuthorizationFlows"} {
				var n int
				if err := e.raw.QueryRowContext(ctx, e.q(`SELECT COUNT(*) FROM "`+table+`" WHERE "Status"<>'PENDING' OR "IDToken" IS NOT NULL`)).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if n != 0 {
					t.Errorf("%s: %d rows changed by refused ID tokens", table, n)
				}
			}
			t.Logf("%s: %d refused writes and 8 refused ID tokens, nothing stored", engine, len(calls))
		})
	}
}

func uuidArg(e *env, id string) string {
	if e.engine == "postgres" {
		return id
	}
	return strings.ReplaceAll(id, "-", "")
}

func wantBytes(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	if !bytes.Equal(got, []byte(want)) {
		t.Errorf("%s: stored %d bytes (%d characters), want the %d bytes given, verbatim:\n got  %q\n want %q",
			what, len(got), utf8.RuneCount(got), len(want), got, want)
	}
}

// wantJSON checks that a stored IDToken column holds a JSON object equal to
// want (numbers as float64, as encoding/json decodes them).
func wantJSON(t *testing.T, what string, got []byte, want map[string]any) {
	t.Helper()
	var g map[string]any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Errorf("%s: stored %q is not a JSON object: %v", what, got, err)
		return
	}
	wb, _ := json.Marshal(want)
	var w map[string]any
	if err := json.Unmarshal(wb, &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s: stored JSON differs:\n got  %s\n want %s", what, got, wb)
	}
}
