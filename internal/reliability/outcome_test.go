package reliability

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb"
	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/internal/faultproxy"
)

// faultEnv is a server engine's fresh database reached through a fault
// proxy: b goes through the proxy, e.raw straight to the server (the
// checker's view).
type faultEnv struct {
	*env
	proxy *faultproxy.Proxy
	b     backend.Backend
	// nextUserCode, when set, is the user code InsertDeviceFlow's generator
	// hands out next (once), so that a test can aim at its INSERT.
	nextUserCode atomic.Pointer[string]
}

func newFaultEnv(t *testing.T, engine string, opts ...backend.Option) *faultEnv {
	t.Helper()
	fe := &faultEnv{env: newEnv(t, engine)}
	u, err := url.Parse(fe.url)
	if err != nil {
		t.Fatal(err)
	}
	p, err := faultproxy.Start(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	fe.proxy = p
	u.Host = p.Addr()
	gen := func() (string, error) {
		if c := fe.nextUserCode.Swap(nil); c != nil {
			return *c, nil
		}
		return backend.GenerateUserCode()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	all := append([]backend.Option{backend.WithClock(fe.clock.Now), backend.WithUserCodeGenerator(gen)}, opts...)
	b, err := authdb.Open(ctx, u.String(), all...)
	if err != nil {
		t.Fatalf("open %s through the proxy: %v", engine, err)
	}
	t.Cleanup(func() { b.Close() })
	fe.b = b
	return fe
}

// exists reports whether query (raw SQL, "double-quoted", ? placeholders)
// finds a row, read straight from the server.
func (fe *faultEnv) exists(ctx context.Context, query string, args ...any) (bool, error) {
	var n int
	err := fe.raw.QueryRowContext(ctx, fe.q(`SELECT COUNT(*) FROM (`+query+`) AS x`), args...).Scan(&n)
	return n > 0, err
}

// trial is one write aimed at by a fault.
type trial struct {
	match      string // a substring of the write's statement or parameters
	skip       int    // matching writes to let through first (MySQL's reads)
	after      int    // fault the after-th write after the match (a COMMIT)
	call       func(ctx context.Context) (key string, err error)
	applied    func(ctx context.Context, key string) (bool, error)
	idempotent bool               // the caller's natural retry after info must succeed
	invariant  func(t *testing.T) // checked after the call (and after its retry)
	retry      func(t *testing.T) // the caller's natural retry, run after info
}

// lostCase makes a trial on a fault env.
type lostCase struct {
	name  string
	setup func(t *testing.T, fe *faultEnv) *trial
}

func hashArg(code string) string { return backend.HashCode(code) }

// lostCases are the writes of the Backend, each aimed at by its own
// statement's parameter: a JTI, a subject, a code's hash, a client id, an
// ID token's value.
func lostCases(engine string) []lostCase {
	mysql := engine == "mysql"
	skipRead := 0
	if mysql {
		skipRead = 1 // MySQL's consume reads the flow first, with the same hash
	}
	cases := []lostCase{
		{"InsertRefreshToken", func(t *testing.T, fe *faultEnv) *trial {
			jti, sub := fe.newJTI(), "ins-"+uuid.NewString()[:8]
			return &trial{
				match: jtiArg(fe.env, jti),
				call: func(ctx context.Context) (string, error) {
					return jti.String(), fe.b.InsertRefreshToken(ctx, jti, sub, "openid")
				},
				applied: func(ctx context.Context, _ string) (bool, error) {
					return fe.exists(ctx, `SELECT 1 FROM "RefreshTokens" WHERE "JTI"=? AND "Sub"=?`, jtiArg(fe.env, jti), sub)
				},
				idempotent: true,
				retry: func(t *testing.T) {
					if err := fe.b.InsertRefreshToken(t.Context(), jti, sub, "openid"); err != nil {
						t.Errorf("InsertRefreshToken retried after info: %v", err)
					}
				},
			}
		}},
		{"RotateRefreshToken", func(t *testing.T, fe *faultEnv) *trial {
			return rotationTrial(t, fe, false)
		}},
		{"RevokeRefreshToken", func(t *testing.T, fe *faultEnv) *trial {
			jti := fe.newJTI()
			if err := fe.b.InsertRefreshToken(t.Context(), jti, "rev-"+uuid.NewString()[:8], "s"); err != nil {
				t.Fatal(err)
			}
			return &trial{
				match: jtiArg(fe.env, jti),
				call: func(ctx context.Context) (string, error) {
					return jti.String(), fe.b.RevokeRefreshToken(ctx, jti)
				},
				applied: func(ctx context.Context, _ string) (bool, error) {
					return fe.exists(ctx, `SELECT 1 FROM "RefreshTokens" WHERE "JTI"=? AND "Status"='REVOKED'`, jtiArg(fe.env, jti))
				},
				idempotent: true,
				retry: func(t *testing.T) {
					if err := fe.b.RevokeRefreshToken(t.Context(), jti); err != nil {
						t.Errorf("RevokeRefreshToken retried after info: %v", err)
					}
				},
			}
		}},
		{"RevokeUserRefreshTokens", func(t *testing.T, fe *faultEnv) *trial {
			sub := "revu-" + uuid.NewString()[:8]
			for range 2 {
				if err := fe.b.InsertRefreshToken(t.Context(), fe.newJTI(), sub, "s"); err != nil {
					t.Fatal(err)
				}
			}
			return &trial{
				match: sub,
				call: func(ctx context.Context) (string, error) {
					_, err := fe.b.RevokeUserRefreshTokens(ctx, sub)
					return sub, err
				},
				applied: func(ctx context.Context, _ string) (bool, error) {
					live, err := fe.exists(ctx, `SELECT 1 FROM "RefreshTokens" WHERE "Sub"=? AND "Status"='CREATED'`, sub)
					return !live, err
				},
				idempotent: true,
				retry: func(t *testing.T) {
					if _, err := fe.b.RevokeUserRefreshTokens(t.Context(), sub); err != nil {
						t.Errorf("RevokeUserRefreshTokens retried after info: %v", err)
					}
				},
			}
		}},
		{"ConsumeDeviceFlow", func(t *testing.T, fe *faultEnv) *trial {
			uc, dc := readyDeviceFlow(t, t.Context(), fe.b, "x")
			return &trial{
				match: hashArg(dc), skip: skipRead,
				call: func(ctx context.Context) (string, error) {
					_, err := fe.b.ConsumeDeviceFlow(ctx, dc, validity)
					return uc, err
				},
				applied: func(ctx context.Context, _ string) (bool, error) {
					return fe.exists(ctx, `SELECT 1 FROM "DeviceFlows" WHERE "UserCode"=? AND "Status"='DONE'`, uc)
				},
			}
		}},
		{"ConsumeAuthorizationFlow", func(t *testing.T, fe *faultEnv) *trial {
			id, err := fe.b.InsertAuthorizationFlow(t.Context(), "c", "s", "cc", "S256", "https://x")
			if err != nil {
				t.Fatal(err)
			}
			code, _, err := fe.b.AuthorizationFlowInsertIDToken(t.Context(), id, map[string]any{"sub": "x"}, validity)
			if err != nil {
				t.Fatal(err)
			}
			return &trial{
				match: hashArg(code), skip: skipRead,
				call: func(ctx context.Context) (string, error) {
					_, err := fe.b.ConsumeAuthorizationFlow(ctx, code, validity)
					return id, err
				},
				applied: func(ctx context.Context, _ string) (bool, error) {
					return fe.exists(ctx, `SELECT 1 FROM "AuthorizationFlows" WHERE "Code"=? AND "Status"='DONE'`, hashArg(code))
				},
			}
		}},
		{"InsertDeviceFlow", func(t *testing.T, fe *faultEnv) *trial {
			uc, err := backend.GenerateUserCode()
			if err != nil {
				t.Fatal(err)
			}
			fe.nextUserCode.Store(&uc)
			return &trial{
				match: uc,
				call: func(ctx context.Context) (string, error) {
					got, dc, err := fe.b.InsertDeviceFlow(ctx, "c", "s")
					if err == nil {
						// The codes handed out work.
						if f, gerr := fe.b.GetDeviceFlow(context.WithoutCancel(ctx), dc); gerr != nil || f.UserCode != got {
							return got, fmt.Errorf("the returned device code finds %+v, %v", f, gerr)
						}
						return got, nil
					}
					return uc, err
				},
				applied: func(ctx context.Context, key string) (bool, error) {
					return fe.exists(ctx, `SELECT 1 FROM "DeviceFlows" WHERE "UserCode"=?`, key)
				},
				// A retry makes a new flow (new codes): the lost one, applied
				// or not, is an orphan nobody has the codes of.
				idempotent: false,
				retry: func(t *testing.T) {
					if _, _, err := fe.b.InsertDeviceFlow(t.Context(), "c", "s"); err != nil {
						t.Errorf("InsertDeviceFlow retried after info: %v", err)
					}
				},
			}
		}},
		{"InsertAuthorizationFlow", func(t *testing.T, fe *faultEnv) *trial {
			client := "client-" + uuid.NewString()[:8]
			return &trial{
				match: client,
				call: func(ctx context.Context) (string, error) {
					id, err := fe.b.InsertAuthorizationFlow(ctx, client, "s", "cc", "S256", "https://x")
					if err == nil {
						return id, nil
					}
					return client, err
				},
				applied: func(ctx context.Context, key string) (bool, error) {
					if id, err := uuid.Parse(key); err == nil {
						return fe.exists(ctx, `SELECT 1 FROM "AuthorizationFlows" WHERE "UUID"=? AND "ClientID"=?`, jtiArg(fe.env, id), client)
					}
					return fe.exists(ctx, `SELECT 1 FROM "AuthorizationFlows" WHERE "ClientID"=?`, client)
				},
				idempotent: true,
				retry: func(t *testing.T) {
					if _, err := fe.b.InsertAuthorizationFlow(t.Context(), client, "s", "cc", "S256", "https://x"); err != nil {
						t.Errorf("InsertAuthorizationFlow retried after info: %v", err)
					}
				},
			}
		}},
		{"DeviceFlowInsertIDToken", func(t *testing.T, fe *faultEnv) *trial {
			uc, _, err := fe.b.InsertDeviceFlow(t.Context(), "c", "s")
			if err != nil {
				t.Fatal(err)
			}
			mark := "tok-" + uuid.NewString()[:8]
			tok := map[string]any{"sub": mark}
			return &trial{
				match: mark,
				call: func(ctx context.Context) (string, error) {
					return uc, fe.b.DeviceFlowInsertIDToken(ctx, uc, tok, validity)
				},
				applied: func(ctx context.Context, _ string) (bool, error) {
					return fe.exists(ctx, `SELECT 1 FROM "DeviceFlows" WHERE "UserCode"=? AND "Status"='READY'`, uc)
				},
				idempotent: true,
				retry: func(t *testing.T) {
					if err := fe.b.DeviceFlowInsertIDToken(t.Context(), uc, tok, validity); err != nil {
						t.Errorf("DeviceFlowInsertIDToken retried after info: %v", err)
					}
				},
			}
		}},
		{"AuthorizationFlowInsertIDToken", func(t *testing.T, fe *faultEnv) *trial {
			id, err := fe.b.InsertAuthorizationFlow(t.Context(), "c", "s", "cc", "S256", "https://x")
			if err != nil {
				t.Fatal(err)
			}
			mark := "tok-" + uuid.NewString()[:8]
			tok := map[string]any{"sub": mark}
			return &trial{
				match: mark,
				call: func(ctx context.Context) (string, error) {
					code, _, err := fe.b.AuthorizationFlowInsertIDToken(ctx, id, tok, validity)
					if err == nil {
						// The code handed out is the stored one.
						if _, gerr := fe.b.GetAuthorizationFlow(context.WithoutCancel(ctx), code, validity); gerr != nil {
							return id, fmt.Errorf("the returned code finds no flow: %v", gerr)
						}
					}
					return id, err
				},
				applied: func(ctx context.Context, _ string) (bool, error) {
					uid, _ := uuid.Parse(id)
					return fe.exists(ctx, `SELECT 1 FROM "AuthorizationFlows" WHERE "UUID"=? AND "Status"='READY'`, jtiArg(fe.env, uid))
				},
			}
		}},
	}
	if mysql {
		cases = append(cases, lostCase{"RotateRefreshToken/COMMIT", func(t *testing.T, fe *faultEnv) *trial {
			return rotationTrial(t, fe, true)
		}})
	}
	return cases
}

// rotationTrial rotates a fresh subject's token; the fault aims at the
// statement carrying the new JTI (PostgreSQL's one statement, MySQL's
// INSERT) or, with commit, at the transaction's COMMIT (MySQL; the test
// makes no other call meanwhile).
// Invariant: the subject keeps exactly one live token, the new one if the
// rotation applied, else the old one.
func rotationTrial(t *testing.T, fe *faultEnv, commit bool) *trial {
	sub := "rot-" + uuid.NewString()[:8]
	old, next := fe.newJTI(), fe.newJTI()
	if err := fe.b.InsertRefreshToken(t.Context(), old, sub, "openid"); err != nil {
		t.Fatal(err)
	}
	applied := func(ctx context.Context, _ string) (bool, error) {
		return fe.exists(ctx, `SELECT 1 FROM "RefreshTokens" WHERE "JTI"=? AND "Sub"=?`, jtiArg(fe.env, next), sub)
	}
	match := jtiArg(fe.env, next)
	if commit {
		match = "COMMIT"
	}
	oneLive := func(t *testing.T) {
		t.Helper()
		live, err := liveTokens(t.Context(), fe.b, sub)
		if err != nil {
			t.Fatalf("live tokens of %s: %v", sub, err)
		}
		a, err := applied(t.Context(), "")
		if err != nil {
			t.Fatal(err)
		}
		want := old
		if a {
			want = next
		}
		if len(live) != 1 || live[0].JTI != want {
			t.Errorf("%s: live tokens %v, want exactly %s (rotation applied: %v): a subject lost its token", sub, live, want, a)
		}
	}
	return &trial{
		match: match,
		call: func(ctx context.Context) (string, error) {
			_, err := fe.b.RotateRefreshToken(ctx, old, next)
			return next.String(), err
		},
		applied:    applied,
		idempotent: true,
		invariant:  oneLive,
		retry: func(t *testing.T) {
			if _, err := fe.b.RotateRefreshToken(t.Context(), old, next); err != nil {
				t.Errorf("RotateRefreshToken retried after info: %v", err)
			}
		},
	}
}

// lostFault is one kind of fault with the context the call gets.
type lostFault struct {
	fault   faultproxy.Fault
	delay   time.Duration // Latency's
	timeout time.Duration // the call's deadline
}

var lostFaults = []lostFault{
	{fault: faultproxy.DropReply, timeout: 10 * time.Second},
	{fault: faultproxy.DropReplyClose, timeout: 10 * time.Second},
	{fault: faultproxy.ResetAfterSend, timeout: 10 * time.Second},
	{fault: faultproxy.ResetBeforeSend, timeout: 10 * time.Second},
	// The reply comes after the caller's deadline.
	{fault: faultproxy.Latency, delay: 900 * time.Millisecond, timeout: 300 * time.Millisecond},
}

// TestLostReplies aims each fault of lostFaults at each write of the
// Backend on PostgreSQL and MariaDB, through the fault proxy: the server's
// reply dropped after the statement ran, the connection reset just after
// or just before the statement was sent, the reply delayed past the
// caller's deadline. Every call's outcome goes into a history (ok, fail,
// info); afterwards, with every session of the test database gone, the
// checker reads the database: no ok write missing, no failed write
// present, no ErrTokenReused / ErrAlreadyUsed / ErrAlreadyExists for a
// caller's own write, every rotated subject with exactly one live token.
// After an info, the caller's natural retry of an idempotent write
// succeeds.
func TestLostReplies(t *testing.T) {
	for _, engine := range servers {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			fe := newFaultEnv(t, engine)
			k := newKiller(t, fe.env)
			var h history
			type done struct {
				tr  *trial
				key string
			}
			var all []done
			var retried, retriedOK, unfired int
			for _, f := range lostFaults {
				for _, c := range lostCases(engine) {
					name := c.name + "/" + f.fault.String()
					tr := c.setup(t, fe)
					fe.proxy.Arm(faultproxy.Rule{Match: []byte(tr.match), Skip: tr.skip, After: tr.after, Fault: f.fault, Delay: f.delay})
					fired := fe.proxy.Total()
					ctx, cancel := context.WithTimeout(t.Context(), f.timeout)
					key, err := tr.call(ctx)
					cancel()
					if fe.proxy.Total() == fired {
						fe.proxy.Disarm()
						if f.fault == faultproxy.Latency && errors.Is(err, context.DeadlineExceeded) {
							// The deadline passed before the write was sent
							// (a loaded machine): a plain failure, checked as such.
							unfired++
						} else {
							t.Errorf("%s: the fault never fired: %v", name, err)
						}
					}
					o := h.add(name, key, err)
					all = append(all, done{tr: tr, key: key})
					if tr.invariant != nil {
						tr.invariant(t)
					}
					if o == infoOutcome && tr.retry != nil {
						// The caller's natural retry: it succeeds, and the
						// write is there.
						retried++
						tr.retry(t)
						a, err := tr.applied(t.Context(), key)
						if err != nil {
							t.Fatal(err)
						}
						if !a && tr.idempotent {
							t.Errorf("%s: retried after info, but not applied", name)
						} else {
							retriedOK++
						}
						if tr.invariant != nil {
							tr.invariant(t)
						}
					}
				}
			}
			// Every session of the test database gone (a lost statement can
			// no longer land), the checker reads the database.
			fe.b.Close()
			killUntilNone(t, k)
			byKey := map[string]*trial{}
			for _, d := range all {
				byKey[d.key] = d.tr
			}
			missing, present, wrong, problems, err := h.check(t.Context(), func(ctx context.Context, e event) (bool, error) {
				tr := byKey[e.key]
				if tr == nil {
					return false, errors.New("no trial")
				}
				return tr.applied(ctx, e.key)
			})
			if err != nil {
				t.Fatal(err)
			}
			logHistory(t, engine+" lost replies", &h, missing, present, wrong, problems)
			t.Logf("%s: %d faults injected (drop_reply %d, drop_reply_close %d, reset_after_send %d, reset_before_send %d, latency %d) on %d proxied connections (%d latency faults not reached: deadline passed before the write); %d natural retries after info, %d succeeded",
				engine, fe.proxy.Total(), fe.proxy.Fired(faultproxy.DropReply), fe.proxy.Fired(faultproxy.DropReplyClose), fe.proxy.Fired(faultproxy.ResetAfterSend),
				fe.proxy.Fired(faultproxy.ResetBeforeSend), fe.proxy.Fired(faultproxy.Latency), fe.proxy.Connections(), unfired, retried, retriedOK)
		})
	}
}

