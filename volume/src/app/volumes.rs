//! Volumes: create (empty, or a copy of a snapshot or another volume), show, list,
//! update, extend and delete. The work on the backend is done by sagas
//! (`sagas.rs`); a request writes the volume, its quota claim and its saga in one
//! transaction, so a request that cannot fit changes nothing.

use super::quotas::{as_refs, type_releases};
use super::sagas::{self, ExtendData};
use super::{bad, invalid, not_found, project_of, require_writer, visible, AppResult, Error, VolumeService, ZONE};
use crate::store::{SnapshotStatus, Store, Volume, VolumeStatus, VolumeType, USAGE};
use serde::Deserialize;
use serde_json::{Map, Value};
use stratus_common::auth::AuthContext;
use stratus_common::saga::NoData;

/// `POST /volumes` (`volume`): clients send many keys as `null`; all are accepted.
#[derive(Debug, Default, Deserialize)]
pub struct VolumeCreate {
    pub size: Option<Value>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub volume_type: Option<String>,
    pub snapshot_id: Option<String>,
    pub source_volid: Option<String>,
    #[serde(rename = "imageRef")]
    pub image_ref: Option<String>,
    pub backup_id: Option<String>,
    pub metadata: Option<Map<String, Value>>,
    pub availability_zone: Option<String>,
    pub multiattach: Option<bool>,
    /// The group it goes into (3.13).
    pub group_id: Option<String>,
    /// The request's id, for a user message if no backend takes the volume.
    #[serde(skip)]
    pub request_id: String,
}

/// `PUT /volumes/{id}` (`volume`).
#[derive(Debug, Default, Deserialize)]
pub struct VolumeUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub metadata: Option<Map<String, Value>>,
    #[serde(rename = "display_name")]
    pub display_name: Option<String>,
    #[serde(rename = "display_description")]
    pub display_description: Option<String>,
}

pub(crate) fn check_text(what: &str, v: &str) -> AppResult<()> {
    if v.chars().count() > 255 {
        return Err(bad(format!("Invalid input: {what} has more than 255 characters.")));
    }
    Ok(())
}

pub(crate) fn check_metadata(m: &Map<String, Value>) -> AppResult<()> {
    for (k, v) in m {
        if k.is_empty() || k.chars().count() > 255 {
            return Err(bad("Metadata keys must be 1-255 characters."));
        }
        match v.as_str() {
            Some(s) if s.chars().count() <= 255 => {}
            _ => return Err(bad(format!("Metadata value of {k} must be a string of at most 255 characters."))),
        }
    }
    Ok(())
}

fn size_of(v: &Value) -> AppResult<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .filter(|n| *n >= 1 && *n <= 16_384)
        .ok_or_else(|| bad(format!("Invalid input received: size must be an integer from 1 to 16384 (GiB), not {v}.")))
}

impl VolumeService {
    /// A volume the caller may see (deleted ones are gone).
    pub async fn volume_get(&self, ctx: &AuthContext, id: &str) -> AppResult<Volume> {
        match self.store.volume_get(id).await? {
            Some(v) if !v.deleted && visible(ctx, &v.project_id) => Ok(v),
            _ => Err(not_found("Volume", id)),
        }
    }

    /// The caller's project's volumes, or every project's for an admin asking for all.
    pub async fn volume_list(&self, ctx: &AuthContext, all_projects: bool) -> AppResult<Vec<Volume>> {
        if all_projects && ctx.is_admin() {
            return Ok(self.store.volume_list(None).await?);
        }
        let project = project_of(ctx)?;
        Ok(self.store.volume_list(Some(&project)).await?)
    }

