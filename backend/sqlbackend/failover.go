package sqlbackend

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/lib/pq"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/internal/sqldialect"
)

// PostgreSQL primary/standby and failover.
//
// Multi-host URLs (postgres://h1:p1,h2:p2/db) name each host with its own
// port; lib/pq (v1.12) connects to several hosts in order and checks
// target_session_attrs itself, but reads ports per host only from its
// key=value form (host=h1,h2 port=p1,p2), which parsePostgresHosts hands it.
// With several hosts and no target_session_attrs, authdb asks for
// read-write: it writes on every call, and a standby refuses writes.
//
// Open fails on a server in recovery (a standby): every write would fail
// with 25006.
//
// While a failover runs (the primary gone, the standby not yet promoted)
// every connection attempt fails, but a call that has no connection yet
// has sent nothing: it may wait for the new primary without any risk of
// doing something twice. Open's pool therefore waits, when a connection
// cannot be made, up to the reconnect budget (DefaultReconnectBudget,
// backend.WithReconnectBudget, the URL's reconnect_budget), never past the
// call's context (reconnector). A statement already sent when the primary
// died follows the honest-outcome rules of the write paths.

// DefaultReconnectBudget is how long a call waits, in all, for a new
// connection the server refuses, unless the option or the URL says
// otherwise: it rides out a failover of a few seconds.
const DefaultReconnectBudget = 10 * time.Second

// Back-off between connection attempts within the reconnect budget.
const (
	reconnectFirst = 20 * time.Millisecond
	reconnectMax   = 250 * time.Millisecond
)

// parsePostgresHosts rewrites a multi-host URL's host list (u.Host
// "h1:p1,h2:p2", a host without a port on 5432; Go's URL parser refuses
// bracketed IPv6 literals in such a list: use names)
// into the host and port parameters lib/pq reads per host, and asks for a
// read-write session when the URL does not set target_session_attrs. A
// single host is left as it is.
func parsePostgresHosts(where string, u *url.URL, q url.Values) error {
	if !strings.Contains(u.Host, ",") {
		return nil
	}
	if q.Has("host") || q.Has("port") {
		return invalidURL(where, "hosts given both in the URL and as host/port parameters")
	}
	var hosts, ports []string
	for _, hp := range strings.Split(u.Host, ",") {
		if hp == "" {
			return invalidURL(where, "empty host in the host list")
		}
		host, port := hp, "5432"
		if h, p, err := net.SplitHostPort(hp); err == nil {
			host, port = h, p
		} else if strings.HasPrefix(hp, "[") && strings.HasSuffix(hp, "]") {
			host = hp[1 : len(hp)-1]
		} else if strings.Contains(hp, ":") {
			return invalidURL(where, "host %q: want host or host:port", hp)
		}
		if host == "" || port == "" || strings.ContainsAny(host, " '\\") {
			return invalidURL(where, "host %q: want host or host:port", hp)
		}
		hosts, ports = append(hosts, host), append(ports, port)
	}
	q.Set("host", strings.Join(hosts, ","))
	q.Set("port", strings.Join(ports, ","))
	if !q.Has("target_session_attrs") {
		q.Set("target_session_attrs", "read-write")
	}
	u.Host = ""
	return nil
}

// errStandby is Open's error on a PostgreSQL server in recovery.
var errStandby = errors.New("the server is a standby in recovery (pg_is_in_recovery() is true) and refuses writes: " +
	"connect to the primary, or list every host with target_session_attrs=read-write " +
	"(postgres://h1:5432,h2:5432/db?target_session_attrs=read-write)")

// reconnector makes a failed connection attempt wait and try again, within
// the reconnect budget and the caller's context, once the backend is open
// (armed; Open itself reports an unreachable server at once).
type reconnector struct {
	driver.Connector
	budget time.Duration
	armed  *atomic.Bool
	logger *slog.Logger
}

func (c reconnector) Connect(ctx context.Context) (driver.Conn, error) {
	dc, err := c.Connector.Connect(ctx)
	if err == nil || c.budget <= 0 || !c.armed.Load() || permanentConnectError(err) ||
		sqldialect.IsTooManyConnections(err) {
		// A server with no free connection: the caller's retry waits for
		// one (retry), and may take one its own pool frees meanwhile,
		// which a wait in here could not.
		return dc, err
	}
	start := time.Now()
	wait := reconnectFirst
	for attempt := 2; ; attempt++ {
		if time.Since(start)+wait > c.budget {
			return nil, fmt.Errorf("%w (no connection for the reconnect budget of %v)", err, c.budget)
		}
		t := time.NewTimer(wait/2 + jitter(wait/2))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w (waiting for a connection after: %v)", ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, reconnectMax)
		var next error
		if dc, next = c.Connector.Connect(ctx); next == nil {
			c.logger.Info("authdb: connected again after a failed connection attempt",
				"waited", time.Since(start).Round(time.Millisecond), "attempts", attempt, "first error", err)
			return dc, nil
		}
		if permanentConnectError(next) {
			return nil, next
		}
		err = next
	}
}

// permanentConnectError reports whether a failed connection attempt will
// fail again however long one waits: bad credentials, a missing database,
// a bad configuration, or the caller's context.
func permanentConnectError(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, backend.ErrInvalidInput) {
		return true
	}
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		// invalid_authorization_specification, invalid_password,
		// invalid_catalog_name (no such database)
		return pqErr.Code.Class() == "28" || pqErr.Code == "3D000"
	}
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) {
		// access denied (user, database), unknown database
		return myErr.Number == 1045 || myErr.Number == 1044 || myErr.Number == 1049
	}
	return false
}
