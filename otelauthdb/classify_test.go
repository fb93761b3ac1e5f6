package otelauthdb

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/lib/pq"

	"github.com/authdb/authdb/backend"
)

// TestClassify: protocol outcomes are not errors; ErrOutcomeUnknown wins
// over the context error it wraps; a driver error is named by its type.
func TestClassify(t *testing.T) {
	for _, c := range []struct {
		err              error
		outcome, errType string
	}{
		{nil, "ok", ""},
		{fmt.Errorf("authdb: consume: %w", backend.ErrAuthorizationPending), "authorization_pending", ""},
		{fmt.Errorf("authdb: get: %w", backend.ErrNotFound), "not_found", ""},
		{fmt.Errorf("authdb: rotate: replayed: %w", backend.ErrTokenReused), "token_reused", ""},
		{fmt.Errorf("authdb: partitions: %w", backend.ErrUnsupported), "unsupported", ""},
		{fmt.Errorf("authdb: rotate: %w", errors.Join(backend.ErrOutcomeUnknown, context.DeadlineExceeded)), "error", "outcome_unknown"},
		{fmt.Errorf("authdb: get: %w", context.Canceled), "error", "context.Canceled"},
		{fmt.Errorf("authdb: insert: %w", backend.ErrInvalidInput), "error", "invalid_input"},
		{fmt.Errorf("authdb: insert on postgres://db: %w", &pq.Error{Code: "53300"}), "error", "*pq.Error"},
		{errors.New("boom"), "error", "*errors.errorString"},
	} {
		o, et := classify(c.err)
		if o != c.outcome || et != c.errType {
			t.Errorf("classify(%v) = %q, %q; want %q, %q", c.err, o, et, c.outcome, c.errType)
		}
	}
}