    /// Makes a volume in `project`: the caller's own, or (admins) any.
    pub async fn volume_create(&self, ctx: &AuthContext, project: &str, mut req: VolumeCreate) -> AppResult<Volume> {
        require_writer(ctx)?;
        let own = project_of(ctx)?;
        if project != own && !ctx.is_admin() {
            return Err(Error::Forbidden(format!("Policy doesn't allow volumes to be made in project {project}.")));
        }
        let project = project.to_string();
        if let Some(z) = req.availability_zone.as_deref().filter(|z| *z != ZONE) {
            return Err(bad(format!("Availability zone '{z}' is invalid.")));
        }
        let name = req.name.unwrap_or_default();
        let description = req.description.unwrap_or_default();
        check_text("name", &name)?;
        check_text("description", &description)?;
        let metadata = req.metadata.unwrap_or_default();
        check_metadata(&metadata)?;
        let sources =
            [req.snapshot_id.is_some(), req.source_volid.is_some(), req.image_ref.is_some(), req.backup_id.is_some()];
        if sources.iter().filter(|s| **s).count() > 1 {
            return Err(bad("A volume is made from one snapshot, volume, image or backup, not several."));
        }
        let mut image = match &req.image_ref {
            Some(id) => Some(self.image_facts(ctx, id).await?),
            None => None,
        };
        // An image that stands for a volume-backed server's snapshot (3.46): the
        // volume is made from the root volume's snapshot it names.
        if let Some(snapshot) = image.as_ref().and_then(|i| i.root_snapshot.clone()) {
            image = None;
            req.image_ref = None;
            req.snapshot_id = Some(snapshot);
        }
        // From a backup (3.47): restored into the new volume, of the backup's size at least.
        let backup = match &req.backup_id {
            Some(b) => {
                let b = self.backup_get(ctx, b).await?;
                if b.status != crate::store::BackupStatus::Available {
                    return Err(bad(format!(
                        "Invalid backup: backup {} is {}, not available.",
                        b.id,
                        b.status.as_str()
                    )));
                }
                Some(b)
            }
            None => None,
        };
        // What it copies, which the caller must be able to see, settled.
        let mut source_size = None;
        let mut source_type = None;
        let mut source_backend = None;
        // A copy is bootable, and shows the image it came from, as its source does.
        let mut source_boot = (false, serde_json::Map::new());
        if let Some(sid) = &req.snapshot_id {
            let s = self.snapshot_get(ctx, sid).await?;
            if s.status != SnapshotStatus::Available {
                return Err(bad(format!("Invalid snapshot: snapshot {sid} is {}, not available.", s.status.as_str())));
            }
            let v = self.store.volume_get(&s.volume_id).await?.ok_or_else(|| not_found("Volume", &s.volume_id))?;
            source_boot = (v.bootable, v.image_meta.clone());
            (source_size, source_type, source_backend) = (Some(s.size), Some(v.type_id), Some(v.backend));
        }
        if let Some(vid) = &req.source_volid {
            let v = self.volume_get(ctx, vid).await?;
            if v.status != VolumeStatus::Available {
                return Err(bad(format!("Invalid volume: volume {vid} is {}, not available.", v.status.as_str())));
            }
            source_boot = (v.bootable, v.image_meta.clone());
            (source_size, source_type, source_backend) = (Some(v.size), Some(v.type_id), Some(v.backend));
        }
        if let Some(img) = &image {
            source_size = Some(img.min_gib);
        }
        if let Some(b) = &backup {
            source_size = Some(b.size);
        }
        let size = match (&req.size, source_size) {
            (Some(v), _) if !v.is_null() => size_of(v)?,
            (_, Some(n)) => n,
            _ => return Err(bad("Invalid input received: a volume needs a size (GiB).")),
        };
        if let Some(n) = source_size.filter(|n| size < *n) {
            return Err(bad(format!("Invalid input received: size {size} is smaller than the source's {n} GiB.")));
        }
        let vtype: VolumeType = match (&req.volume_type, &source_type) {
            (Some(t), _) => self.type_get(ctx, t).await.map_err(|_| not_found("Volume type", t))?,
            (None, Some(id)) => self.store.type_get(id).await?.ok_or_else(|| not_found("Volume type", id))?,
            (None, None) => self.type_get(ctx, super::DEFAULT_TYPE).await?,
        };
        // Several servers may have it at once when its type says so (the request's own
        // `multiattach` flag is Cinder's old way, refused there too).
        if req.multiattach == Some(true) && !super::types::multiattach(&vtype) {
            return Err(bad(format!(
                "Invalid input: a multiattach volume is made with a volume type whose extra spec multiattach is \"<is> True\"; type {} is not one.",
                vtype.name
            )));
        }
        // 3.52's reserved key: the zones a type's volumes may be made in.
        if let Some(zones) = vtype.extra_specs.get("RESKEY:availability_zones").and_then(Value::as_str) {
            if !zones.split(',').any(|z| z.trim() == ZONE) {
                return Err(bad(format!(
                    "Invalid input received: volume type {} allows availability zones {zones}; this cloud's is {ZONE}.",
                    vtype.name
                )));
            }
        }
        let group = match &req.group_id {
            Some(g) => Some(self.group_for_volume(ctx, g, &vtype.id).await?.id),
            None => None,
        };
        self.check_volume_size(&project, size).await?;
        // A copy stays on its source's backend; anything else is scheduled, and a
        // volume no backend can take is made in error, with a message saying why.
        let placed = match source_backend {
            Some(b) => Ok(b),
            None => self.schedule(&vtype, size).await?,
        };
        let saga = match &backup {
            Some(b) => Self::new_saga(
                super::backup_sagas::BACKUP_RESTORE,
                "",
                &super::backup_sagas::RestoreData { backup_id: b.id.clone(), data_id: b.data_id.clone(), made: true },
            ),
            None => Self::new_saga(sagas::CREATE, "", &NoData {}),
        };
        let mut volume =
            Volume::fresh(&project, ctx.user_id(), name, size, &vtype.id, &placed.clone().unwrap_or_default());
        volume.description = description;
        if placed.is_err() {
            volume.status = VolumeStatus::Error;
        }
        volume.bootable = image.is_some() || source_boot.0;
        volume.source_volid = req.source_volid.clone();
        volume.snapshot_id = req.snapshot_id.clone();
        volume.metadata = metadata;
        volume.image_id = req.image_ref.clone();
        volume.image_meta = image.map(|i| i.meta).unwrap_or(source_boot.1);
        volume.control.saga_id = Some(saga.id.clone());
        volume.multiattach = super::types::multiattach(&vtype);
        volume.group_id = group;
        let mut saga = saga;
        saga.subject = volume.id.clone();
        let claims = self.claims(&project, &[("volumes", 1), ("gigabytes", size)], &volume.type_id).await?;
        let mut tx = self.store.db.pool.begin().await?;
        if !super::quotas::claim_in(&mut tx, &project, &claims).await? {
            drop(tx);
            return Err(self.over_quota(&project, &claims).await);
        }
        if let Err(why) = &placed {
            volume.control.saga_id = None;
            Store::volume_insert_in(&mut tx, &volume).await?;
            let m = super::messages::message(&project, &req.request_id, &volume.id, &super::messages::NO_BACKEND, why);
            Store::message_insert_in(&mut tx, &m).await?;
            tx.commit().await?;
            tracing::warn!(volume = %volume.id, reason = %why, "no backend can take the volume");
            self.notify("create.end", &volume.id, &project, "error").await;
            return Ok(volume);
        }
        Store::volume_insert_in(&mut tx, &volume).await?;
        if let Some(mut b) = backup {
            // The backup is being read until the volume holds it.
            b.status = crate::store::BackupStatus::Restoring;
            if !Store::backup_save_in(&mut tx, &b).await? {
                return Err(invalid(format!("Backup {} changed while the request ran; try again.", b.id)));
            }
        }
        self.sagas.insert_saga(&mut tx, &saga).await?;
        tx.commit().await?;
        self.notify("create.start", &volume.id, &project, "creating").await;
        self.run(saga);
        Ok(volume)
    }

