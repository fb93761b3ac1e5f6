package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/internal/bench/baseline"
)

// timeArg is a CreationTime as the engine's column takes it (SQLite: the
// text form of DATETIME('now'), as authdb writes it).
func (e *Env) timeArg(t time.Time) any {
	t = t.UTC().Truncate(time.Second)
	if e.Dialect == baseline.SQLite {
		return t.Format("2006-01-02 15:04:05")
	}
	return t
}

// idArg is a UUID as the engine's column takes it.
func (e *Env) idArg(id uuid.UUID) string {
	if e.Dialect == baseline.Postgres {
		return id.String()
	}
	return backend.HexJTI(id)
}

// BulkInsert inserts rows into table with multi-row INSERTs of up to 1000
// rows (on the uncounted admin pool; SQLite in one transaction).
func (e *Env) BulkInsert(ctx context.Context, table string, cols []string, rows [][]any) error {
	q := func(s string) string {
		if e.Dialect == baseline.MySQL {
			return "`" + s + "`"
		}
		return `"` + s + `"`
	}
	quoted := make([]string, len(cols))
	for i, c := range cols {
		quoted[i] = q(c)
	}
	head := "INSERT INTO " + q(table) + " (" + strings.Join(quoted, ",") + ") VALUES "
	const chunk = 1000
	tx, err := e.Admin.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for lo := 0; lo < len(rows); lo += chunk {
		hi := min(lo+chunk, len(rows))
		var b strings.Builder
		b.WriteString(head)
		args := make([]any, 0, (hi-lo)*len(cols))
		for r := lo; r < hi; r++ {
			if r > lo {
				b.WriteByte(',')
			}
			b.WriteByte('(')
			for c := range cols {
				if c > 0 {
					b.WriteByte(',')
				}
				args = append(args, rows[r][c])
				if e.Dialect == baseline.Postgres {
					b.WriteString("$" + strconv.Itoa(len(args)))
				} else {
					b.WriteByte('?')
				}
			}
			b.WriteByte(')')
		}
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return fmt.Errorf("bench: bulk insert into %s: %w", table, err)
		}
		if e.Dialect != baseline.SQLite && hi-lo == chunk && (hi/chunk)%50 == 0 {
			// Commit every 50,000 rows on the servers: no huge transaction.
			if err := tx.Commit(); err != nil {
				return err
			}
			if tx, err = e.Admin.BeginTx(ctx, nil); err != nil {
				return err
			}
		}
	}
	return tx.Commit()
}

// countTokens returns the number of refresh tokens in the table.
func (e *Env) countTokens(ctx context.Context) (int, error) {
	if e.Admin == nil {
		ts, err := e.Authdb.B.GetUserRefreshTokens(ctx, "")
		return len(ts), err
	}
	var n int
	err := e.Admin.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+map[bool]string{true: "`RefreshTokens`", false: `"RefreshTokens"`}[e.Dialect == baseline.MySQL]).Scan(&n)
	return n, err
}

// loadTokens returns an Op.Once that fills RefreshTokens up to size
// tokens: first the listed subject's ListLive live and ListLive revoked
// tokens, then tokens of other subjects (ten each, one in three revoked),
// created over the last hours.
func loadTokens(size int) func(ctx context.Context, e *Env) error {
	return func(ctx context.Context, e *Env) error {
		have, err := e.countTokens(ctx)
		if err != nil {
			return err
		}
		base := time.Now().Add(-3 * time.Hour)
		var rows [][]any
		add := func(i int, sub, status string) {
			rows = append(rows, []any{JTIAt(base.Add(time.Duration(i) * time.Millisecond)), status, scope, sub})
		}
		if have == 0 {
			for i := range 2 * ListLive {
				add(i, ListSubject, map[bool]string{true: "CREATED", false: "REVOKED"}[i%2 == 0])
			}
			have = len(rows)
		}
		for i := have; i < size; i++ {
			status := "CREATED"
			if i%3 == 0 {
				status = "REVOKED"
			}
			add(i, "bulk-subject-"+strconv.Itoa(i/10), status)
		}
		if e.Admin == nil { // memory: each implementation has its own store
			for _, im := range e.Impls() {
				for _, r := range rows {
					id := r[0].(uuid.UUID)
					if err := im.B.InsertRefreshToken(ctx, id, r[3].(string), scope); err != nil {
						return err
					}
					if r[1] == "REVOKED" {
						if err := im.B.RevokeRefreshToken(ctx, id); err != nil {
							return err
						}
					}
				}
			}
			return nil
		}
		for _, r := range rows {
			r[0] = e.idArg(r[0].(uuid.UUID))
		}
		if err := e.BulkInsert(ctx, "RefreshTokens", []string{"JTI", "Status", "Scope", "Sub"}, rows); err != nil {
			return err
		}
		return e.analyze(ctx)
	}
}

