//! Server snapshots (`createImage`, `openstack server image create`) and backups
//! (`createBackup`, `openstack server backup create`): the server's root disk copied
//! into a new image of the caller's project (a server booted from a volume:
//! `volume_snapshots`). A backup is a snapshot with a type
//! (`daily`, `weekly`, …) and a rotation: once it is uploaded, the server's backups of
//! that type beyond the newest `rotation` are deleted.
//!
//! The request records the snapshot on the server first (task `image_snapshot`, the
//! image's id chosen here) and only then makes the image, `queued`, as the caller (so
//! the image service's policy and quotas are the caller's); the host's agent copies the
//! disk and uploads it into that image (`Op::Snapshot`). The agent's answer ends the
//! task; a failed snapshot's image is deleted. A crash anywhere leaves a server whose
//! task the reconciler sends again (the agent answers done for an image already
//! uploaded, and fails for one never made or deleted, which ends the task).

use super::{bad, conflict, forbidden, AppResult, ComputeService};
use crate::clients::CallError;
use crate::store::{Backup, Server, TaskState, VmState};
use serde_json::{json, Map, Value};
use stratus_common::auth::AuthContext;
use stratus_common::image_cache::{image_properties, IMAGE_FIELDS};
use stratus_compute_protocol::{CommandResult, GuestSpec, Op};

/// Properties of the server's image a snapshot does not take over (beside the image
/// service's own fields): what marks a snapshot's origin, or one image's signature.
pub(crate) const NOT_INHERITED: &[&str] = &[
    "image_type",
    "instance_uuid",
    "base_image_ref",
    "user_id",
    "owner_id",
    "backup_type",
    "cache_in_nova",
    "bittorrent",
    "img_signature",
    "img_signature_hash_method",
    "img_signature_key_type",
    "img_signature_certificate_uuid",
];

impl ComputeService {
    /// `createImage` (`backup`: `createBackup`): starts a snapshot of the server into a
    /// new image named `name` with `metadata` among its properties; answers the image's
    /// id at once (the image is `queued` until the upload ends, then `active`).
    pub async fn server_snapshot(
        &self,
        ctx: &AuthContext,
        id: &str,
        name: &str,
        metadata: &Map<String, Value>,
        backup: Option<Backup>,
        request_id: &str,
    ) -> AppResult<String> {
        let action = if backup.is_some() { "createBackup" } else { "createImage" };
        if let Some(b) = &backup {
            if b.backup_type.trim().is_empty() || b.backup_type.chars().count() > 255 {
                return Err(bad("Invalid input for field/attribute backup_type: 1 to 255 characters."));
            }
            if b.rotation < 0 {
                return Err(bad("Invalid input for field/attribute rotation: 0 or more."));
            }
        }
        if name.trim().is_empty() || name.chars().count() > 255 {
            return Err(bad(
                "Invalid input for field/attribute name: an image name of 1 to 255 characters is required.",
            ));
        }
        if metadata.len() > 128 {
            return Err(forbidden("Quota exceeded for metadata items: at most 128."));
        }
        for (k, v) in metadata {
            if IMAGE_FIELDS.contains(&k.as_str()) {
                return Err(bad(format!(
                    "Invalid input for field/attribute metadata: {k:?} is the image service's own field, not a property."
                )));
            }
            if k.is_empty() || k.chars().count() > 255 || v.as_str().is_none_or(|v| v.chars().count() > 255) {
                return Err(bad(format!(
                    "Invalid input for field/attribute metadata: {k:?} must be a key of 1 to 255 characters with a string value of at most 255."
                )));
            }
        }
        let mut server = self.server_for_action(ctx, id).await?;
        self.refuse_on_bare_metal(&server, action)?;
        if super::volumes::boot_volume_of(&server).is_some() {
            if backup.is_some() {
                return Err(bad("Backup is not supported for volume-backed instances."));
            }
            return self.volume_backed_snapshot(ctx, &server, name, metadata, request_id).await;
        }
        let state_ok = matches!(server.vm_state, VmState::Active | VmState::Stopped | VmState::Paused);
        if !state_ok || server.busy() {
            return Err(conflict(format!(
                "Cannot '{action}' instance {id} while it is in vm_state {} and task_state {}",
                server.vm_state,
                server.task_state.map_or("None", TaskState::as_str)
            )));
        }
        let base_ref = server.str("image_id").to_string();
        // The server's image, as the caller sees it, gives its properties (a kernel and
        // ramdisk to boot with, an admin user): one deleted since gives none.
        let base = match self.clients.image(&ctx.token, &base_ref).await {
            Ok(image) => image,
            Err(CallError::Refused(_, _)) => json!({}),
            Err(CallError::Unavailable(m)) => return Err(super::unavailable(m)),
        };
        let image_id = uuid::Uuid::new_v4().to_string();
        let mut image = Map::new();
        for (k, v) in image_properties(&base).filter(|(k, _)| !NOT_INHERITED.contains(&k.as_str())) {
            image.insert(k.clone(), v.clone());
        }
        let min_disk = super::as_int(&base["min_disk"]).unwrap_or(0).max(server.disk);
        image.extend(
            json!({
                "id": image_id, "name": name, "container_format": "bare",
                "disk_format": base["disk_format"].as_str().filter(|f| *f == "qcow2" || *f == "raw").unwrap_or("qcow2"),
                "visibility": "private", "min_disk": min_disk,
                "min_ram": super::as_int(&base["min_ram"]).unwrap_or(0),
                "image_type": if backup.is_some() { "backup" } else { "snapshot" },
                "instance_uuid": server.id.as_str(), "base_image_ref": base_ref,
                "user_id": ctx.user_id(), "owner_id": server.project_id.as_str(),
            })
            .as_object()
            .cloned()
            .unwrap_or_default(),
        );
        if let Some(b) = &backup {
            image.insert("backup_type".into(), json!(b.backup_type));
        }
        // The request's metadata comes last, as in Nova: it may set any property.
        image.extend(metadata.clone());
        // Recorded before the image exists: a crash now leaves a task the reconciler
        // ends (the agent finds no image), never an image nobody tracks.
        server.task_state = Some(TaskState::ImageSnapshot);
        server.control.snapshot_image = Some(image_id.clone());
        server.control.backup = backup;
        if !self.store.server_save(&mut server, Some(None)).await? {
            return Err(conflict(format!("Instance {id} is busy with another task.")));
        }
        if let Err(e) = self.clients.image_create(&ctx.token, Value::Object(image)).await {
            server.task_state = None;
            server.control.snapshot_image = None;
            server.control.backup = None;
            self.save(&mut server).await?;
            return Err(super::servers::refused_or_forbidden("The snapshot image", e));
        }
        self.start_action(ctx, &server, action, request_id).await;
        self.notify(if server.control.backup.is_some() { "backup.start" } else { "snapshot.start" }, &server).await;
        let spec = GuestSpec { snapshot_image: Some(image_id.clone()), ..Default::default() };
        if let Err(e) = self.send(&mut server, Op::Snapshot, Some(spec)).await {
            tracing::warn!(error = %e, "cannot send a snapshot command now; the reconciler will");
        }
        Ok(image_id)
    }