    /// Applies `change` to a fresh copy of a volume of the caller's, saving it with a
    /// revision check (retried when a saga step saved it meanwhile).
    pub(crate) async fn volume_change<F>(&self, ctx: &AuthContext, id: &str, mut change: F) -> AppResult<Volume>
    where
        F: FnMut(&mut Volume) -> AppResult<()>,
    {
        require_writer(ctx)?;
        for _ in 0..10 {
            let mut v = self.volume_get(ctx, id).await?;
            change(&mut v)?;
            if self.store.volume_save(&mut v).await? {
                return Ok(v);
            }
        }
        Err(invalid(format!("Volume {id} changed while the request ran; try again.")))
    }

    pub async fn volume_update(&self, ctx: &AuthContext, id: &str, req: VolumeUpdate) -> AppResult<Volume> {
        let name = req.name.or(req.display_name);
        let description = req.description.or(req.display_description);
        if let Some(n) = &name {
            check_text("name", n)?;
        }
        if let Some(d) = &description {
            check_text("description", d)?;
        }
        if let Some(m) = &req.metadata {
            check_metadata(m)?;
        }
        self.volume_change(ctx, id, |v| {
            if let Some(n) = &name {
                v.name = n.clone();
            }
            if let Some(d) = &description {
                v.description = d.clone();
            }
            if let Some(m) = &req.metadata {
                v.metadata = m.clone();
            }
            Ok(())
        })
        .await
    }