// analyze refreshes the planner's statistics after a bulk load.
func (e *Env) analyze(ctx context.Context) error {
	var stmt string
	switch e.Dialect {
	case baseline.Postgres:
		stmt = `ANALYZE "RefreshTokens", "DeviceFlows", "AuthorizationFlows"`
	case baseline.MySQL:
		stmt = "ANALYZE TABLE `RefreshTokens`, `DeviceFlows`, `AuthorizationFlows`"
	default:
		stmt = "ANALYZE"
	}
	rows, err := e.Admin.QueryContext(ctx, stmt)
	if err != nil {
		return err
	}
	return rows.Close()
}

// settle brings the server to the steady state of a table that has been
// in use, after a bulk load: on PostgreSQL a VACUUM (the visibility map and
// hint bits that autovacuum would set; without it the first reads of each
// page write it) and a CHECKPOINT (the load's dirty pages written, so that
// reads do not pay for evicting them); on MariaDB it waits, up to maxWait
// (-scale.settle), for InnoDB's page cleaner to write the load's dirty pages
// (down to 1 % of the pool), with the flushing target lowered to 0 while it
// waits when own (a private server: the setting is global). On its own
// PostgreSQL server, whose buffers are sized to hold the table, it also
// reads the table and its indexes into them (pg_prewarm). It returns what
// it did.
func (e *Env) settle(ctx context.Context, own bool, maxWait time.Duration) (string, error) {
	start := time.Now()
	switch e.Dialect {
	case baseline.Postgres:
		stmts := []string{`VACUUM "RefreshTokens"`, `CHECKPOINT`}
		if own {
			// A server whose buffers hold the table: read the table and
			// its indexes into them, as a server that has been serving
			// them would have (a bulk load and VACUUM go through small
			// rings of buffers and leave most pages out).
			stmts = append(stmts, `CREATE EXTENSION IF NOT EXISTS pg_prewarm`,
				`SELECT pg_prewarm('"RefreshTokens"')`,
				`SELECT pg_prewarm(indexrelid::regclass) FROM pg_index WHERE indrelid = '"RefreshTokens"'::regclass`)
		}
		for _, stmt := range stmts {
			if _, err := e.Admin.ExecContext(ctx, stmt); err != nil {
				return "", fmt.Errorf("settle: %s: %w", stmt, err)
			}
		}
		did := "VACUUM, CHECKPOINT"
		if own {
			did += ", pg_prewarm"
		}
		return fmt.Sprintf("%s: %.1fs", did, time.Since(start).Seconds()), nil
	case baseline.MySQL:
		if own {
			if _, err := e.Admin.ExecContext(ctx, "SET GLOBAL innodb_max_dirty_pages_pct = 0"); err != nil {
				return "", err
			}
			defer e.Admin.ExecContext(context.WithoutCancel(ctx), "SET GLOBAL innodb_max_dirty_pages_pct = DEFAULT")
		}
		status := func(name string) (int64, error) {
			var k string
			var v int64
			err := e.Admin.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE '"+name+"'").Scan(&k, &v)
			return v, err
		}
		for {
			dirty, err := status("Innodb_buffer_pool_pages_dirty")
			if err != nil {
				return "", err
			}
			total, err := status("Innodb_buffer_pool_pages_total")
			if err != nil {
				return "", err
			}
			if dirty*100 <= total || time.Since(start) >= maxWait {
				return fmt.Sprintf("%d of %d pages dirty after %.1fs", dirty, total, time.Since(start).Seconds()), nil
			}
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
	return "nothing to settle", nil
}
