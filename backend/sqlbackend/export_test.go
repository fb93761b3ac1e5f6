package sqlbackend

// Latin1Holds exposes inLatin1 to the tests.
var Latin1Holds = inLatin1

// RotateQuery exposes the rotation statement of a PostgreSQL backend with
// the default options, in PostgreSQL's placeholders.
func RotateQuery() string { return buildQueries("postgres", false, false, "").rotate }