    /// Sets (`replace`: replaces) metadata; answers all of it.
    pub async fn volume_metadata_set(
        &self,
        ctx: &AuthContext,
        id: &str,
        items: Map<String, Value>,
        replace: bool,
    ) -> AppResult<Map<String, Value>> {
        check_metadata(&items)?;
        let v = self
            .volume_change(ctx, id, |v| {
                if replace {
                    v.metadata = items.clone();
                } else {
                    v.metadata.extend(items.clone());
                }
                Ok(())
            })
            .await?;
        Ok(v.metadata)
    }

    /// `os-set_image_metadata`: adds to or changes what the volume shows of its image
    /// (`volume_image_metadata`). Compute checks a boot volume's `kernel_id` and
    /// `ramdisk_id` with the booting project's rights, so naming one grants nothing.
    pub async fn volume_image_metadata_set(
        &self,
        ctx: &AuthContext,
        id: &str,
        items: &serde_json::Map<String, Value>,
    ) -> AppResult<serde_json::Map<String, Value>> {
        require_writer(ctx)?;
        check_metadata(items)?;
        let v = self
            .volume_change(ctx, id, |v| {
                v.image_meta.extend(items.clone());
                Ok(())
            })
            .await?;
        Ok(v.image_meta)
    }

    /// `os-unset_image_metadata`: removes one key of what the volume shows of its image.
    pub async fn volume_image_metadata_unset(&self, ctx: &AuthContext, id: &str, key: &str) -> AppResult<()> {
        require_writer(ctx)?;
        self.volume_change(ctx, id, |v| {
            v.image_meta.remove(key).map(|_| ()).ok_or_else(|| not_found("Volume image metadata key", key))
        })
        .await?;
        Ok(())
    }

    pub async fn volume_metadata_unset(&self, ctx: &AuthContext, id: &str, key: &str) -> AppResult<()> {
        self.volume_change(ctx, id, |v| {
            v.metadata.remove(key).map(|_| ()).ok_or_else(|| not_found("Volume metadata key", key))
        })
        .await?;
        Ok(())
    }