// TestRetryAfterUnknown makes the server unreachable right after a write's
// statement ran and its reply was dropped, so that the backend cannot read
// the outcome back: the call must say backend.ErrOutcomeUnknown (info),
// and once the server is back, the caller's natural retry with the same
// arguments succeeds and the write is there once (a rotation's subject
// with exactly its new token). (A consume has no such retry: see
// TestLostReplies.)
func TestRetryAfterUnknown(t *testing.T) {
	for _, engine := range servers {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			fe := newFaultEnv(t, engine)
			want := map[string]bool{"InsertRefreshToken": true, "RotateRefreshToken": true,
				"RotateRefreshToken/COMMIT": true, "RevokeUserRefreshTokens": true}
			infos, retriedOK := 0, 0
			for _, c := range lostCases(engine) {
				if !want[c.name] || (engine == "mysql" && c.name == "RotateRefreshToken") {
					continue // MySQL's rotation commits in a COMMIT of its own
				}
				tr := c.setup(t, fe)
				fe.proxy.Arm(faultproxy.Rule{Match: []byte(tr.match), Skip: tr.skip, After: tr.after,
					Fault: faultproxy.DropReply, ThenDown: true})
				ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
				key, err := tr.call(ctx)
				cancel()
				fe.proxy.Up()
				if !errors.Is(err, backend.ErrOutcomeUnknown) {
					t.Errorf("%s with the server gone after the write: %v, want ErrOutcomeUnknown", c.name, err)
					continue
				}
				infos++
				tr.retry(t)
				a, err := tr.applied(t.Context(), key)
				if err != nil {
					t.Fatal(err)
				}
				if !a {
					t.Errorf("%s: retried after info, not applied", c.name)
				} else {
					retriedOK++
				}
				if tr.invariant != nil {
					tr.invariant(t)
				}
			}
			t.Logf("%s: %d writes lost their reply with the server gone: %d info; %d natural retries succeeded; proxy: %d faults",
				engine, infos, infos, retriedOK, fe.proxy.Total())
		})
	}
}
