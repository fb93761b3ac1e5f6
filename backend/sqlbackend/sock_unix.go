//go:build linux || darwin

package sqlbackend

import "syscall"

// idleDead reports whether an idle connection's socket says the server
// has closed it: end of file, an error, or (without TLS) bytes the server
// sent unasked. It peeks without blocking and consumes nothing. It is
// called with the connection idle (ResetSession), never concurrently, and
// allocates nothing after its first call (the pool hands out a connection
// for every call).
func (s *sock) idleDead() bool {
	if s.peek == nil {
		sc, ok := s.Conn.(syscall.Conn)
		if !ok {
			return false
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			return false
		}
		s.raw, s.peek = rc, s.peekFD
	}
	s.dead = false
	err := s.raw.Read(s.peek)
	return s.dead || err != nil
}

// peekFD is idleDead's look at the socket, as syscall.RawConn.Read wants
// it: it sets s.dead and reports done at once.
func (s *sock) peekFD(fd uintptr) bool {
	n, _, err := syscall.Recvfrom(int(fd), s.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	switch {
	case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
		// nothing pending: alive
	case err != nil, n == 0:
		s.dead = true // an error, or end of file
	default:
		s.dead = !s.tls.Load()
	}
	return true
}
