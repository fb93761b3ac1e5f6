package sqlbackend_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/backend/sqlbackend"
	"github.com/authdb/authdb/internal/testdb"
	"github.com/authdb/authdb/internal/testserver"
)

// TestPostgresStandby runs on a private PostgreSQL primary with a
// synchronous streaming standby: Open refuses the standby, multi-host URLs
// find the primary, and rotations ride out a failover (the primary killed,
// the standby promoted).
func TestPostgresStandby(t *testing.T) {
	s := testserver.StartStandby(t)
	open(t, s.PrimaryURL()).Close() // the schema, replicated to the standby
	t.Run("OpenOnStandby", func(t *testing.T) {
		b, err := sqlbackend.Open(t.Context(), s.StandbyURL(), backend.WithoutMigration())
		if err == nil {
			b.Close()
			t.Fatal("Open on a standby succeeded")
		}
		if !strings.Contains(err.Error(), "standby") || !strings.Contains(err.Error(), "pg_is_in_recovery") {
			t.Errorf("Open on a standby: %v; want an error naming the standby and pg_is_in_recovery", err)
		}
		t.Logf("Open on the standby: %v", err)
	})
	t.Run("MultiHostFindsPrimary", func(t *testing.T) {
		// The standby first, each host with its own port, and no
		// target_session_attrs: authdb asks for read-write itself.
		u := fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/test?sslmode=disable", s.StandbyPort, s.PrimaryPort)
		b := open(t, u, backend.WithoutMigration())
		var port int
		var inRecovery bool
		if err := b.DB().QueryRowContext(t.Context(), "SELECT inet_server_port(), pg_is_in_recovery()").Scan(&port, &inRecovery); err != nil {
			t.Fatal(err)
		}
		if port != s.PrimaryPort || inRecovery {
			t.Errorf("connected to port %d (in recovery: %v), want the primary on %d", port, inRecovery, s.PrimaryPort)
		}
		if err := b.InsertRefreshToken(t.Context(), uuid.Must(uuid.NewV7()), "alice", "s"); err != nil {
			t.Errorf("InsertRefreshToken: %v", err)
		}
	})
	t.Run("Failover", func(t *testing.T) { testFailover(t, s) })
}

// failoverWorkers rotate continuously through the failover.
const failoverWorkers = 8

func testFailover(t *testing.T, s *testserver.Standby) {
	b := open(t, s.MultiHostURL(), backend.WithoutMigration())
	type worker struct {
		acked             []uuid.UUID // every token whose rotation (or insert) was acknowledged
		calls, failed     int
		reused            int
		slowest           time.Duration
		firstErr          error
		afterFailoverRots int
	}
	workers := make([]*worker, failoverWorkers)
	var stop atomic.Bool
	var failedOver atomic.Bool
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{}
		workers[i] = w
		first := uuid.Must(uuid.NewV7())
		if err := b.InsertRefreshToken(t.Context(), first, fmt.Sprintf("worker-%d", i), "s"); err != nil {
			t.Fatalf("insert: %v", err)
		}
		w.acked = append(w.acked, first)
		wg.Add(1)
		go func() {
			defer wg.Done()
			cur := first
			for !stop.Load() {
				next := uuid.Must(uuid.NewV7())
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				begin := time.Now()
				_, err := b.RotateRefreshToken(ctx, cur, next)
				d := time.Since(begin)
				cancel()
				w.calls++
				w.slowest = max(w.slowest, d)
				switch {
				case err == nil:
					w.acked = append(w.acked, next)
					cur = next
					if failedOver.Load() {
						w.afterFailoverRots++
					}
				case errors.Is(err, backend.ErrTokenReused):
					w.reused++
					w.failed++
					w.firstErr = cmpErr(w.firstErr, err)
					return // the chain is revoked
				default:
					w.failed++
					w.firstErr = cmpErr(w.firstErr, err)
					// The rotation may have landed or not: the chain's
					// next call says which (old REVOKED: this one retried
					// is a success by the idempotent-retry rule).
					ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
					_, err = b.RotateRefreshToken(ctx, cur, next)
					cancel()
					if err == nil {
						w.acked = append(w.acked, next)
						cur = next
					}
				}
			}
		}()
	}
	time.Sleep(time.Second)
	killedAt := time.Now()
	s.KillPrimary(t)
	time.Sleep(time.Second)
	s.Promote(t)
	promotedAt := time.Now()
	failedOver.Store(true)
	time.Sleep(2 * time.Second)
	stop.Store(true)
	wg.Wait()

	var calls, failed, reused, after int
	var slowest time.Duration
	for i, w := range workers {
		calls += w.calls
		failed += w.failed
		reused += w.reused
		after += w.afterFailoverRots
		slowest = max(slowest, w.slowest)
		if w.firstErr != nil {
			t.Errorf("worker %d: %d failed calls; first: %v", i, w.failed, w.firstErr)
		}
	}
	t.Logf("failover: primary killed, standby promoted %v later; %d rotations in all, %d after the promotion, %d failed, %d ErrTokenReused, slowest call %v",
		promotedAt.Sub(killedAt).Round(time.Millisecond), calls, after, failed, reused, slowest.Round(time.Millisecond))
	if failed != 0 || reused != 0 {
		t.Errorf("%d failed calls, %d ErrTokenReused; want 0 and 0", failed, reused)
	}
	if after == 0 {
		t.Errorf("no rotation succeeded after the promotion")
	}
	// Every acknowledged rotation is on the new primary: each acknowledged
	// token exists, the last of each chain live, the others revoked.
	db, err := testdb.AdminDB(s.StandbyURL())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	missing := 0
	for i, w := range workers {
		for k, jti := range w.acked {
			var status string
			if err := db.QueryRowContext(t.Context(), `SELECT "Status" FROM "RefreshTokens" WHERE "JTI" = $1`, jti).Scan(&status); err != nil {
				missing++
				if missing <= 3 {
					t.Errorf("worker %d: acknowledged token %d (%s) not on the new primary: %v", i, k, jti, err)
				}
				continue
			}
			want := string(backend.TokenRevoked)
			if k == len(w.acked)-1 {
				want = string(backend.TokenCreated)
			}
			if status != want {
				t.Errorf("worker %d: token %d of %d is %s on the new primary, want %s", i, k, len(w.acked), status, want)
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d acknowledged tokens missing on the new primary", missing)
	}
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}
