//! Snapshots: a volume as it is now, kept apart from it (the file backend copies it),
//! to make new volumes from. Quota: `snapshots` and the snapshot's `gigabytes`.

use super::sagas;
use super::volumes::{check_metadata, check_text};
use super::{bad, invalid, not_found, project_of, require_writer, visible, AppResult, VolumeService};
use crate::store::{Snapshot, SnapshotStatus, Store, VolumeStatus};
use serde::Deserialize;
use serde_json::{Map, Value};
use stratus_common::auth::AuthContext;
use stratus_common::db::now_text;
use stratus_common::saga::NoData;

/// `POST /snapshots` (`snapshot`).
#[derive(Debug, Default, Deserialize)]
pub struct SnapshotCreate {
    pub volume_id: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    /// `true` lets an attached (in-use) volume be snapshotted, as Cinder's does; the
    /// copy is crash-consistent.
    pub force: Option<Value>,
    pub metadata: Option<Map<String, Value>>,
    /// The group snapshot it is made for (never from a request).
    #[serde(skip)]
    pub group_snapshot_id: Option<String>,
}

/// `PUT /snapshots/{id}` (`snapshot`).
#[derive(Debug, Default, Deserialize)]
pub struct SnapshotUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub display_name: Option<String>,
    pub display_description: Option<String>,
}

impl VolumeService {
    pub async fn snapshot_get(&self, ctx: &AuthContext, id: &str) -> AppResult<Snapshot> {
        match self.store.snapshot_get(id).await? {
            Some(s) if !s.deleted && visible(ctx, &s.project_id) => Ok(s),
            _ => Err(not_found("Snapshot", id)),
        }
    }

    pub async fn snapshot_list(&self, ctx: &AuthContext, all_projects: bool) -> AppResult<Vec<Snapshot>> {
        if all_projects && ctx.is_admin() {
            return Ok(self.store.snapshot_list(None, None).await?);
        }
        let project = project_of(ctx)?;
        Ok(self.store.snapshot_list(Some(&project), None).await?)
    }

    pub async fn snapshot_create(&self, ctx: &AuthContext, req: SnapshotCreate) -> AppResult<Snapshot> {
        require_writer(ctx)?;
        let project = project_of(ctx)?;
        // As Cinder: no volume named is a volume not found.
        let vid = req.volume_id.clone().ok_or_else(|| not_found("Volume", "None"))?;
        let v = self.volume_get(ctx, &vid).await?;
        let force = super::flag("force", req.force.as_ref())?;
        let ok = v.status == VolumeStatus::Available || (force && v.status == VolumeStatus::InUse);
        if !ok {
            return Err(bad(format!(
                "Invalid volume: Volume {vid} status must be available (or in-use with force), but current status is: {}.",
                v.status.as_str()
            )));
        }
        let name = req.name.unwrap_or_default();
        let description = req.description.unwrap_or_default();
        check_text("name", &name)?;
        check_text("description", &description)?;
        let metadata = req.metadata.unwrap_or_default();
        check_metadata(&metadata)?;
        let now = now_text();
        let snap = Snapshot {
            id: uuid::Uuid::new_v4().to_string(),
            // The snapshot belongs to the volume's project (an admin may snapshot any).
            project_id: v.project_id.clone(),
            user_id: ctx.user_id().to_string(),
            volume_id: v.id.clone(),
            name,
            description,
            size: v.size,
            status: SnapshotStatus::Creating,
            metadata,
            progress: String::new(),
            group_snapshot_id: req.group_snapshot_id.clone(),
            deleted: false,
            rev: 0,
            created_at: now.clone(),
            updated_at: now,
        };
        let _ = project;
        let saga = Self::new_saga(sagas::SNAPSHOT_CREATE, &snap.id, &NoData {});
        let claims = self.claims(&snap.project_id, &[("snapshots", 1), ("gigabytes", snap.size)], &v.type_id).await?;
        let mut tx = self.store.db.pool.begin().await?;
        if !super::quotas::claim_in(&mut tx, &snap.project_id, &claims).await? {
            drop(tx);
            return Err(self.over_quota(&snap.project_id, &claims).await);
        }
        Store::snapshot_insert_in(&mut tx, &snap).await?;
        self.sagas.insert_saga(&mut tx, &saga).await?;
        tx.commit().await?;
        self.notify("snapshot.create.start", &snap.id, &snap.project_id, "creating").await;
        self.run(saga);
        Ok(snap)
    }

    pub async fn snapshot_update(&self, ctx: &AuthContext, id: &str, req: SnapshotUpdate) -> AppResult<Snapshot> {
        require_writer(ctx)?;
        let name = req.name.or(req.display_name);
        let description = req.description.or(req.display_description);
        for (what, v) in [("name", &name), ("description", &description)] {
            if let Some(v) = v {
                check_text(what, v)?;
            }
        }
        for _ in 0..10 {
            let mut s = self.snapshot_get(ctx, id).await?;
            if let Some(n) = &name {
                s.name = n.clone();
            }
            if let Some(d) = &description {
                s.description = d.clone();
            }
            if self.store.snapshot_save(&mut s).await? {
                return Ok(s);
            }
        }
        Err(invalid(format!("Snapshot {id} changed while the request ran; try again.")))
    }

