package sqlbackend

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/authdb/authdb/internal/sqldialect"
)

// Galera (MariaDB's synchronous multi-primary cluster).
//
// A commit on one node returns once the cluster has certified it, before
// the other nodes have applied it: a read on another node right after can
// miss the write (a token just created is "not found", a READY code still
// PENDING). The server's answer is wsrep_sync_wait: with bit 1 set, reads
// (SELECT, SHOW, BEGIN) first wait until the node has applied everything
// committed anywhere before they started; with bit 2, UPDATE and DELETE
// do (authdb's redemptions and rotations are conditional UPDATEs, which
// would otherwise match a stale row and refuse). Open detects Galera
// (wsrep_on=ON, asked once on a connection of its own before the pool
// opens) and sets wsrep_sync_wait=DefaultGaleraSyncWait on every
// connection of its pool (one SET when the connection is made), so every
// read and conditional write is causal without any change to the server;
// the URL's wsrep_sync_wait overrides the value (0 turns causality off).
// INSERTs (bit 4) need no wait: a duplicate key of a row committed
// elsewhere fails certification (1213), which is retried, and the retry
// finds it.

// DefaultGaleraSyncWait is the session wsrep_sync_wait Open sets on a
// Galera node: 1 (reads, BEGIN) + 2 (UPDATE, DELETE).
const DefaultGaleraSyncWait = 3

// galeraInfo is what Open learns about a MySQL server before opening the
// pool.
type galeraInfo struct {
	on bool // wsrep_on=ON: a Galera node
}

// detectGalera connects once with c (outside the pool) and reads wsrep_on.
// MySQL 8 and MariaDB built without wsrep have no such variable: not
// Galera.
func detectGalera(ctx context.Context, c driver.Connector) (galeraInfo, error) {
	dc, err := c.Connect(ctx)
	if err != nil {
		return galeraInfo{}, err
	}
	defer dc.Close()
	q, ok := dc.(driver.QueryerContext)
	if !ok {
		return galeraInfo{}, errors.New("authdb: mysql driver connection cannot query")
	}
	rows, err := q.QueryContext(ctx, "SHOW GLOBAL VARIABLES LIKE 'wsrep_on'", nil)
	if err != nil {
		return galeraInfo{}, err
	}
	defer rows.Close()
	v := make([]driver.Value, 2)
	switch err := rows.Next(v); {
	case errors.Is(err, io.EOF):
		return galeraInfo{}, nil
	case err != nil:
		return galeraInfo{}, err
	}
	return galeraInfo{on: textValue(v[1]) == "ON"}, nil
}

func textValue(v driver.Value) string {
	switch x := v.(type) {
	case []byte:
		return string(x)
	case string:
		return x
	}
	return fmt.Sprint(v)
}

// galeraSessionInit asks the MySQL server of cfg (on a connection of its
// own) whether it is a Galera node and returns the statement each new
// connection of the pool runs (idConnector): SET SESSION wsrep_sync_wait,
// to the URL's value or DefaultGaleraSyncWait; "" when not Galera.
func galeraSessionInit(ctx context.Context, cfg *config) (string, error) {
	c, err := mysql.NewConnector(cfg.mysql)
	if err != nil {
		return "", nil // openDB reports the configuration's error
	}
	g, err := detectGalera(ctx, c)
	if err != nil || !g.on {
		return "", err
	}
	n := DefaultGaleraSyncWait
	if cfg.syncWait != nil {
		n = *cfg.syncWait
	}
	return "SET SESSION wsrep_sync_wait = " + strconv.Itoa(n), nil
}

// A Galera node outside the primary
// component refuses every statement that touches a table with 1047
// (ER_UNKNOWN_COM_ERROR, "WSREP has not yet prepared node for application
// use").
const errWsrepNotReady = 1047

// isWsrepNotReady reports whether err is MariaDB's 1047 from a Galera node
// that is not part of the primary component.
func isWsrepNotReady(err error) bool {
	var myErr *mysql.MySQLError
	return errors.As(err, &myErr) && myErr.Number == errWsrepNotReady
}

