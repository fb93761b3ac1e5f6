// Package ent holds the ent client generated from the schemas in ent/schema,
// which mirror the three tables of the DiracX Auth DB. Everything in this
// directory but generate.go and schema/ is generated: run `go generate ./ent`
// (or `make generate`) after changing a schema; never edit it by hand. The
// generator is pinned by the `tool entgo.io/ent/cmd/ent` line of go.mod, and
// CI fails when the committed code differs from what it produces.
//
// The sql/execquery feature adds ExecContext/QueryContext to the client and
// its transactions: the SQL backend runs its hand-written hot-path statements
// through them while the schema (and its migration) stays in ent.
package ent

//go:generate go tool ent generate --feature sql/execquery ./schema
