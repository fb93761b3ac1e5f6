package reliability

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
)

// Shape of the kill-during-rotation test.
const (
	crashChains    = 16 // goroutines, one subject (chain) each
	crashRotations = 25 // rotation attempts per chain
	crashKillEvery = 15 * time.Millisecond
)

var uuidPattern = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// crashStats are the figures of one run.
type crashStats struct {
	attempts, ok, failed, info, committedInfo, committedDespiteError atomic.Int64
	killRounds, sessionsKilled                                       atomic.Int64

	mu     sync.Mutex
	sample map[string]int // failed calls' errors, by message
}

func (st *crashStats) record(err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.sample == nil {
		st.sample = map[string]int{}
	}
	st.sample[uuidPattern.ReplaceAllString(err.Error(), "<jti>")]++
}

// TestKillSessionsDuringRotations rotates crashChains token chains while
// an admin connection ends every session of the test database in a loop.
// Calls may fail while their session dies, but no rotation may be half
// done: after every call, and at the end, each chain has exactly one live
// token, either the old one (the rotation did not happen) or the new one
// (it happened), and every other token of the chain is revoked.
func TestKillSessionsDuringRotations(t *testing.T) {
	for _, engine := range servers {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, engine)
			b := e.open(t, backend.WithMaxOpenConns(crashChains), backend.WithMaxIdleConns(crashChains))
			k := newKiller(t, e)
			ctx := t.Context()
			var st crashStats

			subs := make([]string, crashChains)
			heads := make([]uuid.UUID, crashChains)
			for i := range subs {
				subs[i] = fmt.Sprintf("crash-%s-%02d", engine, i)
				heads[i] = e.newJTI()
				if err := b.InsertRefreshToken(ctx, heads[i], subs[i], "openid offline_access"); err != nil {
					t.Fatal(err)
				}
			}

			stop := make(chan struct{})
			killerDone := make(chan struct{})
			go func() {
				defer close(killerDone)
				tick := time.NewTicker(crashKillEvery)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					n, err := k.kill(ctx)
					if err != nil && ctx.Err() == nil {
						t.Errorf("kill sessions: %v", err)
						return
					}
					st.killRounds.Add(1)
					st.sessionsKilled.Add(int64(n))
				}
			}()

			// chains[i] is every JTI chain i ever held live, in order.
			chains := make([][]uuid.UUID, crashChains)
			var wg sync.WaitGroup
			for i := range crashChains {
				wg.Add(1)
				go func() {
					defer wg.Done()
					chains[i] = rotateUnderFire(t, e, b, k, subs[i], heads[i], &st)
				}()
			}
			wg.Wait()
			close(stop)
			<-killerDone
			// A last round, and its sessions gone (termination is
			// asynchronous): from now on every call must work, the pool
			// discarding the dead connections.
			rounds, n := killUntilNone(t, k)
			st.killRounds.Add(int64(rounds))
			st.sessionsKilled.Add(int64(n))

			all, err := b.GetUserRefreshTokens(ctx, "")
			if err != nil {
				t.Fatalf("administrator's view after the kills: %v", err)
			}
			bySub := map[string][]backend.RefreshToken{}
			for _, tok := range all {
				bySub[tok.Sub] = append(bySub[tok.Sub], tok)
			}
			for i, sub := range subs {
				chain := chains[i]
				if chain == nil {
					continue // its goroutine already failed the test
				}
				last := chain[len(chain)-1]
				live, err := b.GetUserRefreshTokens(ctx, sub)
				if err != nil {
					t.Fatalf("GetUserRefreshTokens(%q): %v", sub, err)
				}
				if len(live) != 1 || live[0].JTI != last {
					t.Errorf("chain %d: live tokens %v, want exactly the chain's last %s", i, live, last)
				}
				inChain := map[uuid.UUID]bool{}
				for _, jti := range chain {
					inChain[jti] = true
				}
				revoked := 0
				for _, tok := range bySub[sub] {
					if !inChain[tok.JTI] {
						t.Errorf("chain %d: stored token %s was never the chain's live token", i, tok.JTI)
					}
					if tok.Status == backend.TokenRevoked {
						revoked++
					} else if tok.JTI != last {
						t.Errorf("chain %d: token %s is live besides the last one", i, tok.JTI)
					}
				}
				if len(bySub[sub]) != len(chain) || revoked != len(chain)-1 {
					t.Errorf("chain %d: %d tokens stored, %d revoked; the chain moved %d times",
						i, len(bySub[sub]), revoked, len(chain)-1)
				}
			}
			if len(all) != countJTIs(chains) {
				t.Errorf("%d tokens stored, the chains hold %d", len(all), countJTIs(chains))
			}
			if st.sessionsKilled.Load() == 0 {
				t.Errorf("no session was killed: the test proved nothing")
			}
			t.Logf("%s: %d rotations attempted, %d succeeded, %d failed (%d ErrOutcomeUnknown, %d of which had taken effect; "+
				"%d definite failures that had taken effect); "+
				"%d kill rounds ended %d sessions; every chain kept exactly one live token, nothing lost",
				engine, st.attempts.Load(), st.ok.Load(), st.failed.Load(), st.info.Load(), st.committedInfo.Load(), st.committedDespiteError.Load(),
				st.killRounds.Load(), st.sessionsKilled.Load())
			for msg, n := range st.sample {
				t.Logf("  %4d× %s", n, msg)
			}
		})
	}
}

