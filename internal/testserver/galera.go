package testserver

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// EnvClusters=1 lets tests start private clusters (a 3-node Galera
// cluster, a PostgreSQL primary with a streaming standby). With it and
// AUTHDB_TEST_REQUIRE_DBS=1, a cluster that does not start fails the test.
const EnvClusters = "AUTHDB_TEST_CLUSTERS"

//go:embed scripts/galera.sh scripts/pg-standby.sh
var clusterScripts embed.FS

// clusterGate skips t unless EnvClusters=1 and returns how a start-up
// failure is reported: t.Fatalf under AUTHDB_TEST_REQUIRE_DBS=1, else
// t.Skipf.
func clusterGate(t testing.TB, what string) func(format string, args ...any) {
	t.Helper()
	if os.Getenv(EnvClusters) != "1" {
		t.Skipf("%s: set %s=1 to start one (.ci/run does)", what, EnvClusters)
	}
	if os.Getenv("AUTHDB_TEST_REQUIRE_DBS") == "1" {
		return t.Fatalf
	}
	return t.Skipf
}

// clusterDir makes a directory for a cluster under the temporary
// directory, readable by the server users (mysql, postgres): t.TempDir's
// parents are private to root.
func clusterDir(t testing.TB, prefix, script string) (dir, scriptPath string) {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatalf("cluster directory: %v", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("cluster directory: %v", err)
	}
	body, err := clusterScripts.ReadFile("scripts/" + script)
	if err != nil {
		t.Fatalf("cluster script: %v", err)
	}
	// The script lives beside the data, not inside it: stop removes the data.
	scriptPath = dir + ".sh"
	if err := os.WriteFile(scriptPath, body, 0o755); err != nil {
		t.Fatalf("cluster script: %v", err)
	}
	return filepath.Join(dir, "c"), scriptPath
}

// runScript runs script with args, within timeout, returning its standard
// output; a failure's error carries the standard error.
func runScript(timeout time.Duration, script string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %v\n%s", filepath.Base(script), strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

// Galera is a private 3-node MariaDB Galera cluster on loopback, started
// by scripts/galera.sh (node 1 bootstraps, nodes 2 and 3 join by rsync
// SST; wsrep_sync_wait and every other causality setting left at the
// server's defaults). Nodes are numbered 0, 1, 2 in Go (1-3 in the script).
type Galera struct {
	dir, script string
	Ports       [3]int
}

// EnvGaleraDir names the directory of a cluster started by hand
// (scripts/galera.sh start DIR) for StartGalera to use instead of starting
// one, and not to stop: for iterating on a test.
const EnvGaleraDir = "AUTHDB_TEST_GALERA_DIR"

// StartGalera starts a cluster, stopped when the test ends; about 10 s.
// Gated by EnvClusters (see clusterGate).
func StartGalera(t testing.TB) *Galera {
	t.Helper()
	fail := clusterGate(t, "Galera cluster")
	if dir := os.Getenv(EnvGaleraDir); dir != "" {
		return reuseGalera(t, dir)
	}
	dir, script := clusterDir(t, "authdb-galera-", "galera.sh")
	g := &Galera{dir: dir, script: script}
	t.Cleanup(func() {
		if _, err := runScript(time.Minute, script, "stop", dir); err != nil {
			t.Logf("stop Galera cluster: %v", err)
		}
		os.Remove(script)
		os.Remove(filepath.Dir(dir))
	})
	begin := time.Now()
	out, err := runScript(4*time.Minute, script, "start", dir)
	if err != nil {
		fail("start Galera cluster: %v", err)
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 4 && f[0] == "PORTS" {
			for i := range g.Ports {
				g.Ports[i], _ = strconv.Atoi(f[i+1])
			}
		}
	}
	if g.Ports[0] == 0 {
		fail("start Galera cluster: no PORTS line in %q", out)
	}
	t.Logf("Galera cluster on 127.0.0.1:%d,%d,%d (started in %v)", g.Ports[0], g.Ports[1], g.Ports[2], time.Since(begin).Round(time.Millisecond))
	return g
}

// URL is the mysql:// URL of node i's database "test" (root, no password),
// with extra query parameters when given ("wsrep_sync_wait=0").
func (g *Galera) URL(i int, query ...string) string {
	u := fmt.Sprintf("mysql://root@127.0.0.1:%d/test", g.Ports[i])
	if len(query) > 0 {
		u += "?" + strings.Join(query, "&")
	}
	return u
}

// DatabaseURL is URL for database name (created by the caller).
func (g *Galera) DatabaseURL(i int, name string, query ...string) string {
	u := fmt.Sprintf("mysql://root@127.0.0.1:%d/%s", g.Ports[i], name)
	if len(query) > 0 {
		u += "?" + strings.Join(query, "&")
	}
	return u
}

// Freeze stops node i with SIGSTOP: it answers nothing, and its peers
// evict it from the primary component after the suspect timeout (3 s).
func (g *Galera) Freeze(t testing.TB, i int) { g.signal(t, "freeze", i) }

// Thaw resumes a frozen node with SIGCONT.
func (g *Galera) Thaw(t testing.TB, i int) { g.signal(t, "thaw", i) }

func (g *Galera) signal(t testing.TB, what string, i int) {
	t.Helper()
	if _, err := runScript(10*time.Second, g.script, what, g.dir, strconv.Itoa(i+1)); err != nil {
		t.Fatalf("%s node %d: %v", what, i, err)
	}
}

// reuseGalera returns the running cluster of dir (EnvGaleraDir).
func reuseGalera(t testing.TB, dir string) *Galera {
	t.Helper()
	ports, err := os.ReadFile(filepath.Join(dir, "ports"))
	if err != nil {
		t.Fatalf("%s: %v", EnvGaleraDir, err)
	}
	scratch, script := clusterDir(t, "authdb-galera-script-", "galera.sh")
	t.Cleanup(func() {
		os.Remove(script)
		os.Remove(filepath.Dir(scratch))
	})
	g := &Galera{dir: dir, script: script}
	for i, f := range strings.Fields(string(ports)) {
		if i < 3 {
			g.Ports[i], _ = strconv.Atoi(f)
		}
	}
	return g
}
