package sqlbackend_test

import (
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"testing"
)

// catalog returns the schema of the three tables as the engine's catalog
// reports it, one sorted line per fact: "table column name: ...",
// "table index name: ...", "table constraint name: ...", "table table: ...".
func catalog(t testing.TB, e engine, db *sql.DB) []string {
	t.Helper()
	var lines []string
	add := func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) }
	switch e.name {
	case "sqlite":
		for _, table := range tables {
			rows := query(t, db, `SELECT cid, name, type, "notnull", COALESCE(dflt_value, 'NULL'), pk FROM pragma_table_info(?)`, table)
			for _, r := range rows {
				add("%s column %s: #%s %s notnull=%s default=%s pk=%s", table, r[1], r[0], r[2], r[3], r[4], r[5])
			}
			for _, r := range query(t, db, `SELECT name, "unique", origin, partial FROM pragma_index_list(?)`, table) {
				cols := query(t, db, `SELECT name FROM pragma_index_info(?) ORDER BY seqno`, r[0])
				add("%s index %s: unique=%s origin=%s partial=%s (%s)", table, r[0], r[1], r[2], r[3], join(cols))
			}
			for _, r := range query(t, db, `SELECT type, name, COALESCE(sql, '') FROM sqlite_master WHERE tbl_name = ?`, table) {
				add("%s sql %s %s: %s", table, r[0], r[1], r[2])
			}
		}
	case "postgres":
		for _, table := range tables {
			for _, r := range query(t, db, `SELECT ordinal_position, column_name, data_type, COALESCE(character_maximum_length::text, ''),
					is_nullable, COALESCE(column_default, 'NULL')
				FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1`, table) {
				add("%s column %s: #%s %s(%s) nullable=%s default=%s", table, r[1], r[0], r[2], r[3], r[4], r[5])
			}
			for _, r := range query(t, db, `SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1`, table) {
				add("%s index %s: %s", table, r[0], r[1])
			}
			for _, r := range query(t, db, `SELECT conname, contype, pg_get_constraintdef(c.oid) FROM pg_constraint c
					JOIN pg_class r ON r.oid = c.conrelid WHERE r.relname = $1 AND r.relnamespace = current_schema()::regnamespace`, table) {
				add("%s constraint %s: %s %s", table, r[0], r[1], r[2])
			}
		}
	case "mysql":
		for _, table := range tables {
			for _, r := range query(t, db, `SELECT ORDINAL_POSITION, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COALESCE(COLUMN_DEFAULT, 'NULL'),
					COALESCE(COLLATION_NAME, ''), EXTRA
				FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?`, table) {
				add("%s column %s: #%s %s nullable=%s default=%s collation=%s extra=%s", table, r[1], r[0], r[2], r[3], r[4], r[5], r[6])
			}
			for _, r := range query(t, db, `SELECT INDEX_NAME, NON_UNIQUE, GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX)
				FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?
				GROUP BY INDEX_NAME, NON_UNIQUE`, table) {
				add("%s index %s: non_unique=%s (%s)", table, r[0], r[1], r[2])
			}
			for _, r := range query(t, db, `SELECT CONSTRAINT_NAME, CONSTRAINT_TYPE FROM information_schema.TABLE_CONSTRAINTS
				WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?`, table) {
				add("%s constraint %s: %s", table, r[0], r[1])
			}
			for _, r := range query(t, db, `SELECT CONSTRAINT_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS
				WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = ?`, table) {
				add("%s check %s: %s", table, r[0], r[1])
			}
			for _, r := range query(t, db, `SELECT TABLE_COLLATION, CREATE_OPTIONS FROM information_schema.TABLES
				WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?`, table) {
				add("%s table collation=%s options=%s", table, r[0], r[1])
			}
			for _, r := range query(t, db, `SELECT COALESCE(PARTITION_NAME, ''), COALESCE(PARTITION_DESCRIPTION, '') FROM information_schema.PARTITIONS
				WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND PARTITION_NAME IS NOT NULL`, table) {
				add("%s partition %s: %s", table, r[0], r[1])
			}
		}
	}
	sort.Strings(lines)
	return lines
}

// query returns every row of a query as strings.
func query(t testing.TB, db *sql.DB, q string, args ...any) [][]string {
	t.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i] = v.String
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func join(rows [][]string) string {
	var s []string
	for _, r := range rows {
		s = append(s, r[0])
	}
	return strings.Join(s, ",")
}
