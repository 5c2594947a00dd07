//! Server snapshots (`createImage`, `openstack server image create`) and backups
//! (`createBackup`, `openstack server backup create`): the server's root disk copied
//! into a new image of the caller's project. A backup is a snapshot with a type
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
const NOT_INHERITED: &[&str] = &[
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
            if k.is_empty() || k.chars().count() > 255 || !v.is_string() {
                return Err(bad(format!(
                    "Invalid input for field/attribute metadata: {k:?} must be a key of 1 to 255 characters with a string value."
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
            return Err(match e {
                CallError::Refused(413, m) | CallError::Refused(403, m) => forbidden(m),
                e => super::servers::refused("The snapshot image", e),
            });
        }
        self.start_action(ctx, &server, action, request_id).await;
        self.notify(if server.control.backup.is_some() { "backup.start" } else { "snapshot.start" }, &server).await;
        let spec = GuestSpec { snapshot_image: Some(image_id.clone()), ..Default::default() };
        if let Err(e) = self.send(&mut server, Op::Snapshot, Some(spec)).await {
            tracing::warn!(error = %e, "cannot send a snapshot command now; the reconciler will");
        }
        Ok(image_id)
    }

    /// `createImage` of a server booted from a volume, as Nova's: each of its volumes
    /// is snapshotted (crash-consistent, `force`), and an image with no data stands for
    /// them, its `block_device_mapping` naming the snapshots (Nova's `bdm_v2` form). A
    /// server booted from that image boots from a new volume made from the root
    /// volume's snapshot. A failure midway deletes the snapshots made so far.
    async fn volume_backed_snapshot(
        &self,
        ctx: &AuthContext,
        server: &Server,
        name: &str,
        metadata: &Map<String, Value>,
        request_id: &str,
    ) -> AppResult<String> {
        let state_ok = matches!(server.vm_state, VmState::Active | VmState::Stopped | VmState::Paused);
        if !state_ok || server.busy() {
            return Err(conflict(format!(
                "Cannot 'createImage' instance {} while it is in vm_state {} and task_state {}",
                server.id,
                server.vm_state,
                server.task_state.map_or("None", TaskState::as_str)
            )));
        }
        let mut volumes = server.volumes();
        volumes.sort_by_key(|v| !v.boot);
        let mut made: Vec<(String, String)> = Vec::new();
        let outcome = self.snapshot_volumes(ctx, server, name, metadata, &volumes, &mut made).await;
        if outcome.is_err() {
            for (project, snapshot) in &made {
                let path = format!("/snapshots/{snapshot}");
                if let Err(e) =
                    self.clients.volume_call(&ctx.token, project, reqwest::Method::DELETE, &path, None).await
                {
                    tracing::warn!(snapshot, error = %e, "cannot delete the snapshot of a failed server snapshot");
                }
            }
        }
        let image_id = outcome?;
        self.start_action(ctx, server, "createImage", request_id).await;
        self.finish_action(server, "createImage", None).await;
        Ok(image_id)
    }

    /// The snapshots and the image of [`Self::volume_backed_snapshot`]; what it made
    /// goes into `made` (project, snapshot id) as it goes.
    async fn snapshot_volumes(
        &self,
        ctx: &AuthContext,
        server: &Server,
        name: &str,
        metadata: &Map<String, Value>,
        volumes: &[crate::store::AttachedVolume],
        made: &mut Vec<(String, String)>,
    ) -> AppResult<String> {
        let refused = |e: CallError| match e {
            CallError::Refused(413, m) | CallError::Refused(403, m) => forbidden(m),
            e => super::servers::refused("The snapshot", e),
        };
        let mut mappings = Vec::new();
        let mut root_meta = Map::new();
        for v in volumes {
            let project = v.project_id.as_str();
            let volume = self.clients.volume_as(&ctx.token, project, &v.volume_id).await.map_err(refused)?;
            if v.boot {
                root_meta = volume["volume_image_metadata"].as_object().cloned().unwrap_or_default();
            }
            let body = json!({"snapshot": {"volume_id": v.volume_id, "force": true, "name": format!("snapshot for {name}"),
                                           "description": format!("Made for the snapshot of server {}", server.id)}});
            let snap = self
                .clients
                .volume_call(&ctx.token, project, reqwest::Method::POST, "/snapshots", Some(body))
                .await
                .map_err(refused)?;
            let snapshot_id = snap["snapshot"]["id"].as_str().unwrap_or_default().to_string();
            made.push((project.to_string(), snapshot_id.clone()));
            mappings.push(json!({
                "source_type": "snapshot", "destination_type": "volume", "snapshot_id": snapshot_id,
                "volume_size": volume["size"], "boot_index": if v.boot { json!(0) } else { Value::Null },
                "delete_on_termination": v.delete_on_termination, "device_name": v.device, "device_type": "disk",
                "disk_bus": "virtio", "guest_format": null, "volume_type": null, "no_device": null, "image_id": null,
                "volume_id": null, "tag": v.tag,
            }));
        }
        let image_id = uuid::Uuid::new_v4().to_string();
        let mut image = Map::new();
        // What the root volume shows of its image (a kernel to boot with, ...), as Nova
        // keeps the instance's image properties.
        for (k, v) in root_meta
            .iter()
            .filter(|(k, _)| !IMAGE_FIELDS.contains(&k.as_str()) && !NOT_INHERITED.contains(&k.as_str()))
        {
            if k != "image_id" && k != "image_name" && k != "checksum" && k != "size" {
                image.insert(k.clone(), v.clone());
            }
        }
        let disk_format = root_meta.get("disk_format").and_then(Value::as_str).filter(|f| *f == "qcow2" || *f == "raw");
        image.extend(
            json!({
                "id": image_id, "name": name, "container_format": "bare", "disk_format": disk_format.unwrap_or("raw"),
                "visibility": "private", "image_type": "snapshot", "instance_uuid": server.id.as_str(),
                "user_id": ctx.user_id(), "owner_id": server.project_id.as_str(),
                "block_device_mapping": Value::Array(mappings).to_string(), "bdm_v2": "True",
                "root_device_name": "/dev/vda",
            })
            .as_object()
            .cloned()
            .unwrap_or_default(),
        );
        image.extend(metadata.clone());
        self.clients.image_create(&ctx.token, Value::Object(image)).await.map_err(refused)?;
        if let Err(e) = self.clients.image_activate_empty(&ctx.token, &image_id).await {
            if let Err(e) = self.clients.image_delete(&image_id).await {
                tracing::warn!(image = %image_id, error = %e, "cannot delete a failed server snapshot's image");
            }
            return Err(refused(e));
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
