package sqlbackend_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
)

// TestTrafficDuringPartitionMaintenance: token traffic (inserts,
// rotations, listings) from several goroutines while partition maintenance
// runs 31 ALTER TABLE statements back to back on MariaDB. Every call
// succeeds: a statement refused because the table's definition changed
// while the server re-prepared it (1615) is run again, like a deadlock, and
// a metadata-lock wait is waited out.
func TestTrafficDuringPartitionMaintenance(t *testing.T) {
	e := engines[2]
	now := time.Date(2025, time.June, 15, 12, 0, 0, 0, time.UTC)
	var clock atomic.Pointer[time.Time]
	clock.Store(&now)
	dbURL := newURL(t, e)
	b := open(t, dbURL, backend.WithClock(func() time.Time { return *clock.Load() }), backend.WithPartitionPause(0))
	traffic := open(t, dbURL, backend.WithoutMigration())
	ctx := context.Background()

	const workers = 4
	var calls atomic.Int64
	stop := make(chan struct{})
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sub := "traffic-" + string(rune('a'+w))
			cur := uuid.Must(uuid.NewV7())
			if err := traffic.InsertRefreshToken(ctx, cur, sub, "openid"); err != nil {
				errs <- err
				return
			}
			for {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				next := uuid.Must(uuid.NewV7())
				if _, err := traffic.RotateRefreshToken(ctx, cur, next); err != nil {
					errs <- errors.Join(errors.New("rotate"), err)
					return
				}
				cur = next
				if _, err := traffic.GetUserRefreshTokens(ctx, sub); err != nil {
					errs <- errors.Join(errors.New("list"), err)
					return
				}
				if err := traffic.InsertRefreshToken(ctx, uuid.Must(uuid.NewV7()), sub, "openid"); err != nil {
					errs <- errors.Join(errors.New("insert"), err)
					return
				}
				calls.Add(3)
			}
		}()
	}
	later := now.AddDate(2, 0, 0) // 2027-06-15: add 13 months, drop 18
	clock.Store(&later)
	before := calls.Load()
	rep, err := b.MaintainRefreshTokenPartitions(ctx, 6, 12)
	during := calls.Load() - before
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("call during maintenance: %v", err)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Added) != 13 || len(rep.Dropped) != 18 {
		t.Fatalf("maintenance added %d and dropped %d months, want 13 and 18", len(rep.Added), len(rep.Dropped))
	}
	if during == 0 {
		t.Fatal("no call ran while maintenance did: the test proves nothing")
	}
	t.Logf("%d calls during 31 partition statements", during)
}