// rotateUnderFire makes crashRotations rotation attempts on sub's chain
// and returns every JTI the chain held live, in order. After a failed call
// it reads the subject's live tokens (retrying while sessions die) and
// requires exactly one: the old token or the new one.
func rotateUnderFire(t *testing.T, e *env, b backend.Backend, k *killer, sub string, head uuid.UUID, st *crashStats) []uuid.UUID {
	ctx := t.Context()
	cur := head
	chain := []uuid.UUID{cur}
	for range crashRotations {
		next := e.newJTI()
		st.attempts.Add(1)
		_, err := b.RotateRefreshToken(ctx, cur, next)
		if err == nil {
			st.ok.Add(1)
			cur = next
			chain = append(chain, cur)
			continue
		}
		st.failed.Add(1)
		unknown := errors.Is(err, backend.ErrOutcomeUnknown)
		if unknown {
			st.info.Add(1)
		}
		st.record(err)
		if errors.Is(err, backend.ErrTokenReused) || errors.Is(err, backend.ErrNotFound) {
			t.Errorf("%s: rotating the live token %s: %v", sub, cur, err)
			return nil
		}
		// The killed session may still be committing: read once it is gone.
		if err := k.settle(ctx); err != nil {
			t.Errorf("%s: %v", sub, err)
			return nil
		}
		live, err := liveTokens(ctx, b, sub)
		if err != nil {
			t.Errorf("%s: reading the live tokens after a failed rotation: %v", sub, err)
			return nil
		}
		switch {
		case len(live) == 1 && live[0].JTI == cur:
		case len(live) == 1 && live[0].JTI == next:
			if unknown {
				st.committedInfo.Add(1) // ErrOutcomeUnknown: either way is honest
			} else {
				st.committedDespiteError.Add(1)
				t.Errorf("%s: the rotation of %s into %s failed (%v) but took effect", sub, cur, next, err)
			}
			cur = next
			chain = append(chain, cur)
		default:
			t.Errorf("%s: after a failed rotation of %s into %s the live tokens are %v: want exactly one of the two",
				sub, cur, next, live)
			return nil
		}
	}
	return chain
}

