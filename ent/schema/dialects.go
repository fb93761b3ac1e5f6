// Package schema holds the hand-written ent schemas of authdb's three tables,
// which mirror the DiracX Auth DB table for table and column for column
// (see docs/design.md, "SQL schema", and the DiracX DDL fixtures in
// backend/sqlbackend/testdata). Table and column names are set explicitly
// (entsql.Annotation{Table: ...}, StorageKey) and every column's type is
// given per dialect, from the one table in this file, so that ent's migration
// creates exactly what DiracX's SQLAlchemy models create and finds nothing to
// change on a database DiracX created.
package schema

import (
	"fmt"

	"entgo.io/ent/dialect"
	"entgo.io/ent/dialect/entsql"
)

// columnTypes is the column type of each kind of column on each engine
// (the dialect map idea of dex's storage/ent/schema/dialects.go).
//
//   - uuid: DiracX's Uuid(as_uuid=False): native uuid on PostgreSQL,
//     CHAR(32) of lowercase hex without dashes elsewhere.
//   - time: DiracX's DateTime(timezone=True): timestamptz on PostgreSQL,
//     DATETIME (whole seconds, no time zone; authdb stores UTC) on MySQL and
//     SQLite. ent's default on MySQL would be timestamp, which we must not use.
//   - json: plain JSON everywhere (ent's default on PostgreSQL is jsonb).
var columnTypes = map[string]map[string]string{
	"uuid": {dialect.MySQL: "char(32)", dialect.Postgres: "uuid", dialect.SQLite: "char(32)"},
	"time": {dialect.MySQL: "datetime", dialect.Postgres: "timestamptz", dialect.SQLite: "datetime"},
	"json": {dialect.MySQL: "json", dialect.Postgres: "json", dialect.SQLite: "json"},
}

// varchar returns the VARCHAR(n) type on every engine.
func varchar(n int) map[string]string {
	t := fmt.Sprintf("varchar(%d)", n)
	return map[string]string{dialect.MySQL: t, dialect.Postgres: t, dialect.SQLite: t}
}

// utcNow is the server default of CreationTime: the database's UTC now, as
// DiracX declares it, for rows written by other services (authdb always writes
// CreationTime itself, from its clock). The expressions are spelled the way
// each engine's catalog reports them so that a migration finds no difference.
func utcNow() *entsql.Annotation {
	return entsql.DefaultExprs(map[string]string{
		dialect.MySQL:    "(utc_timestamp())",
		dialect.Postgres: "timezone('utc'::text, CURRENT_TIMESTAMP)",
		dialect.SQLite:   "(DATETIME('now'))",
	})
}
