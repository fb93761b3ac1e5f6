package sqlbackend

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/lib/pq"
)

func TestIsTransient(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&pq.Error{Code: "40001"}, true},
		{&pq.Error{Code: "40P01"}, true},
		{fmt.Errorf("authdb: op: %w", &pq.Error{Code: "40P01"}), true},
		{&pq.Error{Code: "23505"}, false},
		{&mysql.MySQLError{Number: 1213}, true},
		{&mysql.MySQLError{Number: 1205}, true},
		{&mysql.MySQLError{Number: 1062}, false},
		{errors.New("boom"), false},
		{context.Canceled, false},
	} {
		if got := IsTransient(tc.err); got != tc.want {
			t.Errorf("IsTransient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestRetry(t *testing.T) {
	ctx := context.Background()
	deadlock := fmt.Errorf("authdb: op: %w", &mysql.MySQLError{Number: 1213, Message: "Deadlock found"})

	calls := 0
	err := Retry(ctx, func() error {
		calls++
		if calls < 3 {
			return deadlock
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("transient twice: Retry = %v after %d calls, want nil after 3", err, calls)
	}

	calls = 0
	err = Retry(ctx, func() error { calls++; return deadlock })
	var myErr *mysql.MySQLError
	if !errors.As(err, &myErr) || calls != MaxAttempts {
		t.Errorf("always transient: Retry = %v after %d calls, want the deadlock after %d", err, calls, MaxAttempts)
	}

	calls = 0
	boom := errors.New("boom")
	if err := Retry(ctx, func() error { calls++; return boom }); err != boom || calls != 1 {
		t.Errorf("permanent: Retry = %v after %d calls, want boom after 1", err, calls)
	}

	cctx, cancel := context.WithCancel(ctx)
	calls = 0
	start := time.Now()
	err = Retry(cctx, func() error {
		calls++
		cancel()
		return deadlock
	})
	if !errors.Is(err, context.Canceled) || calls != 1 || time.Since(start) > time.Second {
		t.Errorf("cancelled: Retry = %v after %d calls, want context.Canceled after 1", err, calls)
	}
}