    /// Sets (merging, or replacing all with `replace`) or, with `remove`, deletes a
    /// snapshot's metadata; answers the metadata as it is after.
    pub async fn snapshot_metadata_change(
        &self,
        ctx: &AuthContext,
        id: &str,
        items: Map<String, Value>,
        replace: bool,
        remove: Option<&str>,
    ) -> AppResult<Map<String, Value>> {
        require_writer(ctx)?;
        super::volumes::check_metadata(&items)?;
        for _ in 0..10 {
            let mut s = self.snapshot_get(ctx, id).await?;
            if let Some(key) = remove {
                s.metadata.remove(key).ok_or_else(|| not_found("Snapshot metadata key", key))?;
            } else if replace {
                s.metadata = items.clone();
            } else {
                s.metadata.extend(items.clone());
            }
            if self.store.snapshot_save(&mut s).await? {
                return Ok(s.metadata);
            }
        }
        Err(invalid(format!("Snapshot {id} changed while the request ran; try again.")))
    }

    /// Changes a snapshot's status by hand: an admin to any of Cinder's
    /// (`os-reset_status`), or, for a snapshot being made or deleted, its project as
    /// Cinder lets a backend report (`os-update_snapshot_status`: creating → available
    /// or error, deleting → error_deleting, with a progress like `80%`).
    pub async fn snapshot_set_status(
        &self,
        ctx: &AuthContext,
        id: &str,
        status: &str,
        progress: Option<&str>,
        as_admin: bool,
    ) -> AppResult<()> {
        if as_admin {
            super::require_admin(ctx, "volume_extension:snapshot_admin_actions:reset_status")?;
        }
        require_writer(ctx)?;
        let new: SnapshotStatus = serde_json::from_value(serde_json::json!(status))
            .map_err(|_| bad(format!("Invalid status {status}: use one of Cinder's snapshot statuses.")))?;
        if let Some(p) = progress {
            let n = p.strip_suffix('%').and_then(|n| n.parse::<u8>().ok());
            if n.is_none_or(|n| n > 100) {
                return Err(bad(format!("Invalid progress {p}: a percentage like 80%.")));
            }
        }
        for _ in 0..10 {
            let mut s = self.snapshot_get(ctx, id).await?;
            if !as_admin {
                let allowed = match s.status {
                    SnapshotStatus::Creating => {
                        matches!(new, SnapshotStatus::Creating | SnapshotStatus::Available | SnapshotStatus::Error)
                    }
                    SnapshotStatus::Deleting => matches!(new, SnapshotStatus::Deleting | SnapshotStatus::ErrorDeleting),
                    _ => false,
                };
                if !allowed {
                    return Err(bad(format!(
                        "Snapshot status {} not allowed to go to {status}: only creating or deleting snapshots are reported on.",
                        s.status.as_str()
                    )));
                }
            }
            s.status = new;
            if let Some(p) = progress {
                s.progress = p.to_string();
            }
            if self.store.snapshot_save(&mut s).await? {
                return Ok(());
            }
        }
        Err(invalid(format!("Snapshot {id} changed while the request ran; try again.")))
    }

    pub async fn snapshot_delete(&self, ctx: &AuthContext, id: &str) -> AppResult<()> {
        self.snapshot_delete_as(ctx, id, false, false).await
    }

    /// `os-force_delete` (admins): deletes a snapshot whatever its status.
    pub async fn snapshot_force_delete(&self, ctx: &AuthContext, id: &str) -> AppResult<()> {
        super::require_admin(ctx, "volume_extension:snapshot_admin_actions:force_delete")?;
        self.snapshot_delete_as(ctx, id, true, false).await
    }

    /// Deletes a snapshot; one that is part of a group snapshot only as part of it
    /// (`of_group`).
    pub(crate) async fn snapshot_delete_as(
        &self,
        ctx: &AuthContext,
        id: &str,
        force: bool,
        of_group: bool,
    ) -> AppResult<()> {
        require_writer(ctx)?;
        for _ in 0..10 {
            let s = self.snapshot_get(ctx, id).await?;
            if self.snapshot_delete_start(s, force, of_group).await? {
                return Ok(());
            }
        }
        Err(invalid(format!("Snapshot {id} changed while the request ran; try again.")))
    }

    /// Starts deleting snapshot `s` (as read just before; the caller decided it may).
    /// False when it changed since it was read (read it again and retry).
    pub(crate) async fn snapshot_delete_start(&self, mut s: Snapshot, force: bool, of_group: bool) -> AppResult<bool> {
        let id = s.id.clone();
        if let Some(gs) = s.group_snapshot_id.as_deref().filter(|_| !of_group) {
            return Err(bad(format!(
                "Invalid snapshot: snapshot {id} is part of group snapshot {gs}; delete the group snapshot."
            )));
        }
        if !force
            && !matches!(s.status, SnapshotStatus::Available | SnapshotStatus::Error | SnapshotStatus::ErrorDeleting)
        {
            return Err(bad(format!(
                "Invalid snapshot: Snapshot status must be available or error, but current status is: {}.",
                s.status.as_str()
            )));
        }
        if self.store.volumes_from(&s.id).await? > 0 {
            return Err(bad(format!(
                "Invalid snapshot: a volume is being made from snapshot {id}; try again when it is done."
            )));
        }
        let saga = Self::new_saga(sagas::SNAPSHOT_DELETE, &s.id, &NoData {});
        s.status = SnapshotStatus::Deleting;
        let mut tx = self.store.db.pool.begin().await?;
        if !Store::snapshot_save_in(&mut tx, &s).await? {
            return Ok(false);
        }
        self.sagas.insert_saga(&mut tx, &saga).await?;
        tx.commit().await?;
        self.notify("snapshot.delete.start", &s.id, &s.project_id, "deleting").await;
        self.run(saga);
        Ok(true)
    }
}
