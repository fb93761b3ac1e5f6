// Package backend defines the storage contract of authdb: the Backend
// interface, its record types and statuses, the sentinel errors every backend
// returns, the functional Options, the helpers all backends share (code
// generation, hashing, UUIDv7 checks, input validation) and the URL-scheme
// registry through which backends are opened.
//
// The package imports nothing else of the project. Backends (memory,
// sqlbackend, or a third party's) import it and register a URL scheme with
// Register in their init function, the database/sql driver model: a program
// that wants a backend by URL imports it (the root package authdb imports
// every built-in one) and calls Open.
package backend
