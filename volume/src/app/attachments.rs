//! Attaching volumes to servers, in the steps Cinder's 3.0 API gives the compute
//! service (the "legacy" attach flow Nova used before the attachments API):
//!
//! ```text
//! available --os-reserve--> attaching --os-attach--> in-use --os-begin_detaching--> detaching --os-detach--> available
//!               ^---os-unreserve---'                    ^------os-roll_detaching-------'
//! ```
//!
//! `os-initialize_connection` answers how the host reaches the volume's bytes (the
//! backend's connection info); `os-terminate_connection` says the host let go. Each call
//! is idempotent for a caller that retries (a saga step may run twice): reserving again
//! for the same server, attaching the same server again, detaching an attachment that
//! is gone, or rolling back what is not under way changes nothing and succeeds.
//! `os-reserve` may name the server (`instance_uuid`, a Stratus extension Cinder
//! ignores) so that a repeated reservation is recognised as the same one.

use super::{bad, invalid, AppResult, VolumeService};
use crate::driver::Connector;
use crate::store::{AttachStatus, Attachment, Volume, VolumeStatus};
use serde_json::Value;
use stratus_common::auth::AuthContext;
use stratus_common::db::now_text;

/// What `os-attach` says of the attachment.
#[derive(Debug, Default, serde::Deserialize)]
pub struct AttachRequest {
    pub instance_uuid: Option<String>,
    pub mountpoint: Option<String>,
    pub host_name: Option<String>,
    pub mode: Option<String>,
}

/// The host a connector names, and its address if it gives one.
pub(crate) fn connector_of(c: &Value) -> AppResult<Connector<'_>> {
    let host = c["host"].as_str().filter(|h| !h.is_empty()).ok_or_else(|| bad("The connector names no host."))?;
    Ok(Connector { host, ip: c["ip"].as_str().filter(|ip| !ip.is_empty()), shared: false })
}

pub(crate) fn refused(v: &Volume, what: &str, wants: &str) -> super::Error {
    bad(format!(
        "Invalid volume: Volume {} status must be {wants} to {what}, but current status is: {}.",
        v.id,
        v.status.as_str()
    ))
}

