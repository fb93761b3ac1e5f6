package sqlbackend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"ariga.io/atlas/sql/postgres"
	atlas "ariga.io/atlas/sql/schema"
	"ariga.io/atlas/sql/sqlite"
	"entgo.io/ent/dialect"
	entschema "entgo.io/ent/dialect/sql/schema"
	"github.com/go-sql-driver/mysql"

	"github.com/authdb/authdb/ent/migrate"
	"github.com/authdb/authdb/partition"
)

// Migrate creates the three tables, or upgrades them, with ent's migration
// (what Open does unless backend.WithoutMigration is given). It only ever
// adds: missing tables, authdb's nullable columns (RefreshTokens' FamilyID
// and ReplacedBy, see ent/schema) and indexes of authdb's own; it never
// changes, drops or retypes a column or an index that exists, so a database
// DiracX created keeps DiracX's columns and indexes exactly (a change the
// migration would otherwise make is logged at warning level and skipped).
//
// On MySQL/MariaDB the family columns are added to an existing
// RefreshTokens by authdb's own statements, before ent's migration, so that
// a large partitioned table is never copied: ADD COLUMN ... ALGORITHM=INSTANT
// (MariaDB 10.3+, run on a partitioned MariaDB 10.11 table by the tests;
// MySQL 8.0.12+ documents it for columns added last, not run here; a server
// that refuses fails the migration with the statement to run) and the FamilyID
// index with ALGORITHM=INPLACE, LOCK=NONE (reads and writes go on while it
// builds). On PostgreSQL a nullable column without a default is a catalog
// change; on SQLite ALTER TABLE ADD COLUMN rewrites no row.
//
// On MySQL/MariaDB, when this call created RefreshTokens, it then partitions
// the new, empty table by month (partition.Setup, with the backend's clock),
// as DiracX does. An existing table is never partitioned here: see the
// operator CLI.
//
// Any number of processes may migrate one database at once, fresh or old:
// all succeed (a lock across processes, see migratelock.go).
// On Galera, where that lock is node-local, processes on several nodes
// may still collide: a step failing because another migration made the
// same change at that moment (a table or index that exists, a deadlock or
// certification conflict from a concurrent DDL) is planned again.
func (b *Backend) Migrate(ctx context.Context) error {
	// ent's migration prepares the generated tables (ent/migrate.Tables,
	// package state) in place on every run: runs from several backends of
	// one process must not overlap.
	migrateMu.Lock()
	defer migrateMu.Unlock()
	unlock, err := b.lockMigration(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("authdb: migrate %s: %w", b.where, ctx.Err())
		}
		return fmt.Errorf("authdb: migrate %s: lock: %w", b.where, err)
	}
	defer unlock()
	// Inspected under the lock: another process may have just created it.
	created := false
	if b.dialect == dialect.MySQL {
		exists, err := b.tableExists(ctx, "RefreshTokens")
		if err != nil {
			return b.wrap(ctx, "migrate", err)
		}
		created = !exists
	}
	if !created {
		add := func() error { return b.addFamilyColumns(ctx) }
		if b.dialect == dialect.SQLite {
			err = retry(ctx, b.busyBudget, b.opts.Logger, add)
		} else {
			err = add()
		}
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("authdb: migrate %s: %w", b.where, ctx.Err())
			}
			return fmt.Errorf("authdb: migrate %s: %w", b.where, err)
		}
	}
	for attempt := 1; ; attempt++ {
		create := func() error {
			return b.client.Schema.Create(ctx,
				migrate.WithForeignKeys(false),
				entschema.WithDiffHook(additiveOnly(b.dialect, b.opts.Logger)),
			)
		}
		if b.dialect == dialect.SQLite {
			// Another process migrating or writing holds the write lock:
			// wait for it within the busy budget, as every call does.
			err = retry(ctx, b.busyBudget, b.opts.Logger, create)
		} else {
			err = create()
		}
		if err == nil || ctx.Err() != nil || attempt == migrateAttempts || !(alreadyExists(err) || migrationRaced(err)) {
			break
		}
		b.opts.Logger.Debug("authdb: migration: another process changed the schema meanwhile; planning again", "attempt", attempt, "error", err)
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("authdb: migrate %s: %w", b.where, ctx.Err())
		}
		return fmt.Errorf("authdb: migrate %s: %w", b.where, err)
	}
	if created {
		if err := b.raced(ctx, func() error {
			_, err := partition.Setup(ctx, b.db, b.now(), b.opts.Logger)
			return err
		}); err != nil {
			return fmt.Errorf("authdb: migrate %s: partition RefreshTokens: %w", b.where, err)
		}
	}
	return nil
}