// liveTokens reads sub's live tokens, trying again (up to 100 times) when
// the call fails because its session was killed.
func liveTokens(ctx context.Context, b backend.Backend, sub string) ([]backend.RefreshToken, error) {
	var err error
	for range 100 {
		var toks []backend.RefreshToken
		if toks, err = b.GetUserRefreshTokens(ctx, sub); err == nil {
			return toks, nil
		}
		if ctx.Err() != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	return nil, err
}

func countJTIs(chains [][]uuid.UUID) int {
	n := 0
	for _, c := range chains {
		n += len(c)
	}
	return n
}

// TestKillSessionsDuringConsume redeems device and authorization codes from
// two goroutines per code while the test database's sessions are killed in
// a loop: however the calls fail, no code is redeemed twice, and every flow
// ends READY (no call took effect, and redeeming it now works once) or
// DONE.
func TestKillSessionsDuringConsume(t *testing.T) {
	const flows = 200 // of each kind
	for _, engine := range servers {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, engine)
			b := e.open(t, backend.WithMaxOpenConns(16), backend.WithMaxIdleConns(16))
			k := newKiller(t, e)
			ctx := t.Context()
			type flow struct {
				device bool
				code   string
				wins   atomic.Int64
				info   atomic.Bool // a call said ErrOutcomeUnknown
			}
			var all []*flow
			for range flows {
				_, dc := readyDeviceFlow(t, ctx, b, "x")
				all = append(all, &flow{device: true, code: dc})
				id, err := b.InsertAuthorizationFlow(ctx, "c", "s", "cc", "S256", "https://x")
				if err != nil {
					t.Fatal(err)
				}
				code, _, err := b.AuthorizationFlowInsertIDToken(ctx, id, map[string]any{"sub": "x"}, validity)
				if err != nil {
					t.Fatal(err)
				}
				all = append(all, &flow{code: code})
			}
			consume := func(f *flow) error {
				if f.device {
					_, err := b.ConsumeDeviceFlow(ctx, f.code, validity)
					return err
				}
				_, err := b.ConsumeAuthorizationFlow(ctx, f.code, validity)
				return err
			}
			var calls, failed, kills, rounds atomic.Int64
			stop := make(chan struct{})
			killerDone := make(chan struct{})
			go func() {
				defer close(killerDone)
				for {
					select {
					case <-stop:
						return
					case <-time.After(2 * time.Millisecond):
					}
					n, err := k.kill(ctx)
					if err != nil && ctx.Err() == nil {
						t.Errorf("kill sessions: %v", err)
						return
					}
					rounds.Add(1)
					kills.Add(int64(n))
				}
			}()
			// Workers take the codes in order, each code twice (by two
			// different workers), while the killer runs.
			const workers = 8
			var wg sync.WaitGroup
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := w; i < 2*len(all); i += workers {
						f := all[i%len(all)]
						calls.Add(1)
						err := consume(f)
						switch {
						case err == nil:
							f.wins.Add(1)
						case errors.Is(err, backend.ErrAlreadyUsed):
						default:
							failed.Add(1)
							if errors.Is(err, backend.ErrOutcomeUnknown) {
								f.info.Store(true)
							}
						}
					}
				}()
			}
			wg.Wait()
			close(stop)
			<-killerDone
			r, n := killUntilNone(t, k)
			rounds.Add(int64(r))
			kills.Add(int64(n))

			redeemedLate, doneUnseen, doneWrong := 0, 0, 0
			for i, f := range all {
				if w := f.wins.Load(); w > 1 {
					t.Errorf("flow %d redeemed %d times", i, w)
				}
				err := consume(f)
				switch {
				case err == nil:
					redeemedLate++
					if f.wins.Load() != 0 {
						t.Errorf("flow %d: redeemed again after a successful redemption", i)
					}
				case errors.Is(err, backend.ErrAlreadyUsed):
					switch {
					case f.wins.Load() != 0:
					case f.info.Load():
						doneUnseen++ // a call that said ErrOutcomeUnknown had redeemed it
					default:
						doneWrong++
						t.Errorf("flow %d: redeemed by a call that reported a definite failure", i)
					}
				default:
					t.Errorf("flow %d: redeeming after the kills: %v", i, err)
				}
			}
			t.Logf("%s: %d redemptions of %d codes, %d failed while %d kill rounds ended %d sessions; "+
				"no code redeemed twice; %d codes redeemed by a call that said ErrOutcomeUnknown, %d by one that reported a definite failure, "+
				"%d untouched by the failed calls and redeemed afterwards",
				engine, calls.Load(), len(all), failed.Load(), rounds.Load(), kills.Load(), doneUnseen, doneWrong, redeemedLate)
		})
	}
}

// killUntilNone kills the test database's sessions until none is left (a
// pool may still be opening connections asked for before the last kill),
// and returns the rounds and the sessions killed.
func killUntilNone(t *testing.T, k *killer) (rounds, killed int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		n, err := k.kill(t.Context())
		if err != nil {
			t.Fatalf("kill sessions: %v", err)
		}
		rounds++
		killed += n
		for range 50 {
			time.Sleep(10 * time.Millisecond)
			if left, err := k.sessions(t.Context()); err != nil {
				t.Fatal(err)
			} else if left == 0 {
				return rounds, killed
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("sessions of the test database keep coming back after 20s of kills")
		}
	}
}
