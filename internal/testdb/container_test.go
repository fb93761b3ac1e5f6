package testdb

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// TestContainerOptions checks what the fallback asks of each module, with no
// Docker engine needed: the image, the credentials the URL uses, and a wait
// for the listening port beside the module's own log-line wait.
func TestContainerOptions(t *testing.T) {
	for _, tc := range []struct {
		e     Engine
		image string
		env   map[string]string
	}{
		{Postgres, "postgres:15-alpine", map[string]string{"POSTGRES_DB": "test", "POSTGRES_USER": "postgres", "POSTGRES_PASSWORD": "test"}},
		{MySQL, "mariadb:10.11", map[string]string{"MARIADB_DATABASE": "test", "MARIADB_USER": "root", "MARIADB_PASSWORD": "test"}},
	} {
		t.Run(string(tc.e), func(t *testing.T) {
			image, opts := containerOptions(tc.e)
			if image != tc.image {
				t.Errorf("image %q, want %q", image, tc.image)
			}
			req := testcontainers.GenericContainerRequest{ContainerRequest: testcontainers.ContainerRequest{
				Env:        map[string]string{},
				WaitingFor: wait.ForLog("the module's own wait"),
			}}
			for _, o := range opts {
				if err := o.Customize(&req); err != nil {
					t.Fatal(err)
				}
			}
			for k, v := range tc.env {
				if req.Env[k] != v {
					t.Errorf("env %s = %q, want %q", k, req.Env[k], v)
				}
			}
			waits := fmt.Sprintf("%+v", req.WaitingFor)
			if tc.e == MySQL && (!strings.Contains(waits, "the module's own wait") || !strings.Contains(waits, "3306")) {
				t.Errorf("wait strategy %s: want the module's log wait and the port 3306", waits)
			}
			if tc.e == Postgres && !strings.Contains(waits, "ready to accept connections") {
				t.Errorf("wait strategy %s: want PostgreSQL's ready log line", waits)
			}
		})
	}
}

// TestNoEngineReason checks the skip reason where a Docker client exists but
// no engine runs (this machine's case); where an engine runs there is no
// such reason to check.
func TestNoEngineReason(t *testing.T) {
	err := dockerEngine()
	if err == nil {
		t.Skip("a Docker engine is running here: the no-engine reason cannot be observed")
	}
	if !errors.Is(err, errNoEngine) || !strings.Contains(err.Error(), "no Docker engine running") {
		t.Fatalf("dockerEngine: %v, want it to say no Docker engine running", err)
	}
	t.Log(err)
}

// TestSkipReason: with no variable, nothing on the default address and no
// Docker engine, the reason names the engine, why and how to enable it, in
// the form internal/testsummary reads.
func TestSkipReason(t *testing.T) {
	if dockerEngine() == nil {
		t.Skip("a Docker engine is running here: the fallback would start a container")
	}
	t.Setenv(EnvPostgres, "")
	saved := DefaultPostgresURLs
	DefaultPostgresURLs = []string{"postgres://postgres@127.0.0.1:1/test?sslmode=disable"}
	defer func() { DefaultPostgresURLs = saved }()
	_, err := findServer(Postgres)
	want := "testdb: no postgres server (AUTHDB_TEST_POSTGRES_URL unset; nothing listens on 127.0.0.1:1; no Docker engine running: "
	if err == nil || !strings.HasPrefix(err.Error(), want) ||
		!strings.HasSuffix(err.Error(), "): set AUTHDB_TEST_POSTGRES_URL or start PostgreSQL on 127.0.0.1:5432") {
		t.Fatalf("findServer: %v\nwant %q...", err, want)
	}
}
