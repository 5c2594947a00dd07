//! How volumes, snapshots and types look on the wire, in Cinder v3's shapes, by the
//! negotiated microversion where it changes them.

use crate::app::ZONE;
use crate::store::{AttachStatus, Snapshot, Volume, VolumeType};
use serde_json::{json, Value};
use std::collections::HashMap;
use stratus_common::http::microversion::Version;

fn links(base: &str, project: &str, kind: &str, id: &str) -> Value {
    json!([{"rel": "self", "href": format!("{base}/v3/{project}/{kind}/{id}")},
           {"rel": "bookmark", "href": format!("{base}/{project}/{kind}/{id}")}])
}

/// `GET /volumes`: the short form.
pub fn volume_brief(base: &str, v: &Volume) -> Value {
    json!({"id": v.id, "name": v.name, "links": links(base, &v.project_id, "volumes", &v.id)})
}

/// Which of Cinder's volume views: `Detail` (show, detailed list) carries the
/// extension attributes (`os-vol-tenant-attr:tenant_id`, image metadata, for admins the
/// host and migration status); `Summary` (the answers to create and update) does not.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum VolumeView {
    Detail,
    Summary,
}

/// A volume; `types` names type ids; `host` (the storage host of its backend) is shown
/// to admins only, so it is given for them alone.
pub fn volume(
    base: &str,
    v: &Volume,
    types: &HashMap<String, String>,
    host: Option<&str>,
    view: VolumeView,
    version: Version,
) -> Value {
    let mut out = json!({
        "id": v.id,
        "name": v.name,
        "description": v.description,
        "status": v.status.as_str(),
        "size": v.size,
        "availability_zone": ZONE,
        "created_at": v.created_at,
        "updated_at": v.updated_at,
        // Attachments still being made (the attachments API's reserved or attaching
        // ones) are not shown, as Cinder's.
        "attachments": v.attachments.iter().filter(|a| a.status == AttachStatus::Attached).map(|a| json!({
            "id": v.id, "attachment_id": a.id, "volume_id": v.id, "server_id": a.server_id,
            "host_name": a.host_name, "device": a.device, "attached_at": a.attached_at,
        })).collect::<Vec<_>>(),
        "links": links(base, &v.project_id, "volumes", &v.id),
        "volume_type": types.get(&v.type_id).cloned().unwrap_or_else(|| v.type_id.clone()),
        "snapshot_id": v.snapshot_id,
        "source_volid": v.source_volid,
        "metadata": v.metadata,
        "user_id": v.user_id,
        "bootable": if v.bootable { "true" } else { "false" },
        "encrypted": false,
        "replication_status": null,
        "consistencygroup_id": null,
        "multiattach": v.multiattach,
    });
    if version.at_least(13) {
        out["group_id"] = json!(v.group_id);
    }
    if version.at_least(48) {
        // No target here is shared between volumes (each attachment has its own file
        // or NBD export), so hosts need no lock around it.
        out["shared_targets"] = json!(false);
        out["service_uuid"] = json!(service_uuid(&v.backend));
    }
    if view == VolumeView::Summary {
        return out;
    }
    if version.at_least(21) && host.is_some() {
        out["provider_id"] = Value::Null;
    }
    out["os-vol-tenant-attr:tenant_id"] = json!(v.project_id);
    if !v.image_meta.is_empty() {
        out["volume_image_metadata"] = json!(v.image_meta);
    }
    if let Some(host) = host {
        // A volume no backend took is on no host.
        out["os-vol-host-attr:host"] =
            if v.backend.is_empty() { Value::Null } else { json!(format!("{}@{}#{}", host, v.backend, v.backend)) };
        out["os-vol-mig-status-attr:migstat"] = Value::Null;
        out["os-vol-mig-status-attr:name_id"] = Value::Null;
        // Volumes never migrate here (a retype stays on its backend).
        out["migration_status"] = Value::Null;
    }
    out
}

/// The id of the volume service (`cinder-volume`) of a backend, stable across restarts;
/// null for a volume no backend took.
pub fn service_uuid(backend: &str) -> Value {
    if backend.is_empty() {
        return Value::Null;
    }
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(format!("cinder-volume:{backend}").as_bytes());
    let mut b: [u8; 16] = d[..16].try_into().unwrap_or_default();
    // A UUID of version 5's shape (name-based) and RFC 4122's variant.
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    json!(uuid::Uuid::from_bytes(b).to_string())
}

