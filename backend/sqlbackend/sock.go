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