    /// `os-reset_status` (admins): sets a volume's status by hand, any of Cinder's, as
    /// Cinder's does, to recover one whose saga is stuck; the saga itself is left as it
    /// is (one that goes on finds the volume no longer its own).
    /// `attach_status: detached` also drops its attachments (for a volume whose server
    /// is gone beyond repair).
    pub async fn volume_reset_status(
        &self,
        ctx: &AuthContext,
        id: &str,
        status: Option<&str>,
        attach_status: Option<&str>,
    ) -> AppResult<()> {
        super::require_admin(ctx, "volume_extension:volume_admin_actions:reset_status")?;
        let status = match status {
            None => None,
            Some(s) => Some(serde_json::from_value::<VolumeStatus>(serde_json::json!(s)).map_err(|_| {
                bad(format!(
                    "Invalid status {s}: use one of Cinder's volume statuses (available, error, maintenance, ...)."
                ))
            })?),
        };
        let detach = match attach_status {
            None => false,
            Some("detached") => true,
            Some(other) => return Err(bad(format!("Invalid attach_status {other}: only detached can be set."))),
        };
        self.volume_change(ctx, id, |v| {
            if detach {
                v.attachments.clear();
                v.control.reserved_for = None;
            }
            if let Some(st) = status {
                if st == VolumeStatus::Available && !v.attachments.is_empty() {
                    return Err(bad("The volume is still attached: reset attach_status to detached as well."));
                }
                v.status = st;
            } else if detach
                && matches!(v.status, VolumeStatus::InUse | VolumeStatus::Attaching | VolumeStatus::Detaching)
            {
                v.status = VolumeStatus::Available;
            }
            Ok(())
        })
        .await?;
        Ok(())
    }

