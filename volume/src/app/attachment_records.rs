//! The attachments API (Cinder 3.27+, `os-complete` 3.44): an attachment is a record a
//! consumer (compute, or anyone attaching a volume by hand) makes and moves along:
//!
//! ```text
//! volume:      available --create--> reserved --update(connector)--> attaching --complete--> in-use
//! attachment:            (no connector) reserved ----------------> attaching ----------> attached
//!                        create with a connector goes straight to attaching
//! delete (any state): the attachment goes, its host's connection ends, and a volume
//! left with none is available again
//! ```
//!
//! The legacy attach steps (`app::attachments`) write the same records, already
//! `attached`, so either API sees what the other made.

use super::attachments::{connector_of, refused};
use super::{bad, invalid, not_found, project_of, require_writer, AppResult, VolumeService};
use crate::store::{AttachStatus, Attachment, Volume, VolumeStatus};
use serde_json::Value;
use stratus_common::auth::AuthContext;
use stratus_common::db::now_text;

/// A connector worth the name: `{}` (the openstack client without `--connect`) and
/// `null` are none.
fn some_connector(c: Option<&Value>) -> Option<&Value> {
    c.filter(|c| c.as_object().is_some_and(|o| !o.is_empty()))
}

/// `rw` unless asked for `ro` (3.54's `mode`) or the volume is read-only.
fn mode_of(asked: Option<&str>, v: &Volume) -> AppResult<String> {
    match asked.filter(|m| !m.is_empty()) {
        Some(m @ ("rw" | "ro")) => Ok(m.to_string()),
        Some(m) => Err(bad(format!("Invalid attach mode {m}: use rw or ro."))),
        None if v.metadata.get("readonly").and_then(Value::as_str) == Some("True") => Ok("ro".into()),
        None => Ok("rw".into()),
    }
}

/// What a consumer asks when it makes an attachment.
pub struct NewAttachment<'a> {
    pub volume_id: &'a str,
    pub server_id: &'a str,
    pub connector: Option<&'a Value>,
    pub mode: Option<&'a str>,
}

impl VolumeService {
    /// The volume holding attachment `id`, among those the caller sees (admins: every
    /// project's).
    pub async fn attachment_volume(&self, ctx: &AuthContext, id: &str) -> AppResult<Volume> {
        let volumes = if ctx.is_admin() {
            self.store.volume_list(None).await?
        } else {
            self.store.volume_list(Some(&project_of(ctx)?)).await?
        };
        volumes
            .into_iter()
            .find(|v| !v.deleted && v.attachments.iter().any(|a| a.id == id))
            .ok_or_else(|| not_found("Attachment", id))
    }

    /// Every attachment of the caller's volumes (of every project's for an admin who
    /// asks), with its volume.
    pub async fn attachment_list(&self, ctx: &AuthContext, all_projects: bool) -> AppResult<Vec<(Volume, Attachment)>> {
        let volumes = self.volume_list(ctx, all_projects).await?;
        Ok(volumes.into_iter().flat_map(|v| v.attachments.clone().into_iter().map(move |a| (v.clone(), a))).collect())
    }

    /// `POST /attachments`: reserves an available volume for a server; with a
    /// connector the connection is made at once (`attaching`).
    pub async fn attachment_create(&self, ctx: &AuthContext, req: NewAttachment<'_>) -> AppResult<(Volume, String)> {
        require_writer(ctx)?;
        if req.server_id.is_empty() {
            return Err(bad("Must specify 'instance_uuid' to create attachment."));
        }
        let connector = some_connector(req.connector);
        if let Some(c) = connector {
            connector_of(c)?;
        }
        let id = uuid::Uuid::new_v4().to_string();
        let v = self
            .volume_change(ctx, req.volume_id, |v| {
                // A multiattach volume takes one more server, whatever the others do.
                let more = v.multiattach
                    && matches!(v.status, VolumeStatus::InUse | VolumeStatus::Reserved | VolumeStatus::Attaching);
                if !more && (v.status != VolumeStatus::Available || !v.attachments.is_empty()) {
                    return Err(refused(v, "reserve", "available"));
                }
                if v.attachments.iter().any(|a| a.server_id == req.server_id) {
                    return Err(bad(format!(
                        "Invalid volume: volume {} is attached to server {} already.",
                        v.id, req.server_id
                    )));
                }
                if v.control.saga_id.is_some() {
                    return Err(invalid(format!("Volume {} is busy with another task.", v.id)));
                }
                let status = if connector.is_some() { AttachStatus::Attaching } else { AttachStatus::Reserved };
                v.attachments.push(Attachment {
                    id: id.clone(),
                    server_id: req.server_id.to_string(),
                    host_name: connector.and_then(|c| c["host"].as_str()).map(str::to_string),
                    device: connector.and_then(|c| c["mountpoint"].as_str()).unwrap_or_default().to_string(),
                    attached_at: String::new(),
                    mode: mode_of(req.mode, v)?,
                    status,
                    connector: connector.cloned(),
                    connection_info: None,
                });
                v.status = if connector.is_some() { VolumeStatus::Attaching } else { VolumeStatus::Reserved };
                Ok(())
            })
            .await?;
        match connector {
            Some(c) => self.attachment_connect(ctx, v, &id, c).await.map(|v| (v, id)),
            None => Ok((v, id)),
        }
    }

