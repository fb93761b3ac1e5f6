package testserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/authdb/authdb/internal/testdb"
)

// Environment variables read by this package.
const (
	// EnvPrivateServers=1 lets tests start private servers.
	EnvPrivateServers = "AUTHDB_TEST_PRIVATE_SERVERS"
	// EnvRequireDBs=1 (with EnvPrivateServers=1) turns a missing binary or a
	// failed start into a test failure.
	EnvRequireDBs = testdb.EnvRequireDBs
	// EnvPGBin overrides the directory of PostgreSQL's binaries.
	EnvPGBin = "PGBIN"
)

// DefaultPGBin is where Debian installs PostgreSQL 15's server binaries.
const DefaultPGBin = "/usr/lib/postgresql/15/bin"

// Kind names a server engine.
type Kind string

// The two engines.
const (
	Postgres Kind = "postgres"
	MariaDB  Kind = "mariadb"
)

//go:embed scripts/pg.sh scripts/mariadb.sh scripts/watchdog.sh
var scripts embed.FS

// Config is a server's configuration beyond the defaults of its script.
type Config struct {
	// Args are extra server settings. MariaDB: mariadbd options, appended
	// after the defaults so they win ("--character-set-server=latin1",
	// "--sql-mode=", "--max-connections=10"). PostgreSQL: NAME=VALUE
	// settings, each passed as -c ("max_connections=10").
	Args []string
	// TLS, when set, makes the server offer TLS with these files (copied
	// into the server's directory; PostgreSQL needs its key owned by its user).
	TLS *TLSFiles
	// HBA (PostgreSQL only) are pg_hba.conf lines placed before the
	// default trust lines, e.g. "host all alice 127.0.0.1/32 scram-sha-256".
	HBA []string
}

func (c Config) key(k Kind) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s|%q|%q", k, c.Args, c.HBA)
	if c.TLS != nil {
		fmt.Fprintf(&b, "|%s|%s|%s", c.TLS.CA, c.TLS.Cert, c.TLS.Key)
	}
	return b.String()
}

// Server is one private server process.
type Server struct {
	kind   Kind
	cfg    Config
	dir    string // the server's directory: data/, sockets, logs, script
	port   int
	shared bool

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	log  *os.File
}

// Kind returns the server's engine.
func (s *Server) Kind() Kind { return s.kind }

// Port returns the server's TCP port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// Dir returns the server's directory (data/ is its data directory).
func (s *Server) Dir() string { return s.dir }

// Addr returns 127.0.0.1:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL returns an authdb URL of the server's default database (postgres on
// PostgreSQL, test on MariaDB), without TLS.
func (s *Server) URL() string {
	if s.kind == Postgres {
		return fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", s.Addr())
	}
	return fmt.Sprintf("mysql://root@%s/test", s.Addr())
}

// Skip skips or fails t when private servers of kind cannot be started
// (see the package doc), and returns normally when they can.
func Skip(t testing.TB, kind Kind) {
	t.Helper()
	if os.Getenv(EnvPrivateServers) != "1" {
		t.Skipf("private %s server: set %s=1 to start one (internal/testserver)", kind, EnvPrivateServers)
	}
	if err := available(kind); err != nil {
		fail(t, fmt.Sprintf("private %s server: %v", kind, err))
	}
}

func fail(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv(EnvRequireDBs) == "1" {
		t.Fatalf("%s (%s=1 makes this a failure)", msg, EnvRequireDBs)
	}
	t.Skip(msg)
}

func pgBin() string {
	if d := os.Getenv(EnvPGBin); d != "" {
		return d
	}
	return DefaultPGBin
}

func available(kind Kind) error {
	var need []string
	switch kind {
	case Postgres:
		need = []string{filepath.Join(pgBin(), "initdb"), filepath.Join(pgBin(), "postgres")}
		if os.Geteuid() == 0 {
			need = append(need, "setpriv")
		}
	case MariaDB:
		need = []string{"mariadb-install-db", "mariadbd"}
	default:
		return fmt.Errorf("unknown kind %q", kind)
	}
	need = append(need, "bash")
	for _, bin := range need {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("binary %s not found: %w", bin, err)
		}
	}
	return nil
}

// Start starts a private server of kind with cfg for this test, waits until
// it accepts connections, and stops it (and removes its directory) when the
// test ends. It skips or fails t as Skip does.
func Start(t testing.TB, kind Kind, cfg Config) *Server {
	t.Helper()
	Skip(t, kind)
	s, err := start(kind, cfg)
	if err != nil {
		fail(t, fmt.Sprintf("start private %s server: %v", kind, err))
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("testserver: stop %s on port %d: %v", kind, s.port, err)
		}
		os.RemoveAll(s.dir)
	})
	return s
}

var (
	sharedMu sync.Mutex
	shared   = map[string]*Server{}
	sharedEr = map[string]error{}
)

