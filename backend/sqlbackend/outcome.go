package sqlbackend

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"entgo.io/ent/dialect"
	"github.com/go-sql-driver/mysql"
	"github.com/lib/pq"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/internal/sqldialect"
)

// Honest outcomes: the rules every write follows when it cannot read its
// own reply (backend.ErrOutcomeUnknown in the contract). They all live in
// this file; each write hands its error and a read-back to settle.
//
//  1. Nothing is run twice blindly. database/sql runs a statement again on
//     another connection when the driver says driver.ErrBadConn; lib/pq says
//     so also after the statement was sent and the reply was lost (EOF, a
//     FATAL error). The pool's connections (idConn) therefore turn an
//     ErrBadConn that follows a sent statement into errSentLost, which no
//     layer retries; an ErrBadConn before sending (the connection was known
//     bad) stays retryable. go-sql-driver/mysql already returns ErrBadConn
//     only when nothing was written. The backend's own retry (retry,
//     retryable) runs an operation again only when its last attempt
//     certainly did not apply, or when running it again cannot do anything
//     twice.
//  2. A write "may have applied" when a statement was handed to the driver
//     (probe) and then the connection was lost or the context ended without
//     a reply from the server. An error the server sent (a constraint, a
//     cancelled statement, a deadlock) is a definite "not applied".
//  3. Then the session that ran it is ended on the server and waited for
//     (fence: KILL CONNECTION on MySQL, pg_terminate_backend on PostgreSQL;
//     SQLite runs in the process and leaves nothing behind), so that the
//     statement cannot land later, and the truth is read back on a fresh
//     context bounded by ReadBackTimeout, whatever the caller's context.
//  4. Applied: the call succeeds (even when the caller's context has
//     ended). Not applied, and the session fenced: the call runs again, or,
//     when the context has ended, returns the context's error. Not applied
//     but not fenced: only an idempotent write runs again (the lost one
//     and the new one cannot both apply). Anything else: an error wrapping
//     backend.ErrOutcomeUnknown, and the context's error when the context
//     ended.
//  5. Retries of one's own call are successes: an InsertRefreshToken that
//     finds its identical row (CREATED, same subject and scope), a
//     RotateRefreshToken that finds the old token REVOKED and the new one
//     with its subject and scope, an ID-token insert that finds its own
//     token or code, a revocation or status update that finds its effect.
//     A Consume* cannot tell its own redemption from another's: a DONE flow
//     after a lost reply is ErrOutcomeUnknown, never a second success and
//     never ErrAlreadyUsed.
//
// None of this runs on the happy path: a call that gets its reply makes
// no extra statement.

// ReadBackTimeout bounds the fence and the read-back that settle a write
// whose reply was lost, on a context of their own (the caller's may have
// ended).
const ReadBackTimeout = 3 * time.Second

// errSentLost replaces driver.ErrBadConn when a statement was sent before
// the connection died: database/sql must not run it again elsewhere.
var errSentLost = errors.New("authdb: connection lost after the statement was sent")

// probe records, for one attempt of a write, whether a statement reached
// the driver and on which server session (the pool's connections fill it
// in from the statement's context).
type probe struct {
	sent    atomic.Bool
	session atomic.Uint64
	server  atomic.Pointer[string] // the session's server instance (sessionServer)
	// kill, when set, ends a MySQL session: the connection running the
	// statement arms it for its own session (idConn.watch). Set and read
	// by the goroutine of the call only (Backend.write).
	kill func(id uint64, server string)
}

type probeKey struct{}

// probeCtx is a context carrying a probe: context.WithValue's, in one
// allocation rather than two (a write makes one per attempt). Done, Err,
// Deadline and every other value are its parent's, so cancellation and
// context.AfterFunc see the parent's cancelCtx, as through WithValue.
type probeCtx struct {
	context.Context
	p probe
}

func (c *probeCtx) Value(key any) any {
	if key == (probeKey{}) {
		return &c.p
	}
	return c.Context.Value(key)
}

// withProbe returns ctx carrying a new probe, for the statements of one
// attempt of a write.
func withProbe(ctx context.Context) (context.Context, *probe) {
	c := &probeCtx{Context: ctx}
	return c, &c.p
}

// markSent records in ctx's probe, if any, that a statement of session id
// is being handed to the driver.
func markSent(ctx context.Context, id uint64, server *string) {
	if p, _ := ctx.Value(probeKey{}).(*probe); p != nil {
		p.server.Store(server)
		p.session.Store(id)
		p.sent.Store(true)
	}
}

