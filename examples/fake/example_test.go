package login_test

import (
	"context"
	"fmt"
	"time"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/backend/memory"
	"github.com/authdb/authdb/examples/fake"
)

// The memory backend stands in for the database in a downstream package's
// tests; the clock is injected so expiry needs no sleeping.
func Example() {
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	store := memory.New(backend.WithClock(func() time.Time { return now }))
	defer store.Close()

	svc := login.New(store, 10*time.Minute)
	userCode, _, _ := store.InsertDeviceFlow(ctx, "tv-app", "openid")

	now = now.Add(11 * time.Minute) // the user comes back too late
	_, err := svc.Approve(ctx, userCode, "alice")
	fmt.Println(err)
	// Output: login: unknown or expired code
}