// Shared returns the test binary's one server of kind with cfg, starting it
// on first use. It must not be stopped, killed or restarted; tests use
// their own databases on it (NewDatabase).
func Shared(t testing.TB, kind Kind, cfg Config) *Server {
	t.Helper()
	Skip(t, kind)
	key := cfg.key(kind)
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if s, ok := shared[key]; ok {
		return s
	}
	if err, ok := sharedEr[key]; ok {
		fail(t, fmt.Sprintf("start private %s server: %v", kind, err))
	}
	s, err := start(kind, cfg)
	if err != nil {
		sharedEr[key] = err
		fail(t, fmt.Sprintf("start private %s server: %v", kind, err))
	}
	s.shared = true
	shared[key] = s
	return s
}

// StopShared stops every shared server and removes its directory.
func StopShared() {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	for k, s := range shared {
		s.stop()
		os.RemoveAll(s.dir)
		delete(shared, k)
	}
}

func start(kind Kind, cfg Config) (*Server, error) {
	dir, err := os.MkdirTemp("", "authdb-testserver-"+string(kind)+"-")
	if err != nil {
		return nil, err
	}
	s := &Server{kind: kind, cfg: cfg, dir: dir}
	if err := s.prepare(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// A port picked free may be taken by the time the server binds it.
	for attempt := 0; ; attempt++ {
		s.port, err = freePort()
		if err == nil {
			err = s.launch()
		}
		if err == nil || attempt == 2 || !strings.Contains(err.Error(), "already in use") {
			break
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

func (s *Server) script() string {
	if s.kind == Postgres {
		return filepath.Join(s.dir, "pg.sh")
	}
	return filepath.Join(s.dir, "mariadb.sh")
}

// prepare writes the script, the TLS files and pg_hba lines, and
// initialises the data directory.
func (s *Server) prepare() error {
	name := "scripts/" + filepath.Base(s.script())
	body, err := scripts.ReadFile(name)
	if err != nil {
		return err
	}
	if err := os.WriteFile(s.script(), body, 0o755); err != nil {
		return err
	}
	watchdog, err := scripts.ReadFile("scripts/watchdog.sh")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(s.dir, "watchdog.sh"), watchdog, 0o644); err != nil {
		return err
	}
	if s.cfg.TLS != nil {
		for _, f := range []struct{ from, to string }{
			{s.cfg.TLS.CA, "ca.pem"}, {s.cfg.TLS.Cert, "server.pem"}, {s.cfg.TLS.Key, "server.key"},
		} {
			b, err := os.ReadFile(f.from)
			if err != nil {
				return fmt.Errorf("TLS file: %w", err)
			}
			if err := os.WriteFile(filepath.Join(s.dir, f.to), b, 0o600); err != nil {
				return err
			}
		}
	}
	if len(s.cfg.HBA) > 0 {
		hba := strings.Join(s.cfg.HBA, "\n") + "\n"
		if err := os.WriteFile(filepath.Join(s.dir, "hba.pre"), []byte(hba), 0o644); err != nil {
			return err
		}
	}
	out, err := exec.Command("bash", s.script(), "init", s.dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("init: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

func (s *Server) args() []string {
	args := []string{s.script(), "run", s.dir, strconv.Itoa(s.port)}
	tls := s.cfg.TLS != nil
	j := func(f string) string { return filepath.Join(s.dir, f) }
	switch s.kind {
	case Postgres:
		if tls {
			args = append(args, "ssl=on", "ssl_ca_file="+j("ca.pem"),
				"ssl_cert_file="+j("server.pem"), "ssl_key_file="+j("server.key"))
		}
	case MariaDB:
		if tls {
			args = append(args, "--ssl-ca="+j("ca.pem"),
				"--ssl-cert="+j("server.pem"), "--ssl-key="+j("server.key"))
		}
	}
	return append(args, s.cfg.Args...)
}

// launch starts the server process and waits until it answers.
func (s *Server) launch() error {
	log, err := os.OpenFile(filepath.Join(s.dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command("bash", s.args()...)
	cmd.Stdout, cmd.Stderr = log, log
	// The scripts' watchdog kills the server when this process is gone:
	// Pdeathsig alone fires when the thread that started it exits, which
	// the Go runtime may do long before the process does (or never).
	cmd.Env = append(os.Environ(), "AUTHDB_TESTSERVER_PARENT="+strconv.Itoa(os.Getpid()))
	// Its own process group, so that Kill9 reaches every server process;
	// SIGKILL when the test binary dies, so that no server outlives it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done, s.log = cmd, done, log
	s.mu.Unlock()
	if err := s.waitReady(done); err != nil {
		s.kill9()
		return err
	}
	return nil
}

// waitReady polls the server until it answers a query, it exits, or 60 s pass.
func (s *Server) waitReady(done chan struct{}) error {
	db, err := testdb.AdminDB(s.URL())
	if err != nil {
		return err
	}
	defer db.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-done:
			return fmt.Errorf("server exited during start-up: %s", s.LogTail())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := db.PingContext(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after 60s (%v): %s", err, s.LogTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// LogTail returns the last lines of the server's log.
func (s *Server) LogTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

func (s *Server) mustOwn(t testing.TB, what string) {
	t.Helper()
	if s.shared {
		t.Fatalf("testserver: %s of a shared server (use Start for a server of the test's own)", what)
	}
}

// take hands the server process (its command, the channel closed when it
// exits, its log) to the caller, which ends it; cmd is nil when no process
// is held (never started, or already taken by kill9 or stop).
func (s *Server) take() (cmd *exec.Cmd, done chan struct{}, log *os.File) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd, done, log = s.cmd, s.done, s.log
	s.cmd = nil
	return cmd, done, log
}

// Kill9 sends SIGKILL to every process of the server at once (the
// postmaster and its backends, or mariadbd) and waits until they are gone,
// as a crash would leave it: no shutdown, no checkpoint.
func (s *Server) Kill9(t testing.TB) {
	t.Helper()
	s.mustOwn(t, "Kill9")
	if err := s.kill9(); err != nil {
		t.Fatalf("testserver: kill -9 %s: %v", s.kind, err)
	}
}

func (s *Server) kill9() error {
	cmd, done, log := s.take()
	if cmd == nil {
		return nil
	}
	pid := cmd.Process.Pid
	// Stop the server first so that it forks no new process, collect its
	// children (PostgreSQL's backends), then kill them all at once.
	syscall.Kill(pid, syscall.SIGSTOP)
	pids := append(children(pid), pid)
	syscall.Kill(-pid, syscall.SIGKILL)
	for _, p := range pids {
		syscall.Kill(p, syscall.SIGKILL)
	}
	<-done
	log.Close()
	return waitGone(pids, 10*time.Second)
}

// Stop shuts the server down cleanly (SIGTERM to the server process: a
// fast shutdown on both engines) and waits for it.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.mustOwn(t, "Stop")
	if err := s.stop(); err != nil {
		t.Fatalf("testserver: stop %s: %v", s.kind, err)
	}
}

func (s *Server) stop() error {
	cmd, done, log := s.take()
	if cmd == nil {
		return nil
	}
	pid := cmd.Process.Pid
	pids := append(children(pid), pid)
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		syscall.Kill(-pid, syscall.SIGKILL)
		<-done
		log.Close()
		return errors.New("no clean shutdown within 30s: killed")
	}
	log.Close()
	return waitGone(pids, 10*time.Second)
}

// Restart starts the server again on its data directory and port after
// Kill9 or Stop (stopping it first if it runs), and waits until it
// answers; after Kill9 this includes crash recovery.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.mustOwn(t, "Restart")
	if err := s.stop(); err != nil {
		t.Fatalf("testserver: restart %s: %v", s.kind, err)
	}
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		// The port may linger a moment after a kill.
		if err = s.launch(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("testserver: restart %s on port %d: %v", s.kind, s.port, err)
}

// Running reports whether the server process is up.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// AdminDB opens a database/sql handle on the server's default database
// with the plain drivers, closed when the test ends.
func (s *Server) AdminDB(t testing.TB) *sql.DB {
	t.Helper()
	db, err := testdb.AdminDB(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// NewDatabase creates a database authdb_test_<hex> on the server, with the
// given MariaDB CREATE DATABASE options (e.g. "CHARACTER SET latin1"), and
// returns its authdb URL. It is dropped when the test ends (unless the
// server is down by then).
func (s *Server) NewDatabase(t testing.TB, options ...string) string {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	name := "authdb_test_" + hex.EncodeToString(b[:])
	admin := s.AdminDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stmt := strings.Join(append([]string{"CREATE DATABASE " + name}, options...), " ")
	if _, err := admin.ExecContext(ctx, stmt); err != nil {
		t.Fatalf("testserver: %s: %v", stmt, err)
	}
	t.Cleanup(func() {
		if !s.Running() {
			return
		}
		db, err := testdb.AdminDB(s.URL())
		if err != nil {
			return
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		stmt := "DROP DATABASE IF EXISTS " + name
		if s.kind == Postgres {
			stmt += " WITH (FORCE)"
		}
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Errorf("testserver: %s: %v", stmt, err)
		}
	})
	u := s.URL()
	if s.kind == Postgres {
		return strings.Replace(u, "/postgres?", "/"+name+"?", 1)
	}
	return strings.TrimSuffix(u, "/test") + "/" + name
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// children lists the processes whose parent is pid (from /proc).
func children(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, p)
		}
	}
	return out
}

// waitGone waits until none of pids exists (zombies of other parents
// included: a killed PostgreSQL backend is reaped by init).
func waitGone(pids []int, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		alive := 0
		for _, p := range pids {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
			if err != nil {
				continue
			}
			i := bytes.LastIndexByte(b, ')')
			if i >= 0 && len(b) > i+2 && b[i+2] == 'Z' {
				continue
			}
			alive++
		}
		if alive == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d server processes still alive after %s", alive, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
