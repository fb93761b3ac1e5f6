package reliability

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authdb/authdb"
	"github.com/authdb/authdb/backend"
	"github.com/authdb/authdb/conformance"
	"github.com/authdb/authdb/internal/testserver"
)

// Shape of the connection-limit test (the issue's: 50 goroutines on a
// server with max_connections=10).
const (
	limitServerConns = 10
	limitGoroutines  = 50
	limitRotations   = 5 // per goroutine
)

// TestTooManyConnections runs limitGoroutines goroutines of rotations on a
// private server that accepts limitServerConns connections, with an
// unbounded pool (max_open_conns=0): the server refuses most of the
// connections the pool tries to open (MariaDB 1040, PostgreSQL 53300), and
// every call must still succeed within its deadline, since a refused
// connection sent nothing and the backend waits for a free one. Then the
// same with the default pool bound (DefaultMaxOpenConns: 16 or more, also
// above the server's limit).
func TestTooManyConnections(t *testing.T) {
	for _, kind := range []testserver.Kind{testserver.Postgres, testserver.MariaDB} {
		t.Run(string(kind), func(t *testing.T) {
			testserver.Skip(t, kind)
			t.Parallel()
			args := []string{fmt.Sprintf("max_connections=%d", limitServerConns), "superuser_reserved_connections=0"}
			if kind == testserver.MariaDB {
				args = []string{fmt.Sprintf("--max-connections=%d", limitServerConns)}
			}
			s := testserver.Start(t, kind, testserver.Config{Args: args})
			rawURL := s.NewDatabase(t)
			for _, pool := range []struct {
				name, query string
			}{{"unbounded pool", "max_open_conns=0"}, {"default pool", ""}} {
				u := rawURL
				if pool.query != "" {
					sep := "?"
					if kind == testserver.Postgres {
						sep = "&"
					}
					u += sep + pool.query
				}
				clock := conformance.NewClock(start)
				ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
				refused := &countHandler{msg: "authdb: the server has no free connection; waiting"}
				began := time.Now()
				b, err := authdb.Open(ctx, u, backend.WithClock(clock.Now), backend.WithLogger(slog.New(refused)))
				if err != nil {
					cancel()
					t.Fatalf("%s: open: %v", pool.name, err)
				}
				var okN, failed atomic.Int64
				var mu sync.Mutex
				sample := map[string]int{}
				var wg sync.WaitGroup
				for g := range limitGoroutines {
					wg.Add(1)
					go func() {
						defer wg.Done()
						sub := fmt.Sprintf("limit-%d", g)
						cur := conformance.UUIDv7At(clock.Now())
						if err := b.InsertRefreshToken(ctx, cur, sub, "s"); err != nil {
							failed.Add(1)
							mu.Lock()
							sample["insert: "+err.Error()]++
							mu.Unlock()
							return
						}
						for range limitRotations {
							next := uuid.Must(uuid.NewV7())
							cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
							_, err := b.RotateRefreshToken(cctx, cur, next)
							ccancel()
							if err != nil {
								failed.Add(1)
								mu.Lock()
								sample[uuidPattern.ReplaceAllString(err.Error(), "<jti>")]++
								mu.Unlock()
								return
							}
							okN.Add(1)
							cur = next
						}
					}()
				}
				wg.Wait()
				b.Close()
				cancel()
				t.Logf("%s, %s, server max %d connections: %d goroutines, %d rotations ok, %d failed; %d connection refusals waited out; %v",
					kind, pool.name, limitServerConns, limitGoroutines, okN.Load(), failed.Load(), refused.n.Load(), time.Since(began).Round(time.Millisecond))
				if pool.query != "" && refused.n.Load() == 0 {
					t.Errorf("%s: the server refused no connection: the test proved nothing", pool.name)
				}
				for msg, n := range sample {
					t.Errorf("  %4d× %s", n, msg)
				}
			}
		})
	}
}

// countHandler is a slog.Handler that counts the records with message msg
// (at any level).
type countHandler struct {
	msg string
	n   atomic.Int64
}

func (h *countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.n.Add(1)
	}
	return nil
}
func (h *countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countHandler) WithGroup(string) slog.Handler      { return h }
