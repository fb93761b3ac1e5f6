package sqlbackend_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/conformance"
	"github.com/authdb/authdb/internal/sqldialect"
)

// sqlText rewrites a statement written with "double-quoted" identifiers and
// ? placeholders for e.
func sqlText(e engine, s string) string { return sqldialect.Rewrite(e.dialect, s) }

// creationText is an expression giving CreationTime as text in UTC, with
// the fraction where the type has one.
func creationText(e engine) string {
	switch e.name {
	case "postgres":
		return `to_char("CreationTime" AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')`
	case "mysql":
		return `DATE_FORMAT("CreationTime", '%Y-%m-%d %H:%i:%s.%f')`
	}
	return `CAST("CreationTime" AS TEXT)` // SQLite: the stored text itself
}

// uuidText is an expression giving a UUID column as stored text.
func uuidText(e engine, col string) string {
	if e.name == "postgres" {
		return `"` + col + `"::text`
	}
	return `"` + col + `"`
}

// hexID is the 32-hex form DiracX stores in CHAR(32), or the dashed form
// of PostgreSQL's uuid.
func storedID(e engine, id uuid.UUID) string {
	if e.name == "postgres" {
		return id.String()
	}
	return backend.HexJTI(id)
}

// TestStoredForms reads back with plain SQL what the backend wrote: status
// names, sha256-hex codes (never the plain ones), UUIDs and JTIs as 32
// lowercase hex digits on MySQL and SQLite (native uuid on PostgreSQL),
// creation times in UTC whole seconds from the clock, ID tokens as JSON.
func TestStoredForms(t *testing.T) {
	// A clock in another zone with a fractional second: stored as 09:20:30 UTC.
	now := time.Date(2025, time.June, 15, 10, 20, 30, 750_000_000, time.FixedZone("CET", 3600))
	wantTime := map[string]string{
		"sqlite":   "2025-06-15 09:20:30",
		"postgres": "2025-06-15 09:20:30.000000",
		"mysql":    "2025-06-15 09:20:30.000000",
	}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			u := newURL(t, e)
			b := open(t, u, backend.WithClock(func() time.Time { return now }))
			db := rawDB(t, e, u)
			ctx := context.Background()
			idToken := map[string]any{"sub": "alice", "n": 1.5, "groups": []any{"a", "b"}}

			uc, dc, err := b.InsertDeviceFlow(ctx, "client", "openid")
			if err != nil {
				t.Fatal(err)
			}
			if err := b.DeviceFlowInsertIDToken(ctx, uc, idToken, time.Minute); err != nil {
				t.Fatal(err)
			}
			rows := query(t, db, sqlText(e, `SELECT "Status", "DeviceCode", `+creationText(e)+`, "IDToken", "ClientID", "Scope" FROM "DeviceFlows" WHERE "UserCode" = ?`), uc)
			if len(rows) != 1 {
				t.Fatalf("device flow rows = %v", rows)
			}
			r := rows[0]
			want := []string{"READY", backend.HashCode(dc), wantTime[e.name]}
			if !reflect.DeepEqual(r[:3], want) || r[4] != "client" || r[5] != "openid" {
				t.Errorf("device flow stored as %q, want %q", r, want)
			}
			wantJSON(t, r[3], idToken)

			id, err := b.InsertAuthorizationFlow(ctx, "client", "openid", "challenge", "S256", "https://app/cb")
			if err != nil {
				t.Fatal(err)
			}
			flowID := uuid.MustParse(id)
			code, redirect, err := b.AuthorizationFlowInsertIDToken(ctx, id, idToken, time.Minute)
			if err != nil || redirect != "https://app/cb" {
				t.Fatalf("AuthorizationFlowInsertIDToken = %q, %v", redirect, err)
			}
			rows = query(t, db, sqlText(e, `SELECT `+uuidText(e, "UUID")+`, "Status", "Code", `+creationText(e)+`, "IDToken" FROM "AuthorizationFlows"`))
			if len(rows) != 1 {
				t.Fatalf("authorization flow rows = %v", rows)
			}
			r = rows[0]
			want = []string{storedID(e, flowID), "READY", backend.HashCode(code), wantTime[e.name]}
			if !reflect.DeepEqual(r[:4], want) {
				t.Errorf("authorization flow stored as %q, want %q", r, want)
			}
			wantJSON(t, r[4], idToken)

			old := conformance.UUIDv7At(now)
			next := conformance.UUIDv7At(now.Add(time.Second))
			if err := b.InsertRefreshToken(ctx, old, "alice", "scope"); err != nil {
				t.Fatal(err)
			}
			if _, err := b.RotateRefreshToken(ctx, old, next); err != nil {
				t.Fatal(err)
			}
			rows = query(t, db, sqlText(e, `SELECT `+uuidText(e, "JTI")+`, "Status", "Sub", "Scope" FROM "RefreshTokens" ORDER BY "JTI"`))
			wantRows := [][]string{
				{storedID(e, old), "REVOKED", "alice", "scope"},
				{storedID(e, next), "CREATED", "alice", "scope"},
			}
			if !reflect.DeepEqual(rows, wantRows) {
				t.Errorf("refresh tokens stored as %q, want %q", rows, wantRows)
			}

			// The plain codes appear nowhere.
			for _, table := range tables {
				for _, row := range query(t, db, "SELECT * FROM "+quote(e, table)) {
					for _, v := range row {
						if strings.Contains(v, dc) || strings.Contains(v, code) {
							t.Errorf("%s stores a plain code: %q", table, row)
						}
					}
				}
			}
		})
	}
}

