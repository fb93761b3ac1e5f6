package sqlbackend_test

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/backend/sqlbackend"
	"github.com/authdb/authdb/conformance"
	"github.com/authdb/authdb/partition"
)

// ownIndexes are the indexes authdb adds to DiracX's schema.
var ownIndexes = []string{"ix_DeviceFlows_CreationTime", "ix_AuthorizationFlows_CreationTime", "ix_AuthorizationFlows_Code",
	"ix_RefreshTokens_FamilyID"}

// ownColumns are the columns authdb adds to DiracX's schema: the nullable
// refresh-token family columns, of JTI's type.
var ownColumns = []string{"FamilyID", "ReplacedBy"}

// ownColumnType is how each engine's catalog line (see catalog) shows an
// own column's type, nullability and default: JTI's type, NULL, no default.
var ownColumnType = map[string]string{
	"sqlite":   "CHAR(32) notnull=0 default=NULL pk=0",
	"postgres": "uuid() nullable=YES default=NULL",
	"mysql":    "char(32) nullable=YES default=NULL",
}

// sqliteOwnColumnsDDL is what SQLite's ALTER TABLE ADD COLUMN writes into
// the CREATE TABLE text of a DiracX-created RefreshTokens.
const sqliteOwnColumnsDDL = `, "FamilyID" CHAR(32) NULL, "ReplacedBy" CHAR(32) NULL`

// isOwnIndex reports whether a catalog line is about one of ownIndexes or
// ownColumns.
func isOwnIndex(line string) bool {
	for _, name := range ownIndexes {
		if strings.Contains(line, " index "+name+":") || strings.Contains(line, " sql index "+name+":") {
			return true
		}
	}
	for _, name := range ownColumns {
		if strings.HasPrefix(line, "RefreshTokens column "+name+":") {
			return true
		}
	}
	return false
}

// wantOwnColumns checks that lines have both own columns with JTI's type.
func wantOwnColumns(t *testing.T, e engine, lines []string) {
	t.Helper()
	for _, name := range ownColumns {
		prefix := "RefreshTokens column " + name + ":"
		i := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, prefix) })
		if i < 0 {
			t.Errorf("column %s missing", name)
		} else if !strings.Contains(lines[i], " "+ownColumnType[e.name]) {
			t.Errorf("column %s: %s, want %s", name, lines[i], ownColumnType[e.name])
		}
	}
}

var (
	sqliteUniqueName = regexp.MustCompile(`^(\w+) index \S+: unique=1 origin=[cu] (.*)$`)
	mysqlCollation   = regexp.MustCompile(` collation=\S*`)
)

// comparable drops from a catalog what legitimately differs between the
// schema authdb creates and the one DiracX's DDL creates, and authdb's own
// indexes:
//   - SQLite: the CREATE statements' text (quoting, layout), and the name and
//     origin of the unique index on DeviceCode (DiracX declares UNIQUE in the
//     table, which SQLite names sqlite_autoindex_DeviceFlows_2; Atlas cannot
//     create inline constraints on SQLite and makes DeviceFlows_DeviceCode_key);
//   - MySQL: collations (authdb's tables use utf8mb4_bin, DiracX's the
//     database default) and partitions (DiracX partitions after creating).
func comparable(e engine, lines []string) []string {
	var out []string
	for _, l := range lines {
		if isOwnIndex(l) {
			continue
		}
		switch e.name {
		case "sqlite":
			if strings.Contains(l, " sql ") {
				continue
			}
			l = sqliteUniqueName.ReplaceAllString(l, "$1 index (unique): $2")
		case "mysql":
			if strings.Contains(l, " partition ") || strings.Contains(l, " table collation=") {
				continue
			}
			l = mysqlCollation.ReplaceAllString(l, "")
		}
		out = append(out, l)
	}
	return out
}

// diracxDB returns the URL of a new database whose tables were made by
// DiracX's DDL for e.
func diracxDB(t *testing.T, e engine) string {
	t.Helper()
	u := newURL(t, e)
	loadDDL(t, rawDB(t, e, u), e.ddl)
	return u
}

func diff(t *testing.T, got, want []string) {
	t.Helper()
	for _, l := range want {
		if !slices.Contains(got, l) {
			t.Errorf("missing: %s", l)
		}
	}
	for _, l := range got {
		if !slices.Contains(want, l) {
			t.Errorf("unexpected: %s", l)
		}
	}
}