/// A snapshot; `detail` (show, detailed list) adds Cinder's extended attributes, which
/// the plain list and the answers to create and update leave out.
pub fn snapshot(s: &Snapshot, detail: bool, version: Version) -> Value {
    let mut out = json!({
        "id": s.id,
        "name": s.name,
        "description": s.description,
        "volume_id": s.volume_id,
        "status": s.status.as_str(),
        "size": s.size,
        "metadata": s.metadata,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
    });
    if version.at_least(41) {
        out["user_id"] = json!(s.user_id);
    }
    if detail {
        out["os-extended-snapshot-attributes:project_id"] = json!(s.project_id);
        out["os-extended-snapshot-attributes:progress"] = json!(match s.progress.as_str() {
            "" if s.status.as_str() == "available" => "100%",
            "" => "0%",
            p => p,
        });
    }
    out
}

/// A transfer at path `kind`; `auth_key` only in the answer to its creation. From
/// 3.55 the whole form says whether the snapshots go too; from 3.57 where it comes from
/// and (a transfer shown is one not yet accepted) that nobody took it yet.
pub fn transfer(
    base: &str,
    kind: &str,
    t: &crate::store::Transfer,
    auth_key: Option<&str>,
    detail: bool,
    version: Version,
) -> Value {
    let mut out = json!({"id": t.id, "name": t.name, "volume_id": t.volume_id,
                         "links": links(base, &t.project_id, kind, &t.id)});
    if detail {
        out["created_at"] = json!(t.created_at);
        if version.at_least(55) {
            out["no_snapshots"] = json!(t.no_snapshots);
        }
        if version.at_least(57) {
            out["source_project_id"] = json!(t.project_id);
            out["destination_project_id"] = Value::Null;
            out["accepted"] = json!(false);
        }
    }
    if let Some(k) = auth_key {
        out["auth_key"] = json!(k);
    }
    out
}

/// Which answer a volume type is in: Cinder's create answer has no `qos_specs_id`, its
/// update answer neither that nor `os-volume-type-access:is_public`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TypeView {
    Show,
    Created,
    Updated,
}

pub fn volume_type(t: &VolumeType, view: TypeView) -> Value {
    let mut out = json!({
        "id": t.id,
        "name": t.name,
        "description": t.description,
        "is_public": t.is_public,
        "extra_specs": t.extra_specs,
    });
    if view != TypeView::Updated {
        out["os-volume-type-access:is_public"] = json!(t.is_public);
    }
    if view == TypeView::Show {
        out["qos_specs_id"] = if t.qos_specs_id.is_empty() { Value::Null } else { json!(t.qos_specs_id) };
    }
    out
}

/// A backup: the short form (`id`, `name`, `links`, and from 3.43 `metadata`) or the
/// whole; `dependents` says whether incremental backups follow it. An admin sees its
/// project from 3.18.
pub fn backup(
    base: &str,
    b: &crate::store::Backup,
    detail: bool,
    dependents: bool,
    admin: bool,
    version: Version,
) -> Value {
    let mut out = json!({"id": b.id, "name": b.name, "links": links(base, &b.project_id, "backups", &b.id)});
    if version.at_least(43) {
        out["metadata"] = json!(b.metadata);
    }
    if !detail {
        return out;
    }
    let more = json!({
        "status": b.status.as_str(),
        "description": b.description,
        "availability_zone": ZONE,
        "container": b.container,
        "volume_id": b.volume_id,
        "snapshot_id": b.snapshot_id,
        "size": b.size,
        "object_count": b.object_count,
        "fail_reason": b.fail_reason,
        "is_incremental": b.is_incremental,
        "has_dependent_backups": dependents,
        "data_timestamp": b.data_timestamp,
        "created_at": b.created_at,
        "updated_at": b.updated_at,
    });
    if let (Some(o), Value::Object(m)) = (out.as_object_mut(), more) {
        o.extend(m);
    }
    if admin && version.at_least(18) {
        out["os-backup-project-attr:project_id"] = json!(b.project_id);
    }
    if version.at_least(56) {
        out["user_id"] = json!(b.user_id);
    }
    out
}