func wantJSON(t *testing.T, stored string, want map[string]any) {
	t.Helper()
	var got map[string]any
	if err := json.Unmarshal([]byte(stored), &got); err != nil {
		t.Fatalf("stored ID token %q: %v", stored, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stored ID token %v, want %v", got, want)
	}
}

// TestReadsDiracXRows inserts rows with plain SQL the way DiracX writes them
// (statuses and CreationTime left to the server defaults or written with
// microseconds, UUIDs as 32 hex digits, Python's JSON spacing) into a
// database made by DiracX's DDL, and reads and updates them through the
// backend.
func TestReadsDiracXRows(t *testing.T) {
	created := time.Date(2025, time.June, 15, 10, 20, 30, 0, time.UTC)
	// DiracX's forms of 2025-06-15 10:20:30.123456 UTC.
	diracxTime := map[string]string{
		"sqlite":   "2025-06-15 10:20:30.123456", // SQLAlchemy's DATETIME text
		"postgres": "2025-06-15 10:20:30.123456+00",
		"mysql":    "2025-06-15 10:20:30",
	}
	clock := created.Add(time.Minute)
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			u := diracxDB(t, e)
			db := rawDB(t, e, u)
			ctx := context.Background()
			exec := func(q string, args ...any) {
				t.Helper()
				if _, err := db.Exec(sqlText(e, q), args...); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			deviceCode, authCode := "plain-device-code", "plain-authorization-code"
			exec(`INSERT INTO "DeviceFlows" ("UserCode", "CreationTime", "ClientID", "Scope", "DeviceCode") VALUES (?, ?, ?, ?, ?)`,
				"BCDFGHJK", diracxTime[e.name], "diracx-cli", "vo:lhcb", backend.HashCode(deviceCode))
			flowID := conformance.UUIDv7At(created)
			exec(`INSERT INTO "AuthorizationFlows" ("UUID", "Status", "ClientID", "CreationTime", "Scope", "CodeChallenge", "CodeChallengeMethod", "RedirectURI", "Code", "IDToken")
				VALUES (?, 'READY', ?, ?, ?, ?, ?, ?, ?, ?)`,
				storedID(e, flowID), "web", diracxTime[e.name], "openid", "chal", "S256", "https://app/cb",
				backend.HashCode(authCode), `{"sub": "bob", "groups": ["lhcb_user"], "exp": 1750000000}`)
			pendingID := conformance.UUIDv7At(created.Add(time.Second))
			exec(`INSERT INTO "AuthorizationFlows" ("UUID", "ClientID", "CreationTime", "Scope", "CodeChallenge", "CodeChallengeMethod", "RedirectURI")
				VALUES (?, ?, ?, ?, ?, ?, ?)`,
				storedID(e, pendingID), "web", diracxTime[e.name], "openid", "chal", "S256", "https://app/cb2")
			jtis := []uuid.UUID{conformance.UUIDv7At(created), conformance.UUIDv7At(created.Add(time.Hour))}
			for _, jti := range jtis {
				exec(`INSERT INTO "RefreshTokens" ("JTI", "Scope", "Sub") VALUES (?, ?, ?)`, storedID(e, jti), "vo:lhcb", "carol")
			}

			b := open(t, u, backend.WithClock(func() time.Time { return clock }))

			f, err := b.GetDeviceFlow(ctx, deviceCode)
			wantF := backend.DeviceFlow{UserCode: "BCDFGHJK", ClientID: "diracx-cli", Scope: "vo:lhcb",
				DeviceCode: backend.HashCode(deviceCode), Status: backend.StatusPending, CreationTime: created}
			if err != nil || !reflect.DeepEqual(f, wantF) || f.CreationTime.Location() != time.UTC {
				t.Errorf("GetDeviceFlow = %+v, %v; want %+v", f, err, wantF)
			}
			if scope, err := b.DeviceFlowValidateUserCode(ctx, "bcdf-ghjk", 10*time.Minute); err != nil || scope != "vo:lhcb" {
				t.Errorf("DeviceFlowValidateUserCode = %q, %v", scope, err)
			}
			if err := b.DeviceFlowInsertIDToken(ctx, "BCDFGHJK", map[string]any{"sub": "dave"}, 10*time.Minute); err != nil {
				t.Fatal(err)
			}
			if f, err := b.ConsumeDeviceFlow(ctx, deviceCode, 10*time.Minute); err != nil || f.Status != backend.StatusDone || f.IDToken["sub"] != "dave" {
				t.Errorf("ConsumeDeviceFlow = %+v, %v", f, err)
			}
			if _, err := b.ConsumeDeviceFlow(ctx, deviceCode, time.Minute); !errors.Is(err, backend.ErrAlreadyUsed) {
				t.Errorf("second ConsumeDeviceFlow: %v, want ErrAlreadyUsed", err)
			}

			af, err := b.GetAuthorizationFlow(ctx, authCode, 10*time.Minute)
			wantA := backend.AuthorizationFlow{UUID: flowID.String(), ClientID: "web", Scope: "openid", CodeChallenge: "chal",
				CodeChallengeMethod: "S256", RedirectURI: "https://app/cb", Code: backend.HashCode(authCode),
				Status: backend.StatusReady, CreationTime: created,
				IDToken: map[string]any{"sub": "bob", "groups": []any{"lhcb_user"}, "exp": 1750000000.0}}
			if err != nil || !reflect.DeepEqual(af, wantA) {
				t.Errorf("GetAuthorizationFlow = %+v, %v; want %+v", af, err, wantA)
			}
			// 10:20:30.123456 reads as 10:20:30: exactly one minute old at
			// 10:21:30, so not live for a validity of one minute.
			if _, err := b.GetAuthorizationFlow(ctx, authCode, time.Minute); !errors.Is(err, backend.ErrNotFound) {
				t.Errorf("GetAuthorizationFlow one minute old, validity one minute: %v, want ErrNotFound", err)
			}
			if af, err := b.ConsumeAuthorizationFlow(ctx, authCode, 10*time.Minute); err != nil || af.Status != backend.StatusDone {
				t.Errorf("ConsumeAuthorizationFlow = %+v, %v", af, err)
			}
			code, redirect, err := b.AuthorizationFlowInsertIDToken(ctx, backend.HexJTI(pendingID), map[string]any{"sub": "erin"}, 10*time.Minute)
			if err != nil || redirect != "https://app/cb2" {
				t.Fatalf("AuthorizationFlowInsertIDToken = %q, %v", redirect, err)
			}
			if af, err := b.GetAuthorizationFlow(ctx, code, 10*time.Minute); err != nil || af.UUID != pendingID.String() {
				t.Errorf("GetAuthorizationFlow(new code) = %+v, %v", af, err)
			}

			list, err := b.GetUserRefreshTokens(ctx, "carol")
			wantList := []backend.RefreshToken{
				{JTI: jtis[0], Status: backend.TokenCreated, Scope: "vo:lhcb", Sub: "carol"},
				{JTI: jtis[1], Status: backend.TokenCreated, Scope: "vo:lhcb", Sub: "carol"},
			}
			if err != nil || !reflect.DeepEqual(list, wantList) {
				t.Errorf("GetUserRefreshTokens = %+v, %v", list, err)
			}
			next := conformance.UUIDv7At(clock)
			if got, err := b.RotateRefreshToken(ctx, jtis[0], next); err != nil || got.Status != backend.TokenRevoked || got.Sub != "carol" {
				t.Errorf("RotateRefreshToken = %+v, %v", got, err)
			}
			if n, err := b.RevokeUserRefreshTokens(ctx, "carol"); err != nil || n != 2 {
				t.Errorf("RevokeUserRefreshTokens = %d, %v; want 2", n, err)
			}
			// Retention 30 s at 10:21:30: the 10:20:30 token goes, the others stay.
			if n, err := b.CleanExpiredRefreshTokens(ctx, 30*time.Second); err != nil || n != 1 {
				t.Errorf("CleanExpiredRefreshTokens = %d, %v; want 1", n, err)
			}
		})
	}
}

