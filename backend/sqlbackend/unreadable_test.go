package sqlbackend_test

import (
	"time"

	"errors"
	"testing"

	"github.com/authdb/authdb/backend"
)

// TestConsumeUnreadableIDToken: a READY flow whose stored ID token is not
// a JSON object (another program wrote an array, a string or null there)
// is not consumed: ConsumeDeviceFlow and ConsumeAuthorizationFlow return
// ErrFlowFailed and the flow stays READY, its code not burnt; once the
// token is an object again, the flow is consumed.
func TestConsumeUnreadableIDToken(t *testing.T) {
	const validity = time.Hour
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			u := newURL(t, e)
			b := open(t, u)
			db := rawDB(t, e, u)
			ctx := t.Context()
			for _, bad := range []string{`[1,2]`, `"a string"`, `null`} {
				uc, dc, err := b.InsertDeviceFlow(ctx, "client", "openid")
				if err != nil {
					t.Fatal(err)
				}
				if err := b.DeviceFlowInsertIDToken(ctx, uc, map[string]any{"sub": "alice"}, validity); err != nil {
					t.Fatal(err)
				}
				id, err := b.InsertAuthorizationFlow(ctx, "client", "openid", "challenge", "S256", "https://app/cb")
				if err != nil {
					t.Fatal(err)
				}
				code, _, err := b.AuthorizationFlowInsertIDToken(ctx, id, map[string]any{"sub": "alice"}, validity)
				if err != nil {
					t.Fatal(err)
				}
				for _, table := range []string{"DeviceFlows", "AuthorizationFlows"} {
					if _, err := db.Exec("UPDATE " + quote(e, table) + " SET " + quote(e, "IDToken") + " = '" + bad + "'"); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := b.ConsumeDeviceFlow(ctx, dc, validity); !errors.Is(err, backend.ErrFlowFailed) {
					t.Errorf("ConsumeDeviceFlow with IDToken %s: %v, want ErrFlowFailed", bad, err)
				}
				if _, err := b.ConsumeAuthorizationFlow(ctx, code, validity); !errors.Is(err, backend.ErrFlowFailed) {
					t.Errorf("ConsumeAuthorizationFlow with IDToken %s: %v, want ErrFlowFailed", bad, err)
				}
				for _, table := range []string{"DeviceFlows", "AuthorizationFlows"} {
					var st string
					if err := db.QueryRow("SELECT " + quote(e, "Status") + " FROM " + quote(e, table)).Scan(&st); err != nil || st != "READY" {
						t.Errorf("%s after the refused consume: %s, %v; want READY", table, st, err)
					}
				}
				for _, table := range []string{"DeviceFlows", "AuthorizationFlows"} {
					if _, err := db.Exec("UPDATE " + quote(e, table) + " SET " + quote(e, "IDToken") + ` = '{"sub":"alice"}'`); err != nil {
						t.Fatal(err)
					}
				}
				if f, err := b.ConsumeDeviceFlow(ctx, dc, validity); err != nil || f.IDToken["sub"] != "alice" {
					t.Errorf("ConsumeDeviceFlow after repair: %v, %v", f.IDToken, err)
				}
				if f, err := b.ConsumeAuthorizationFlow(ctx, code, validity); err != nil || f.IDToken["sub"] != "alice" {
					t.Errorf("ConsumeAuthorizationFlow after repair: %v, %v", f.IDToken, err)
				}
				emptyTables(t, e, db)
			}
		})
	}
}
