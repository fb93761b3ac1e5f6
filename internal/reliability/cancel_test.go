package reliability

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
)

// Shape of the cancelled-writes test.
const (
	cancelWorkers = 8
	cancelOps     = 120                   // operations per worker
	cancelMaxWait = 4 * time.Millisecond  // SQLite's deadlines: drawn from [0, cancelMaxWait]
	serverMaxWait = 30 * time.Millisecond // the servers' (a cancelled call's connection is not reused: calls dial)
	cancelFlows   = cancelOps / 3         // READY device flows per worker
)

// TestCancelledWritesHistory runs cancelWorkers goroutines of rotations,
// refresh-token inserts and consumes, each call with a deadline drawn at
// random from [0, 4ms] on SQLite, [0, 30ms] on the servers (some end before the statement is sent, some while
// the server runs it, some after its reply), on every SQL engine. Every
// call goes into a history: ok, fail (the context's error: nothing
// written) or info (ErrOutcomeUnknown). A worker retries a rotation or
// insert that came back info with the same arguments, and starts afresh
// after a failure. Once every session has ended, the checker reads the
// database: no ok write missing, no failed write present (the
// issue's "cancelled but applied"), no wrong verdict, and each worker's
// subject holds exactly its last token.
func TestCancelledWritesHistory(t *testing.T) {
	for _, engine := range sqlEngines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, engine)
			b := e.open(t, backend.WithMaxOpenConns(16))
			maxWait := serverMaxWait
			if engine == "sqlite" {
				maxWait = cancelMaxWait
			}
			ctx := t.Context()
			type worker struct {
				sub, insSub string
				cur         uuid.UUID
				codes       []string
				users       []string
			}
			workers := make([]*worker, cancelWorkers)
			for i := range workers {
				w := &worker{sub: fmt.Sprintf("cancel-%d", i), insSub: fmt.Sprintf("cancel-ins-%d", i), cur: e.newJTI()}
				if err := b.InsertRefreshToken(ctx, w.cur, w.sub, "openid"); err != nil {
					t.Fatal(err)
				}
				for range cancelFlows {
					uc, dc := readyDeviceFlow(t, ctx, b, w.sub)
					w.codes, w.users = append(w.codes, dc), append(w.users, uc)
				}
				workers[i] = w
			}
			var h history
			var wg sync.WaitGroup
			for _, w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					next, ins := uuid.Nil, uuid.Nil
					for i := 0; i < cancelOps || next != uuid.Nil || ins != uuid.Nil; i++ {
						if ctx.Err() != nil {
							return
						}
						wait := randomWait(maxWait)
						if i >= cancelOps {
							wait = 5 * time.Second // settle the last info calls
						}
						cctx, cancel := context.WithTimeout(ctx, wait)
						switch {
						case (i < cancelOps && i%3 == 0) || next != uuid.Nil:
							if next == uuid.Nil {
								next = e.newJTI()
							}
							_, err := b.RotateRefreshToken(cctx, w.cur, next)
							switch h.add("rotate", w.sub+" "+next.String(), err) {
							case okOutcome:
								w.cur, next = next, uuid.Nil
							case failOutcome:
								if wrongVerdict(err) || errors.Is(err, backend.ErrNotFound) {
									cancel()
									t.Errorf("%s: rotating its live token: %v", w.sub, err)
									return
								}
								next = uuid.Nil
							}
						case (i < cancelOps && i%3 == 1) || ins != uuid.Nil:
							if ins == uuid.Nil {
								ins = e.newJTI()
							}
							err := b.InsertRefreshToken(cctx, ins, w.insSub, "openid")
							if h.add("insert", w.insSub+" "+ins.String(), err) != infoOutcome {
								ins = uuid.Nil
							}
						default:
							if n := len(w.codes); n > 0 && i < cancelOps {
								code, user := w.codes[n-1], w.users[n-1]
								w.codes, w.users = w.codes[:n-1], w.users[:n-1]
								_, err := b.ConsumeDeviceFlow(cctx, code, validity)
								h.add("consume", user, err)
							}
						}
						cancel()
					}
				}()
			}
			wg.Wait()
			if e.engine != "sqlite" {
				b.Close()
				killUntilNone(t, newKiller(t, e))
			}
			missing, present, wrong, problems, err := h.check(ctx, func(ctx context.Context, ev event) (bool, error) {
				return appliedInRaw(ctx, e, ev)
			})
			if err != nil {
				t.Fatal(err)
			}
			lost := 0
			for _, w := range workers {
				if err := oneLiveToken(ctx, e.raw, e.q, func(id uuid.UUID) string { return jtiArg(e, id) }, w.sub, w.cur); err != nil {
					lost++
					t.Errorf("%s: %v", w.sub, err)
				}
			}
			logHistory(t, engine+" cancelled writes", &h, missing, present, wrong, problems)
			t.Logf("%s: %d subjects without exactly their last token", engine, lost)
		})
	}
}

// appliedInRaw reads, with raw SQL, whether a history event's write is in
// the database: "rotate" and "insert" (key "sub jti": the token is stored
// for sub), "consume" (key: the user code; the flow is DONE).
func appliedInRaw(ctx context.Context, e *env, ev event) (bool, error) {
	exists := func(query string, args ...any) (bool, error) {
		var n int
		err := e.raw.QueryRowContext(ctx, e.q(`SELECT COUNT(*) FROM (`+query+`) AS x`), args...).Scan(&n)
		return n > 0, err
	}
	switch ev.op {
	case "rotate", "insert":
		var sub, jti string
		fmt.Sscan(ev.key, &sub, &jti)
		id, err := uuid.Parse(jti)
		if err != nil {
			return false, err
		}
		return exists(`SELECT 1 FROM "RefreshTokens" WHERE "JTI"=? AND "Sub"=?`, jtiArg(e, id), sub)
	case "consume":
		return exists(`SELECT 1 FROM "DeviceFlows" WHERE "UserCode"=? AND "Status"='DONE'`, ev.key)
	}
	return false, fmt.Errorf("unknown op %q", ev.op)
}

// randomWait draws a duration uniformly from [0, max] (crypto/rand, as
// the project draws every random value).
func randomWait(max time.Duration) time.Duration {
	var b [8]byte
	rand.Read(b[:])
	return time.Duration(binary.LittleEndian.Uint64(b[:]) % uint64(max+1))
}