// TestServerDefaultCreationTime: a flow whose CreationTime DiracX left to
// the server default (the database's UTC now) is read back in UTC and is
// live for a backend whose clock is the wall clock.
func TestServerDefaultCreationTime(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			u := diracxDB(t, e)
			db := rawDB(t, e, u)
			before := time.Now().UTC().Truncate(time.Second)
			if _, err := db.Exec(sqlText(e, `INSERT INTO "DeviceFlows" ("UserCode", "ClientID", "Scope", "DeviceCode") VALUES (?, ?, ?, ?)`),
				"BCDFGHJK", "cli", "s", backend.HashCode("dc")); err != nil {
				t.Fatal(err)
			}
			after := time.Now().UTC()
			b := open(t, u, backend.WithClock(time.Now))
			f, err := b.GetDeviceFlow(context.Background(), "dc")
			if err != nil {
				t.Fatal(err)
			}
			if f.Status != backend.StatusPending || f.CreationTime.Before(before) || f.CreationTime.After(after) || f.CreationTime.Location() != time.UTC {
				t.Errorf("flow = %+v, want PENDING created between %v and %v in UTC", f, before, after)
			}
			if _, err := b.DeviceFlowValidateUserCode(context.Background(), "BCDFGHJK", time.Hour); err != nil {
				t.Errorf("DeviceFlowValidateUserCode: %v", err)
			}
		})
	}
}
