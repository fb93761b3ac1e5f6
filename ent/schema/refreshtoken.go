package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// RefreshToken mirrors the DiracX table RefreshTokens: one refresh token,
// keyed by its JTI, a UUIDv7 (native uuid on PostgreSQL, 32 lowercase hex
// digits elsewhere) whose timestamp is the creation time. There is no
// creation-time column: expiry and clean-up use a range on the primary key.
//
// The table has no foreign key and no unique key but the primary key, so
// that MySQL can partition it BY RANGE COLUMNS (JTI) (package partition).
type RefreshToken struct {
	ent.Schema
}

// Annotations sets the table name.
func (RefreshToken) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Annotation{Table: "RefreshTokens"}}
}

// Fields of RefreshTokens: DiracX's columns in its order, then authdb's two
// nullable refresh-token family columns (see backend.RefreshToken), which
// the migration adds to a DiracX-created table and which rows DiracX writes
// leave NULL. Both have JTI's type.
func (RefreshToken) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").StorageKey("JTI").
			NotEmpty().Immutable().SchemaType(columnTypes["uuid"]),
		field.String("status").StorageKey("Status").
			MaxLen(16).Default("CREATED").SchemaType(varchar(16)),
		field.String("scope").StorageKey("Scope").
			MaxLen(1024).SchemaType(varchar(1024)),
		field.String("sub").StorageKey("Sub").
			MaxLen(256).SchemaType(varchar(256)),
		// FamilyID: the JTI of the family's first token (equal to JTI for a
		// token InsertRefreshToken stored).
		field.String("family_id").StorageKey("FamilyID").
			Optional().Nillable().SchemaType(columnTypes["uuid"]),
		// ReplacedBy: the JTI of the successor, set by the rotation.
		field.String("replaced_by").StorageKey("ReplacedBy").
			Optional().Nillable().SchemaType(columnTypes["uuid"]),
	}
}

// Indexes of RefreshTokens, named as DiracX names them, and authdb's index
// on FamilyID (revoking a family).
func (RefreshToken) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("sub").StorageKey("ix_RefreshTokens_Sub"),
		index.Fields("status", "sub").StorageKey("index_status_sub"),
		index.Fields("family_id").StorageKey("ix_RefreshTokens_FamilyID"),
	}
}