impl VolumeService {
    /// `os-reserve`: an available volume is held for an attachment.
    pub async fn volume_reserve(&self, ctx: &AuthContext, id: &str, server: Option<&str>) -> AppResult<()> {
        self.volume_change(ctx, id, |v| {
            match v.status {
                VolumeStatus::Available if v.attachments.is_empty() => {}
                VolumeStatus::Attaching if server.is_some() && v.control.reserved_for.as_deref() == server => {}
                // A multiattach volume is reserved for one more server at a time.
                VolumeStatus::InUse if v.multiattach => {}
                _ => return Err(refused(v, "reserve", "available")),
            }
            if v.control.saga_id.is_some() {
                return Err(invalid(format!("Volume {} is busy with another task.", v.id)));
            }
            v.status = VolumeStatus::Attaching;
            v.control.reserved_for = server.map(str::to_string);
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// `os-unreserve`: a reservation that led to no attachment is given up.
    pub async fn volume_unreserve(&self, ctx: &AuthContext, id: &str) -> AppResult<()> {
        self.volume_change(ctx, id, |v| {
            if v.status == VolumeStatus::Attaching {
                v.status = if v.attachments.is_empty() { VolumeStatus::Available } else { VolumeStatus::InUse };
                v.control.reserved_for = None;
            }
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// `os-initialize_connection`: how the host the `connector` names reaches the
    /// volume (`connection_info`): its file, or a network export to that host alone.
    pub async fn volume_connection(&self, ctx: &AuthContext, id: &str, connector: &Value) -> AppResult<Value> {
        super::require_writer(ctx)?;
        connector_of(connector)?;
        let v = self.volume_get(ctx, id).await?;
        if !matches!(v.status, VolumeStatus::Attaching | VolumeStatus::InUse | VolumeStatus::Detaching) {
            return Err(refused(&v, "connect", "attaching or in-use"));
        }
        self.connection_info(&v, connector).await
    }

    /// The backend's `connection_info` for the host `connector` names, with the access
    /// mode and the front-end QoS specs.
    pub(crate) async fn connection_info(&self, v: &Volume, connector: &Value) -> AppResult<Value> {
        let to = Connector { shared: v.multiattach, ..connector_of(connector)? };
        let mut info = self.driver(&v.backend)?.connection(&v.id, to).await?;
        let readonly = v.metadata.get("readonly").and_then(Value::as_str) == Some("True");
        let qos = self.front_end_qos(v).await?;
        if let Some(data) = info.get_mut("data").and_then(Value::as_object_mut) {
            data.insert("access_mode".into(), Value::String(if readonly { "ro" } else { "rw" }.into()));
            if let Some(specs) = qos {
                data.insert("qos_specs".into(), Value::Object(specs));
            }
            if v.multiattach {
                // The guest's disk is shareable (libvirt's `<shareable/>`).
                data.insert("multiattach".into(), Value::Bool(true));
            }
        }
        Ok(info)
    }

    /// `os-terminate_connection`: the host the `connector` names let go of the volume;
    /// what was exported to it ends, unless another server on that host still has the
    /// (multiattach) volume. The connector may name the server letting go
    /// (`instance`, a Stratus extension); one that does not is taken to be the last.
    pub async fn volume_disconnect(&self, ctx: &AuthContext, id: &str, connector: &Value) -> AppResult<()> {
        super::require_writer(ctx)?;
        let v = self.volume_get(ctx, id).await?;
        // A connector naming no host (a server that never got one lets go of its
        // volumes) had nothing exported to it.
        let Ok(to) = connector_of(connector) else { return Ok(()) };
        let leaving = connector["instance"].as_str();
        let others = v
            .attachments
            .iter()
            .filter(|a| a.host_name.as_deref() == Some(to.host) && Some(a.server_id.as_str()) != leaving)
            .count();
        if v.multiattach && leaving.is_some() && others > 0 {
            return Ok(());
        }
        self.driver(&v.backend)?.disconnect(&v.id, to).await?;
        Ok(())
    }

    /// Keeps every backend serving the volumes that are attached or being attached
    /// or detached, and nothing else (the reconciler's pass).
    pub async fn volumes_keep_serving(&self) -> anyhow::Result<()> {
        let volumes = self.store.volume_list(None).await?;
        for (name, driver) in &self.drivers {
            let attached = volumes
                .iter()
                .filter(|v| &v.backend == name)
                .filter(|v| {
                    !v.attachments.is_empty()
                        || matches!(v.status, VolumeStatus::Attaching | VolumeStatus::InUse | VolumeStatus::Detaching)
                })
                .map(|v| v.id.clone())
                .collect();
            driver.keep_serving(&attached).await?;
        }
        Ok(())
    }

    /// `os-attach`: the server has the volume; it is in use.
    pub async fn volume_attach(&self, ctx: &AuthContext, id: &str, req: AttachRequest) -> AppResult<Volume> {
        let server =
            req.instance_uuid.filter(|s| !s.is_empty()).ok_or_else(|| bad("os-attach needs instance_uuid."))?;
        let mode = req.mode.unwrap_or_else(|| "rw".into());
        if !matches!(mode.as_str(), "rw" | "ro") {
            return Err(bad(format!("Invalid attach mode {mode}: use rw or ro.")));
        }
        let device = req.mountpoint.unwrap_or_default();
        self.volume_change(ctx, id, |v| {
            if v.attachments.iter().any(|a| a.server_id == server) {
                return Ok(());
            }
            // Reserved first (compute's flow), or straight from available (Cinder takes
            // that too).
            let more = v.multiattach && v.status == VolumeStatus::InUse;
            if !(more || matches!(v.status, VolumeStatus::Attaching | VolumeStatus::Available))
                || (!v.attachments.is_empty() && !v.multiattach)
            {
                return Err(refused(v, "attach", "available or attaching"));
            }
            if v.status == VolumeStatus::Available && v.control.saga_id.is_some() {
                return Err(invalid(format!("Volume {} is busy with another task.", v.id)));
            }
            v.attachments.push(Attachment {
                id: uuid::Uuid::new_v4().to_string(),
                server_id: server.clone(),
                host_name: req.host_name.clone(),
                device: device.clone(),
                attached_at: now_text(),
                mode: mode.clone(),
                status: AttachStatus::Attached,
                connector: None,
                connection_info: None,
            });
            v.status = VolumeStatus::InUse;
            v.control.reserved_for = None;
            Ok(())
        })
        .await
    }

    /// `os-begin_detaching`: an in-use volume starts coming off its server.
    pub async fn volume_begin_detaching(&self, ctx: &AuthContext, id: &str) -> AppResult<()> {
        self.volume_change(ctx, id, |v| match v.status {
            VolumeStatus::InUse => {
                v.status = VolumeStatus::Detaching;
                Ok(())
            }
            VolumeStatus::Detaching => Ok(()),
            _ => Err(refused(v, "detach", "in-use")),
        })
        .await?;
        Ok(())
    }

    /// `os-roll_detaching`: a detach that failed leaves the volume in use (a
    /// multiattach volume stays in use through its other attachments' detaches too).
    pub async fn volume_roll_detaching(&self, ctx: &AuthContext, id: &str) -> AppResult<()> {
        self.volume_change(ctx, id, |v| {
            if v.status == VolumeStatus::Detaching {
                v.status = if v.attachments.is_empty() { VolumeStatus::Available } else { VolumeStatus::InUse };
            }
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// `os-detach`: the attachment (`attachment_id`, or the only one) is gone; a
    /// volume with none left is available.
    pub async fn volume_detach(&self, ctx: &AuthContext, id: &str, attachment: Option<&str>) -> AppResult<()> {
        self.volume_change(ctx, id, |v| {
            match attachment {
                Some(a) => v.attachments.retain(|x| x.id != a),
                None if v.attachments.len() <= 1 => v.attachments.clear(),
                None => return Err(bad("os-detach needs attachment_id: the volume has several attachments.")),
            }
            if v.attachments.is_empty()
                && matches!(v.status, VolumeStatus::InUse | VolumeStatus::Detaching | VolumeStatus::Attaching)
            {
                v.status = VolumeStatus::Available;
                v.control.reserved_for = None;
            } else if !v.attachments.is_empty() && v.status == VolumeStatus::Detaching {
                // Another server still has it.
                v.status = VolumeStatus::InUse;
            }
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// `os-force_detach` (admins): every attachment is dropped, whatever the hosts
    /// think, to recover a volume whose server is gone.
    pub async fn volume_force_detach(&self, ctx: &AuthContext, id: &str) -> AppResult<()> {
        super::require_admin(ctx, "volume_extension:volume_admin_actions:force_detach")?;
        self.volume_change(ctx, id, |v| {
            v.attachments.clear();
            // As Cinder's: a volume left with no attachment is available again, whatever
            // an operator set meanwhile, unless work on its bytes is under way.
            if v.control.saga_id.is_none() && v.status != VolumeStatus::Deleting {
                v.status = VolumeStatus::Available;
            }
            v.control.reserved_for = None;
            Ok(())
        })
        .await?;
        Ok(())
    }
}
