//go:build linux || darwin

package sqlbackend

import "syscall"

// idleDead reports whether an idle connection's socket says the server
// has closed it: end of file, an error, or (without TLS) bytes the server
// sent unasked. It peeks without blocking and consumes nothing.
func (s *sock) idleDead() bool {
	sc, ok := s.Conn.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	dead := false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
			// nothing pending: alive
		case err != nil, n == 0:
			dead = true // an error, or end of file
		default:
			dead = !s.tls.Load()
		}
		return true
	})
	return dead || err != nil
}
