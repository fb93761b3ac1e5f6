//go:build cgo

package sqlbackend

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/lib/pq"
	"github.com/mattn/go-sqlite3"

	"github.com/authdb/authdb/backend"
)

// TestObserveRetries: each run again is reported once, with the cause of
// the error before it; the first run and a success report nothing.
func TestObserveRetries(t *testing.T) {
	var causes []string
	ctx := backend.ContextWithObserver(context.Background(), &backend.Observer{
		Retry: func(_ context.Context, c string) { causes = append(causes, c) },
	})
	errs := []error{
		fmt.Errorf("op: %w", &pq.Error{Code: "40P01"}),
		&mysql.MySQLError{Number: 1213},
		sqlite3.Error{Code: sqlite3.ErrBusy},
		retryable{io.ErrUnexpectedEOF},
		nil,
	}
	calls := 0
	err := retry(ctx, 0, nil, observeRetries(ctx, func() error {
		calls++
		return errs[calls-1]
	}))
	want := "conflict conflict busy connection_lost"
	if err != nil || strings.Join(causes, " ") != want {
		t.Fatalf("retry = %v, causes %q, want nil, %q", err, causes, want)
	}
}
