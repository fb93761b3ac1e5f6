package reliability

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb"
	"github.com/authdb/authdb/backend"
)

// TestSessionsKilledBetweenCalls ends every session of the test database
// (pg_terminate_backend, MySQL KILL) between calls, the client-side effect
// of a server restart without restarting it: the backend's pooled
// connections are all dead, and the next calls must still succeed (dead
// connections discarded, the call retried on a fresh one).
func TestSessionsKilledBetweenCalls(t *testing.T) {
	for _, engine := range servers {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, engine)
			b := e.open(t, backend.WithMaxIdleConns(8))
			k := newKiller(t, e)
			ctx := t.Context()

			sub := "killed-" + engine
			cur := e.newJTI()
			if err := b.InsertRefreshToken(ctx, cur, sub, "openid"); err != nil {
				t.Fatal(err)
			}
			calls := callsThatMustSurvive(e, b, sub, &cur)
			killed := 0
			for round := range 3 {
				for _, c := range calls {
					warmPool(t, b, 6)
					n, err := k.kill(ctx)
					if err != nil {
						t.Fatalf("kill sessions: %v", err)
					}
					if n == 0 {
						t.Fatalf("round %d, before %s: no session of the backend to kill", round, c.name)
					}
					killed += n
					waitNoSessions(t, k)
					if err := c.fn(ctx); err != nil {
						t.Errorf("round %d: %s right after %d sessions were killed: %v", round, c.name, n, err)
					}
				}
			}
			if toks, err := b.GetUserRefreshTokens(ctx, sub); err != nil || len(toks) != 1 || toks[0].JTI != cur {
				t.Errorf("after the kills: live tokens %v, %v; want exactly %s", toks, err, cur)
			}
			t.Logf("%s: %d sessions killed, %d calls each right after a kill, none failed",
				engine, killed, 3*len(calls))
		})
	}
}

type namedCall struct {
	name string
	fn   func(ctx context.Context) error
}

// callsThatMustSurvive returns one call of each kind (ping, reads, the
// single-statement writes, the rotation, whole device and authorization
// flows); cur is the subject's live token, moved on by each rotation.
func callsThatMustSurvive(e *env, b backend.Backend, sub string, cur *uuid.UUID) []namedCall {
	return []namedCall{
		{"Ping", b.Ping},
		{"GetRefreshToken", func(ctx context.Context) error {
			_, err := b.GetRefreshToken(ctx, *cur)
			return err
		}},
		{"GetUserRefreshTokens", func(ctx context.Context) error {
			toks, err := b.GetUserRefreshTokens(ctx, sub)
			if err == nil && len(toks) != 1 {
				return fmt.Errorf("%d live tokens, want 1", len(toks))
			}
			return err
		}},
		{"RotateRefreshToken", func(ctx context.Context) error {
			next := e.newJTI()
			if _, err := b.RotateRefreshToken(ctx, *cur, next); err != nil {
				return err
			}
			*cur = next
			return nil
		}},
		{"InsertRefreshToken", func(ctx context.Context) error {
			return b.InsertRefreshToken(ctx, e.newJTI(), sub+"-other", "s")
		}},
		{"DeviceFlow", func(ctx context.Context) error {
			uc, dc, err := b.InsertDeviceFlow(ctx, "client", "openid")
			if err != nil {
				return err
			}
			if err := b.DeviceFlowInsertIDToken(ctx, uc, map[string]any{"sub": sub}, validity); err != nil {
				return err
			}
			_, err = b.ConsumeDeviceFlow(ctx, dc, validity)
			return err
		}},
		{"InsertAuthorizationFlow", func(ctx context.Context) error {
			_, err := b.InsertAuthorizationFlow(ctx, "client", "openid", "challenge", "S256", "https://app.example/cb")
			return err
		}},
		{"CleanExpiredDeviceFlows", func(ctx context.Context) error {
			_, err := b.CleanExpiredDeviceFlows(ctx, 24*time.Hour)
			return err
		}},
	}
}

// warmPool runs n concurrent calls so that the pool holds several idle
// connections to kill.
func warmPool(t *testing.T, b backend.Backend, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := b.GetUserRefreshTokens(t.Context(), "warm")
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("warming the pool: %v", err)
		}
	}
}

// waitNoSessions polls until the killed sessions are gone from the
// server's session list (termination is asynchronous).
func waitNoSessions(t *testing.T, k *killer) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := k.sessions(t.Context())
		if err != nil {
			t.Fatalf("list sessions: %v", err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions of the test database still there 10s after the kill", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestOpenConcurrently opens backends of every engine from many goroutines
// at once, as a service with several stores (or parallel tests) does: each
// open migrates its own database, and under -race any state the opens
// share without a lock fails the test.
func TestOpenConcurrently(t *testing.T) {
	t.Parallel()
	var envs []*env
	for range 2 {
		for _, engine := range allEngines {
			envs = append(envs, newEnv(t, engine))
		}
	}
	// And one SQLite file opened by six backends at once: the first
	// migrates while the others connect and wait for its lock.
	shared := newEnv(t, "sqlite")
	for range 6 {
		envs = append(envs, shared)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(envs))
	for _, e := range envs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := authdb.Open(t.Context(), e.url)
			if err != nil {
				errs <- fmt.Errorf("%s: %w", e.engine, err)
				return
			}
			defer b.Close()
			if err := b.InsertRefreshToken(t.Context(), e.newJTI(), "concurrent", "s"); err != nil {
				errs <- fmt.Errorf("%s: %w", e.engine, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
