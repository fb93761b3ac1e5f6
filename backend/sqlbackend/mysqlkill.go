package sqlbackend

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"entgo.io/ent/dialect"
	"github.com/go-sql-driver/mysql"
)

// MySQL's client, unlike PostgreSQL's, does not cancel a statement on the
// server when its context ends: go-sql-driver closes the connection and
// returns, while the server runs the statement to its end, so an UPDATE
// that was waiting for a row lock is applied after the caller was told
// "context canceled". The backend therefore knows each connection's server
// id (idConnector asks for it once per connection) and, when the context of
// an autocommit write ends while the write runs, kills its session with
// KILL CONNECTION from another connection (idConn.watch, armed by
// Backend.write). Not KILL QUERY:
// when the context ends just as the statement is sent, KILL QUERY can
// reach the server before the statement starts, and MariaDB forgets it when
// the statement begins; KILL CONNECTION ends the session whatever it is
// doing next, and the driver has closed that connection anyway.

// idConnector wraps a driver.Connector (MySQL, PostgreSQL): each new
// connection learns its server session id (CONNECTION_ID(),
// pg_backend_pid()), which Backend.write and the outcome rules' fence end
// on the server, and reports its statements to their contexts' probes
// (outcome.go); then it runs init when it is not empty (the session
// settings of a Galera node).
type idConnector struct {
	driver.Connector
	pg   bool   // lib/pq: its ErrBadConn after a sent statement becomes errSentLost
	init string // a statement each new connection runs first
}

func (c idConnector) Connect(ctx context.Context) (driver.Conn, error) {
	var s *sock // PostgreSQL: filled in by pgDialer
	if c.pg {
		ctx = context.WithValue(ctx, sockSlot{}, &s)
	}
	dc, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	query := "SELECT CONNECTION_ID(), " + mysqlServer
	if c.pg {
		query = "SELECT pg_backend_pid(), " + pgServer
	}
	id, server, err := connectionID(ctx, dc, query)
	if err == nil && c.init != "" {
		_, err = dc.(driver.ExecerContext).ExecContext(ctx, c.init, nil)
	}
	if err != nil {
		dc.Close()
		return nil, err
	}
	return &idConn{conn: dc, id: id, server: server, pg: c.pg, sock: s}, nil
}

// The server instance a session runs on, read with its id: a session id
// names a session only on its server (and, for PostgreSQL, only until the
// server restarts). Behind a load balancer, a multi-host URL after a
// failover, or a Galera cluster's virtual address, the connection that
// ends a session may reach another server, where the same id is someone
// else's session: endSession then refuses.
const (
	mysqlServer = "CONCAT(@@hostname, ':', @@port)"
	pgServer    = "CONCAT(inet_server_addr(), ':', inet_server_port(), '@', pg_postmaster_start_time())"
)

func connectionID(ctx context.Context, dc driver.Conn, query string) (uint64, string, error) {
	q, ok := dc.(driver.QueryerContext)
	if !ok {
		return 0, "", errors.New("authdb: driver connection cannot query")
	}
	rows, err := q.QueryContext(ctx, query, nil)
	if err != nil {
		return 0, "", err
	}
	defer rows.Close()
	v := make([]driver.Value, len(rows.Columns()))
	if err := rows.Next(v); err != nil {
		if err == io.EOF {
			err = errors.New("no row")
		}
		return 0, "", fmt.Errorf("authdb: read the session id: %w", err)
	}
	server := ""
	if len(v) > 1 {
		server = textValue(v[1])
	}
	switch x := v[0].(type) {
	case int64:
		return uint64(x), server, nil
	case uint64:
		return x, server, nil
	case []byte:
		id, err := strconv.ParseUint(string(x), 10, 64)
		return id, server, err
	}
	return 0, "", fmt.Errorf("authdb: session id is a %T", v[0])
}

// errOtherServer: endSession's connection reached another server than the
// session's; the session was not ended.
var errOtherServer = errors.New("authdb: the session's server is not the one reached now (a failover, a balancer): session not ended")

// idConn is a driver connection with its server session id. It forwards
// every interface database/sql uses (interpolated ExecContext/QueryContext
// above all, or statements would be prepared: two round trips), and
// reports each statement it sends (before, after: outcome.go).
type idConn struct {
	conn   driver.Conn
	id     uint64
	server string // the session's server instance (mysqlServer, pgServer)
	pg     bool
	sock   *sock // PostgreSQL's socket (sock.go); nil when not dialled by pgDialer
	// lost: a sent statement lost the connection; last: the context of the
	// last statement. A connection that lost a statement, or whose last
	// statement's context ended (its reply may still be on the way), is
	// never given back to the pool (IsValid), so that a fence ends no
	// other call's session.
	lost atomic.Bool
	mu   sync.Mutex
	last context.Context
	// The kill armed by watch for the statement running (MySQL).
	kill     func(id uint64, server string)
	onCancel func()
	killed   sync.WaitGroup
}

