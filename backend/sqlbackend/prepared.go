package sqlbackend

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
)

// stmtCache holds the backend's statements (the fields of queries) prepared
// on the pool, each on first use. database/sql then prepares a statement
// once per connection and reuses it, so the server (PostgreSQL) or the
// library (SQLite) parses and plans it once per connection instead of at
// every call, in the same single round trip per execution. (On MySQL, an
// autocommit write whose context can end runs as a plain interpolated
// statement, its session's kill armed by the connection: Backend.write.)
//
// The map is built when the backend opens and never changes, so lookups
// take no lock; each entry prepares itself once (a failed preparation, say
// on a table that does not exist yet, is tried again at the next call).
type stmtCache struct {
	db *sql.DB
	m  map[string]*lazyStmt
}

type lazyStmt struct {
	p  atomic.Pointer[sql.Stmt] // nil until prepared
	mu sync.Mutex               // held while preparing
}

func newStmtCache(db *sql.DB, q *queries) *stmtCache {
	c := &stmtCache{db: db}
	c.m = make(map[string]*lazyStmt)
	for _, s := range q.fields() {
		if *s != "" {
			c.m[*s] = &lazyStmt{}
		}
	}
	return c
}

// stmt returns the prepared form of query, or nil when query is not one of
// the cached statements or cannot be prepared now (the caller then runs it
// plain, and reports the driver's error if it fails there too).
func (c *stmtCache) stmt(ctx context.Context, query string) *sql.Stmt {
	l := c.m[query]
	if l == nil {
		return nil
	}
	if st := l.p.Load(); st != nil {
		return st
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if st := l.p.Load(); st != nil {
		return st
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	l.p.Store(st)
	return st
}

// prepared returns the prepared form of query if it was prepared already,
// else nil. Transactions use it: preparing takes a connection from the
// pool, and one that holds a transaction's connection must not wait for
// another (a pool of one connection would wait forever).
func (c *stmtCache) prepared(query string) *sql.Stmt {
	if l := c.m[query]; l != nil {
		return l.p.Load()
	}
	return nil
}

// close closes every prepared statement.
func (c *stmtCache) close() {
	for _, l := range c.m {
		l.mu.Lock()
		if st := l.p.Swap(nil); st != nil {
			st.Close()
		}
		l.mu.Unlock()
	}
}

// pool is the querier of autocommit statements: the cached prepared
// statement when there is one, else the pool itself.
type pool struct{ c *stmtCache }

func (p pool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := p.c.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return p.c.db.ExecContext(ctx, query, args...)
}

func (p pool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := p.c.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return p.c.db.QueryContext(ctx, query, args...)
}

// txQuerier runs statements in a transaction, those prepared already
// through Tx.StmtContext (which reuses the statement prepared on the
// transaction's connection, or prepares it there), the others plain.
type txQuerier struct {
	*sql.Tx
	c *stmtCache
}

func (t txQuerier) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.c.prepared(query); st != nil {
		return t.Tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.Tx.ExecContext(ctx, query, args...)
}

func (t txQuerier) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.c.prepared(query); st != nil {
		return t.Tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return t.Tx.QueryContext(ctx, query, args...)
}

// beginTx starts a transaction on the pool (SQLite: BEGIN IMMEDIATE, from
// the DSN's _txlock), after preparing the statements it will run (before
// it holds a connection: see prepared).
func (b *Backend) beginTx(ctx context.Context, queries ...string) (txQuerier, error) {
	for _, q := range queries {
		b.stmts.stmt(ctx, q)
	}
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return txQuerier{}, err
	}
	return txQuerier{Tx: tx, c: b.stmts}, nil
}