    /// Makes the connection for attachment `id` of `v` and records it; the attachment
    /// goes again if the backend cannot connect.
    async fn attachment_connect(&self, ctx: &AuthContext, v: Volume, id: &str, connector: &Value) -> AppResult<Volume> {
        let info = match self.connection_info(&v, connector).await {
            Ok(info) => info,
            Err(e) => {
                let _ = self.attachment_delete(ctx, id).await;
                return Err(e);
            }
        };
        self.volume_change(ctx, &v.id, |v| {
            let a = v.attachments.iter_mut().find(|a| a.id == id).ok_or_else(|| not_found("Attachment", id))?;
            a.connection_info = Some(info.clone());
            Ok(())
        })
        .await
    }

    /// `PUT /attachments/{id}`: the host's connector for a reserved attachment; the
    /// answer carries how the host reaches the volume.
    pub async fn attachment_update(&self, ctx: &AuthContext, id: &str, connector: Option<&Value>) -> AppResult<Volume> {
        require_writer(ctx)?;
        let connector =
            some_connector(connector).ok_or_else(|| bad("Must specify 'connector' to update attachment."))?;
        connector_of(connector)?;
        let found = self.attachment_volume(ctx, id).await?;
        let v = self
            .volume_change(ctx, &found.id, |v| {
                let a = v.attachments.iter_mut().find(|a| a.id == id).ok_or_else(|| not_found("Attachment", id))?;
                if a.status == AttachStatus::Attached {
                    return Err(bad(format!("Invalid attachment: attachment {id} is attached already.")));
                }
                a.status = AttachStatus::Attaching;
                a.host_name = connector["host"].as_str().map(str::to_string);
                a.device = connector["mountpoint"].as_str().unwrap_or_default().to_string();
                a.connector = Some(connector.clone());
                if v.status == VolumeStatus::Reserved {
                    v.status = VolumeStatus::Attaching;
                }
                Ok(())
            })
            .await?;
        self.attachment_connect(ctx, v, id, connector).await
    }

    /// `os-complete`: the host has plugged the volume in; it is in use.
    pub async fn attachment_complete(&self, ctx: &AuthContext, id: &str) -> AppResult<()> {
        require_writer(ctx)?;
        let found = self.attachment_volume(ctx, id).await?;
        self.volume_change(ctx, &found.id, |v| {
            let a = v.attachments.iter_mut().find(|a| a.id == id).ok_or_else(|| not_found("Attachment", id))?;
            match a.status {
                AttachStatus::Attached => return Ok(()),
                AttachStatus::Reserved => {
                    return Err(bad(format!(
                        "Invalid attachment: attachment {id} has no connector yet; update it with the host's connector first."
                    )))
                }
                AttachStatus::Attaching => {}
            }
            a.status = AttachStatus::Attached;
            a.attached_at = now_text();
            if matches!(v.status, VolumeStatus::Attaching | VolumeStatus::Reserved) {
                v.status = VolumeStatus::InUse;
            }
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// `DELETE /attachments/{id}`: the attachment goes whatever its state; its host's
    /// connection ends, and a volume left with no attachment is available.
    pub async fn attachment_delete(&self, ctx: &AuthContext, id: &str) -> AppResult<Volume> {
        require_writer(ctx)?;
        let found = self.attachment_volume(ctx, id).await?;
        let mut gone = None;
        let v = self
            .volume_change(ctx, &found.id, |v| {
                let Some(i) = v.attachments.iter().position(|a| a.id == id) else {
                    return Err(not_found("Attachment", id));
                };
                gone = Some(v.attachments.remove(i));
                let holding = matches!(
                    v.status,
                    VolumeStatus::Reserved | VolumeStatus::Attaching | VolumeStatus::InUse | VolumeStatus::Detaching
                );
                if v.attachments.is_empty() && holding {
                    v.status = VolumeStatus::Available;
                    v.control.reserved_for = None;
                } else if holding && v.attachments.iter().any(|a| a.status == AttachStatus::Attached) {
                    // A multiattach volume another server still has.
                    v.status = VolumeStatus::InUse;
                }
                Ok(())
            })
            .await?;
        // What was exported to that host ends, unless another server there still has
        // the (multiattach) volume; the reconciler ends it too if this fails (it
        // serves only volumes that are attached).
        let connector = gone.and_then(|a| a.connector);
        if let Some(to) = connector.as_ref().and_then(|c| connector_of(c).ok()) {
            let still_there = v.attachments.iter().any(|a| a.host_name.as_deref() == Some(to.host));
            if !still_there {
                if let Err(e) = self.driver(&v.backend)?.disconnect(&v.id, to).await {
                    tracing::warn!(volume = %v.id, error = %e, "cannot end the deleted attachment's connection");
                }
            }
        }
        Ok(v)
    }
}
