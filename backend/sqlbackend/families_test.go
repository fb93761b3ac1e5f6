package sqlbackend_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/conformance"
)

// TestFamiliesOnDiracXRows: on a database DiracX's DDL created (migrated by
// Open: the two family columns added), rows DiracX writes, with neither
// FamilyID nor ReplacedBy, work as docs/families.md says: a DiracX-style
// INSERT without the new columns still works; such a token is its own
// family's first (rotating it writes its family id into it and its
// successor, and a replay then revokes that family only under
// RevokeFamily); a chain DiracX rotated cannot be followed, so its replay
// revokes the subject; RevokeRefreshTokenFamily of a DiracX row revokes
// its own family.
func TestFamiliesOnDiracXRows(t *testing.T) {
	now := time.Date(2025, time.June, 15, 10, 20, 30, 0, time.UTC)
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			ctx := context.Background()
			u := diracxDB(t, e)
			b := open(t, u, backend.WithClock(func() time.Time { return now }), backend.WithReuseScope(backend.RevokeFamily))
			db := rawDB(t, e, u)
			exec := func(q string, args ...any) {
				t.Helper()
				if _, err := db.Exec(sqlText(e, q), args...); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			diracxInsert := func(jti uuid.UUID, sub string) {
				t.Helper()
				exec(`INSERT INTO "RefreshTokens" ("JTI", "Scope", "Sub") VALUES (?, ?, ?)`, storedID(e, jti), "vo:lhcb", sub)
			}
			get := func(jti uuid.UUID) backend.RefreshToken {
				t.Helper()
				tok, err := b.GetRefreshToken(ctx, jti)
				if err != nil {
					t.Fatalf("GetRefreshToken(%s): %v", jti, err)
				}
				return tok
			}
			jti := func() uuid.UUID { return conformance.UUIDv7At(now) }

			d1, d2, d3 := jti(), jti(), jti()
			diracxInsert(d1, "carol")
			diracxInsert(d2, "carol")
			diracxInsert(d3, "dave")
			if tok := get(d1); tok.FamilyID != uuid.Nil || tok.ReplacedBy != uuid.Nil || tok.Status != backend.TokenCreated {
				t.Errorf("DiracX row = %+v, want CREATED with no family columns", tok)
			}

			// authdb rotates a DiracX row: it is its own family's first token.
			n1 := jti()
			old, err := b.RotateRefreshToken(ctx, d1, n1)
			if err != nil || old.FamilyID != d1 || old.ReplacedBy != n1 {
				t.Fatalf("RotateRefreshToken(DiracX row) = %+v, %v; want family %s, replaced by %s", old, err, d1, n1)
			}
			if tok := get(n1); tok.FamilyID != d1 || tok.Sub != "carol" || tok.Status != backend.TokenCreated {
				t.Errorf("successor = %+v, want CREATED in family %s", tok, d1)
			}
			// Its replay revokes that family; carol's other DiracX token stays.
			if _, err := b.RotateRefreshToken(ctx, d1, jti()); !errors.Is(err, backend.ErrTokenReused) {
				t.Fatalf("replay: %v, want ErrTokenReused", err)
			}
			if get(n1).Status != backend.TokenRevoked || get(d2).Status != backend.TokenCreated {
				t.Errorf("after the replay: successor %s, other session %s; want REVOKED, CREATED", get(n1).Status, get(d2).Status)
			}

			// DiracX rotates d2 into d2b (its statements: no family columns).
			d2b := jti()
			exec(`UPDATE "RefreshTokens" SET "Status" = 'REVOKED' WHERE "JTI" = ?`, storedID(e, d2))
			diracxInsert(d2b, "carol")
			d4 := jti()
			diracxInsert(d4, "carol")
			// A replay of d2 cannot be followed to d2b: the subject is revoked.
			if _, err := b.RotateRefreshToken(ctx, d2, jti()); !errors.Is(err, backend.ErrTokenReused) {
				t.Fatalf("replay of a DiracX-rotated token: %v, want ErrTokenReused", err)
			}
			for _, j := range []uuid.UUID{d2b, d4} {
				if s := get(j).Status; s != backend.TokenRevoked {
					t.Errorf("carol's token %s is %s after the unfollowable replay, want REVOKED", j, s)
				}
			}
			if s := get(d3).Status; s != backend.TokenCreated {
				t.Errorf("dave's token is %s, want CREATED", s)
			}

			// A DiracX row's family is itself (and what authdb rotated from it).
			if n, err := b.RevokeRefreshTokenFamily(ctx, d3); err != nil || n != 1 {
				t.Errorf("RevokeRefreshTokenFamily(DiracX row) = %d, %v; want 1", n, err)
			}
			d5 := jti()
			diracxInsert(d5, "dave")
			n5 := jti()
			if _, err := b.RotateRefreshToken(ctx, d5, n5); err != nil {
				t.Fatal(err)
			}
			if n, err := b.RevokeRefreshTokenFamily(ctx, d5); err != nil || n != 1 || get(n5).Status != backend.TokenRevoked {
				t.Errorf("RevokeRefreshTokenFamily(rotated DiracX row) = %d, %v; want 1, successor revoked", n, err)
			}
		})
	}
}
