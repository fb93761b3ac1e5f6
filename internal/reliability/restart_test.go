//go:build restart

package reliability

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/authdb/authdb/backend"
)

// The restart tests stop and start the real local servers, which breaks
// every other test using them at that moment: they are built only with
// -tags restart and run alone (make test-restart, after make test).

// server knows how to stop, start and probe one local server.
type server struct {
	name        string
	stop, start []string
	ready       []string // succeeds once the server accepts connections
	running     []string // succeeds while the server process exists
}

func localServer(t *testing.T, engine string) server {
	t.Helper()
	if engine == "postgres" {
		versions, err := os.ReadDir("/etc/postgresql")
		if err != nil || len(versions) != 1 {
			t.Fatalf("want one PostgreSQL cluster version under /etc/postgresql: %v", err)
		}
		v := versions[0].Name()
		return server{
			name:    "PostgreSQL " + v,
			stop:    []string{"pg_ctlcluster", "--skip-systemctl-redirect", v, "main", "stop"},
			start:   []string{"pg_ctlcluster", "--skip-systemctl-redirect", v, "main", "start"},
			ready:   []string{"pg_isready", "-h", "127.0.0.1", "-p", "5432"},
			running: []string{"pg_ctlcluster", "--skip-systemctl-redirect", v, "main", "status"},
		}
	}
	return server{
		name:    "MariaDB",
		stop:    []string{"mariadb-admin", "-h", "127.0.0.1", "-P", "3306", "-u", "root", "shutdown"},
		start:   []string{"start-stop-daemon", "--start", "--oknodo", "--background", "--pidfile", "/run/mysqld/mysqld.pid", "--exec", "/usr/sbin/mariadbd"},
		ready:   []string{"mariadb-admin", "-h", "127.0.0.1", "-P", "3306", "-u", "root", "ping"},
		running: []string{"start-stop-daemon", "--status", "--pidfile", "/run/mysqld/mysqld.pid", "--exec", "/usr/sbin/mariadbd"},
	}
}

func run(args []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return &cmdError{strings.Join(args, " "), strings.TrimSpace(string(out)), err}
	}
	return nil
}

type cmdError struct {
	cmd, out string
	err      error
}

func (e *cmdError) Error() string { return e.cmd + ": " + e.err.Error() + ": " + e.out }

// waitUp polls until the server answers (up) or until it neither answers
// nor runs any more (down: a server shutting down refuses new connections
// while it still serves the old ones).
func (s server) waitUp(t *testing.T, up bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		if up && run(s.ready) == nil || !up && run(s.ready) != nil && run(s.running) != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not %s after 90s", s.name, map[bool]string{true: "up", false: "down"}[up])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ensureUp starts the server if it does not answer; it is the restart
// tests' cleanup, so that the servers are left running whatever happened.
func (s server) ensureUp(t *testing.T) {
	if run(s.ready) == nil {
		return
	}
	if err := run(s.start); err != nil {
		t.Errorf("%s: start in cleanup: %v", s.name, err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for run(s.ready) != nil {
		if time.Now().After(deadline) {
			t.Errorf("%s: not answering 90s after the cleanup started it", s.name)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRestartServer opens a backend, stops the server under it (Ping and
// calls fail, promptly, while it is down), starts it again, and requires
// the very first calls after the restart to succeed: the pool's dead
// connections are discarded and the calls run on fresh ones.
func TestRestartServer(t *testing.T) {
	for _, engine := range servers {
		t.Run(engine, func(t *testing.T) {
			e := newEnv(t, engine)
			srv := localServer(t, engine)
			// No reconnect budget: this test wants calls made while the server
			// is down to fail at once (the budget's waiting is tested by the
			// failover and kill -9 tests).
			b := e.open(t, backend.WithMaxIdleConns(8), backend.WithReconnectBudget(-1))
			ctx := t.Context()
			sub := "restart-" + engine
			cur := e.newJTI()
			if err := b.InsertRefreshToken(ctx, cur, sub, "openid"); err != nil {
				t.Fatal(err)
			}
			calls := callsThatMustSurvive(e, b, sub, &cur)
			// Registered after newEnv's cleanups, so it runs before the test
			// database is dropped.
			t.Cleanup(func() { srv.ensureUp(t) })

			for round := range 2 {
				warmPool(t, b, 6)
				if err := run(srv.stop); err != nil {
					t.Fatalf("stop: %v", err)
				}
				srv.waitUp(t, false)

				downCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
				began := time.Now()
				if err := b.Ping(downCtx); err == nil {
					t.Errorf("round %d: Ping = nil while %s is down", round, srv.name)
				}
				if _, err := b.GetRefreshToken(downCtx, cur); err == nil {
					t.Errorf("round %d: GetRefreshToken succeeded while %s is down", round, srv.name)
				}
				cancel()
				if took := time.Since(began); took > 5*time.Second {
					t.Errorf("round %d: calls took %v to fail while the server was down", round, took)
				}

				if err := run(srv.start); err != nil {
					t.Fatalf("start: %v", err)
				}
				srv.waitUp(t, true)
				for _, c := range calls {
					if err := c.fn(ctx); err != nil {
						t.Errorf("round %d: %s, among the first calls after the restart: %v", round, c.name, err)
					}
				}
			}
			toks, err := b.GetUserRefreshTokens(ctx, sub)
			if err != nil || len(toks) != 1 || toks[0].JTI != cur {
				t.Errorf("after the restarts: live tokens %v, %v; want exactly %s", toks, err, cur)
			}
			t.Logf("%s: stopped and started twice under an open backend; Ping failed while down, "+
				"every one of the %d first calls after each restart succeeded", srv.name, len(calls))
		})
	}
}
