package sqlbackend_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend/sqlbackend"
)

// TestRotationPlanBeforeAnalyze: on a PostgreSQL table that was never
// analyzed (a new database, before autovacuum's first ANALYZE), the
// rotation statement finds the old token by the primary key. Written
// plainly ("Status"='CREATED'), PostgreSQL 15 costs index_status_sub at one
// row too and picks it, reading every live token at each rotation.
func TestRotationPlanBeforeAnalyze(t *testing.T) {
	e := engines[1]
	dbURL := newURL(t, e)
	b := open(t, dbURL)
	ctx := context.Background()
	db := rawDB(t, e, dbURL)
	// No ANALYZE during the test: the table stays as a new database's is.
	if _, err := db.Exec(`ALTER TABLE "RefreshTokens" SET (autovacuum_enabled = false)`); err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		if err := b.InsertRefreshToken(ctx, uuid.Must(uuid.NewV7()), "subject-"+string(rune('a'+i%26)), "openid"); err != nil {
			t.Fatal(err)
		}
	}
	var analyzed bool
	if err := db.QueryRow(`SELECT reltuples >= 0 FROM pg_class WHERE relname = 'RefreshTokens'`).Scan(&analyzed); err != nil || analyzed {
		t.Fatalf("the table was analyzed (%v, %v): the test needs one that never was", analyzed, err)
	}
	explain := func(query string) string {
		t.Helper()
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback() // EXPLAIN without ANALYZE runs nothing; the rollback is belt and braces
		rows, err := tx.Query("EXPLAIN "+query, uuid.Must(uuid.NewV7()).String(), uuid.Must(uuid.NewV7()).String(), uuid.Must(uuid.NewV7()).String())
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var plan strings.Builder
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan.WriteString(line + "\n")
		}
		return plan.String()
	}
	plan := explain(sqlbackend.RotateQuery())
	if !strings.Contains(plan, `Index Scan using "RefreshTokens_pkey"`) || strings.Contains(plan, "index_status_sub") {
		t.Fatalf("rotation on a table never analyzed:\n%s\nwant the old token found by RefreshTokens_pkey", plan)
	}
	plain := strings.Replace(sqlbackend.RotateQuery(), `("Status"='CREATED') IS TRUE`, `"Status"='CREATED'`, 1)
	t.Logf("the same statement written plainly:\n%s", explain(plain))
}
