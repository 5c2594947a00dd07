//! `/v2/schemas/*`: the JSON schemas glanceclient reads to know which attributes are
//! core and which are extra properties.

use axum::Json;
use serde_json::{json, Value};

fn image_schema() -> Value {
    let s = |t: Value| json!({"type": t});
    json!({
        "name": "image",
        "additionalProperties": {"type": "string"},
        "properties": {
            "id": {"type": "string", "pattern": "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"},
            "name": {"type": ["null", "string"], "maxLength": 255},
            "status": {"type": "string", "readOnly": true, "enum": ["queued", "saving", "active", "killed", "deleted", "uploading", "importing", "pending_delete", "deactivated"]},
            "visibility": {"type": "string", "enum": ["community", "public", "private", "shared"]},
            "protected": s(json!("boolean")),
            "os_hidden": s(json!("boolean")),
            "checksum": {"type": ["null", "string"], "readOnly": true},
            "os_hash_algo": {"type": ["null", "string"], "readOnly": true},
            "os_hash_value": {"type": ["null", "string"], "readOnly": true},
            "owner": {"type": ["null", "string"]},
            "size": {"type": ["null", "integer"], "readOnly": true},
            "virtual_size": {"type": ["null", "integer"], "readOnly": true},
            "container_format": {"type": ["null", "string"], "enum": [null, "ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"]},
            "disk_format": {"type": ["null", "string"], "enum": [null, "ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop"]},
            "created_at": {"type": "string", "readOnly": true},
            "updated_at": {"type": "string", "readOnly": true},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 255}},
            "direct_url": {"type": "string", "readOnly": true},
            "min_ram": s(json!("integer")),
            "min_disk": s(json!("integer")),
            "self": {"type": "string", "readOnly": true},
            "file": {"type": "string", "readOnly": true},
            "schema": {"type": "string", "readOnly": true},
            "locations": {"type": "array", "items": {"type": "object"}},
        },
        "links": [
            {"rel": "self", "href": "{self}"},
            {"rel": "enclosure", "href": "{file}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    })
}

pub async fn image() -> Json<Value> {
    Json(image_schema())
}

pub async fn images() -> Json<Value> {
    Json(json!({
        "name": "images",
        "properties": {
            "images": {"type": "array", "items": image_schema()},
            "schema": {"type": "string"},
            "first": {"type": "string"},
            "next": {"type": "string"},
        },
        "links": [{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"}, {"rel": "describedby", "href": "{schema}"}],
    }))
}

fn member_schema() -> Value {
    json!({
        "name": "member",
        "properties": {
            "image_id": {"type": "string"},
            "member_id": {"type": "string"},
            "status": {"type": "string", "enum": ["pending", "accepted", "rejected"]},
            "created_at": {"type": "string"},
            "updated_at": {"type": "string"},
            "schema": {"type": "string", "readOnly": true},
        },
    })
}

pub async fn member() -> Json<Value> {
    Json(member_schema())
}

pub async fn members() -> Json<Value> {
    Json(
        json!({"name": "members", "properties": {"members": {"type": "array", "items": member_schema()}, "schema": {"type": "string"}}}),
    )
}

/// A property definition, as the metadefs catalog stores it.
fn metadef_property_schema() -> Value {
    let types = json!(["array", "boolean", "integer", "number", "object", "string", null]);
    json!({
        "name": "property",
        "type": "object",
        "required": ["name", "title", "type"],
        "additionalProperties": false,
        "properties": {
            "name": {"type": "string", "maxLength": 80},
            "title": {"type": "string"},
            "description": {"type": "string"},
            "type": {"type": "string", "enum": types},
            "default": {},
            "enum": {"type": "array"},
            "operators": {"type": "array", "items": {"type": "string"}},
            "minimum": {"type": "number"},
            "maximum": {"type": "number"},
            "minLength": {"type": "integer", "minimum": 0},
            "maxLength": {"type": "integer", "minimum": 0},
            "pattern": {"type": "string", "format": "regex"},
            "items": {"type": "object", "properties": {"type": {"type": "string", "enum": types}, "enum": {"type": "array"}}},
            "readonly": {"type": "boolean"},
            "uniqueItems": {"type": "boolean", "default": false},
            "minItems": {"type": "integer", "minimum": 0},
            "maxItems": {"type": "integer", "minimum": 0},
            "additionalItems": {"type": "boolean"},
        },
    })
}

/// A property's definition inside a namespace or an object, where its name is the key.
fn metadef_definition_schema() -> Value {
    let mut property = metadef_property_schema();
    property["properties"].as_object_mut().expect("an object").remove("name");
    property["required"] = json!(["title", "type"]);
    property
}

fn metadef_tag_schema() -> Value {
    json!({
        "name": "tag",
        "type": "object",
        "required": ["name"],
        "additionalProperties": false,
        "properties": {
            "name": {"type": "string", "maxLength": 255},
            "created_at": {"type": "string", "readOnly": true, "format": "date-time"},
            "updated_at": {"type": "string", "readOnly": true, "format": "date-time"},
        },
    })
}

fn metadef_association_schema() -> Value {
    json!({
        "name": "resource_type_association",
        "type": "object",
        "required": ["name"],
        "additionalProperties": false,
        "properties": {
            "name": {"type": "string", "maxLength": 80},
            "prefix": {"type": "string", "maxLength": 80},
            "properties_target": {"type": "string", "maxLength": 80},
            "created_at": {"type": "string", "readOnly": true, "format": "date-time"},
            "updated_at": {"type": "string", "readOnly": true, "format": "date-time"},
        },
    })
}

fn metadef_object_schema() -> Value {
    let property = metadef_definition_schema();
    json!({
        "name": "object",
        "type": "object",
        "required": ["name"],
        "additionalProperties": false,
        "properties": {
            "name": {"type": "string", "maxLength": 80},
            "description": {"type": "string"},
            "required": {"type": "array", "items": {"type": "string"}},
            "properties": {"type": "object", "additionalProperties": property},
            "created_at": {"type": "string", "readOnly": true, "format": "date-time"},
            "updated_at": {"type": "string", "readOnly": true, "format": "date-time"},
            "self": {"type": "string", "readOnly": true},
            "schema": {"type": "string", "readOnly": true},
        },
    })
}

fn metadef_namespace_schema() -> Value {
    let property = metadef_definition_schema();
    json!({
        "name": "namespace",
        "type": "object",
        "required": ["namespace"],
        "additionalProperties": false,
        "properties": {
            "namespace": {"type": "string", "maxLength": 80},
            "display_name": {"type": "string", "maxLength": 80},
            "description": {"type": "string", "maxLength": 500},
            "visibility": {"type": "string", "enum": ["public", "private"]},
            "protected": {"type": "boolean"},
            "owner": {"type": "string", "maxLength": 255},
            "created_at": {"type": "string", "readOnly": true, "format": "date-time"},
            "updated_at": {"type": "string", "readOnly": true, "format": "date-time"},
            "schema": {"type": "string", "readOnly": true},
            "self": {"type": "string", "readOnly": true},
            "resource_type_associations": {"type": "array", "items": metadef_association_schema()},
            "properties": {"type": "object", "additionalProperties": property},
            "objects": {"type": "array", "items": metadef_object_schema()},
            "tags": {"type": "array", "items": metadef_tag_schema()},
        },
    })
}

/// A listing's schema: `name`, the items under `key`, and the paging links.
fn metadef_collection(name: &str, key: &str, item: Value) -> Value {
    json!({
        "name": name,
        "links": [{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"}, {"rel": "describedby", "href": "{schema}"}],
        "properties": {
            key: {"type": "array", "items": item},
            "first": {"type": "string"},
            "next": {"type": "string"},
            "schema": {"type": "string"},
        },
    })
}

/// `GET /v2/schemas/metadefs/{name}`.
pub async fn metadef(
    axum::extract::Path(name): axum::extract::Path<String>,
) -> stratus_common::http::ApiResult<Json<Value>> {
    let schema = match name.as_str() {
        "namespace" => metadef_namespace_schema(),
        "namespaces" => metadef_collection("namespaces", "namespaces", metadef_namespace_schema()),
        "object" => metadef_object_schema(),
        "objects" => metadef_collection("objects", "objects", metadef_object_schema()),
        "property" => metadef_property_schema(),
        "properties" => {
            let property = metadef_definition_schema();
            json!({
                "name": "properties",
                "properties": {"properties": {"type": "object", "additionalProperties": property}, "schema": {"type": "string"}},
            })
        }
        "resource_type" => metadef_association_schema(),
        "resource_types" => {
            metadef_collection("resource_type_associations", "resource_type_associations", metadef_association_schema())
        }
        "tag" => metadef_tag_schema(),
        "tags" => metadef_collection("tags", "tags", metadef_tag_schema()),
        other => return Err(stratus_common::http::ApiError::not_found("schema", &format!("metadefs/{other}"))),
    };
    Ok(Json(schema))
}
