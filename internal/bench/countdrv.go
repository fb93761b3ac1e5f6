package bench

import (
	"context"
	"database/sql/driver"
	"strings"
	"sync"
	"sync/atomic"
)

// Counter counts the round trips a database/sql pool makes through a
// connector wrapped by Count. A round trip is one of:
//
//   - a statement run directly on a connection (ExecContext, QueryContext
//     that the driver did not refuse with driver.ErrSkip);
//   - a Prepare (one round trip on PostgreSQL and MySQL; on SQLite a
//     compilation, counted the same way);
//   - an execution of a prepared statement (Stmt Exec/Query);
//   - Begin, Commit and Rollback;
//   - Ping.
//
// Connecting, closing a prepared statement, reading more rows of a result
// and resetting a session are not counted (database/sql does them outside
// the operation, or they cost no round trip with these drivers).
//
// It is safe for concurrent use.
type Counter struct {
	n atomic.Int64

	mu     sync.Mutex
	record bool
	log    []Statement
}

// Statement is a recorded statement: its SQL text and arguments (Begin,
// Commit, Rollback and Ping are recorded by name with no arguments).
type Statement struct {
	Query string
	Args  []driver.NamedValue
}

// Load returns the round trips counted so far.
func (c *Counter) Load() int64 { return c.n.Load() }

// Record turns recording of statement texts on or off and clears the log.
func (c *Counter) Record(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.record, c.log = on, nil
}

// Log returns the statements recorded since Record(true).
func (c *Counter) Log() []Statement {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Statement(nil), c.log...)
}

func (c *Counter) add(query string, args []driver.NamedValue) {
	if strings.HasPrefix(query, "PRAGMA wal_checkpoint") {
		return // a SQLite backend's background checkpoint, no call's statement
	}
	c.n.Add(1)
	c.mu.Lock()
	if c.record {
		c.log = append(c.log, Statement{Query: query, Args: append([]driver.NamedValue(nil), args...)})
	}
	c.mu.Unlock()
}

// Count wraps a connector so that every round trip its connections make is
// counted by c.
func Count(connector driver.Connector, c *Counter) driver.Connector {
	return &countConnector{inner: connector, c: c}
}

// DSNConnector makes a connector of a driver and a DSN (for drivers, such
// as go-sqlite3, that do not offer one).
func DSNConnector(d driver.Driver, dsn string) driver.Connector {
	if dc, ok := d.(driver.DriverContext); ok {
		if c, err := dc.OpenConnector(dsn); err == nil {
			return c
		}
	}
	return dsnConnector{d: d, dsn: dsn}
}

type dsnConnector struct {
	d   driver.Driver
	dsn string
}

func (d dsnConnector) Connect(context.Context) (driver.Conn, error) { return d.d.Open(d.dsn) }
func (d dsnConnector) Driver() driver.Driver                        { return d.d }

type countConnector struct {
	inner driver.Connector
	c     *Counter
}

func (cc *countConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := cc.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &countConn{inner: conn, c: cc.c}, nil
}

func (cc *countConnector) Driver() driver.Driver { return cc.inner.Driver() }

// countConn forwards to the driver's connection. It implements every
// optional interface that the three drivers implement and falls back as
// database/sql would when the inner connection does not.
type countConn struct {
	inner driver.Conn
	c     *Counter
}

var (
	_ driver.Conn               = (*countConn)(nil)
	_ driver.ConnBeginTx        = (*countConn)(nil)
	_ driver.ConnPrepareContext = (*countConn)(nil)
	_ driver.ExecerContext      = (*countConn)(nil)
	_ driver.QueryerContext     = (*countConn)(nil)
	_ driver.Pinger             = (*countConn)(nil)
	_ driver.SessionResetter    = (*countConn)(nil)
	_ driver.Validator          = (*countConn)(nil)
	_ driver.NamedValueChecker  = (*countConn)(nil)
)

func (cc *countConn) Prepare(query string) (driver.Stmt, error) {
	return cc.PrepareContext(context.Background(), query)
}

func (cc *countConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	cc.c.add("PREPARE "+query, nil)
	var st driver.Stmt
	var err error
	if p, ok := cc.inner.(driver.ConnPrepareContext); ok {
		st, err = p.PrepareContext(ctx, query)
	} else {
		st, err = cc.inner.Prepare(query)
	}
	if err != nil {
		return nil, err
	}
	return &countStmt{inner: st, c: cc.c, query: query}, nil
}