    /// The agent's answer to a snapshot: the task ends; a failed snapshot's image goes;
    /// a backup's older siblings beyond its rotation go.
    pub(crate) async fn snapshot_done(&self, mut server: Server, r: &CommandResult) -> anyhow::Result<()> {
        let image = server.control.snapshot_image.take();
        let backup = server.control.backup.take();
        server.task_state = None;
        self.save(&mut server).await?;
        if let (Some(e), Some(image)) = (&r.error, &image) {
            tracing::warn!(server = %server.id, image, error = %e, "the snapshot failed; its image is deleted");
            if let Err(e) = self.clients.image_delete(image).await {
                tracing::warn!(image, error = %e, "cannot delete a failed snapshot's image");
            }
        }
        if let (None, Some(b)) = (&r.error, &backup) {
            if let Err(e) = self.rotate_backups(&server, b).await {
                tracing::warn!(server = %server.id, error = %e, "cannot rotate the server's backups");
            }
        }
        let action = if backup.is_some() { "createBackup" } else { "createImage" };
        self.finish_action(&server, action, r.error.as_deref()).await;
        self.notify(if backup.is_some() { "backup.end" } else { "snapshot.end" }, &server).await;
        Ok(())
    }

    /// Deletes the server's backups of `b.backup_type` beyond the newest `b.rotation`
    /// (all of them, not only the one just pushed out: a rotation a crash cut short is
    /// finished by the next backup's).
    async fn rotate_backups(&self, server: &Server, b: &Backup) -> Result<(), CallError> {
        // Newest first, in the image service's order (its times are finer than those it shows).
        let backups = self.clients.images_of_server(&server.id, "backup", &b.backup_type).await?;
        for old in backups.iter().skip(b.rotation.max(0) as usize) {
            if let Some(id) = old["id"].as_str() {
                tracing::info!(server = %server.id, image = id, "a backup beyond the rotation is deleted");
                self.clients.image_delete(id).await?;
            }
        }
        Ok(())
    }

    /// A snapshot left without an answer: sent again while its host is up, else ended
    /// as failed (its image deleted).
    pub(crate) async fn retry_snapshot(&self, server: &Server, host_up: bool) -> anyhow::Result<()> {
        let mut s = server.clone();
        match (&s.control.snapshot_image, host_up) {
            (Some(image), true) => {
                let spec = GuestSpec { snapshot_image: Some(image.clone()), ..Default::default() };
                self.send(&mut s, Op::Snapshot, Some(spec)).await
            }
            _ => {
                let r = CommandResult {
                    action_id: String::new(),
                    server_id: s.id.clone(),
                    host: s.host.clone().unwrap_or_default(),
                    op: Op::Snapshot,
                    error: Some("the server's host is down".into()),
                    power_state: s.power_state,
                };
                s.control.command = None;
                self.snapshot_done(s, &r).await
            }
        }
    }
}
