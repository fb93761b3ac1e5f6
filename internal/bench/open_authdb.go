package bench

import (
	"context"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/backend/sqlbackend"
)

// openAuthdb opens authdb's SQL backend on rawURL. Until sqlbackend offers a
// constructor on a caller's pool, its statements cannot be counted: the
// counter is nil.
func openAuthdb(ctx context.Context, rawURL string, opts ...backend.Option) (backend.Backend, *Counter, error) {
	b, err := sqlbackend.Open(ctx, rawURL, opts...)
	if err != nil {
		return nil, nil, err
	}
	return b, nil, nil
}
