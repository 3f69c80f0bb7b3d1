//! JSON Schemas of the wire types, for the OpenAPI documents: generated from the types
//! themselves (draft 2020-12, subschemas inlined), so a document cannot drift from what the
//! services deserialize.
use schemars::generate::SchemaSettings;
use serde_json::Value;

/// The schema of `T`'s JSON, inlined, without the `$schema` and `title` keys of a root schema.
pub fn of<T: schemars::JsonSchema>() -> Value {
    let generator = SchemaSettings::draft2020_12().with(|s| s.inline_subschemas = true).into_generator();
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    if let Value::Object(map) = &mut schema {
        map.remove("$schema");
        map.remove("title");
    }
    schema
}
