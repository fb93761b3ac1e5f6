package sqlbackend

import (
	"context"
	"net"
	"net/url"
	"strconv"
	"strings"

	"entgo.io/ent/dialect"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/internal/sqldialect"
)

var _ backend.Describer = (*Backend)(nil)

// Describe implements backend.Describer: the engine ("sqlite",
// "postgresql", "mysql" or "mariadb"), the database name (SQLite: the
// file's path), and the server's host and port (the first host of a
// multi-host URL; the default port when the URL has none). A backend made
// by OpenDB knows only its engine.
func (b *Backend) Describe() backend.Description {
	d := b.desc
	switch {
	case b.dialect == dialect.SQLite:
		d.System = "sqlite"
	case b.dialect == dialect.Postgres:
		d.System = "postgresql"
	case b.mariaDB:
		d.System = "mariadb"
	default:
		d.System = "mysql"
	}
	return d
}

// describeURL is Describe's namespace, host and port for a backend URL
// that parseURL accepted; it never keeps the password.
func describeURL(cfg *config, rawURL string) backend.Description {
	if cfg.dialect == dialect.SQLite {
		path, _, _ := strings.Cut(rawURL[len("sqlite://"):], "?")
		if p, err := url.PathUnescape(path); err == nil {
			path = p
		}
		return backend.Description{Namespace: path}
	}
	var d backend.Description
	u, err := backend.ParseURL(rawURL)
	if err != nil {
		return d
	}
	d.Namespace = strings.TrimPrefix(u.Path, "/")
	hostport, _, _ := strings.Cut(u.Host, ",")
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = hostport, ""
	}
	d.Host = strings.Trim(host, "[]")
	if d.Port, err = strconv.Atoi(port); err != nil {
		d.Port = 5432
		if cfg.dialect == dialect.MySQL {
			d.Port = 3306
		}
	}
	return d
}

// reused records a detected replay: backend.ReportReuse (a Warn record on
// the backend's logger, and the context's Observer). Every reuse-detection
// site calls it exactly once per replay, after revoking.
func (b *Backend) reused(ctx context.Context, e backend.ReuseEvent) {
	backend.ReportReuse(ctx, b.opts.Logger, e)
}

// observeRetries returns fn, which tells the context's backend.Observer,
// when there is one, each time fn runs again and why (the previous run's
// error): a busy SQLite database, a transient conflict, or a lost
// connection.
func observeRetries(ctx context.Context, fn func() error) func() error {
	if backend.ObserverFromContext(ctx) == nil {
		return fn
	}
	var last error
	return func() error {
		if last != nil {
			cause := backend.RetryConnectionLost
			switch {
			case sqldialect.IsBusy(last):
				cause = backend.RetryBusy
			case IsTransient(last):
				cause = backend.RetryConflict
			}
			backend.ReportRetry(ctx, cause)
		}
		last = fn()
		return last
	}
}