var migrateMu sync.Mutex

// The statements that add the refresh-token family columns to an existing
// RefreshTokens without copying it (see Migrate): MySQL/MariaDB and SQLite.
// (Atlas would rebuild the table on SQLite and copy it on MySQL.)
const (
	mysqlAddFamilyColumns  = "ALTER TABLE `RefreshTokens` ADD COLUMN `FamilyID` char(32) NULL, ADD COLUMN `ReplacedBy` char(32) NULL, ALGORITHM=INSTANT"
	mysqlAddFamilyIndex    = "ALTER TABLE `RefreshTokens` ADD INDEX `ix_RefreshTokens_FamilyID` (`FamilyID`), ALGORITHM=INPLACE, LOCK=NONE"
	sqliteAddFamilyID      = `ALTER TABLE "RefreshTokens" ADD COLUMN "FamilyID" CHAR(32) NULL`
	sqliteAddReplacedBy    = `ALTER TABLE "RefreshTokens" ADD COLUMN "ReplacedBy" CHAR(32) NULL`
	sqliteAddFamilyIndex   = `CREATE INDEX IF NOT EXISTS "ix_RefreshTokens_FamilyID" ON "RefreshTokens" ("FamilyID")`
	mysqlFamilyColumnCount = "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'RefreshTokens' AND COLUMN_NAME IN ('FamilyID', 'ReplacedBy')"
	mysqlFamilyIndexCount  = "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'RefreshTokens' AND INDEX_NAME = 'ix_RefreshTokens_FamilyID'"
	sqliteFamilyColumns    = `SELECT COUNT(*) FROM pragma_table_info('RefreshTokens') WHERE name IN ('FamilyID', 'ReplacedBy')`
	sqliteTokensTableCount = `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'RefreshTokens'`
)

// addFamilyColumns adds FamilyID, ReplacedBy and their index to an existing
// RefreshTokens that lacks them, on MySQL/MariaDB and SQLite (PostgreSQL's
// are left to ent's migration: a nullable column is a catalog change there).
// Another process adding them at the same time is not an error (MySQL
// duplicate column 1060, duplicate key 1061; SQLite migrations of one file
// are serialised by its write lock).
func (b *Backend) addFamilyColumns(ctx context.Context) error {
	var cols int
	switch b.dialect {
	case dialect.MySQL:
		if _, err := queryRow(ctx, b.db, mysqlFamilyColumnCount, nil, &cols); err != nil {
			return err
		}
	case dialect.SQLite:
		var tables int
		if _, err := queryRow(ctx, b.db, sqliteTokensTableCount, nil, &tables); err != nil || tables == 0 {
			return err // a new database: ent creates the table whole
		}
		if _, err := queryRow(ctx, b.db, sqliteFamilyColumns, nil, &cols); err != nil {
			return err
		}
	default:
		return nil
	}
	if cols == 1 {
		return fmt.Errorf("RefreshTokens has only one of FamilyID and ReplacedBy: add the other by hand")
	}
	switch b.dialect {
	case dialect.MySQL:
		if cols == 0 {
			if _, err := b.db.ExecContext(ctx, mysqlAddFamilyColumns); err != nil && !isMySQLError(err, 1060) {
				return fmt.Errorf("add the refresh-token family columns without copying RefreshTokens (run %q when the server allows it): %w",
					mysqlAddFamilyColumns, err)
			}
			b.opts.Logger.Info("authdb: migration: added RefreshTokens.FamilyID and ReplacedBy (ALGORITHM=INSTANT)")
		}
		var idx int
		if _, err := queryRow(ctx, b.db, mysqlFamilyIndexCount, nil, &idx); err != nil {
			return err
		}
		if idx == 0 {
			if _, err := b.db.ExecContext(ctx, mysqlAddFamilyIndex); err != nil && !isMySQLError(err, 1061) {
				return fmt.Errorf("add index ix_RefreshTokens_FamilyID (statement %q): %w", mysqlAddFamilyIndex, err)
			}
		}
	case dialect.SQLite:
		if cols == 0 {
			for _, q := range []string{sqliteAddFamilyID, sqliteAddReplacedBy} {
				if _, err := b.db.ExecContext(ctx, q); err != nil && !strings.Contains(err.Error(), "duplicate column name") {
					return fmt.Errorf("add the refresh-token family columns: %w", err)
				}
			}
			b.opts.Logger.Info("authdb: migration: added RefreshTokens.FamilyID and ReplacedBy")
		}
		if _, err := b.db.ExecContext(ctx, sqliteAddFamilyIndex); err != nil {
			return fmt.Errorf("add index ix_RefreshTokens_FamilyID: %w", err)
		}
	}
	return nil
}