var (
	_ driver.Conn               = (*idConn)(nil)
	_ driver.ConnBeginTx        = (*idConn)(nil)
	_ driver.ConnPrepareContext = (*idConn)(nil)
	_ driver.ExecerContext      = (*idConn)(nil)
	_ driver.QueryerContext     = (*idConn)(nil)
	_ driver.Pinger             = (*idConn)(nil)
	_ driver.SessionResetter    = (*idConn)(nil)
	_ driver.Validator          = (*idConn)(nil)
	_ driver.NamedValueChecker  = (*idConn)(nil)
)

func (c *idConn) Prepare(query string) (driver.Stmt, error) { return c.conn.Prepare(query) }
func (c *idConn) Close() error                              { return c.conn.Close() }

// Begin is driver.Conn's (deprecated) method; database/sql calls BeginTx.
func (c *idConn) Begin() (driver.Tx, error) { return c.conn.Begin() }

func (c *idConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if err := c.before(ctx); err != nil {
		return nil, err
	}
	tx, err := c.conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
	if err != nil {
		return nil, err // BEGIN changes nothing: database/sql may run it again
	}
	return idTx{Tx: tx, c: c, ctx: ctx}, nil
}

func (c *idConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	st, err := c.conn.(driver.ConnPrepareContext).PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	return idStmt{Stmt: st, c: c}, nil
}

func (c *idConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if err := c.before(ctx); err != nil {
		return nil, err
	}
	stop := c.watch(ctx)
	r, err := c.conn.(driver.ExecerContext).ExecContext(ctx, query, args)
	c.unwatch(ctx, stop, err)
	return r, c.after(err)
}

// watch arms the kill of c's session for a statement whose context
// carries a kill function (Backend.write on MySQL): if ctx ends while the
// statement runs, the session is ended on the server (KILL CONNECTION), so
// that a write refused to the caller is not applied later. It returns the
// AfterFunc's stop, or nil when nothing is armed. The function it arms is
// made once per connection (a connection runs one statement at a time).
// ExecContext arms it, the connection's (the plain statement Backend.write
// runs on MySQL) and a prepared statement's (idStmt: database/sql's
// fallback when the driver cannot interpolate a statement, driver.ErrSkip);
// QueryContext does not (no autocommit write runs through it on MySQL),
// and the writes of a transaction are undone by its rollback when their
// context ends (nothing arms a kill for them: the probe's kill is set only
// inside Backend.write).
func (c *idConn) watch(ctx context.Context) func() bool {
	if c.pg {
		return nil // lib/pq cancels on the server itself
	}
	p, _ := ctx.Value(probeKey{}).(*probe)
	if p == nil || p.kill == nil {
		return nil
	}
	c.kill = p.kill
	if c.onCancel == nil {
		c.onCancel = func() {
			defer c.killed.Done()
			c.kill(c.id, c.server)
		}
	}
	c.killed.Add(1)
	return context.AfterFunc(ctx, c.onCancel)
}

// unwatch ends what watch armed, once the statement returned err. When the
// kill ran (or runs), it waits for it; when the driver saw ctx end before
// the AfterFunc started (the context closes Done before it runs its
// AfterFuncs, so stop prevented the kill), it kills here. Either way the
// connection is never given back to the pool (lost).
func (c *idConn) unwatch(ctx context.Context, stop func() bool, err error) {
	if stop == nil {
		return
	}
	if !stop() {
		c.killed.Wait()
		c.lost.Store(true)
		return
	}
	c.killed.Done() // onCancel will not run
	if err != nil && ctx.Err() != nil {
		c.kill(c.id, c.server)
		c.lost.Store(true)
	}
}

func (c *idConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if err := c.before(ctx); err != nil {
		return nil, err
	}
	r, err := c.conn.(driver.QueryerContext).QueryContext(ctx, query, args)
	return r, c.after(err)
}

func (c *idConn) Ping(ctx context.Context) error { return c.conn.(driver.Pinger).Ping(ctx) }

// ResetSession is asked when the pool hands the idle connection out
// again: a PostgreSQL connection the server closed meanwhile is refused
// here, before any statement is sent on it (sock.go).
func (c *idConn) ResetSession(ctx context.Context) error {
	if c.lost.Load() || (c.sock != nil && c.sock.idleDead()) {
		c.lost.Store(true)
		return driver.ErrBadConn
	}
	return c.conn.(driver.SessionResetter).ResetSession(ctx)
}

// IsValid is asked when the connection goes back to the pool.
func (c *idConn) IsValid() bool {
	c.mu.Lock()
	last := c.last
	c.last = nil
	c.mu.Unlock()
	if last != nil && last.Err() != nil {
		return false
	}
	return c.valid()
}

func (c *idConn) CheckNamedValue(nv *driver.NamedValue) error {
	return c.conn.(driver.NamedValueChecker).CheckNamedValue(nv)
}

