package sqlbackend_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/conformance"
)

// TestCleanupPause: WithCleanupPause waits between full batches (never
// after the last one), and a context that ends during a wait ends the call
// at once with the rows deleted so far and the context's error.
func TestCleanupPause(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2025, time.June, 15, 12, 0, 0, 0, time.UTC)
	url := "sqlite://" + filepath.Join(t.TempDir(), "pause.db")
	insert := func(t *testing.T, b backend.Backend, n int) {
		t.Helper()
		for i := range n {
			if err := b.InsertRefreshToken(ctx, conformance.UUIDv7At(now.Add(-2*time.Hour+time.Duration(i)*time.Millisecond)), "u", "s"); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Run("waits between batches", func(t *testing.T) {
		const pause = 20 * time.Millisecond
		b := open(t, url, backend.WithClock(func() time.Time { return now }), backend.WithCleanupBatchSize(2), backend.WithCleanupPause(pause))
		insert(t, b, 5) // batches of 2, 2, 1: two waits
		start := time.Now()
		n, err := b.CleanExpiredRefreshTokens(ctx, time.Hour)
		if err != nil || n != 5 {
			t.Fatalf("clean = %d, %v; want 5", n, err)
		}
		if took := time.Since(start); took < 2*pause {
			t.Errorf("clean took %v, want at least two pauses of %v", took, pause)
		}
	})
	t.Run("cancel during a wait", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		b := open(t, url, backend.WithClock(func() time.Time { return now }), backend.WithCleanupBatchSize(2),
			backend.WithCleanupPause(time.Hour), backend.WithCleanupProgress(func(string, int64) { cancel() }))
		insert(t, b, 5)
		done := make(chan struct{})
		var n int64
		var err error
		go func() {
			defer close(done)
			n, err = b.CleanExpiredRefreshTokens(cctx, time.Hour)
		}()
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Fatal("clean-up still waiting a minute after its context ended")
		}
		if n != 2 || !errors.Is(err, context.Canceled) {
			t.Errorf("clean = %d, %v; want 2 rows and context.Canceled", n, err)
		}
		if all, err := b.GetUserRefreshTokens(ctx, ""); err != nil || len(all) != 3 {
			t.Errorf("tokens left = %d, %v; want 3", len(all), err)
		}
	})
	t.Run("negative pause ignored", func(t *testing.T) {
		if got := backend.NewOptions(backend.WithCleanupPause(-time.Second)).CleanupPause; got != backend.DefaultCleanupPause {
			t.Errorf("CleanupPause after WithCleanupPause(-1s) = %v, want the default %v", got, backend.DefaultCleanupPause)
		}
	})
}
