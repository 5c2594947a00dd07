//! Glance's wire shapes: bare image objects with extra properties at the top level.

use crate::store::{Image, Member};
use serde_json::{json, Value};

/// Glance shows times to the second.
fn glance_time(t: &str) -> String {
    stratus_common::db::parse_time(t).map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string()).unwrap_or_default()
}

pub fn image(img: &Image) -> Value {
    let mut v = json!({
        "id": img.id,
        "name": img.name,
        "status": img.status.as_str(),
        "visibility": img.visibility,
        "protected": img.protected,
        "os_hidden": img.os_hidden,
        "owner": img.owner,
        "size": img.size,
        "virtual_size": img.virtual_size,
        "checksum": img.checksum,
        "os_hash_algo": img.os_hash_algo,
        "os_hash_value": img.os_hash_value,
        "disk_format": img.disk_format,
        "container_format": img.container_format,
        "min_disk": img.min_disk,
        "min_ram": img.min_ram,
        "tags": img.tags,
        "created_at": glance_time(&img.created_at),
        "updated_at": glance_time(&img.updated_at),
        "self": format!("/v2/images/{}", img.id),
        "file": format!("/v2/images/{}/file", img.id),
        "schema": "/v2/schemas/image",
    });
    let obj = v.as_object_mut().unwrap();
    for (k, val) in &img.extra {
        obj.entry(k.clone()).or_insert_with(|| val.clone());
    }
    v
}

pub fn member(m: &Member) -> Value {
    json!({
        "image_id": m.image_id,
        "member_id": m.member_id,
        "status": m.status,
        "created_at": glance_time(&m.created_at),
        "updated_at": glance_time(&m.updated_at),
        "schema": "/v2/schemas/member",
    })
}
