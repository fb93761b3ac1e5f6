package memory

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
)

// TestTokenStoreReleasesMemory: after clean-up deletes every token, no
// subject or interned scope is left behind, and freed slots are reused
// correctly.
func TestTokenStoreReleasesMemory(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	b := New(backend.WithClock(func() time.Time { return now }))
	defer b.Close()
	jti := func(ms int) uuid.UUID {
		id := backend.LowestUUIDv7(now.Add(time.Duration(ms-10_000) * time.Millisecond))
		id[15] = byte(ms)
		return id
	}
	for i := range 30 {
		sub := []string{"alice", "bob", "carol"}[i%3]
		scope := []string{"s1", "s2"}[i%2]
		if err := b.InsertRefreshToken(ctx, jti(i), sub, scope); err != nil {
			t.Fatal(err)
		}
	}
	// Rotation shares the old token's scope reference.
	if _, err := b.RotateRefreshToken(ctx, jti(0), jti(100)); err != nil {
		t.Fatal(err)
	}
	ts := b.tokens
	if ts.len() != 31 || len(ts.subIndex) != 3 || len(ts.scopeIndex) != 2 {
		t.Fatalf("tokens %d, subjects %d, scopes %d; want 31, 3, 2", ts.len(), len(ts.subIndex), len(ts.scopeIndex))
	}
	if refs := ts.scopes[ts.scopeIndex["s1"]].refs; refs != 16 {
		t.Fatalf("scope s1 has %d references, want 16", refs)
	}
	// Delete everything.
	n, err := b.CleanExpiredRefreshTokens(ctx, 0)
	if err != nil || n != 31 {
		t.Fatalf("CleanExpiredRefreshTokens = %d, %v; want 31", n, err)
	}
	if ts.len() != 0 || len(ts.subIndex) != 0 || len(ts.scopeIndex) != 0 {
		t.Fatalf("after clean-up: tokens %d, subjects %d, scopes %d; want none", ts.len(), len(ts.subIndex), len(ts.scopeIndex))
	}
	if len(ts.freeSubs) != 3 || len(ts.freeScopes) != 2 {
		t.Fatalf("free lists %v %v, want 3 subjects and 2 scopes", ts.freeSubs, ts.freeScopes)
	}
	// Freed slots are reused, each with its own name.
	for i, sub := range []string{"dave", "erin", "frank", "gina"} {
		if err := b.InsertRefreshToken(ctx, jti(200+i), sub, sub+"-scope"); err != nil {
			t.Fatal(err)
		}
	}
	if len(ts.subs) != 4 || len(ts.scopes) != 4 {
		t.Fatalf("subs %d, scopes %d slots; want 4 and 4 (3 reused + 1)", len(ts.subs), len(ts.scopes))
	}
	for i, sub := range []string{"dave", "erin", "frank", "gina"} {
		got, err := b.GetUserRefreshTokens(ctx, sub)
		want := backend.RefreshToken{JTI: jti(200 + i), Status: backend.TokenCreated, Scope: sub + "-scope", Sub: sub, FamilyID: jti(200 + i)}
		if err != nil || len(got) != 1 || got[0] != want {
			t.Errorf("GetUserRefreshTokens(%q) = %+v, %v; want [%+v]", sub, got, err, want)
		}
	}
	// A partial clean-up keeps the subject and its later tokens in order.
	if err := b.InsertRefreshToken(ctx, jti(300), "dave", "x"); err != nil {
		t.Fatal(err)
	}
	if err := b.InsertRefreshToken(ctx, jti(250), "dave", "x"); err != nil { // out of order
		t.Fatal(err)
	}
	got, _ := b.GetUserRefreshTokens(ctx, "dave")
	if len(got) != 3 || got[0].JTI != jti(200) || got[1].JTI != jti(250) || got[2].JTI != jti(300) {
		t.Fatalf("dave's tokens = %+v, want JTIs 200, 250, 300 in order", got)
	}
}
