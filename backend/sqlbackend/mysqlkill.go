package sqlbackend

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MySQL's client, unlike PostgreSQL's, does not cancel a statement on the
// server when its context ends: go-sql-driver closes the connection and
// returns, while the server runs the statement to its end, so an UPDATE
// that was waiting for a row lock is applied after the caller was told
// "context canceled". The backend therefore knows each connection's server
// id (idConnector asks for it once per connection) and, when the context of
// an autocommit write ends while the write runs, kills its session with
// KILL CONNECTION from another connection (killOnCancel). Not KILL QUERY:
// when the context ends just as the statement is sent, KILL QUERY can
// reach the server before the statement starts, and MariaDB forgets it when
// the statement begins; KILL CONNECTION ends the session whatever it is
// doing next, and the driver has closed that connection anyway.

// idConnector wraps a driver.Connector: each new connection learns its
// CONNECTION_ID().
type idConnector struct{ driver.Connector }

func (c idConnector) Connect(ctx context.Context) (driver.Conn, error) {
	dc, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	id, err := connectionID(ctx, dc)
	if err != nil {
		dc.Close()
		return nil, err
	}
	return &idConn{conn: dc, id: id}, nil
}

func connectionID(ctx context.Context, dc driver.Conn) (uint64, error) {
	q, ok := dc.(driver.QueryerContext)
	if !ok {
		return 0, errors.New("authdb: mysql driver connection cannot query")
	}
	rows, err := q.QueryContext(ctx, "SELECT CONNECTION_ID()", nil)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	v := make([]driver.Value, 1)
	if err := rows.Next(v); err != nil {
		if err == io.EOF {
			err = errors.New("no row")
		}
		return 0, fmt.Errorf("authdb: read CONNECTION_ID(): %w", err)
	}
	switch x := v[0].(type) {
	case int64:
		return uint64(x), nil
	case uint64:
		return x, nil
	case []byte:
		return strconv.ParseUint(string(x), 10, 64)
	}
	return 0, fmt.Errorf("authdb: CONNECTION_ID() is a %T", v[0])
}

// idConn is a go-sql-driver connection with its server id. It forwards
// every interface database/sql uses (interpolated ExecContext/QueryContext
// above all, or statements would be prepared: two round trips).
type idConn struct {
	conn driver.Conn
	id   uint64
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
	return c.conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

func (c *idConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.conn.(driver.ConnPrepareContext).PrepareContext(ctx, query)
}

func (c *idConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	return c.conn.(driver.ExecerContext).ExecContext(ctx, query, args)
}

func (c *idConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	return c.conn.(driver.QueryerContext).QueryContext(ctx, query, args)
}

func (c *idConn) Ping(ctx context.Context) error { return c.conn.(driver.Pinger).Ping(ctx) }

func (c *idConn) ResetSession(ctx context.Context) error {
	return c.conn.(driver.SessionResetter).ResetSession(ctx)
}

func (c *idConn) IsValid() bool { return c.conn.(driver.Validator).IsValid() }

func (c *idConn) CheckNamedValue(nv *driver.NamedValue) error {
	return c.conn.(driver.NamedValueChecker).CheckNamedValue(nv)
}

// killOnCancel runs an autocommit write. On MySQL, when ctx can end and the
// pool knows its connections' ids, it runs fn on one connection and, if ctx
// ends while fn runs, kills fn's session on the server (KILL CONNECTION), so
// that a write refused to the caller is not applied later; that connection
// is then discarded. Elsewhere it runs fn on the pool, with the prepared
// statements (PostgreSQL's driver cancels on the server itself; SQLite runs
// in the process).
func (b *Backend) killOnCancel(ctx context.Context, fn func(q querier) error) error {
	if b.killer == nil || ctx.Done() == nil {
		return fn(b.pool)
	}
	conn, err := b.db.Conn(ctx)
	if err != nil {
		return err
	}
	var id uint64
	if err := conn.Raw(func(dc any) error {
		if c, ok := dc.(*idConn); ok {
			id = c.id
		}
		return nil
	}); err != nil || id == 0 {
		conn.Close()
		if err != nil {
			return err
		}
		return fn(b.pool)
	}
	killed := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(killed)
		b.killQuery(id)
	})
	err = fn(conn)
	switch {
	case !stop():
		// The kill ran or is running: wait for it, and never give this
		// session back to the pool.
		<-killed
		conn.Raw(func(any) error { return driver.ErrBadConn })
	case err != nil && ctx.Err() != nil:
		// The driver saw the context end and gave up before the AfterFunc
		// started (the context closes Done before it runs its AfterFuncs),
		// so stop prevented the kill: kill here.
		b.killQuery(id)
		conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	conn.Close()
	return err
}

// write runs an autocommit write statement (killOnCancel) and returns the
// rows it affected (MySQL: matched).
func (b *Backend) write(ctx context.Context, query string, args ...any) (n int64, err error) {
	err = b.killOnCancel(ctx, func(q querier) error {
		var err error
		n, err = exec(ctx, q, query, args...)
		return err
	})
	return n, err
}

// killQuery ends server session id and the statement it runs, from a
// connection of its own (not the pool's, which may have no free one).
func (b *Backend) killQuery(id uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := func() error {
		dc, err := b.killer.Connect(ctx)
		if err != nil {
			return err
		}
		defer dc.Close()
		ex, ok := dc.(driver.ExecerContext)
		if !ok {
			return errors.New("driver connection cannot execute")
		}
		_, err = ex.ExecContext(ctx, "KILL CONNECTION "+strconv.FormatUint(id, 10), nil)
		var myErr *mysql.MySQLError
		if errors.As(err, &myErr) && myErr.Number == 1094 {
			return nil // unknown thread: the session had already ended
		}
		if err != nil {
			return err
		}
		return waitSessionGone(ctx, dc, id)
	}()
	if err != nil {
		b.opts.Logger.Warn("authdb: could not stop a cancelled MySQL statement", "session", id, "error", err)
		return
	}
	b.opts.Logger.Debug("authdb: killed the session of a cancelled MySQL write", "session", id)
}

// killWait bounds how long killQuery waits for a killed session to leave
// the server.
const killWait = 300 * time.Millisecond

// waitSessionGone polls the process list until session id has ended, for at
// most killWait. KILL only flags the session: a statement woken from a lock
// wait by it could otherwise still be applied if the lock is released before
// the session notices the flag. Once the session is gone, its statement can
// no longer be applied.
func waitSessionGone(ctx context.Context, dc driver.Conn, id uint64) error {
	q, ok := dc.(driver.QueryerContext)
	if !ok {
		return nil
	}
	deadline := time.Now().Add(killWait)
	for {
		rows, err := q.QueryContext(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?",
			[]driver.NamedValue{{Ordinal: 1, Value: int64(id)}})
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
			return fmt.Errorf("session %d still on the server %v after KILL", id, killWait)
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
