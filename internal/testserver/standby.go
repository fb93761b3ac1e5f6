package testserver

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Standby is a private PostgreSQL 15 primary with a streaming standby
// (pg_basebackup -R) on loopback, started by scripts/pg-standby.sh.
// Replication is synchronous (synchronous_standby_names='*'), so a commit
// the primary acknowledged is on the standby when the primary dies.
type Standby struct {
	dir, script              string
	PrimaryPort, StandbyPort int
}

// StartStandby starts a primary and its standby, stopped when the test
// ends; about 3 s. Gated by EnvClusters (see clusterGate).
func StartStandby(t testing.TB) *Standby {
	t.Helper()
	fail := clusterGate(t, "PostgreSQL primary and standby")
	dir, script := clusterDir(t, "authdb-pgstandby-", "pg-standby.sh")
	s := &Standby{dir: dir, script: script}
	t.Cleanup(func() {
		if _, err := runScript(time.Minute, script, "stop", dir); err != nil {
			t.Logf("stop PostgreSQL primary and standby: %v", err)
		}
		os.Remove(script)
		os.Remove(filepath.Dir(dir))
	})
	begin := time.Now()
	out, err := runScript(2*time.Minute, script, "start", dir)
	if err != nil {
		fail("start PostgreSQL primary and standby: %v", err)
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "PORTS" {
			s.PrimaryPort, _ = strconv.Atoi(f[1])
			s.StandbyPort, _ = strconv.Atoi(f[2])
		}
	}
	if s.PrimaryPort == 0 {
		fail("start PostgreSQL primary and standby: no PORTS line in %q", out)
	}
	t.Logf("PostgreSQL primary on 127.0.0.1:%d, standby on 127.0.0.1:%d (started in %v)",
		s.PrimaryPort, s.StandbyPort, time.Since(begin).Round(time.Millisecond))
	return s
}

// PrimaryURL and StandbyURL are the postgres:// URLs of database test on
// each server; MultiHostURL names both, primary first, with
// target_session_attrs=read-write.
func (s *Standby) PrimaryURL() string { return s.url(strconv.Itoa(s.PrimaryPort)) }

// StandbyURL: see PrimaryURL.
func (s *Standby) StandbyURL() string { return s.url(strconv.Itoa(s.StandbyPort)) }

// MultiHostURL: see PrimaryURL. extra query parameters are appended.
func (s *Standby) MultiHostURL(extra ...string) string {
	u := fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/test?sslmode=disable&target_session_attrs=read-write",
		s.PrimaryPort, s.StandbyPort)
	for _, e := range extra {
		u += "&" + e
	}
	return u
}

func (s *Standby) url(port string) string {
	return "postgres://postgres@127.0.0.1:" + port + "/test?sslmode=disable"
}

// KillPrimary sends SIGKILL to every process of the primary.
func (s *Standby) KillPrimary(t testing.TB) { s.run(t, "kill-primary") }

// Promote promotes the standby and waits until it accepts writes.
func (s *Standby) Promote(t testing.TB) { s.run(t, "promote") }

func (s *Standby) run(t testing.TB, args ...string) {
	t.Helper()
	if _, err := runScript(time.Minute, s.script, append([]string{args[0], s.dir}, args[1:]...)...); err != nil {
		t.Errorf("%s: %v", args[0], err)
	}
}