// tableExists reports whether the current MySQL database has the table.
func (b *Backend) tableExists(ctx context.Context, table string) (bool, error) {
	var n int
	_, err := queryRow(ctx, b.client,
		"SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
		[]any{table}, &n)
	return n > 0, err
}

// additiveOnly is the migration's diff hook: it keeps new tables and new
// indexes and drops every other change (column types, defaults,
// nullability, table options), logging what it skipped. New tables are
// shaped as DiracX creates them (likeDiracX).
func additiveOnly(d string, logger *slog.Logger) entschema.DiffHook {
	return func(next entschema.Differ) entschema.Differ {
		return entschema.DiffFunc(func(current, desired *atlas.Schema) ([]atlas.Change, error) {
			changes, err := next.Diff(current, desired)
			if err != nil {
				return nil, err
			}
			var kept []atlas.Change
			for _, c := range changes {
				switch c := c.(type) {
				case *atlas.AddTable:
					likeDiracX(d, c.T)
					kept = append(kept, c)
				case *atlas.ModifyTable:
					var sub []atlas.Change
					for _, tc := range c.Changes {
						if add, ok := tc.(*atlas.AddColumn); ok && addable(add.C) {
							sub = append(sub, tc)
							continue
						}
						if add, ok := tc.(*atlas.AddIndex); ok {
							if hasEquivalent(current, c.T.Name, add.I) {
								logger.Debug("authdb: migration: index exists under another name", "table", c.T.Name, "index", add.I.Name)
								continue
							}
							sub = append(sub, tc)
							continue
						}
						if benign(tc) {
							continue // the same thing written two ways: nothing to say
						}
						logger.Warn("authdb: migration: existing schema left as it is",
							"table", c.T.Name, "change", describe(tc))
					}
					if len(sub) > 0 {
						kept = append(kept, &atlas.ModifyTable{T: c.T, Changes: sub})
					}
				default:
					logger.Warn("authdb: migration: change skipped", "change", describe(c))
				}
			}
			return kept, nil
		})
	}
}

// isMySQLError reports whether err is the MySQL server error number n.
func isMySQLError(err error, n uint16) bool {
	var myErr *mysql.MySQLError
	return errors.As(err, &myErr) && myErr.Number == n
}

// addable reports whether a column missing from an existing table may be
// added: a nullable one without a default (authdb's FamilyID and
// ReplacedBy), which rewrites no row and which inserts that do not name it
// (DiracX's) leave NULL.
func addable(c *atlas.Column) bool {
	return c.Type != nil && c.Type.Null && c.Default == nil
}

// hasEquivalent reports whether the current table already has an index
// with the same columns and uniqueness as idx, whatever its name (DiracX's
// UNIQUE ("DeviceCode") on SQLite is sqlite_autoindex_DeviceFlows_2).
func hasEquivalent(current *atlas.Schema, table string, idx *atlas.Index) bool {
	t, ok := current.Table(table)
	if !ok {
		return false
	}
	for _, have := range t.Indexes {
		if have.Unique != idx.Unique || len(have.Parts) != len(idx.Parts) {
			continue
		}
		same := true
		for i, p := range have.Parts {
			q := idx.Parts[i]
			if p.C == nil || q.C == nil || p.C.Name != q.C.Name || p.Desc != q.Desc {
				same = false
				break
			}
		}
		if same {
			return true
		}
	}
	return false
}

