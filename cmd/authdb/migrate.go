package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/partition"
)

const migrateUsage = `Usage: authdb [--db URL] migrate

Creates the tables DeviceFlows, AuthorizationFlows and RefreshTokens (the
DiracX Auth DB schema) if they are missing, and upgrades them (additive
indexes) if they are there. On MySQL/MariaDB, a RefreshTokens table created
empty is partitioned by month: 24 monthly partitions from the current month,
then p_future (see 'authdb partitions'); so is an existing, empty,
unpartitioned one (a database DiracX created). A non-empty, unpartitioned
RefreshTokens is left alone with a warning that prints the statement to run
in a quiet period (it copies the table under a lock).

Running it again is harmless: it reports that the schema is up to date.
The in-memory store has no schema; migrate says so and succeeds.
`

// schemaTables are the tables of the schema, in creation order.
var schemaTables = []string{"DeviceFlows", "AuthorizationFlows", "RefreshTokens"}

func runMigrate(ctx context.Context, a *app, args []string) error {
	fs := a.newFlagSet("migrate", migrateUsage)
	if err := parse(fs, args); err != nil {
		return err
	}
	b, err := a.open(ctx, backend.WithoutMigration())
	if err != nil {
		return err
	}
	defer b.Close()
	where := target(a.dbURL)

	m, ok := b.(migrator)
	if !ok {
		fmt.Fprintf(a.stdout, "nothing to migrate on %s: it has no schema\n", where)
		return nil
	}
	introspect, canIntrospect := b.(sqlIntrospector)
	var before map[string]bool
	if canIntrospect {
		if before, err = existingTables(ctx, introspect); err != nil {
			return fmt.Errorf("%s: list tables: %w", where, err)
		}
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate %s: %w", where, err)
	}

	var created []string
	for _, t := range schemaTables {
		if canIntrospect && !before[t] {
			created = append(created, t)
		}
	}
	switch {
	case !canIntrospect:
		fmt.Fprintf(a.stdout, "schema up to date on %s\n", where)
	case len(created) == len(schemaTables):
		fmt.Fprintf(a.stdout, "created tables %s on %s\n", strings.Join(created, ", "), where)
	case len(created) > 0:
		fmt.Fprintf(a.stdout, "created tables %s on %s; the others were there (upgraded where needed)\n",
			strings.Join(created, ", "), where)
	default:
		fmt.Fprintf(a.stdout, "schema up to date on %s\n", where)
	}

	pm, ok := b.(backend.PartitionMaintainer)
	if !ok {
		return nil
	}
	rep, err := pm.PlanRefreshTokenPartitions(ctx, defaultRetentionMonths, defaultMonthsAhead)
	if errors.Is(err, backend.ErrUnsupported) && canIntrospect && introspect.Dialect() == "mysql" {
		// MySQL, but RefreshTokens is not partitioned: a table that existed
		// before (made by DiracX or an older authdb). Partition it if it is
		// empty; partition.Setup leaves a non-empty one alone and logs the
		// statement to run in a quiet period.
		created, setupErr := partition.Setup(ctx, introspect.DB(), time.Now(), a.setupLogger())
		if setupErr != nil {
			return fmt.Errorf("%s: partition RefreshTokens: %w", where, setupErr)
		}
		if !created {
			fmt.Fprintln(a.stdout, "RefreshTokens is not partitioned: it holds rows, so it was left alone "+
				"(the warning above gives the statement to run in a quiet period)")
			return nil
		}
		before["RefreshTokens"] = false // report the partitions as created
		rep, err = pm.PlanRefreshTokenPartitions(ctx, defaultRetentionMonths, defaultMonthsAhead)
	}
	switch {
	case errors.Is(err, backend.ErrUnsupported):
		return nil
	case err != nil:
		return fmt.Errorf("%s: read partitions: %w", where, err)
	case len(rep.Existing) == 0:
		fmt.Fprintln(a.stdout, "RefreshTokens has no monthly partition, only p_future: run 'authdb partitions'")
	default:
		verb := "has"
		if canIntrospect && !before["RefreshTokens"] {
			verb = "created"
		}
		first, last := rep.Existing[0], rep.Existing[len(rep.Existing)-1]
		fmt.Fprintf(a.stdout, "RefreshTokens partitions: %s %d monthly partitions (%s .. %s) + p_future\n",
			verb, len(rep.Existing), partition.Name(first), partition.Name(last))
	}
	return nil
}

// existingTables reports which of schemaTables exist in the backend's database.
func existingTables(ctx context.Context, s sqlIntrospector) (map[string]bool, error) {
	var q string
	switch d := s.Dialect(); {
	case strings.HasPrefix(d, "sqlite"):
		q = `SELECT name FROM sqlite_master WHERE type = 'table'`
	case d == "postgres":
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`
	case d == "mysql":
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()`
	default:
		return nil, fmt.Errorf("unknown dialect %q", d)
	}
	rows, err := s.DB().QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	found := map[string]bool{}
	for rows.Next() {
		var name sql.NullString
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		for _, t := range schemaTables {
			if name.String == t {
				found[t] = true
			}
		}
	}
	return found, rows.Err()
}
