// Package authdb stores the state of an OAuth2/OIDC token service (device
// flows, authorization-code flows with PKCE, refresh tokens with rotation and
// reuse detection) behind one Backend contract, a Go implementation of the
// DiracX Auth DB.
//
// Open picks a backend by URL. This package imports every built-in backend,
// so importing it is enough to open any of:
//
//	memory://                                   in-memory (a fake for tests)
//	sqlite:///abs/path.db, sqlite://rel.db      SQLite file (sqlite://:memory: too)
//	postgres://user:pass@host:5432/db?sslmode=disable (or postgresql://)
//	mysql://user:pass@host:3306/db              MySQL 8 / MariaDB 10.5+
//
// Third parties add a scheme with backend.Register.
package authdb

import (
	"context"

	"github.com/authdb/authdb/backend"
	_ "github.com/authdb/authdb/backend/memory"     // memory://
	_ "github.com/authdb/authdb/backend/sqlbackend" // sqlite://, postgres://, postgresql://, mysql://
)

// Open opens the backend that url names, with opts applied (see the
// backend.With* options). An unknown scheme or malformed URL is an error
// wrapping backend.ErrInvalidInput that lists the known schemes; an
// unreachable server is an error naming the scheme and host, never the
// password. The caller must Close the backend.
func Open(ctx context.Context, url string, opts ...backend.Option) (backend.Backend, error) {
	return backend.Open(ctx, url, opts...)
}