// TestSchemaMatchesDiracX: the tables authdb creates are, as each engine's
// catalog reports them, the tables DiracX's DDL creates (docs/design.md, "SQL
// schema"), plus authdb's own indexes; reopening changes nothing and logs
// no skipped change.
func TestSchemaMatchesDiracX(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			u := newURL(t, e)
			logger, logs := newLogger()
			open(t, u, backend.WithLogger(logger)).Close()
			db := rawDB(t, e, u)
			got := catalog(t, e, db)
			want := catalog(t, e, rawDB(t, e, diracxDB(t, e)))
			diff(t, comparable(e, got), comparable(e, want))
			for _, name := range ownIndexes {
				if !slices.ContainsFunc(got, func(l string) bool { return strings.Contains(l, " index "+name+":") }) {
					t.Errorf("index %s missing", name)
				}
			}
			wantOwnColumns(t, e, got)
			if e.name == "mysql" {
				for _, table := range tables {
					wantLine := table + " table collation=utf8mb4_bin options="
					if table == "RefreshTokens" {
						wantLine += "partitioned"
					}
					if !slices.Contains(got, wantLine) {
						t.Errorf("want %q", wantLine)
					}
				}
				n := 0
				for _, l := range got {
					if strings.HasPrefix(l, "RefreshTokens partition ") {
						n++
					}
				}
				if n != partition.SetupMonths+1 {
					t.Errorf("RefreshTokens has %d partitions, want %d", n, partition.SetupMonths+1)
				}
			}

			open(t, u, backend.WithLogger(logger)).Close()
			diff(t, catalog(t, e, db), got)
			if strings.Contains(logs.String(), "level=WARN") {
				t.Errorf("migration logged warnings:\n%s", logs)
			}
		})
	}
}

// TestOpenKeepsDiracXSchema: opening a database DiracX created adds
// authdb's indexes and its two nullable family columns (of JTI's type) and
// changes nothing else, on every engine (MySQL: with the table left
// unpartitioned and partitioned by DiracX; the columns are added in place,
// ALGORITHM=INSTANT), also when opened again; no change is skipped with a
// warning. On SQLite the one other line that changes is RefreshTokens'
// CREATE TABLE text, by exactly the two column definitions.
func TestOpenKeepsDiracXSchema(t *testing.T) {
	type variant struct {
		e           engine
		partitioned bool
	}
	variants := []variant{{engines[0], false}, {engines[1], false}, {engines[2], false}, {engines[2], true}}
	for _, v := range variants {
		name := v.e.name
		if v.partitioned {
			name += "/partitioned"
		}
		t.Run(name, func(t *testing.T) {
			e := v.e
			u := diracxDB(t, e)
			db := rawDB(t, e, u)
			if v.partitioned {
				quiet, _ := newLogger()
				created, err := partition.Setup(context.Background(), db, time.Now(), quiet)
				if err != nil || !created {
					t.Fatalf("partition.Setup = %v, %v", created, err)
				}
			}
			before := catalog(t, e, db)
			logger, logs := newLogger()
			open(t, u, backend.WithLogger(logger)).Close()
			after := catalog(t, e, db)
			var added []string
			for _, l := range after {
				if !slices.Contains(before, l) {
					added = append(added, l)
				}
			}
			sqliteTable := "RefreshTokens sql table RefreshTokens: "
			for _, l := range before {
				if !slices.Contains(after, l) {
					if e.name == "sqlite" && strings.HasPrefix(l, sqliteTable) {
						continue // checked below
					}
					t.Errorf("changed or removed by Open: %s", l)
				}
			}
			for _, l := range added {
				if e.name == "sqlite" && strings.HasPrefix(l, sqliteTable) {
					if !slices.Contains(before, strings.Replace(l, sqliteOwnColumnsDDL, "", 1)) {
						t.Errorf("RefreshTokens changed by more than the family columns: %s", l)
					}
					continue
				}
				if !isOwnIndex(l) {
					t.Errorf("added by Open: %s", l)
				}
			}
			wantOwnColumns(t, e, added)
			for _, name := range ownIndexes {
				if !slices.ContainsFunc(added, func(l string) bool { return strings.Contains(l, " index "+name+":") }) {
					t.Errorf("index %s not added", name)
				}
			}
			open(t, u, backend.WithLogger(logger)).Close()
			diff(t, catalog(t, e, db), after)
			if strings.Contains(logs.String(), "level=WARN") {
				t.Errorf("migration logged warnings:\n%s", logs)
			}
		})
	}
}

// TestConformanceOnDiracXSchema runs the conformance suite on databases
// whose tables DiracX's DDL created (on MySQL, partitioned as DiracX does):
// every operation works on them. One database per engine, opened once with
// migration, emptied before each subtest.
func TestConformanceOnDiracXSchema(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			u := diracxDB(t, e)
			admin := rawDB(t, e, u)
			if e.name == "mysql" {
				// The suite's clocks start on 2025-06-15.
				start := time.Date(2025, time.June, 1, 0, 0, 0, 0, time.UTC)
				quiet, _ := newLogger()
				if _, err := partition.Setup(context.Background(), admin, start, quiet); err != nil {
					t.Fatal(err)
				}
			}
			open(t, u).Close()
			conformance.Run(t, func(t *testing.T, opts ...backend.Option) backend.Backend {
				t.Helper()
				emptyTables(t, e, admin)
				b, err := sqlbackend.Open(t.Context(), u, append([]backend.Option{backend.WithoutMigration()}, opts...)...)
				if err != nil {
					t.Fatal(err)
				}
				return b
			})
		})
	}
}
