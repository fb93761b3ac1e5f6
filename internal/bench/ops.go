package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
)

// Validity is the maxValidity the flow benchmarks pass; Retention the
// clean-up benchmarks' maxRetention.
const (
	Validity  = time.Hour
	Retention = 24 * time.Hour
)

// CleanRowsPerCall is how many expired rows each clean-up call deletes.
const CleanRowsPerCall = 10

// Parallelism is the number of goroutines of the concurrent rotation.
const Parallelism = 16

// Batch runs a prepared batch of calls and returns how many failed and the
// first failure.
type Batch func(ctx context.Context) (failed int, err error)

// Prepared is a batch of calls ready to run: either N calls of Call, which
// the runner times one by one, interleaved with the other implementation's,
// or (concurrent operations) one Batch of N calls timed as a whole.
type Prepared struct {
	N     int
	Call  func(ctx context.Context, i int) error
	Batch Batch
	// Done, if set, runs after the calls (untimed).
	Done func()
}

// Run runs all the calls as one batch.
func (p *Prepared) Run(ctx context.Context) (failed int, err error) {
	if p.Done != nil {
		defer p.Done()
	}
	if p.Batch != nil {
		return p.Batch(ctx)
	}
	for i := range p.N {
		if cerr := p.Call(ctx, i); cerr != nil {
			failed++
			if err == nil {
				err = cerr
			}
		}
	}
	return failed, err
}

// Op is one benchmarked operation.
type Op struct {
	Name string
	// Setup prepares about n calls on im (untimed).
	Setup func(ctx context.Context, e *Env, im *Impl, n int) (*Prepared, error)
	// Once, if set, runs once per environment before the op's first
	// setup (bulk loads); it is not timed.
	Once func(ctx context.Context, e *Env) error
	// MaxBatch bounds n (0: no bound).
	MaxBatch int
	// Big marks the 1,000,000-token case, run only when asked for.
	Big bool
}

var jtiSeq atomic.Uint64

// JTIAt returns a new UUIDv7 with t's millisecond and a process-wide
// sequence number in its random bits (distinct, and cheap for bulk loads).
func JTIAt(t time.Time) uuid.UUID {
	id := backend.LowestUUIDv7(t)
	seq := jtiSeq.Add(1)
	binary.BigEndian.PutUint64(id[8:], seq)
	id[8] = 0x80 | id[8]&0x3f
	id[6] = 0x70 | byte(seq>>60)&0x0f
	return id
}

func newJTI() uuid.UUID { return JTIAt(time.Now()) }

// IDToken is the ID token the flow benchmarks store.
func IDToken() map[string]any {
	return map[string]any{"sub": "b824d4dc-1f9d-4ee8-8df5-c0ae55d46041", "iss": "https://idp.example.org",
		"aud": "bench-client", "iat": 1718446830, "exp": 1718450430,
		"preferred_username": "bench", "groups": []string{"dirac_user", "lhcb_prod"}}
}

const (
	clientID  = "bench-client"
	scope     = "openid profile offline_access vo:lhcb group:lhcb_user"
	challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
	redirect  = "https://app.example.org/callback"
)

// sequential prepares n calls of call.
func sequential(n int, call func(ctx context.Context, i int) error) *Prepared {
	return &Prepared{N: n, Call: call}
}

// pool returns min(n, 256), the number of rows a read benchmark cycles over.
func pool(n int) int { return max(1, min(n, 256)) }

// ---- fixtures through the implementation's own API ----

func pendingDeviceFlows(ctx context.Context, b backend.Backend, n int) (userCodes, deviceCodes []string, err error) {
	for range n {
		uc, dc, err := b.InsertDeviceFlow(ctx, clientID, scope)
		if err != nil {
			return nil, nil, err
		}
		userCodes, deviceCodes = append(userCodes, uc), append(deviceCodes, dc)
	}
	return userCodes, deviceCodes, nil
}

func readyDeviceFlows(ctx context.Context, b backend.Backend, n int) ([]string, error) {
	ucs, dcs, err := pendingDeviceFlows(ctx, b, n)
	if err != nil {
		return nil, err
	}
	for _, uc := range ucs {
		if err := b.DeviceFlowInsertIDToken(ctx, uc, IDToken(), Validity); err != nil {
			return nil, err
		}
	}
	return dcs, nil
}