// isLockWaitTimeout reports whether err is MySQL's 1205. On a Galera node
// outside the primary component, a causal statement waits
// repl.causal_read_timeout (30 s by default) and then fails with it; wrap
// then asks wsrep_ready and returns errGaleraNotReady, which is not
// retried.
func isLockWaitTimeout(err error) bool { return sqldialect.IsLockWaitTimeout(err) }

// galeraReady is Ping's check on a Galera node: wsrep_ready must be ON (the
// node is in the primary component and accepts queries). A node cut off
// from the majority still answers a plain ping.
func (b *Backend) galeraReady(ctx context.Context) error {
	var name, value string
	err := b.db.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE 'wsrep_ready'").Scan(&name, &value)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // wsrep switched off since Open
	}
	if err != nil {
		return err
	}
	if value != "ON" {
		return errGaleraNotReady
	}
	return nil
}

var errGaleraNotReady = errors.New("the Galera node is not part of the primary component (wsrep_ready=OFF): " +
	"it refuses queries until it rejoins the majority; use another node")

// migrationRaced reports whether a migration step failed because another
// process (on this node or another Galera node, where GET_LOCK is
// node-local) made the same change at the same moment: a table or index
// that exists (1050, 1061), a deadlock or certification conflict from a
// concurrent DDL (1213), or a metadata-lock wait that timed out (1205).
// The migration then inspects the schema again and goes on.
func migrationRaced(err error) bool {
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) {
		switch myErr.Number {
		case 1050, 1061, 1213, 1317, 1205, 1684:
			return true
		}
	}
	if sqldialect.IsTransient(err) {
		return true
	}
	// ent's migration does not always wrap the driver's error.
	msg := err.Error()
	for _, code := range []string{"Error 1050", "Error 1061", "Error 1213", "Error 1317", "Error 1205", "Error 1684"} {
		if strings.Contains(msg, code) {
			return true
		}
	}
	return false
}

// migrationAttempts bounds how often Migrate inspects and applies again
// after racing another migration.
const migrationAttempts = 8

// raceWait is the pause before a raced migration step runs again.
func raceWait(attempt int) time.Duration {
	d := time.Duration(attempt) * 20 * time.Millisecond
	return d/2 + jitter(d/2)
}

// checkGalera reports whether the MariaDB server behind db is a Galera
// node, and warns on logger when its sessions' wsrep_sync_wait leaves reads
// or conditional updates without causality (a pool passed to OpenDB, or a
// URL's wsrep_sync_wait). A server built without wsrep (1193, unknown
// variable) is not one.
func checkGalera(ctx context.Context, db *sql.DB, logger interface {
	Warn(msg string, args ...any)
}) (bool, error) {
	var on, syncWait sql.NullInt64
	err := db.QueryRowContext(ctx, "SELECT @@global.wsrep_on, @@session.wsrep_sync_wait").Scan(&on, &syncWait)
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) && myErr.Number == 1193 {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if on.Int64 != 1 {
		return false, nil
	}
	if syncWait.Int64&DefaultGaleraSyncWait != DefaultGaleraSyncWait {
		logger.Warn("authdb: Galera node without causal reads: a call on this node can miss a write just made on another "+
			"(token not found, code still pending); set wsrep_sync_wait=3 on every connection (Open does unless the URL says otherwise)",
			"wsrep_sync_wait", syncWait.Int64)
	}
	return true, nil
}

// raced runs a MySQL migration step again, after inspecting anew, while it
// fails with migrationRaced (at most migrationAttempts times). Elsewhere
// it runs fn once.
func (b *Backend) raced(ctx context.Context, fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || b.dialect != "mysql" || attempt >= migrationAttempts || !migrationRaced(err) || ctx.Err() != nil {
			return err
		}
		b.opts.Logger.Debug("authdb: migration raced another one; inspecting again", "attempt", attempt, "error", err)
		t := time.NewTimer(raceWait(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}
