package sqlbackend_test

import (
	"context"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
)

// TestDeadIdleConnections ends every session of a PostgreSQL backend's
// pool on the server (pg_terminate_backend, what a restart does to the
// client) and then reads one after another: each succeeds, and no read
// meets a dead connection (one met would be a statement lost, and the
// read run again), because the pool looks at an idle connection's socket
// before it hands it out (sock.go). Writes rely on it: a write sent on a
// dead connection is settled by the outcome rules, and after a restart
// the fence cannot reach the old server, so a consume would end in
// ErrOutcomeUnknown.
func TestDeadIdleConnections(t *testing.T) {
	e := engines[1]
	u := newURL(t, e)
	const conns = 8
	b := open(t, u, backend.WithMaxOpenConns(conns), backend.WithMaxIdleConns(conns))
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
	waitZero(t, admin, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`,
		"sessions left 10 s after pg_terminate_backend")
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
	if lost != 0 {
		t.Errorf("the reads met %d dead connections, want none", lost)
	}
}