func pendingAuthFlows(ctx context.Context, b backend.Backend, n int) ([]string, error) {
	var ids []string
	for range n {
		id, err := b.InsertAuthorizationFlow(ctx, clientID, scope, challenge, "S256", redirect)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func readyAuthFlows(ctx context.Context, b backend.Backend, n int) ([]string, error) {
	ids, err := pendingAuthFlows(ctx, b, n)
	if err != nil {
		return nil, err
	}
	codes := make([]string, len(ids))
	for i, id := range ids {
		if codes[i], _, err = b.AuthorizationFlowInsertIDToken(ctx, id, IDToken(), Validity); err != nil {
			return nil, err
		}
	}
	return codes, nil
}

var subjectSeq atomic.Int64

func newSubject() string { return fmt.Sprintf("bench-subject-%d", subjectSeq.Add(1)) }

func tokens(ctx context.Context, b backend.Backend, n int, sub string) ([]uuid.UUID, error) {
	jtis := make([]uuid.UUID, n)
	for i := range jtis {
		jtis[i] = newJTI()
		s := sub
		if s == "" {
			s = newSubject()
		}
		if err := b.InsertRefreshToken(ctx, jtis[i], s, scope); err != nil {
			return nil, err
		}
	}
	return jtis, nil
}

// ---- the operations ----

// Ops returns the benchmarked operations, in the table's order.
func Ops() []Op {
	return []Op{
		{Name: "InsertDeviceFlow", Setup: func(ctx context.Context, e *Env, im *Impl, n int) (*Prepared, error) {
			return sequential(n, func(ctx context.Context, _ int) error {
				_, _, err := im.B.InsertDeviceFlow(ctx, clientID, scope)
				return err
			}), nil
		}},
		{Name: "DeviceFlowValidateUserCode", Setup: func(ctx context.Context, e *Env, im *Impl, n int) (*Prepared, error) {
			ucs, _, err := pendingDeviceFlows(ctx, im.B, pool(n))
			return sequential(n, func(ctx context.Context, i int) error {
				_, err := im.B.DeviceFlowValidateUserCode(ctx, ucs[i%len(ucs)], Validity)
				return err
			}), err
		}},
		{Name: "DeviceFlowInsertIDToken", Setup: func(ctx context.Context, e *Env, im *Impl, n int) (*Prepared, error) {
			ucs, _, err := pendingDeviceFlows(ctx, im.B, n)
			return sequential(n, func(ctx context.Context, i int) error {
				return im.B.DeviceFlowInsertIDToken(ctx, ucs[i], IDToken(), Validity)
			}), err
		}},
		{Name: "GetDeviceFlow", Setup: func(ctx context.Context, e *Env, im *Impl, n int) (*Prepared, error) {
			dcs, err := readyDeviceFlows(ctx, im.B, pool(n))
			return sequential(n, func(ctx context.Context, i int) error {
				_, err := im.B.GetDeviceFlow(ctx, dcs[i%len(dcs)])
				return err
			}), err
		}},
		{Name: "UpdateDeviceFlowStatus", Setup: func(ctx context.Context, e *Env, im *Impl, n int) (*Prepared, error) {
			_, dcs, err := pendingDeviceFlows(ctx, im.B, pool(n))
			return sequential(n, func(ctx context.Context, i int) error {
				st := backend.StatusError
				if i/len(dcs)%2 == 1 {
					st = backend.StatusPending
				}
				return im.B.UpdateDeviceFlowStatus(ctx, dcs[i%len(dcs)], st)
			}), err
		}},
		{Name: "ConsumeDeviceFlow", Setup: func(ctx context.Context, e *Env, im *Impl, n int) (*Prepared, error) {
			dcs, err := readyDeviceFlows(ctx, im.B, n)
			return sequential(n, func(ctx context.Context, i int) error {
				_, err := im.B.ConsumeDeviceFlow(ctx, dcs[i], Validity)
				return err
			}), err
		}},
		{Name: "ConsumeDeviceFlow (pending poll)", Setup: func(ctx context.Context, e *Env, im *Impl, n int) (*Prepared, error) {
			_, dcs, err := pendingDeviceFlows(ctx, im.B, pool(n))
			return sequential(n, func(ctx context.Context, i int) error {
				_, err := im.B.ConsumeDeviceFlow(ctx, dcs[i%len(dcs)], Validity)
				if errors.Is(err, backend.ErrAuthorizationPending) {
					return nil
				}
				return fmt.Errorf("want ErrAuthorizationPending, got %v", err)
			}), err
		}},
		{Name: "InsertAuthorizationFlow", Setup: func(ctx context.Context, e *Env, im *Impl, n int) (*Prepared, error) {
			return sequential(n, func(ctx context.Context, _ int) error {
				_, err := im.B.InsertAuthorizationFlow(ctx, clientID, scope, challenge, "S256", redirect)
				return err
			}), nil
		}},
		{Name: "AuthorizationFlowInsertIDToken", Setup: func(ctx context.Context, e *Env, im *Impl, n int) (*Prepared, error) {
			ids, err := pendingAuthFlows(ctx, im.B, n)
			return sequential(n, func(ctx context.Context, i int) error {
				_, _, err := im.B.AuthorizationFlowInsertIDToken(ctx, ids[i], IDToken(), Validity)
				return err
			}), err
		}},
		{Name: "GetAuthorizationFlow", Setup: func(ctx context.Context, e *Env, im *Impl, n int) (*Prepared, error) {
			codes, err := readyAuthFlows(ctx, im.B, pool(n))
			return sequential(n, func(ctx context.Context, i int) error {
				_, err := im.B.GetAuthorizationFlow(ctx, codes[i%len(codes)], Validity)
				return err
			}), err
		}},
		{Name: "UpdateAuthorizationFlowStatus", Setup: func(ctx context.Context, e *Env, im *Impl, n int) (*Prepared, error) {
			codes, err := readyAuthFlows(ctx, im.B, pool(n))
			return sequential(n, func(ctx context.Context, i int) error {
				st := backend.StatusError
				if i/len(codes)%2 == 1 {
					st = backend.StatusReady
				}
				return im.B.UpdateAuthorizationFlowStatus(ctx, codes[i%len(codes)], st)
			}), err
		}},
		{Name: "ConsumeAuthorizationFlow", Setup: func(ctx context.Context, e *Env, im *Impl, n int) (*Prepared, error) {
			codes, err := readyAuthFlows(ctx, im.B, n)
			return sequential(n, func(ctx context.Context, i int) error {
				_, err := im.B.ConsumeAuthorizationFlow(ctx, codes[i], Validity)
				return err
			}), err
		}},
		listOp("GetUserRefreshTokens (10k tokens)", SmallTable, false),
		{Name: "GetUserRefreshTokens (all, 10k tokens)", MaxBatch: 50, Once: loadTokens(SmallTable),
			Setup: func(ctx context.Context, e *Env, im *Impl, n int) (*Prepared, error) {
				return sequential(n, func(ctx context.Context, i int) error {
					ts, err := im.B.GetUserRefreshTokens(ctx, "")
					if err == nil && len(ts) < SmallTable {
						err = fmt.Errorf("listed %d tokens, want >= %d", len(ts), SmallTable)
					}
					return err
				}), nil
			}},
		{Name: "InsertRefreshToken", Setup: func(ctx context.Context, e *Env, im *Impl, n int) (*Prepared, error) {
			jtis := make([]uuid.UUID, n)
			for i := range jtis {
				jtis[i] = newJTI()
			}
			sub := newSubject()
			return sequential(n, func(ctx context.Context, i int) error {
				return im.B.InsertRefreshToken(ctx, jtis[i], sub, scope)
			}), nil
		}},
		{Name: "GetRefreshToken", Setup: func(ctx context.Context, e *Env, im *Impl, n int) (*Prepared, error) {
			jtis, err := tokens(ctx, im.B, pool(n), "")
			return sequential(n, func(ctx context.Context, i int) error {
				_, err := im.B.GetRefreshToken(ctx, jtis[i%len(jtis)])
				return err
			}), err
		}},
		{Name: "RevokeRefreshToken", Setup: func(ctx context.Context, e *Env, im *Impl, n int) (*Prepared, error) {
			jtis, err := tokens(ctx, im.B, pool(n), "")
			return sequential(n, func(ctx context.Context, i int) error {
				return im.B.RevokeRefreshToken(ctx, jtis[i%len(jtis)])
			}), err
		}},
		{Name: "RevokeUserRefreshTokens", Setup: func(ctx context.Context, e *Env, im *Impl, n int) (*Prepared, error) {
			subs := make([]string, n)
			for i := range subs {
				subs[i] = newSubject()
				if _, err := tokens(ctx, im.B, 2, subs[i]); err != nil {
					return nil, err
				}
			}
			return sequential(n, func(ctx context.Context, i int) error {
				k, err := im.B.RevokeUserRefreshTokens(ctx, subs[i])
				if err == nil && k != 2 {
					err = fmt.Errorf("revoked %d tokens, want 2", k)
				}
				return err
			}), nil
		}},
		{Name: "RotateRefreshToken", Setup: func(ctx context.Context, e *Env, im *Impl, n int) (*Prepared, error) {
			olds, err := tokens(ctx, im.B, n, "")
			news := make([]uuid.UUID, n)
			for i := range news {
				news[i] = newJTI()
			}
			return sequential(n, func(ctx context.Context, i int) error {
				_, err := im.B.RotateRefreshToken(ctx, olds[i], news[i])
				return err
			}), err
		}},
		{Name: fmt.Sprintf("RotateRefreshToken (%d goroutines)", Parallelism), Setup: setupParallelRotate},
		cleanOp("CleanExpiredDeviceFlows", cleanDeviceFixture, backend.Backend.CleanExpiredDeviceFlows),
		cleanOp("CleanExpiredAuthorizationFlows", cleanAuthFixture, backend.Backend.CleanExpiredAuthorizationFlows),
		cleanOp("CleanExpiredRefreshTokens", cleanTokenFixture, backend.Backend.CleanExpiredRefreshTokens),
		{Name: "Ping", Setup: func(ctx context.Context, e *Env, im *Impl, n int) (*Prepared, error) {
			return sequential(n, func(ctx context.Context, _ int) error { return im.B.Ping(ctx) }), nil
		}},
		listOp("GetUserRefreshTokens (1M tokens)", BigTable, true),
	}
}

// setupParallelRotate prepares Parallelism rotation chains, one subject
// each; the batch runs them at once, each goroutine rotating its own chain
// n/Parallelism times (distinct tokens: no call should fail).
func setupParallelRotate(ctx context.Context, e *Env, im *Impl, n int) (*Prepared, error) {
	per := max(1, n/Parallelism)
	chains := make([][]uuid.UUID, Parallelism)
	for g := range chains {
		first, err := tokens(ctx, im.B, 1, "")
		if err != nil {
			return nil, err
		}
		chains[g] = append(first, make([]uuid.UUID, per)...)
		for i := 1; i <= per; i++ {
			chains[g][i] = newJTI()
		}
	}
	return &Prepared{N: per * Parallelism, Batch: func(ctx context.Context) (int, error) {
		var failed atomic.Int64
		var mu sync.Mutex
		var first error
		var wg sync.WaitGroup
		for _, chain := range chains {
			wg.Go(func() {
				for i := 1; i < len(chain); i++ {
					if _, err := im.B.RotateRefreshToken(ctx, chain[i-1], chain[i]); err != nil {
						failed.Add(1)
						mu.Lock()
						if first == nil {
							first = err
						}
						mu.Unlock()
						return // the chain is broken
					}
				}
			})
		}
		wg.Wait()
		return int(failed.Load()), first
	}}, nil
}

// ---- listing ----

// The token counts of the listing benchmarks' table.
const (
	SmallTable = 10_000
	BigTable   = 1_000_000
)

// ListSubject is the subject the listing benchmarks list: ListLive live
// tokens and as many revoked ones (a rotation chain leaves those).
const (
	ListSubject = "bench-list-subject"
	ListLive    = 10
)

func listOp(name string, tableSize int, big bool) Op {
	return Op{Name: name, Big: big, Once: loadTokens(tableSize),
		Setup: func(ctx context.Context, e *Env, im *Impl, n int) (*Prepared, error) {
			return sequential(n, func(ctx context.Context, i int) error {
				ts, err := im.B.GetUserRefreshTokens(ctx, ListSubject)
				if err == nil && len(ts) != ListLive {
					err = fmt.Errorf("listed %d tokens, want %d", len(ts), ListLive)
				}
				return err
			}), nil
		}}
}

// ---- clean-up ----

// Clean-up fixtures live in a virtual past, one second per call: call i
// of a batch sets the implementation's clock so that exactly its
// CleanRowsPerCall rows are older than now-Retention. Rows other benchmarks
// write carry the wall clock's time and are never expired.
var virtualStart = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)

func (e *Env) virtualWindow(n int) time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.virtual.IsZero() {
		e.virtual = virtualStart
	}
	t := e.virtual
	e.virtual = e.virtual.Add(time.Duration(n+1) * time.Second)
	return t
}

