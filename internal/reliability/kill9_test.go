package reliability

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb"
	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/conformance"
	"github.com/authdb/authdb/internal/sqldialect"
	"github.com/authdb/authdb/internal/testdb"
	"github.com/authdb/authdb/internal/testserver"
)

// Shape of the kill -9 test.
const (
	kill9Workers    = 8                      // goroutines, each with its own subject and flows
	kill9Kills      = 2                      // kill -9 and restart, this many times, under load
	kill9LoadBefore = 700 * time.Millisecond // load before each kill
	kill9Down       = 300 * time.Millisecond // how long the server stays dead
	kill9Flows      = 40                     // READY device flows per worker, consumed under load
	kill9CallWait   = 2 * time.Second        // each call's deadline
)

// TestKill9UnderLoad starts a private PostgreSQL and a private MariaDB
// (internal/testserver), runs kill9Workers goroutines of rotations and
// consumes against each, and kills the server with SIGKILL (no shutdown)
// kill9Kills times mid-load, restarting it each time (crash recovery).
// Every call goes into a history; a worker whose rotation came back info
// (ErrOutcomeUnknown) retries the same rotation (the same old and new
// JTIs, as a client does) until it gets an answer. Afterwards the checker reads the database:
// no acknowledged write lost (every ok rotation's token and every ok
// consume's DONE survived the crash), no failed write present, no wrong
// verdict (ErrTokenReused, ErrAlreadyUsed, ErrNotFound for a worker's own
// chain or code), and each subject holds exactly one live token: the last
// one its worker was given.
func TestKill9UnderLoad(t *testing.T) {
	for _, kind := range []testserver.Kind{testserver.Postgres, testserver.MariaDB} {
		t.Run(string(kind), func(t *testing.T) {
			testserver.Skip(t, kind)
			t.Parallel()
			kill9Run(t, kind)
		})
	}
}