// verdict is what a read-back found about a write whose reply was lost.
type verdict int

const (
	unknown    verdict = iota // the state does not say
	applied                   // the write happened (the read-back filled in its result)
	notApplied                // it did not (yet) happen
)

// readBack reads the state a write would leave, on rctx, and says whether
// the write happened.
type readBack func(rctx context.Context) (verdict, error)

// settle decides what an attempt of a write returns after its statement
// failed with err (rules 2 to 4 above). It returns nil when the write is
// found applied, err marked retryable when the attempt certainly did not
// apply and may run again, the context's error when it did not apply and
// the context ended, an error wrapping backend.ErrOutcomeUnknown when
// nobody can tell, and err itself when err is the server's definite
// refusal. idempotent: running the write again cannot apply it twice. A
// nil rb means the write has no read-back (an idempotent clean-up): it runs
// again, or is unknown when the context ended.
func (b *Backend) settle(ctx context.Context, op string, p *probe, err error, idempotent bool, rb readBack) error {
	if err == nil || errors.Is(err, backend.ErrOutcomeUnknown) {
		return err
	}
	if !b.mayHaveApplied(ctx, p, err) {
		return safeToRetry(err)
	}
	if rb == nil {
		if ctx.Err() == nil && idempotent {
			return retryable{err}
		}
		return outcomeUnknown(ctx, op, err)
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ReadBackTimeout)
	defer cancel()
	ferr := b.fence(rctx, p)
	v, rerr := rb(rctx)
	switch {
	case rerr != nil:
		b.opts.Logger.Debug("authdb: a write lost its reply and the read-back failed", "op", op, "error", err, "read_back", rerr)
	case v == applied:
		b.opts.Logger.Debug("authdb: a write lost its reply; the read-back found it applied", "op", op, "error", err)
		return nil
	case v == notApplied && ferr == nil:
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("authdb: %s: %w", op, ctxErr)
		}
		return retryable{err}
	case v == notApplied && idempotent && ctx.Err() == nil:
		return retryable{err}
	}
	return outcomeUnknown(ctx, op, err)
}

// outcomeUnknown is the error of a write that may or may not have applied:
// it wraps backend.ErrOutcomeUnknown, the context's error when the
// context has ended, and the driver's error.
func outcomeUnknown(ctx context.Context, op string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(err, ctxErr) {
			return fmt.Errorf("authdb: %s: %w: %w", op, backend.ErrOutcomeUnknown, err)
		}
		return fmt.Errorf("authdb: %s: %w (%w): %w", op, backend.ErrOutcomeUnknown, ctxErr, err)
	}
	return fmt.Errorf("authdb: %s: %w: %w", op, backend.ErrOutcomeUnknown, err)
}

// mayHaveApplied reports whether a write that failed with err may have
// been applied (rule 2): a statement reached the driver (always assumed on
// a pool without probes: OpenDB's, SQLite's), and then the connection was
// lost or the context ended, with no error from the server.
func (b *Backend) mayHaveApplied(ctx context.Context, p *probe, err error) bool {
	if b.probes && p != nil && !p.sent.Load() {
		return false
	}
	if serverRefused(err) {
		return false
	}
	return isConnLost(err) || ctx.Err() != nil ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// serverRefused reports whether err is the server's (or SQLite's) own
// error for the statement, which then did not apply: not one of those that
// say the session ended.
func serverRefused(err error) bool {
	var pqErr *pq.Error
	var myErr *mysql.MySQLError
	if errors.As(err, &pqErr) || errors.As(err, &myErr) {
		return !isConnLost(err)
	}
	return sqldialect.IsSQLiteError(err)
}

// fence ends the server session of p's last statement and waits until it
// is gone (rule 3), so that the statement can no longer apply. SQLite
// needs none. It fails when the session is not known or cannot be ended.
func (b *Backend) fence(ctx context.Context, p *probe) error {
	if b.dialect == dialect.SQLite {
		return nil
	}
	var id uint64
	server := ""
	if p != nil {
		id = p.session.Load()
		if s := p.server.Load(); s != nil {
			server = *s
		}
	}
	if id == 0 || b.killer == nil {
		return errors.New("authdb: the statement's server session is unknown")
	}
	return b.endSession(ctx, id, server)
}

// The read-backs of each write. Each reads on the pool with rctx, without
// retrying: settle bounds them.

// tokenVerdict: the token jti is stored as InsertRefreshToken(jti, sub,
// scope) would store it (CREATED, same subject and scope).
func (b *Backend) tokenVerdict(rctx context.Context, jti string, sub, scope string) (verdict, error) {
	var r tokenRow
	found, err := queryRow(rctx, b.pool, b.q.getToken, []any{jti}, r.dest()...)
	switch {
	case err != nil:
		return unknown, err
	case found && r.t.Status == backend.TokenCreated && r.t.Sub == sub && r.t.Scope == scope:
		return applied, nil
	}
	return notApplied, nil // absent, or another's: running again says which
}

// ownInsert settles an InsertRefreshToken whose JTI exists: nil when the
// stored row is identical (a retry of one's own insert), else
// backend.ErrAlreadyExists; unknown when the row cannot be read.
func (b *Backend) ownInsert(ctx context.Context, op string, jti string, sub, scope string, dupErr error) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ReadBackTimeout)
	defer cancel()
	v, err := b.tokenVerdict(rctx, jti, sub, scope)
	switch {
	case err != nil:
		return outcomeUnknown(ctx, op, fmt.Errorf("%w (reading the existing row: %v)", dupErr, err))
	case v == applied:
		return nil
	}
	return fmt.Errorf("authdb: %s: %w (%v)", op, backend.ErrAlreadyExists, dupErr)
}

