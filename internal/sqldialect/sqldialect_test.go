package sqldialect

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/lib/pq"
)

func TestRewrite(t *testing.T) {
	const tmpl = `SELECT "A" FROM "T" WHERE "B"=? AND "C"=?`
	for _, tc := range []struct{ dialect, want string }{
		{MySQL, "SELECT `A` FROM `T` WHERE `B`=? AND `C`=?"},
		{Postgres, `SELECT "A" FROM "T" WHERE "B"=$1 AND "C"=$2`},
		{SQLite, tmpl},
	} {
		if got := Rewrite(tc.dialect, tmpl); got != tc.want {
			t.Errorf("Rewrite(%s) = %s, want %s", tc.dialect, got, tc.want)
		}
	}
}

type classifyCase struct {
	err                  error
	transient, duplicate bool
}

// sqliteClassifyCases are added by sqlite_cgo_test.go where SQLite is built.
var sqliteClassifyCases []classifyCase

func TestClassify(t *testing.T) {
	for _, tc := range append([]classifyCase{
		{&pq.Error{Code: "40001"}, true, false},
		{fmt.Errorf("op: %w", &pq.Error{Code: "40P01"}), true, false},
		{&pq.Error{Code: "23505"}, false, true},
		{&mysql.MySQLError{Number: 1213}, true, false},
		{&mysql.MySQLError{Number: 1205}, true, false},
		{fmt.Errorf("op: %w", &mysql.MySQLError{Number: 1615}), true, false},
		{&mysql.MySQLError{Number: 1062}, false, true},
		{errors.New("boom"), false, false},
		{context.Canceled, false, false},
	}, sqliteClassifyCases...) {
		if got := IsTransient(tc.err); got != tc.transient {
			t.Errorf("IsTransient(%v) = %v, want %v", tc.err, got, tc.transient)
		}
		if got := IsDuplicate(tc.err); got != tc.duplicate {
			t.Errorf("IsDuplicate(%v) = %v, want %v", tc.err, got, tc.duplicate)
		}
	}
	for err, want := range map[error]bool{
		fmt.Errorf("op: %w", &mysql.MySQLError{Number: 1205}): true,
		&mysql.MySQLError{Number: 1213}:                       false,
		&pq.Error{Code: "55P03"}:                              false,
	} {
		if got := IsLockWaitTimeout(err); got != want {
			t.Errorf("IsLockWaitTimeout(%v) = %v, want %v", err, got, want)
		}
	}
}

func TestIsTooManyConnections(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&mysql.MySQLError{Number: 1040}, true},
		{fmt.Errorf("open: %w", &pq.Error{Code: "53300"}), true},
		{&mysql.MySQLError{Number: 1213}, false},
		{&pq.Error{Code: "40001"}, false},
		{errors.New("too many connections"), false},
	} {
		if got := IsTooManyConnections(tc.err); got != tc.want {
			t.Errorf("IsTooManyConnections(%v) = %v, want %v", tc.err, got, tc.want)
		}
		if IsTransient(tc.err) && tc.want {
			t.Errorf("IsTransient(%v): a refused connection is not a conflict (it is waited for, not counted)", tc.err)
		}
	}
}