func kill9Run(t *testing.T, kind testserver.Kind) {
	s := testserver.Start(t, kind, testserver.Config{})
	rawURL := s.NewDatabase(t)
	clock := conformance.NewClock(start)
	ctx := t.Context()
	b, err := authdb.Open(ctx, rawURL, backend.WithClock(clock.Now), backend.WithMaxOpenConns(16))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	engine := "postgres"
	if kind == testserver.MariaDB {
		engine = "mysql"
	}

	type worker struct {
		sub   string
		cur   uuid.UUID   // the live token the worker holds
		held  []uuid.UUID // every token it was given, in order
		codes []string    // READY device codes to consume
		users []string    // their user codes
	}
	workers := make([]*worker, kill9Workers)
	for i := range workers {
		w := &worker{sub: fmt.Sprintf("kill9-%d", i), cur: conformance.UUIDv7At(clock.Now())}
		if err := b.InsertRefreshToken(ctx, w.cur, w.sub, "openid"); err != nil {
			t.Fatal(err)
		}
		w.held = []uuid.UUID{w.cur}
		for range kill9Flows {
			uc, dc := readyDeviceFlow(t, ctx, b, w.sub)
			w.codes, w.users = append(w.codes, dc), append(w.users, uc)
		}
		workers[i] = w
	}

	var h history
	var stop atomic.Bool
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := uuid.Nil
			for i := 0; !stop.Load() || next != uuid.Nil; i++ {
				if next == uuid.Nil {
					next = conformance.UUIDv7At(clock.Now())
				}
				cctx, cancel := context.WithTimeout(ctx, kill9CallWait)
				_, err := b.RotateRefreshToken(cctx, w.cur, next)
				cancel()
				h.add("rotate", w.sub+" "+next.String(), err)
				switch {
				case err == nil:
					w.cur, next = next, uuid.Nil
					w.held = append(w.held, w.cur)
				case errors.Is(err, backend.ErrTokenReused), errors.Is(err, backend.ErrNotFound),
					errors.Is(err, backend.ErrAlreadyExists):
					return // a wrong verdict: the checker reports it
				default:
					// After info the client retries the same rotation (the
					// same old and new JTIs: idempotent); after a failure,
					// which says nothing was written, it rotates afresh. A
					// failure that had in fact rotated would show as
					// ErrTokenReused next, and as a failed write present.
					if !errors.Is(err, backend.ErrOutcomeUnknown) {
						next = uuid.Nil
					}
					if ctx.Err() != nil {
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
				if n := len(w.codes); n > 0 && i%2 == 0 {
					code, user := w.codes[n-1], w.users[n-1]
					w.codes, w.users = w.codes[:n-1], w.users[:n-1]
					cctx, cancel := context.WithTimeout(ctx, kill9CallWait)
					_, err := b.ConsumeDeviceFlow(cctx, code, validity)
					cancel()
					h.add("consume", user, err)
				}
			}
		}()
	}
	kills := 0
	for range kill9Kills {
		time.Sleep(kill9LoadBefore)
		s.Kill9(t)
		kills++
		time.Sleep(kill9Down)
		s.Restart(t)
	}
	time.Sleep(kill9LoadBefore)
	stop.Store(true)
	wg.Wait()
	b.Close()

	raw, err := testdb.AdminDB(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	q := func(s string) string { return sqldialect.Rewrite(engine, s) }
	idArg := func(id uuid.UUID) string {
		if engine == "postgres" {
			return id.String()
		}
		return backend.HexJTI(id)
	}
	exists := func(ctx context.Context, query string, args ...any) (bool, error) {
		var n int
		err := raw.QueryRowContext(ctx, q(`SELECT COUNT(*) FROM (`+query+`) AS x`), args...).Scan(&n)
		return n > 0, err
	}
	missing, present, wrong, problems, err := h.check(ctx, func(ctx context.Context, e event) (bool, error) {
		switch e.op {
		case "rotate":
			var sub, jti string
			fmt.Sscan(e.key, &sub, &jti)
			id, err := uuid.Parse(jti)
			if err != nil {
				return false, err
			}
			return exists(ctx, `SELECT 1 FROM "RefreshTokens" WHERE "JTI"=? AND "Sub"=?`, idArg(id), sub)
		case "consume":
			return exists(ctx, `SELECT 1 FROM "DeviceFlows" WHERE "UserCode"=? AND "Status"='DONE'`, e.key)
		}
		return false, fmt.Errorf("unknown op %q", e.op)
	})
	if err != nil {
		t.Fatal(err)
	}
	lost := 0
	for _, w := range workers {
		if err := oneLiveToken(ctx, raw, q, idArg, w.sub, w.cur); err != nil {
			lost++
			t.Errorf("%s: %v (held %d tokens)", w.sub, err, len(w.held))
		}
	}
	logHistory(t, fmt.Sprintf("%s kill -9", kind), &h, missing, present, wrong, problems)
	t.Logf("%s: %d kill -9 under %d workers; %d subjects without exactly their last token",
		kind, kills, kill9Workers, lost)
}

// oneLiveToken checks, in the raw database, that sub has exactly one
// CREATED token and that it is want.
func oneLiveToken(ctx context.Context, raw *sql.DB, q func(string) string, idArg func(uuid.UUID) string, sub string, want uuid.UUID) error {
	var n int
	if err := raw.QueryRowContext(ctx, q(`SELECT COUNT(*) FROM "RefreshTokens" WHERE "Sub"=? AND "Status"='CREATED'`), sub).Scan(&n); err != nil {
		return err
	}
	var m int
	if err := raw.QueryRowContext(ctx, q(`SELECT COUNT(*) FROM "RefreshTokens" WHERE "JTI"=? AND "Status"='CREATED'`), idArg(want)).Scan(&m); err != nil {
		return err
	}
	if n != 1 || m != 1 {
		return fmt.Errorf("%d live tokens, the last one given (%s) live: %v", n, want, m == 1)
	}
	return nil
}