// write runs an autocommit write statement and returns the rows it
// affected (MySQL: matched). On MySQL, when ctx can end and the pool knows
// its connections' ids, the connection the pool hands out kills its own
// session on the server (KILL CONNECTION) if ctx ends while the statement
// runs (idConn.watch), so that a write refused to the caller is not
// applied later; that connection is then never given back to the pool.
// The statement runs plain (interpolated: ExecContext of the connection,
// where the kill is armed). A write whose ctx carries no probe (the
// revocations of a reuse, which nothing settles) gets one here, for the
// kill. Elsewhere it runs on the pool, with the prepared statements
// (PostgreSQL's driver cancels on the server itself; SQLite runs in the
// process).
func (b *Backend) write(ctx context.Context, query string, args ...any) (int64, error) {
	if b.killer == nil || b.dialect != dialect.MySQL || ctx.Done() == nil {
		return exec(ctx, b.pool, query, args...)
	}
	p, _ := ctx.Value(probeKey{}).(*probe)
	if p == nil {
		ctx, p = withProbe(ctx)
	}
	p.kill = b.killQueryFn
	defer func() { p.kill = nil }()
	return exec(ctx, b.db, query, args...)
}

// killQuery ends server session id and the statement it runs, from a
// connection of its own (not the pool's, which may have no free one).
func (b *Backend) killQuery(id uint64, server string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.endSession(ctx, id, server); err != nil {
		b.opts.Logger.Warn("authdb: could not stop a cancelled MySQL statement", "session", id, "error", err)
		return
	}
	b.opts.Logger.Debug("authdb: killed the session of a cancelled MySQL write", "session", id)
}

// endSession ends server session id (MySQL: KILL CONNECTION; PostgreSQL:
// pg_terminate_backend, which a role may do to its own sessions) from a
// connection of its own, and waits until the session has left the server
// (waitSessionGone). A session that had already ended is no error. When
// server (the session's, see mysqlServer) is known and the new connection
// reaches another server, nothing is ended: errOtherServer.
func (b *Backend) endSession(ctx context.Context, id uint64, server string) error {
	dc, err := b.killer.Connect(ctx)
	if err != nil {
		return err
	}
	defer dc.Close()
	ex, ok := dc.(driver.ExecerContext)
	if !ok {
		return errors.New("driver connection cannot execute")
	}
	if server != "" {
		query := "SELECT 0, " + mysqlServer
		if b.dialect == dialect.Postgres {
			query = "SELECT 0, " + pgServer
		}
		_, here, err := connectionID(ctx, dc, query)
		if err != nil {
			return err
		}
		if here != server {
			return fmt.Errorf("%w (session %d on %s, reached %s)", errOtherServer, id, server, here)
		}
	}
	idArg := []driver.NamedValue{{Ordinal: 1, Value: int64(id)}}
	if b.dialect == dialect.Postgres {
		// false (with a warning) when no such backend runs: nothing to wait for.
		if _, err := ex.ExecContext(ctx, "SELECT pg_terminate_backend($1)", idArg); err != nil {
			return err
		}
		return waitSessionGone(ctx, dc, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", id)
	}
	_, err = ex.ExecContext(ctx, "KILL CONNECTION "+strconv.FormatUint(id, 10), nil)
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) && myErr.Number == 1094 {
		return nil // unknown thread: the session had already ended
	}
	if err != nil {
		return err
	}
	return waitSessionGone(ctx, dc, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?", id)
}

// killWait bounds how long endSession waits for an ended session to leave
// the server.
const killWait = time.Second

// waitSessionGone polls the process list (query counts the sessions with
// the id) until session id has ended, for at most killWait. KILL only flags
// the session: a statement woken from a lock wait by it could otherwise
// still be applied if the lock is released before the session notices the
// flag. Once the session is gone, its statement can no longer be applied.
func waitSessionGone(ctx context.Context, dc driver.Conn, query string, id uint64) error {
	q, ok := dc.(driver.QueryerContext)
	if !ok {
		return nil
	}
	deadline := time.Now().Add(killWait)
	for {
		rows, err := q.QueryContext(ctx, query, []driver.NamedValue{{Ordinal: 1, Value: int64(id)}})
		if err != nil {
			return err
		}
		v := make([]driver.Value, 1)
		err = rows.Next(v)
		rows.Close()
		if err != nil {
			return fmt.Errorf("read the process list: %w", err)
		}
		if n, err := countValue(v[0]); err != nil {
			return err
		} else if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("session %d still on the server %v after it was ended", id, killWait)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// countValue reads a COUNT(*) as the driver returns it (int64 on the binary
// protocol, text on some servers' text protocol).
func countValue(v driver.Value) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case []byte:
		return strconv.ParseInt(string(x), 10, 64)
	}
	return 0, fmt.Errorf("authdb: COUNT(*) is a %T", v)
}
