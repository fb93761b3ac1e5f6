package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// AuthorizationFlow mirrors the DiracX table AuthorizationFlows: one
// authorization-code flow with PKCE (RFC 7636), keyed by a UUIDv7 (native
// uuid on PostgreSQL, 32 lowercase hex digits elsewhere). Code holds the
// sha256 hex of the plain authorization code once issued, NULL before.
type AuthorizationFlow struct {
	ent.Schema
}

// Annotations sets the table name.
func (AuthorizationFlow) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Annotation{Table: "AuthorizationFlows"}}
}

// Fields of AuthorizationFlows, in DiracX's column order.
func (AuthorizationFlow) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").StorageKey("UUID").
			NotEmpty().Immutable().SchemaType(columnTypes["uuid"]),
		field.String("status").StorageKey("Status").
			MaxLen(16).Default("PENDING").SchemaType(varchar(16)),
		field.String("client_id").StorageKey("ClientID").
			MaxLen(255).SchemaType(varchar(255)),
		field.Time("creation_time").StorageKey("CreationTime").
			Immutable().SchemaType(columnTypes["time"]).Annotations(utcNow()),
		field.String("scope").StorageKey("Scope").
			MaxLen(1024).SchemaType(varchar(1024)),
		field.String("code_challenge").StorageKey("CodeChallenge").
			MaxLen(255).SchemaType(varchar(255)),
		field.String("code_challenge_method").StorageKey("CodeChallengeMethod").
			MaxLen(8).SchemaType(varchar(8)),
		field.String("redirect_uri").StorageKey("RedirectURI").
			MaxLen(255).SchemaType(varchar(255)),
		field.String("code").StorageKey("Code").
			MaxLen(255).Optional().Nillable().SchemaType(varchar(255)),
		field.JSON("id_token", map[string]any{}).StorageKey("IDToken").
			Optional().SchemaType(columnTypes["json"]),
	}
}

// Indexes of AuthorizationFlows beyond DiracX's primary key: Code, which
// GetAuthorizationFlow and ConsumeAuthorizationFlow look up (not unique, as in
// DiracX), and CreationTime, which clean-up filters on.
func (AuthorizationFlow) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("code").StorageKey("ix_AuthorizationFlows_Code"),
		index.Fields("creation_time").StorageKey("ix_AuthorizationFlows_CreationTime"),
	}
}