func (cc *countConn) Close() error { return cc.inner.Close() }

func (cc *countConn) Begin() (driver.Tx, error) {
	return cc.BeginTx(context.Background(), driver.TxOptions{})
}

func (cc *countConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	cc.c.add("BEGIN", nil)
	var tx driver.Tx
	var err error
	if b, ok := cc.inner.(driver.ConnBeginTx); ok {
		tx, err = b.BeginTx(ctx, opts)
	} else {
		tx, err = cc.inner.Begin() //nolint:staticcheck // the driver offers nothing else
	}
	if err != nil {
		return nil, err
	}
	return countTx{inner: tx, c: cc.c}, nil
}

func (cc *countConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	e, ok := cc.inner.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	res, err := e.ExecContext(ctx, query, args)
	if err != driver.ErrSkip { //nolint:errorlint // the driver's sentinel, returned as is
		cc.c.add(query, args)
	}
	return res, err
}

func (cc *countConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := cc.inner.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	rows, err := q.QueryContext(ctx, query, args)
	if err != driver.ErrSkip { //nolint:errorlint // the driver's sentinel
		cc.c.add(query, args)
	}
	return rows, err
}

func (cc *countConn) Ping(ctx context.Context) error {
	p, ok := cc.inner.(driver.Pinger)
	if !ok {
		return nil
	}
	cc.c.add("PING", nil)
	return p.Ping(ctx)
}

func (cc *countConn) ResetSession(ctx context.Context) error {
	if r, ok := cc.inner.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (cc *countConn) IsValid() bool {
	if v, ok := cc.inner.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

func (cc *countConn) CheckNamedValue(nv *driver.NamedValue) error {
	if c, ok := cc.inner.(driver.NamedValueChecker); ok {
		return c.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

type countTx struct {
	inner driver.Tx
	c     *Counter
}

func (t countTx) Commit() error {
	t.c.add("COMMIT", nil)
	return t.inner.Commit()
}

func (t countTx) Rollback() error {
	t.c.add("ROLLBACK", nil)
	return t.inner.Rollback()
}

type countStmt struct {
	inner driver.Stmt
	c     *Counter
	query string
}

var (
	_ driver.StmtExecContext   = (*countStmt)(nil)
	_ driver.StmtQueryContext  = (*countStmt)(nil)
	_ driver.NamedValueChecker = (*countStmt)(nil)
)

func (s *countStmt) Close() error  { return s.inner.Close() }
func (s *countStmt) NumInput() int { return s.inner.NumInput() }

func (s *countStmt) Exec(args []driver.Value) (driver.Result, error) {
	s.c.add(s.query, nil)
	return s.inner.Exec(args) //nolint:staticcheck // legacy path, database/sql uses ExecContext
}

func (s *countStmt) Query(args []driver.Value) (driver.Rows, error) {
	s.c.add(s.query, nil)
	return s.inner.Query(args) //nolint:staticcheck // legacy path
}

func (s *countStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	s.c.add(s.query, args)
	if e, ok := s.inner.(driver.StmtExecContext); ok {
		return e.ExecContext(ctx, args)
	}
	vals, err := namedToValues(args)
	if err != nil {
		return nil, err
	}
	return s.inner.Exec(vals) //nolint:staticcheck // the driver offers nothing else
}

func (s *countStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	s.c.add(s.query, args)
	if q, ok := s.inner.(driver.StmtQueryContext); ok {
		return q.QueryContext(ctx, args)
	}
	vals, err := namedToValues(args)
	if err != nil {
		return nil, err
	}
	return s.inner.Query(vals) //nolint:staticcheck // the driver offers nothing else
}

func (s *countStmt) CheckNamedValue(nv *driver.NamedValue) error {
	if c, ok := s.inner.(driver.NamedValueChecker); ok {
		return c.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

func namedToValues(args []driver.NamedValue) ([]driver.Value, error) {
	out := make([]driver.Value, len(args))
	for i, a := range args {
		if a.Name != "" {
			return nil, errNamedArgs
		}
		out[i] = a.Value
	}
	return out, nil
}

type benchError string

func (e benchError) Error() string { return string(e) }

const errNamedArgs = benchError("bench: the driver does not support named arguments")
