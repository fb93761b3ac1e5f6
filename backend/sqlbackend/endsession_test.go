package sqlbackend

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/authdb/authdb/internal/testdb"
)

// TestEndSessionOtherServer: a session is ended only on its own server. A
// connection that reaches another one (a balancer, a multi-host URL after
// a failover) would end someone else's session with the same id:
// endSession refuses, and the session lives on. The same call with the
// session's own server ends it.
func TestEndSessionOtherServer(t *testing.T) {
	for _, e := range []testdb.Engine{testdb.Postgres, testdb.MySQL} {
		t.Run(string(e), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			b, err := Open(ctx, testdb.NewDatabase(t, e))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			conn, err := b.db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			var id uint64
			var server string
			conn.Raw(func(dc any) error {
				c := dc.(*idConn)
				id, server = c.id, c.server
				return nil
			})
			if id == 0 || server == "" {
				t.Fatalf("session %d on server %q: want both known", id, server)
			}
			if err := b.endSession(ctx, id, server+"-elsewhere"); !errors.Is(err, errOtherServer) {
				t.Fatalf("endSession on another server: %v, want errOtherServer", err)
			}
			if err := conn.PingContext(ctx); err != nil {
				t.Fatalf("the session was ended anyway: %v", err)
			}
			if err := b.endSession(ctx, id, server); err != nil {
				t.Fatalf("endSession on its own server: %v", err)
			}
			if err := conn.PingContext(ctx); err == nil {
				t.Fatal("the session survived endSession on its own server")
			}
		})
	}
}