// rotationVerdict: the rotation r happened when the old token is REVOKED
// and names r's new JTI as its successor (ReplacedBy, written by the
// rotation's own UPDATE); out is then filled as the rotation returns it.
func (b *Backend) rotationVerdict(rctx context.Context, r *rotation) (verdict, error) {
	st, err := b.readForRotation(rctx, r.oldArg)
	if err != nil {
		return unknown, err
	}
	if st.found && st.status == string(backend.TokenRevoked) && st.replaced == r.newJTI {
		r.out = backend.RefreshToken{JTI: r.oldJTI, Status: backend.TokenRevoked, Scope: st.scope, Sub: st.sub,
			FamilyID: st.familyID, ReplacedBy: st.replaced}
		return applied, nil
	}
	return notApplied, nil // running again says why (ErrNotFound, a replay, ...)
}

// deviceVerdict reads the device flow whose code hashes to hash: a consume
// cannot be told from another's (DONE: unknown), READY or anything else
// is not applied.
func (b *Backend) consumeVerdict(query string, args ...any) readBack {
	return func(rctx context.Context) (verdict, error) {
		var status string
		found, err := queryRow(rctx, b.pool, query, args, &status)
		switch {
		case err != nil:
			return unknown, err
		case found && status == string(backend.StatusDone):
			return unknown, nil
		}
		return notApplied, nil
	}
}

// statusVerdict: the flow's status (query takes the code's hash) is want.
func (b *Backend) statusVerdict(query, hash string, want backend.FlowStatus) readBack {
	return func(rctx context.Context) (verdict, error) {
		var status string
		found, err := queryRow(rctx, b.pool, query, []any{hash}, &status)
		switch {
		case err != nil:
			return unknown, err
		case found && status == string(want):
			return applied, nil
		}
		return notApplied, nil
	}
}

// existsVerdict: query (a SELECT of one column) finds a row.
func (b *Backend) existsVerdict(query string, args ...any) readBack {
	return func(rctx context.Context) (verdict, error) {
		var x string
		found, err := queryRow(rctx, b.pool, query, args, &x)
		switch {
		case err != nil:
			return unknown, err
		case found:
			return applied, nil
		}
		return notApplied, nil
	}
}

// revokeUserVerdict: the subject has no live token left. The count of a
// revocation found applied this way is 0 (the lost reply had it).
func (b *Backend) revokeUserVerdict(sub string) readBack {
	return func(rctx context.Context) (verdict, error) {
		rows, err := b.pool.QueryContext(rctx, b.q.listTokens, b.subArgs(sub)...)
		if err != nil {
			return unknown, err
		}
		live := rows.Next()
		rows.Close()
		if err := rows.Err(); err != nil {
			return unknown, err
		}
		if live {
			return notApplied, nil
		}
		return applied, nil
	}
}

