package sqlbackend_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/backend/sqlbackend"
)

// Environment of the child processes of TestConcurrentStartup.
const (
	envStartupURL  = "AUTHDB_TEST_STARTUP_CHILD_URL"
	envStartupMode = "AUTHDB_TEST_STARTUP_CHILD_MODE"
)

// startupProcs is how many OS processes open one database at once.
const startupProcs = 8

// TestConcurrentStartup starts 8 OS processes (this test binary, re-run as
// TestStartupChild) that open one database at the same instant, on a fresh
// database and on one DiracX's DDL created, on every engine: half run Open
// (which migrates), half Open without migration then Migrate, as `authdb
// migrate` does. All must succeed, and the schema must then be usable.
func TestConcurrentStartup(t *testing.T) {
	if os.Getenv(envStartupURL) != "" {
		t.Skip("in a child process")
	}
	for _, e := range engines {
		for _, old := range []bool{false, true} {
			name := e.name + "/fresh"
			if old {
				name = e.name + "/diracx"
			}
			t.Run(name, func(t *testing.T) {
				u := newURL(t, e)
				if old {
					loadDDL(t, rawDB(t, e, u), e.ddl)
				}
				runStartupChildren(t, u)
				b := open(t, u, backend.WithoutMigration())
				ctx := t.Context()
				if _, _, err := b.InsertDeviceFlow(ctx, "client", "scope"); err != nil {
					t.Fatalf("after the concurrent start-up: %v", err)
				}
				if e.name == "mysql" && !old {
					// The process that created RefreshTokens partitioned it.
					var n int
					err := b.DB().QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'RefreshTokens' AND PARTITION_NAME IS NOT NULL").Scan(&n)
					if err != nil || n != 25 {
						t.Fatalf("RefreshTokens has %d partitions (%v), want 25", n, err)
					}
				}
			})
		}
	}
}

func runStartupChildren(t *testing.T, u string) {
	t.Helper()
	var (
		cmds  []*exec.Cmd
		gates []io.WriteCloser
		outs  []*bytes.Buffer
	)
	for i := range startupProcs {
		mode := "open"
		if i%2 == 1 {
			mode = "migrate"
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestStartupChild$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), envStartupURL+"="+u, envStartupMode+"="+mode)
		out := &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = out, out
		gate, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, gates, outs = append(cmds, cmd), append(gates, gate), append(outs, out)
	}
	// Every child is started and blocked reading its stdin: let them all go.
	for _, g := range gates {
		g.Close()
	}
	var wg sync.WaitGroup
	errs := make([]error, len(cmds))
	for i, cmd := range cmds {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = cmd.Wait() }()
	}
	wg.Wait()
	failed := 0
	for i, err := range errs {
		if err != nil || !strings.Contains(outs[i].String(), "startup child ok") {
			failed++
			t.Errorf("process %d: %v\n%s", i, err, outs[i])
		}
	}
	t.Logf("%d of %d processes opened the database", len(cmds)-failed, len(cmds))
}

// TestStartupChild is one process of TestConcurrentStartup; run alone it
// is skipped.
func TestStartupChild(t *testing.T) {
	u := os.Getenv(envStartupURL)
	if u == "" {
		t.Skip("a child process of TestConcurrentStartup only")
	}
	io.Copy(io.Discard, os.Stdin) // the start gate: the parent closes it
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var b *sqlbackend.Backend
	var err error
	if os.Getenv(envStartupMode) == "migrate" {
		b, err = sqlbackend.Open(ctx, u, backend.WithoutMigration())
		if err == nil {
			err = b.Migrate(ctx)
		}
	} else {
		b, err = sqlbackend.Open(ctx, u)
	}
	if err != nil {
		t.Fatalf("%s: %v", os.Getenv(envStartupMode), err)
	}
	defer b.Close()
	fmt.Println("startup child ok")
}
