package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"

	"github.com/authdb/authdb/internal/testdb"
)

// collector is an OTLP/HTTP endpoint in the test: it keeps the body of
// every request by path.
type collector struct {
	*httptest.Server
	mu     sync.Mutex
	bodies map[string][]byte
}

func newCollector(t *testing.T) *collector {
	c := &collector{bodies: map[string][]byte{}}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		c.bodies[r.URL.Path] = append(c.bodies[r.URL.Path], body...)
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	t.Cleanup(c.Close)
	return c
}

// wantSent checks that a request to path carried each of names (metric or
// span names: protobuf carries them as plain bytes).
func (c *collector) wantSent(t *testing.T, path string, names ...string) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	body, ok := c.bodies[path]
	if !ok {
		t.Fatalf("no request to %s (got %d paths)", path, len(c.bodies))
	}
	for _, n := range names {
		if !bytes.Contains(body, []byte(n)) {
			t.Errorf("%s: %q not sent", path, n)
		}
	}
}

// TestCleanupPushesTelemetry: cleanup --otlp pushes its metrics and spans.
func TestCleanupPushesTelemetry(t *testing.T) {
	c := newCollector(t)
	dbURL := "sqlite://" + filepath.Join(t.TempDir(), "authdb.db")
	open(t, dbURL) // the schema
	ok(t, dbURL, "cleanup", "--otlp", c.URL, "--refresh-retention", "30d")
	c.wantSent(t, "/v1/metrics", "authdb.cleanup.deleted", "db.client.operation.duration", "DeviceFlows")
	c.wantSent(t, "/v1/traces", "CleanExpiredRefreshTokens", "sqlite")
}

// TestPartitionsPushesTelemetry: partitions on MariaDB, configured by the
// standard variable, pushes the partitions it added.
func TestPartitionsPushesTelemetry(t *testing.T) {
	c := newCollector(t)
	dbURL := testdb.NewDatabase(t, testdb.MySQL)
	open(t, dbURL) // the schema, partitioned: the current month and 23 ahead
	r := cli(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + c.URL}, "--db", dbURL, "partitions", "--months-ahead", "25", "--pause", "0")
	if r.code != 0 {
		t.Fatalf("partitions: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	c.wantSent(t, "/v1/metrics", "authdb.partitions.changed", "added")
	c.wantSent(t, "/v1/traces", "MaintainRefreshTokenPartitions")
}