// revokeVerdict: the token is REVOKED.
func (b *Backend) revokeVerdict(jti string) readBack {
	return func(rctx context.Context) (verdict, error) {
		var r tokenRow
		found, err := queryRow(rctx, b.pool, b.q.getToken, []any{jti}, r.dest()...)
		switch {
		case err != nil:
			return unknown, err
		case found && r.t.Status == backend.TokenRevoked:
			return applied, nil
		}
		return notApplied, nil
	}
}

// idTokenVerdict: the device flow of userCode is READY with tok (compared
// as decoded JSON: engines reformat it).
func (b *Backend) idTokenVerdict(userCode string, tok []byte) readBack {
	return func(rctx context.Context) (verdict, error) {
		var r deviceRow
		found, err := queryRow(rctx, b.pool, b.q.deviceByUserCode, []any{userCode}, r.dest()...)
		if err != nil {
			return unknown, err
		}
		if found && r.f.Status != backend.StatusPending && sameJSON(r.idToken, tok) {
			return applied, nil
		}
		return notApplied, nil
	}
}

// sameJSON reports whether two JSON texts decode to the same value.
func sameJSON(a, b []byte) bool {
	x, err1 := backend.DecodeIDToken(a)
	y, err2 := backend.DecodeIDToken(b)
	if err1 != nil || err2 != nil || x == nil || y == nil {
		return false
	}
	ex, err1 := backend.EncodeIDToken(x)
	ey, err2 := backend.EncodeIDToken(y)
	return err1 == nil && err2 == nil && string(ex) == string(ey)
}

// authCodeVerdict: the authorization flow id holds the code's hash (a
// fresh random code: only this call can have stored it); fills in the
// redirect URI.
func (b *Backend) authCodeVerdict(idArg, hash string, redirectURI *string) readBack {
	return func(rctx context.Context) (verdict, error) {
		var r authRow
		found, err := queryRow(rctx, b.pool, b.q.authByID, []any{idArg}, r.dest()...)
		if err != nil {
			return unknown, err
		}
		if found && r.code.Valid && r.code.String == hash {
			*redirectURI = r.f.RedirectURI
			return applied, nil
		}
		return notApplied, nil
	}
}

// The pool's connections (idConn) report each statement to its context's
// probe and keep lib/pq's ErrBadConn after a sent statement from reaching
// database/sql (rule 1).

// before runs before a statement is handed to the driver: a context that
// has ended sends nothing; on PostgreSQL, a connection lib/pq knows is bad
// sends nothing either (its ErrBadConn is safe to retry elsewhere).
func (c *idConn) before(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.pg && !c.valid() {
		return driver.ErrBadConn
	}
	c.mark(ctx)
	return nil
}

// mark records that a statement of ctx is sent on c: in ctx's probe, and
// as c's last context (IsValid).
func (c *idConn) mark(ctx context.Context) {
	c.mu.Lock()
	c.last = ctx
	c.mu.Unlock()
	markSent(ctx, c.id, &c.server) // c.server is never written after Connect
}

// after maps the driver's error of a statement that was sent.
func (c *idConn) after(err error) error {
	if c.pg && errors.Is(err, driver.ErrBadConn) {
		c.lost.Store(true)
		return errSentLost
	}
	return err
}

func (c *idConn) valid() bool {
	if c.lost.Load() {
		return false
	}
	v, ok := c.conn.(driver.Validator)
	return !ok || v.IsValid()
}

// idStmt is a prepared statement of an idConn.
type idStmt struct {
	driver.Stmt
	c *idConn
}

var (
	_ driver.StmtExecContext  = idStmt{}
	_ driver.StmtQueryContext = idStmt{}
)

func (s idStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	if err := s.c.before(ctx); err != nil {
		return nil, err
	}
	stop := s.c.watch(ctx) // database/sql's fallback of a write the driver could not interpolate (driver.ErrSkip)
	r, err := s.Stmt.(driver.StmtExecContext).ExecContext(ctx, args)
	s.c.unwatch(ctx, stop, err)
	return r, s.c.after(err)
}

func (s idStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	if err := s.c.before(ctx); err != nil {
		return nil, err
	}
	r, err := s.Stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
	return r, s.c.after(err)
}

// idTx is a transaction of an idConn: its COMMIT is a statement of the
// context that began it.
type idTx struct {
	driver.Tx
	c   *idConn
	ctx context.Context
}

func (t idTx) Commit() error {
	t.c.mark(t.ctx)
	return t.c.after(t.Tx.Commit())
}
