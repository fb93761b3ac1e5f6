package sqlbackend

import (
	"context"
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// PostgreSQL sockets. lib/pq cannot tell that the server closed an idle
// connection (a terminated session, a restart) until it has sent the next
// statement on it, and then says driver.ErrBadConn, which after a sent
// statement the outcome rules must treat as a lost reply (outcome.go). So
// the backend dials PostgreSQL itself (pgDialer, lib/pq's Dialer hook) and,
// when the pool hands out an idle connection (idConn.ResetSession), looks at
// its socket without reading it (idleDead): a closed socket, or bytes the
// server sent unasked (its FATAL message before closing), mean the
// connection is dead, and database/sql takes another one before anything
// is sent, as go-sql-driver/mysql does with its liveness check.
//
// The look is a system call (about 2.5 µs of client CPU, a twentieth of a
// rotation's under load). It is skipped for a connection back in the pool
// for less than idleCheckAfter, unless a connection of the same pool has
// been found dead since that one went idle (poolLosses). So a busy pool,
// whose connections go out again within microseconds, pays nothing; a
// quiet one, where a restart or an idle timeout closes connections
// unseen, is looked at before every call; and after a restart under load,
// the first call to meet a dead connection (its statement lost, settled
// by the outcome rules: outcome.go) makes every connection that idled
// since be looked at, so that no call meets a second one.

// idleCheckAfter is how long a PostgreSQL connection must have been idle
// for idleDead to be asked when no loss was seen (see above).
const idleCheckAfter = 100 * time.Millisecond

// clockStart is monoNow's origin.
var clockStart = time.Now()

// monoNow is the monotonic clock, in nanoseconds since clockStart.
func monoNow() int64 { return int64(time.Since(clockStart)) }

// poolLosses records when a connection of one pool was last found dead
// (monoNow; 0: never), and the pool's idle time after which a connection
// is looked at anyway (idleCheckAfter; the tests change it).
type poolLosses struct{ last, after atomic.Int64 }

func newPoolLosses() *poolLosses {
	l := new(poolLosses)
	l.after.Store(int64(idleCheckAfter))
	return l
}

// worthLooking reports whether a connection idle since idleSince
// (monoNow) is to be looked at before it is handed out: it has been idle
// for idleCheckAfter or more, or the pool lost a connection since. A nil
// record (a pool without one) always looks.
func (l *poolLosses) worthLooking(idleSince int64) bool {
	if l == nil {
		return true
	}
	return monoNow()-idleSince >= l.after.Load() || l.last.Load() >= idleSince
}

// lost records that a connection of the pool was found dead now.
func (l *poolLosses) lost() {
	if l != nil {
		l.last.Store(monoNow())
	}
}

// pgDialer is lib/pq's dialer for the backend's pools: net.Dialer's
// connections, each handed to the connection being made (sockSlot).
type pgDialer struct{}

// sockSlot is the context key under which idConnector.Connect asks
// pgDialer for the socket of the connection it makes.
type sockSlot struct{}

func (d pgDialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

func (d pgDialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return d.DialContext(ctx, network, address)
}

func (pgDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	s := &sock{Conn: c}
	if slot, _ := ctx.Value(sockSlot{}).(**sock); slot != nil {
		*slot = s // the last dial wins: a multi-host URL's hosts are tried in turn
	}
	return s, nil
}

// sock is a PostgreSQL connection's socket. It notes whether the session
// is TLS (the server answered the client's first, 8-byte message, the
// SSLRequest, with 'S'): unread bytes on an idle TLS socket may be the
// server's session tickets, so there only a closed socket counts as dead.
type sock struct {
	net.Conn
	writes, reads atomic.Int32
	sslRequest    atomic.Bool
	tls           atomic.Bool
	// idleDead's state (sock_unix.go), kept here so that a check
	// allocates nothing.
	raw  syscall.RawConn
	peek func(fd uintptr) bool
	buf  [1]byte
	dead bool
}

func (s *sock) Write(b []byte) (int, error) {
	if s.writes.Add(1) == 1 && len(b) == 8 {
		s.sslRequest.Store(true)
	}
	return s.Conn.Write(b)
}

func (s *sock) Read(b []byte) (int, error) {
	n, err := s.Conn.Read(b)
	if n > 0 && s.reads.Add(1) == 1 && s.sslRequest.Load() && b[0] == 'S' {
		s.tls.Store(true)
	}
	return n, err
}
