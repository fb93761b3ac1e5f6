package sqlbackend

// Latin1Holds exposes inLatin1 to the tests.
var Latin1Holds = inLatin1
