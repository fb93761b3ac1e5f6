//go:build !linux && !darwin

package sqlbackend

// idleDead cannot look at the socket here: the connection counts as alive
// (a dead one is then found by its next statement, see outcome.go).
func (s *sock) idleDead() bool { return false }
