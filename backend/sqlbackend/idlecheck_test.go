package sqlbackend_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/backend/sqlbackend"
)

// TestDeadIdleConnections ends every session of a PostgreSQL backend's
// pool on the server (pg_terminate_backend, what a restart does to the
// client) and then reads one after another: each succeeds, and the reads
// meet at most one dead connection in all (each one met is a statement
// lost, and the read run again). With the idle-time
// threshold at zero every idle connection is looked at before it is
// handed out, so none is met; with it at an hour (a busy pool, whose
// connections are never idle for long), the first read meets one, and
// that loss makes the pool look at every connection that idled since, so
// that no read meets a second one.
func TestDeadIdleConnections(t *testing.T) {
	for _, tc := range []struct {
		name     string
		after    time.Duration
		wantLost int
	}{
		{"look at every idle connection", 0, 0},
		{"look after a loss", time.Hour, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := engines[1]
			u := newURL(t, e)
			const conns = 8
			b := open(t, u, backend.WithMaxOpenConns(conns), backend.WithMaxIdleConns(conns))
			if !sqlbackend.SetIdleCheckAfter(b, tc.after) {
				t.Fatal("the PostgreSQL backend has no idle check")
			}
			admin := rawDB(t, e, u)
			ctx := t.Context()
			// conns idle connections, each with the read below prepared
			// on it: conns goroutines reading in a loop.
			jti := uuid.Must(uuid.NewV7())
			if err := b.InsertRefreshToken(ctx, jti, "sub", "openid"); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for range conns {
				wg.Go(func() {
					for range 50 {
						if _, err := b.GetRefreshToken(ctx, jti); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			var killed int
			if err := admin.QueryRowContext(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
				WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&killed); err != nil {
				t.Fatal(err)
			}
			if killed < 2 {
				t.Fatalf("%d sessions terminated, want at least 2", killed)
			}
			for deadline := time.Now().Add(10 * time.Second); ; {
				var left int
				if err := admin.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity
					WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&left); err != nil {
					t.Fatal(err)
				}
				if left == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d sessions left 10 s after pg_terminate_backend", left)
				}
				time.Sleep(5 * time.Millisecond)
			}
			var mu sync.Mutex
			lost := 0
			octx := backend.ContextWithObserver(ctx, &backend.Observer{Retry: func(_ context.Context, cause string) {
				mu.Lock()
				defer mu.Unlock()
				t.Logf("retry: %s", cause)
				if cause == "connection_lost" {
					lost++
				}
			}})
			for i := range conns {
				if tok, err := b.GetRefreshToken(octx, jti); err != nil || tok.Sub != "sub" {
					t.Fatalf("read %d after the sessions ended: %+v, %v", i, tok, err)
				}
			}
			if lost != tc.wantLost {
				t.Errorf("the calls met %d dead connections, want %d", lost, tc.wantLost)
			}
		})
	}
}