type cleanFixture func(ctx context.Context, e *Env, im *Impl, start time.Time, n int) error

func cleanOp(name string, fixture cleanFixture, clean func(backend.Backend, context.Context, time.Duration) (int64, error)) Op {
	// MaxBatch: the memory backend's clean-up scans its whole store, so a
	// long batch would grow quadratically.
	return Op{Name: name, MaxBatch: 200, Setup: func(ctx context.Context, e *Env, im *Impl, n int) (*Prepared, error) {
		start := e.virtualWindow(n)
		if err := fixture(ctx, e, im, start, n); err != nil {
			return nil, err
		}
		calls := sequential(n, func(ctx context.Context, i int) error {
			im.Clock.Set(start.Add(time.Duration(i+1)*time.Second + Retention))
			k, err := clean(im.B, ctx, Retention)
			if err == nil && k != CleanRowsPerCall {
				err = fmt.Errorf("deleted %d rows, want %d", k, CleanRowsPerCall)
			}
			return err
		})
		// One batch: another implementation's calls in between would
		// delete this batch's rows (its clock is later).
		return &Prepared{N: n, Batch: calls.Run, Done: func() { im.Clock.Set(time.Time{}) }}, nil
	}}
}

// at returns the creation time of row j of call i of a clean-up batch.
func at(start time.Time, i, j int) time.Time {
	return start.Add(time.Duration(i)*time.Second + time.Duration(j)*time.Millisecond)
}

