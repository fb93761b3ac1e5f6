package sqlbackend

import "context"

// Latin1Holds exposes inLatin1 to the tests.
var Latin1Holds = inLatin1

// RotateQuery exposes the rotation statement of a PostgreSQL backend with
// the default options, in PostgreSQL's placeholders.
func RotateQuery() string { return buildQueries("postgres", false, false, "").rotate }

// HoldWriteGate takes b's SQLite write gate, as a writer of b would, and
// returns its release; false when b has none.
func HoldWriteGate(b *Backend) (release func(), ok bool) {
	if b.gate == nil {
		return nil, false
	}
	release, _ = b.gate.enter(context.Background())
	return release, true
}
