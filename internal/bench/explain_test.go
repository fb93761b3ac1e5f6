package bench

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/internal/bench/baseline"
)

// explainCase is one statement whose plan must use an index.
type explainCase struct {
	name string
	call func(ctx context.Context, b backend.Backend) error
	// pick selects, among the statements the call made, the one to explain.
	pick string
	// want: the plan must match, per dialect.
	want map[string]string
}

func explainCases() []explainCase {
	statusSub := `index_status_sub|ix_RefreshTokens_Sub`
	return []explainCase{
		{name: "GetUserRefreshTokens by subject", pick: "SELECT",
			call: func(ctx context.Context, b backend.Backend) error {
				_, err := b.GetUserRefreshTokens(ctx, ListSubject)
				return err
			},
			want: map[string]string{baseline.SQLite: statusSub, baseline.Postgres: statusSub, baseline.MySQL: statusSub}},
		{name: "RevokeUserRefreshTokens", pick: "UPDATE",
			call: func(ctx context.Context, b backend.Backend) error {
				_, err := b.RevokeUserRefreshTokens(ctx, "bulk-subject-7")
				return err
			},
			want: map[string]string{baseline.SQLite: statusSub, baseline.Postgres: statusSub, baseline.MySQL: statusSub}},
		{name: "CleanExpiredRefreshTokens (primary-key range)", pick: "DELETE",
			call: func(ctx context.Context, b backend.Backend) error {
				_, err := b.CleanExpiredRefreshTokens(ctx, Retention)
				return err
			},
			want: map[string]string{
				baseline.SQLite:   `SEARCH RefreshTokens USING (COVERING )?INDEX sqlite_autoindex_RefreshTokens_1 \(JTI(>\? AND JTI)?<\?\)`,
				baseline.Postgres: `Index (Only )?Scan using "RefreshTokens_pkey" on "RefreshTokens"[^\n]*\n[^\n]*Index Cond: \((\("JTI" >= [^\n]*AND \()?"JTI" < `,
				baseline.MySQL:    `RefreshTokens range PRIMARY`,
			}},
		{name: "CleanExpiredDeviceFlows (CreationTime index)", pick: "DELETE",
			call: func(ctx context.Context, b backend.Backend) error {
				_, err := b.CleanExpiredDeviceFlows(ctx, 30*24*time.Hour)
				return err
			},
			want: map[string]string{
				baseline.SQLite:   `SEARCH DeviceFlows USING (COVERING )?INDEX ix_DeviceFlows_CreationTime \(CreationTime(>\? AND CreationTime)?<\?\)`,
				baseline.Postgres: `Index (Only )?Scan using "ix_DeviceFlows_CreationTime"`,
				baseline.MySQL:    `DeviceFlows range ix_DeviceFlows_CreationTime`,
			}},
		{name: "CleanExpiredAuthorizationFlows (CreationTime index)", pick: "DELETE",
			call: func(ctx context.Context, b backend.Backend) error {
				_, err := b.CleanExpiredAuthorizationFlows(ctx, 30*24*time.Hour)
				return err
			},
			want: map[string]string{
				baseline.SQLite:   `SEARCH AuthorizationFlows USING (COVERING )?INDEX ix_AuthorizationFlows_CreationTime \(CreationTime(>\? AND CreationTime)?<\?\)`,
				baseline.Postgres: `Index (Only )?Scan using "ix_AuthorizationFlows_CreationTime"`,
				baseline.MySQL:    `AuthorizationFlows range ix_AuthorizationFlows_CreationTime`,
			}},
		{name: "GetAuthorizationFlow by code", pick: "SELECT",
			call: func(ctx context.Context, b backend.Backend) error {
				_, err := b.GetAuthorizationFlow(ctx, flowCode(1), Validity)
				return err
			},
			want: map[string]string{
				baseline.SQLite:   `SEARCH AuthorizationFlows USING INDEX ix_AuthorizationFlows_Code \(Code=\?\)`,
				baseline.Postgres: `Index Scan using "ix_AuthorizationFlows_Code"`,
				baseline.MySQL:    `AuthorizationFlows ref ix_AuthorizationFlows_Code`,
			}},
		{name: "GetDeviceFlow by device code", pick: "SELECT",
			call: func(ctx context.Context, b backend.Backend) error {
				_, err := b.GetDeviceFlow(ctx, flowCode(1))
				return err
			},
			want: map[string]string{
				baseline.SQLite:   `SEARCH DeviceFlows USING INDEX \S+ \(DeviceCode=\?\)`,
				baseline.Postgres: `Index Scan using "\w+" on "DeviceFlows" .*\n\s*Index Cond: \(+"DeviceCode"`,
				baseline.MySQL:    `DeviceFlows const DeviceCode`,
			}},
		{name: "GetRefreshToken (primary key)", pick: "SELECT \"JTI\",\"Status\",\"Scope\",\"Sub\",\"FamilyID\",\"ReplacedBy\" FROM \"RefreshTokens\" WHERE \"JTI\"",
			call: func(ctx context.Context, b backend.Backend) error {
				ts, err := b.GetUserRefreshTokens(ctx, ListSubject)
				if err != nil || len(ts) == 0 {
					return fmt.Errorf("no token to get: %v", err)
				}
				_, err = b.GetRefreshToken(ctx, ts[0].JTI)
				return err
			},
			want: map[string]string{
				baseline.SQLite:   `SEARCH RefreshTokens USING INDEX sqlite_autoindex_RefreshTokens_1 \(JTI=\?\)`,
				baseline.Postgres: `Index Scan using "RefreshTokens_pkey"`,
				baseline.MySQL:    `RefreshTokens const PRIMARY`,
			}},
	}
}