    pub async fn volume_set_bootable(&self, ctx: &AuthContext, id: &str, bootable: bool) -> AppResult<()> {
        self.volume_change(ctx, id, |v| {
            v.bootable = bootable;
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// `os-update_readonly_flag`: recorded, as Cinder does, as the `readonly` metadata
    /// item ("True" / "False"); connections to the volume then say `access_mode: ro`.
    pub async fn volume_set_readonly(&self, ctx: &AuthContext, id: &str, readonly: bool) -> AppResult<()> {
        require_writer(ctx)?;
        self.volume_change(ctx, id, |v| {
            v.metadata.insert("readonly".into(), Value::String(if readonly { "True" } else { "False" }.into()));
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// `os-retype`: the volume takes another type it may use. Only a retype without
    /// migration is offered: the new type must put its volumes on the backend the
    /// volume is on (`migration_policy` `on-demand` is accepted and changes nothing
    /// about that). An attached volume keeps its type's front-end QoS: a type with
    /// other QoS specs is refused for it, as Cinder does.
    pub async fn volume_retype(&self, ctx: &AuthContext, id: &str, new_type: &str, policy: &str) -> AppResult<()> {
        if !matches!(policy, "never" | "on-demand") {
            return Err(bad(format!("Invalid migration_policy {policy}: 'never' or 'on-demand'.")));
        }
        let t = self.type_get(ctx, new_type).await?;
        require_writer(ctx)?;
        for _ in 0..10 {
            let mut v = self.volume_get(ctx, id).await?;
            let old_type = self.store.type_get(&v.type_id).await?;
            if !matches!(v.status, VolumeStatus::Available | VolumeStatus::InUse) {
                return Err(bad(format!(
                    "Volume {id} status must be available or in-use to retype, but it is {}.",
                    v.status.as_str()
                )));
            }
            if v.type_id == t.id {
                return Err(bad("New volume type must be different from the original volume type."));
            }
            if let Err(why) = self.backend_suits(&v.backend, &t).await? {
                return Err(bad(format!(
                    "Retype to {} needs a migration: backend {} does not suit the type ({why}), and this cloud \
                     does not migrate volumes.",
                    t.name, v.backend
                )));
            }
            let old_qos = old_type.as_ref().filter(|o| o.id == v.type_id).map(|o| o.qos_specs_id.as_str());
            if v.status == VolumeStatus::InUse && old_qos != Some(t.qos_specs_id.as_str()) {
                return Err(bad("Retype cannot change the QoS specs of an in-use volume."));
            }
            if let Some(g) = v.group_id.as_deref() {
                let group = self.store.group_get(g).await?;
                if group.is_some_and(|g| !g.deleted && !g.volume_type_ids.contains(&t.id)) {
                    return Err(bad(format!(
                        "Invalid volume type: volume {id} is in group {g}, which does not take type {}.",
                        t.name
                    )));
                }
            }
            let multiattach = super::types::multiattach(&t);
            if v.status == VolumeStatus::InUse && multiattach != v.multiattach {
                return Err(bad("Retype cannot change whether an in-use volume is multiattach."));
            }
            v.multiattach = multiattach;
            // As Cinder: its snapshots counted in the old type, and stay of it.
            if !self.store.snapshot_list(None, Some(&v.id)).await?.is_empty() {
                return Err(bad(format!("Invalid volume: Volume {id} has snapshots; it cannot be retyped.")));
            }
            // The volume's use moves from the old type's quotas to the new one's, in
            // the transaction that changes its type.
            let wants = [("volumes", 1), ("gigabytes", v.size)];
            let claims = self.type_claims(&v.project_id, &wants, &t.id).await?;
            let given = type_releases(&wants, &v.type_id);
            let old_type_id = std::mem::replace(&mut v.type_id, t.id.clone());
            let mut tx = self.store.db.pool.begin().await?;
            if !super::quotas::claim_in(&mut tx, &v.project_id, &claims).await? {
                drop(tx);
                return Err(self.over_quota(&v.project_id, &claims).await);
            }
            stratus_common::db::usage::release(&mut tx, USAGE, &v.project_id, &as_refs(&given)).await?;
            if !Store::volume_save_in(&mut tx, &v).await? {
                continue;
            }
            tx.commit().await?;
            tracing::info!(volume = %v.id, from = %old_type_id, to = %t.id, "volume retyped");
            return Ok(());
        }
        Err(invalid(format!("Volume {id} changed while the request ran; try again.")))
    }

    /// Starts deleting a settled volume with no snapshots.
    /// Deletes a volume; with `cascade`, its snapshots with it (each by its own delete
    /// saga; the volume's waits for them).
    pub async fn volume_delete(&self, ctx: &AuthContext, id: &str, cascade: bool) -> AppResult<()> {
        self.volume_delete_as(ctx, id, false, cascade).await
    }

    /// `os-force_delete` (admins): deletes a volume whatever its status, unless it is
    /// attached (detach it first, or `os-force_detach`).
    pub async fn volume_force_delete(&self, ctx: &AuthContext, id: &str) -> AppResult<()> {
        super::require_admin(ctx, "volume_extension:volume_admin_actions:force_delete")?;
        self.volume_delete_as(ctx, id, true, false).await
    }

    async fn volume_delete_as(&self, ctx: &AuthContext, id: &str, force: bool, cascade: bool) -> AppResult<()> {
        require_writer(ctx)?;
        for _ in 0..10 {
            let v = self.volume_get(ctx, id).await?;
            if self.volume_delete_start(v, force, cascade).await? {
                return Ok(());
            }
        }
        Err(invalid(format!("Volume {id} changed while the request ran; try again.")))
    }

    /// Starts deleting volume `v` (as read just before; the caller decided it may):
    /// its delete saga, and with `cascade` its snapshots', written in one transaction.
    /// False when the volume changed since it was read (read it again and retry).
    pub(crate) async fn volume_delete_start(&self, mut v: Volume, force: bool, cascade: bool) -> AppResult<bool> {
        let id = v.id.clone();
        if force && !v.attachments.is_empty() {
            return Err(bad(format!("Invalid volume: Volume {id} is attached: detach it first.")));
        }
        if force && v.status == VolumeStatus::Deleting && v.control.saga_id.is_some() {
            return Ok(true);
        }
        if !(force || v.status.settled() || v.status == VolumeStatus::ErrorDeleting) {
            return Err(bad(format!(
                "Invalid volume: Volume status must be available or error or error_extending, but current status is: {}.",
                v.status.as_str()
            )));
        }
        let mut snaps = self.store.snapshot_list(None, Some(&v.id)).await?;
        if !snaps.is_empty() && !cascade {
            return Err(bad(format!("Invalid volume: Volume {id} still has {} dependent snapshots.", snaps.len())));
        }
        if let Some(busy) = snaps.iter().find(|sn| {
            !matches!(sn.status, SnapshotStatus::Available | SnapshotStatus::Error | SnapshotStatus::ErrorDeleting)
        }) {
            return Err(bad(format!(
                "Invalid volume: its snapshot {} is {}: it cannot be deleted with the volume now.",
                busy.id,
                busy.status.as_str()
            )));
        }
        if self.store.volumes_from(&v.id).await? > 0 {
            return Err(bad(format!("Invalid volume: Volume {id} is being copied; try again when the copy is done.")));
        }
        let saga = Self::new_saga(sagas::DELETE, &v.id, &NoData {});
        v.status = VolumeStatus::Deleting;
        v.control.saga_id = Some(saga.id.clone());
        let mut tx = self.store.db.pool.begin().await?;
        if !Store::volume_save_in(&mut tx, &v).await? {
            return Ok(false);
        }
        let mut snap_sagas = Vec::new();
        for sn in &mut snaps {
            sn.status = SnapshotStatus::Deleting;
            if !Store::snapshot_save_in(&mut tx, sn).await? {
                return Ok(false);
            }
            let ss = Self::new_saga(sagas::SNAPSHOT_DELETE, &sn.id, &NoData {});
            self.sagas.insert_saga(&mut tx, &ss).await?;
            snap_sagas.push(ss);
        }
        self.sagas.insert_saga(&mut tx, &saga).await?;
        tx.commit().await?;
        for (sn, ss) in snaps.iter().zip(snap_sagas) {
            self.notify("snapshot.delete.start", &sn.id, &sn.project_id, "deleting").await;
            self.run(ss);
        }
        self.notify("delete.start", &v.id, &v.project_id, "deleting").await;
        self.run(saga);
        Ok(true)
    }

    /// Starts growing a volume to `new_size` GiB (the growth claimed now): an available
    /// one, or with `attached` (3.42) an in-use one, whose guest's disk the compute
    /// service grows (`app::online_extend`).
    pub async fn volume_extend(&self, ctx: &AuthContext, id: &str, new_size: &Value, attached: bool) -> AppResult<()> {
        require_writer(ctx)?;
        let new_size = size_of(new_size)?;
        for _ in 0..10 {
            let mut v = self.volume_get(ctx, id).await?;
            let server = match v.status {
                VolumeStatus::Available => None,
                VolumeStatus::InUse if attached => Some(self.extendable_attachment(&v)?),
                _ => {
                    let allowed = if attached { "available or in-use" } else { "available" };
                    return Err(bad(format!(
                        "Invalid volume: Volume status must be {allowed} to extend, but current status is: {}.",
                        v.status.as_str()
                    )));
                }
            };
            if new_size <= v.size {
                return Err(bad(format!(
                    "Invalid input received: New size for extend must be greater than current size. (current: {}, extended: {new_size}).",
                    v.size
                )));
            }
            self.check_volume_size(&v.project_id, new_size).await?;
            let data = ExtendData { new_size, server: server.clone(), from_size: v.size };
            let saga = Self::new_saga(sagas::EXTEND, &v.id, &data);
            let claims = self.claims(&v.project_id, &[("gigabytes", new_size - v.size)], &v.type_id).await?;
            v.status = VolumeStatus::Extending;
            v.control.saga_id = Some(saga.id.clone());
            if server.is_some() {
                // Compute reads the size to grow the guest's disk to, as Nova does
                // Cinder's; a failure takes it back.
                v.size = new_size;
                v.control.extend_asked_at = None;
                v.control.extend_result = None;
            }
            let mut tx = self.store.db.pool.begin().await?;
            if !super::quotas::claim_in(&mut tx, &v.project_id, &claims).await? {
                drop(tx);
                return Err(self.over_quota(&v.project_id, &claims).await);
            }
            if !Store::volume_save_in(&mut tx, &v).await? {
                continue;
            }
            self.sagas.insert_saga(&mut tx, &saga).await?;
            tx.commit().await?;
            self.notify("resize.start", &v.id, &v.project_id, "extending").await;
            self.run(saga);
            return Ok(());
        }
        Err(Error::InvalidState(format!("Volume {id} changed while the request ran; try again.")))
    }
}