// likeDiracX adjusts a table about to be created where Atlas would write
// it differently from DiracX's DDL: on SQLite, column types keep their
// declared lengths and DiracX's spelling (Atlas writes "varchar" for
// VARCHAR(8); SQLite ignores lengths but the catalog shows them); on
// PostgreSQL, a unique column is a UNIQUE constraint (DeviceFlows_DeviceCode_key)
// rather than a bare unique index.
func likeDiracX(d string, t *atlas.Table) {
	switch d {
	case dialect.SQLite:
		for _, c := range t.Columns {
			switch ct := c.Type.Type.(type) {
			case *atlas.StringType:
				name := strings.ToUpper(ct.T)
				if ct.Size > 0 {
					name += fmt.Sprintf("(%d)", ct.Size)
				}
				c.Type.Type = &sqlite.UserDefinedType{T: name}
			case *atlas.TimeType:
				c.Type.Type = &sqlite.UserDefinedType{T: strings.ToUpper(ct.T)}
			case *atlas.JSONType:
				c.Type.Type = &sqlite.UserDefinedType{T: strings.ToUpper(ct.T)}
			}
		}
	case dialect.Postgres:
		for _, idx := range t.Indexes {
			if idx.Unique && len(idx.Parts) == 1 && idx.Name == t.Name+"_"+idx.Parts[0].C.Name+"_key" {
				idx.Attrs = append(idx.Attrs, &postgres.Constraint{N: idx.Name, T: "u"})
			}
		}
	}
}

// benign reports whether a difference the migration skips is one that
// DiracX's own DDL shows and that changes no behaviour authdb relies on: a
// MySQL table collation other than ent's utf8mb4_bin (DiracX's tables take
// the database's default), or a default expression that differs only in
// its enclosing parentheses (SQLite reports DEFAULT (DATETIME('now')) without
// them).
func benign(c atlas.Change) bool {
	switch c := c.(type) {
	case *atlas.ModifyAttr:
		switch c.To.(type) {
		case *atlas.Collation, *atlas.Charset:
			return true
		}
	case *atlas.ModifyColumn:
		if c.Change != atlas.ChangeDefault {
			return false
		}
		from, ok1 := c.From.Default.(*atlas.RawExpr)
		to, ok2 := c.To.Default.(*atlas.RawExpr)
		return ok1 && ok2 && unparen(from.X) == unparen(to.X)
	}
	return false
}

func unparen(s string) string {
	s = strings.TrimSpace(s)
	for len(s) >= 2 && s[0] == '(' && s[len(s)-1] == ')' {
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	return s
}

// describe names a schema change for the log.
func describe(c atlas.Change) string {
	switch c := c.(type) {
	case *atlas.ModifyColumn:
		return fmt.Sprintf("modify column %s (%v): %s -> %s", c.To.Name, c.Change, columnString(c.From), columnString(c.To))
	case *atlas.AddColumn:
		return "add column " + c.C.Name
	case *atlas.DropColumn:
		return "drop column " + c.C.Name
	case *atlas.ModifyIndex:
		return fmt.Sprintf("modify index %s (%v)", c.To.Name, c.Change)
	case *atlas.DropIndex:
		return "drop index " + c.I.Name
	case *atlas.AddIndex:
		return "add index " + c.I.Name
	case *atlas.ModifyAttr:
		return fmt.Sprintf("modify table attribute %T: %+v -> %+v", c.To, c.From, c.To)
	case *atlas.ModifyPrimaryKey:
		return "modify primary key"
	}
	return fmt.Sprintf("%T", c)
}

func columnString(c *atlas.Column) string {
	s := c.Name
	if c.Type != nil {
		s += fmt.Sprintf(" %s null=%v", c.Type.Raw, c.Type.Null)
	}
	switch d := c.Default.(type) {
	case *atlas.RawExpr:
		s += " default " + d.X
	case *atlas.Literal:
		s += " default " + d.V
	}
	return s
}
