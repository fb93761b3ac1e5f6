package login_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/backend/memory"
	"github.com/authdb/authdb/conformance"
	"github.com/authdb/authdb/examples/fake"
)

// newStore returns an empty in-memory store on a clock the test moves by
// hand (conformance.Clock), closed when the test ends. This is the fake: the
// real contract, no database.
func newStore(t *testing.T) (backend.Backend, *conformance.Clock) {
	t.Helper()
	clock := conformance.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	store := memory.New(backend.WithClock(clock.Now))
	t.Cleanup(func() { store.Close() })
	return store, clock
}

func TestApprove(t *testing.T) {
	ctx := context.Background()
	store, _ := newStore(t)
	svc := login.New(store, 10*time.Minute)
	userCode, deviceCode, err := store.InsertDeviceFlow(ctx, "tv-app", "openid")
	if err != nil {
		t.Fatal(err)
	}

	scope, err := svc.Approve(ctx, userCode[:4]+"-"+userCode[4:], "alice")
	if err != nil || scope != "openid" {
		t.Fatalf("Approve = %q, %v; want openid, nil", scope, err)
	}
	// The device now gets its token, for alice.
	flow, err := store.ConsumeDeviceFlow(ctx, deviceCode, 10*time.Minute)
	if err != nil || flow.IDToken["sub"] != "alice" {
		t.Fatalf("ConsumeDeviceFlow = %+v, %v; want alice's flow", flow, err)
	}
	// A code is approved once.
	if _, err := svc.Approve(ctx, userCode, "mallory"); !errors.Is(err, login.ErrUnknownCode) {
		t.Fatalf("second Approve: %v, want ErrUnknownCode", err)
	}
}

func TestApproveTooLate(t *testing.T) {
	ctx := context.Background()
	store, clock := newStore(t)
	svc := login.New(store, 10*time.Minute)
	userCode, _, err := store.InsertDeviceFlow(ctx, "tv-app", "openid")
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(10 * time.Minute) // no sleeping: the fake's clock moves
	if _, err := svc.Approve(ctx, userCode, "alice"); !errors.Is(err, login.ErrUnknownCode) {
		t.Fatalf("Approve after 10 minutes: %v, want ErrUnknownCode", err)
	}
}

func TestSessionsAndSignOut(t *testing.T) {
	ctx := context.Background()
	store, _ := newStore(t)
	svc := login.New(store, 10*time.Minute)
	// Fixtures go through the same interface production uses.
	for _, sub := range []string{"alice", "alice", "bob"} {
		jti, err := backend.NewUUIDv7()
		if err != nil {
			t.Fatal(err)
		}
		if err := store.InsertRefreshToken(ctx, jti, sub, "openid"); err != nil {
			t.Fatal(err)
		}
	}

	sessions, err := svc.Sessions(ctx, "alice")
	if err != nil || len(sessions) != 2 {
		t.Fatalf("Sessions(alice) = %v, %v; want 2", sessions, err)
	}
	n, err := svc.SignOutEverywhere(ctx, "alice")
	if err != nil || n != 2 {
		t.Fatalf("SignOutEverywhere(alice) = %d, %v; want 2", n, err)
	}
	if sessions, _ := svc.Sessions(ctx, "alice"); len(sessions) != 0 {
		t.Fatalf("alice still has %d sessions", len(sessions))
	}
	if sessions, _ := svc.Sessions(ctx, "bob"); len(sessions) != 1 {
		t.Fatalf("bob has %d sessions, want 1 (untouched)", len(sessions))
	}
}