func cleanDeviceFixture(ctx context.Context, e *Env, im *Impl, start time.Time, n int) error {
	if e.Admin == nil { // memory: through the API, clock by clock
		defer im.Clock.Set(time.Time{})
		for i := range n {
			im.Clock.Set(at(start, i, 0))
			if _, _, err := pendingDeviceFlows(ctx, im.B, CleanRowsPerCall); err != nil {
				return err
			}
		}
		return nil
	}
	rows := make([][]any, 0, n*CleanRowsPerCall)
	for i := range n {
		for range CleanRowsPerCall {
			uc, err := backend.GenerateUserCode()
			if err != nil {
				return err
			}
			dc, err := backend.GenerateCode()
			if err != nil {
				return err
			}
			rows = append(rows, []any{uc, "PENDING", e.timeArg(at(start, i, 0)), clientID, scope, backend.HashCode(dc)})
		}
	}
	return e.BulkInsert(ctx, "DeviceFlows", []string{"UserCode", "Status", "CreationTime", "ClientID", "Scope", "DeviceCode"}, rows)
}

func cleanAuthFixture(ctx context.Context, e *Env, im *Impl, start time.Time, n int) error {
	if e.Admin == nil {
		defer im.Clock.Set(time.Time{})
		for i := range n {
			im.Clock.Set(at(start, i, 0))
			if _, err := pendingAuthFlows(ctx, im.B, CleanRowsPerCall); err != nil {
				return err
			}
		}
		return nil
	}
	rows := make([][]any, 0, n*CleanRowsPerCall)
	for i := range n {
		for range CleanRowsPerCall {
			id, err := backend.NewUUIDv7()
			if err != nil {
				return err
			}
			rows = append(rows, []any{e.idArg(id), "PENDING", clientID, e.timeArg(at(start, i, 0)), scope, challenge, "S256", redirect})
		}
	}
	return e.BulkInsert(ctx, "AuthorizationFlows", []string{"UUID", "Status", "ClientID", "CreationTime", "Scope", "CodeChallenge", "CodeChallengeMethod", "RedirectURI"}, rows)
}

func cleanTokenFixture(ctx context.Context, e *Env, im *Impl, start time.Time, n int) error {
	sub := newSubject()
	if e.Admin == nil {
		for i := range n {
			for j := range CleanRowsPerCall {
				if err := im.B.InsertRefreshToken(ctx, JTIAt(at(start, i, j)), sub, scope); err != nil {
					return err
				}
			}
		}
		return nil
	}
	rows := make([][]any, 0, n*CleanRowsPerCall)
	for i := range n {
		for j := range CleanRowsPerCall {
			rows = append(rows, []any{e.idArg(JTIAt(at(start, i, j))), "CREATED", scope, sub})
		}
	}
	return e.BulkInsert(ctx, "RefreshTokens", []string{"JTI", "Status", "Scope", "Sub"}, rows)
}
