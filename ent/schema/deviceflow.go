package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// DeviceFlow mirrors the DiracX table DeviceFlows: one RFC 8628 device
// authorization flow, keyed by its user code. DeviceCode holds the sha256 hex
// of the plain device code, never the code itself.
type DeviceFlow struct {
	ent.Schema
}

// Annotations sets the table name.
func (DeviceFlow) Annotations() []schema.Annotation {
	return []schema.Annotation{entsql.Annotation{Table: "DeviceFlows"}}
}

// Fields of DeviceFlows, in DiracX's column order.
func (DeviceFlow) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").StorageKey("UserCode").
			MaxLen(8).NotEmpty().Immutable().SchemaType(varchar(8)),
		field.String("status").StorageKey("Status").
			MaxLen(16).Default("PENDING").SchemaType(varchar(16)),
		field.Time("creation_time").StorageKey("CreationTime").
			Immutable().SchemaType(columnTypes["time"]).Annotations(utcNow()),
		field.String("client_id").StorageKey("ClientID").
			MaxLen(255).SchemaType(varchar(255)),
		field.String("scope").StorageKey("Scope").
			MaxLen(1024).SchemaType(varchar(1024)),
		field.String("device_code").StorageKey("DeviceCode").
			MaxLen(128).Unique().Immutable().SchemaType(varchar(128)),
		field.JSON("id_token", map[string]any{}).StorageKey("IDToken").
			Optional().SchemaType(columnTypes["json"]),
	}
}

// Indexes of DeviceFlows beyond DiracX's (the primary key and the unique
// DeviceCode): CreationTime, which clean-up filters on.
func (DeviceFlow) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("creation_time").StorageKey("ix_DeviceFlows_CreationTime"),
	}
}