// flowCode is the plain device (and authorization) code of the i-th flow
// loadFlows writes; its flows are live for Validity after i minutes.
func flowCode(i int) string { return fmt.Sprintf("Z%07d", i) }

// TestExplain checks, on every engine, that the statements authdb sends
// for listing, revocation, clean-up and look-ups use an index (and never
// scan a whole table): each statement is captured by the counting driver
// as the backend sent it, then explained with its own arguments on a
// table of SmallTable refresh tokens and a few thousand flows.
func TestExplain(t *testing.T) {
	for _, engine := range SQLEngines {
		t.Run(engine, func(t *testing.T) {
			ctx := t.Context()
			env := NewEnv(t, engine, baseline.Prepared)
			if err := loadTokens(SmallTable)(ctx, env); err != nil {
				t.Fatal(err)
			}
			if err := loadFlows(ctx, env, 3000); err != nil {
				t.Fatal(err)
			}
			im := env.Authdb
			for _, c := range explainCases() {
				t.Run(c.name, func(t *testing.T) {
					im.Count.Record(true)
					err := c.call(ctx, im.B)
					log := im.Count.Log()
					im.Count.Record(false)
					if err != nil {
						t.Fatal(err)
					}
					var st *Statement
					for i := range log {
						if strings.HasPrefix(strings.TrimSpace(strings.ReplaceAll(log[i].Query, "`", `"`)), c.pick) {
							st = &log[i]
							break
						}
					}
					if st == nil {
						t.Fatalf("no %s statement among %v", c.pick, log)
					}
					plan, err := explain(ctx, env, st)
					if err != nil {
						t.Fatalf("explain %s: %v", st.Query, err)
					}
					if !regexp.MustCompile(c.want[env.Dialect]).MatchString(plan) {
						t.Errorf("%s\nplan does not match %q:\n%s", st.Query, c.want[env.Dialect], plan)
					}
					if fullScan(env.Dialect, plan) {
						t.Errorf("%s\nplan scans a whole table:\n%s", st.Query, plan)
					}
					t.Logf("%s\n%s", st.Query, plan)
				})
			}
		})
	}
}

// fullScan reports whether a plan reads a whole table.
func fullScan(dialect, plan string) bool {
	switch dialect {
	case baseline.SQLite:
		return regexp.MustCompile(`(?m)\bSCAN \w+$`).MatchString(plan)
	case baseline.Postgres:
		return strings.Contains(plan, "Seq Scan")
	}
	return regexp.MustCompile(`(?m)^\S+ \S+ \S+ ALL\b`).MatchString(plan)
}

// explain returns the plan of a captured statement, one line per plan
// row: PostgreSQL's EXPLAIN text; SQLite's EXPLAIN QUERY PLAN details;
// MySQL's EXPLAIN columns id, select_type, table, type, key (partitions
// and the rest left out).
func explain(ctx context.Context, e *Env, st *Statement) (string, error) {
	args := make([]any, len(st.Args))
	for i, a := range st.Args {
		args[i] = a.Value
	}
	prefix := "EXPLAIN "
	if e.Dialect == baseline.SQLite {
		prefix = "EXPLAIN QUERY PLAN "
	}
	rows, err := e.Admin.QueryContext(ctx, prefix+st.Query, args...)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return "", err
	}
	var lines []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return "", err
		}
		get := func(name string) string {
			for i, c := range cols {
				if strings.EqualFold(c, name) {
					switch v := vals[i].(type) {
					case nil:
						return "NULL"
					case []byte:
						return string(v)
					default:
						return fmt.Sprint(v)
					}
				}
			}
			return ""
		}
		switch e.Dialect {
		case baseline.SQLite:
			lines = append(lines, get("detail"))
		case baseline.Postgres:
			lines = append(lines, get("QUERY PLAN"))
		default:
			lines = append(lines, strings.Join([]string{get("id"), get("select_type"), get("table"), get("type"), get("key")}, " "))
		}
	}
	return strings.Join(lines, "\n"), rows.Err()
}

// loadFlows bulk-loads n device flows and n authorization flows (with
// codes) created over the last n minutes, and refreshes statistics.
func loadFlows(ctx context.Context, e *Env, n int) error {
	now := time.Now().UTC()
	var dev, auth [][]any
	for i := range n {
		t := e.timeArg(now.Add(-time.Duration(i) * time.Minute))
		uc := flowCode(i)
		dev = append(dev, []any{uc, "PENDING", t, clientID, scope, backend.HashCode(uc)})
		auth = append(auth, []any{e.idArg(uuid.Must(uuid.NewV7())), "READY", clientID, t, scope, challenge, "S256", redirect, backend.HashCode(uc)})
	}
	if err := e.BulkInsert(ctx, "DeviceFlows", []string{"UserCode", "Status", "CreationTime", "ClientID", "Scope", "DeviceCode"}, dev); err != nil {
		return err
	}
	if err := e.BulkInsert(ctx, "AuthorizationFlows", []string{"UUID", "Status", "ClientID", "CreationTime", "Scope", "CodeChallenge", "CodeChallengeMethod", "RedirectURI", "Code"}, auth); err != nil {
		return err
	}
	return e.analyze(ctx)
}
