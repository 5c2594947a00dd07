//! Backups: a volume (or one of its snapshots) copied to the backup repository
//! (`driver::backups`), apart from every backend, to make a volume what it held again:
//! the same volume or a new one. Incremental backups follow the latest available
//! backup of their volume; the repository stores only chunks no backup holds yet, so
//! every backup costs what changed. Quota: `backups` and `backup_gigabytes`.
//!
//! An available volume is `backing-up` while it is copied; an in-use one (with
//! `force`) stays `in-use`, and its copy is crash-consistent.

use super::backup_sagas::{self, BackupData, RestoreData};
use super::volumes::{check_metadata, check_text};
use super::{bad, invalid, not_found, project_of, require_admin, require_writer, visible, AppResult, Error};
use super::{VolumeService, ZONE};
use crate::driver::backups::BackupRepository;
use crate::store::{Backup, BackupStatus, SnapshotStatus, Store, Volume, VolumeStatus};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use stratus_common::auth::AuthContext;
use stratus_common::db::now_text;

/// What `export_record` names the repository as (Tempest checks the prefix): the
/// chunk repository has the shape of Cinder's `posix` driver.
pub const BACKUP_SERVICE: &str = "cinder.backup.drivers.posix";

/// `POST /backups` (`backup`).
#[derive(Debug, Default, Deserialize)]
pub struct BackupCreate {
    pub volume_id: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub container: Option<String>,
    pub incremental: Option<Value>,
    pub force: Option<Value>,
    pub snapshot_id: Option<String>,
    pub metadata: Option<Map<String, Value>>,
    pub availability_zone: Option<String>,
}

/// `PUT /backups/{id}` (3.9; `metadata` from 3.43).
#[derive(Debug, Default, Deserialize)]
pub struct BackupUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub metadata: Option<Map<String, Value>>,
}

/// `POST /backups/{id}/restore` (`restore`).
#[derive(Debug, Default, Deserialize)]
pub struct BackupRestore {
    pub volume_id: Option<String>,
    pub name: Option<String>,
}

/// What a restore answers.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    pub backup_id: String,
    pub volume_id: String,
    pub volume_name: String,
}

/// The record `export_record` encodes (`backup_url`) and `import_record` reads.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    id: String,
    data_id: String,
    volume_id: String,
    #[serde(default)]
    snapshot_id: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    container: Option<String>,
    size: i64,
    #[serde(default)]
    object_count: i64,
    #[serde(default)]
    is_incremental: bool,
    #[serde(default)]
    parent_id: Option<String>,
    data_timestamp: String,
    #[serde(default)]
    metadata: Map<String, Value>,
    #[serde(default)]
    volume_meta: Map<String, Value>,
}

/// What a restore makes the volume again besides its bytes.
fn volume_meta(v: &Volume) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("metadata".into(), Value::Object(v.metadata.clone()));
    m.insert("bootable".into(), json!(v.bootable));
    m.insert("image_meta".into(), Value::Object(v.image_meta.clone()));
    m
}

impl VolumeService {
    /// The backup repository; a service without one refuses backups (503, as Cinder
    /// answers when no backup service runs).
    pub(crate) fn repository(&self) -> AppResult<&BackupRepository> {
        self.backups.get().ok_or_else(|| Error::Unavailable("no backup repository is configured".into()))
    }

    /// Where backups are kept; set once, at start.
    pub fn set_backup_repository(&self, repo: BackupRepository) {
        let _ = self.backups.set(repo);
    }

    pub async fn backup_get(&self, ctx: &AuthContext, id: &str) -> AppResult<Backup> {
        match self.store.backup_get(id).await? {
            Some(b) if !b.deleted && visible(ctx, &b.project_id) => Ok(b),
            _ => Err(not_found("Backup", id)),
        }
    }

    /// Whether backup `id` has incremental backups following it.
    pub async fn backup_has_dependents(&self, id: &str) -> AppResult<bool> {
        Ok(self.store.backup_parents().await?.contains(id))
    }

    /// The caller's project's backups (an admin's, with `all_projects`, everyone's),
    /// and which of them have incremental backups following them.
    pub async fn backup_list(
        &self,
        ctx: &AuthContext,
        all_projects: bool,
    ) -> AppResult<(Vec<Backup>, std::collections::HashSet<String>)> {
        let list = if all_projects && ctx.is_admin() {
            self.store.backup_list(None, None).await?
        } else {
            self.store.backup_list(Some(&project_of(ctx)?), None).await?
        };
        Ok((list, self.store.backup_parents().await?))
    }

    pub async fn backup_create(&self, ctx: &AuthContext, req: BackupCreate) -> AppResult<Backup> {
        require_writer(ctx)?;
        self.repository()?;
        let vid = req.volume_id.clone().ok_or_else(|| bad("Invalid input: a backup needs a volume_id."))?;
        let force = super::flag("force", req.force.as_ref())?;
        let incremental = super::flag("incremental", req.incremental.as_ref())?;
        if let Some(z) = req.availability_zone.as_deref().filter(|z| *z != ZONE) {
            return Err(bad(format!("Availability zone '{z}' is invalid.")));
        }
        let name = req.name.unwrap_or_default();
        let description = req.description.unwrap_or_default();
        check_text("name", &name)?;
        check_text("description", &description)?;
        let metadata = req.metadata.unwrap_or_default();
        check_metadata(&metadata)?;
        for _ in 0..10 {
            let mut v = self.volume_get(ctx, &vid).await?;
            match v.status {
                VolumeStatus::Available => {}
                VolumeStatus::InUse if force => {}
                VolumeStatus::InUse => {
                    return Err(bad(format!(
                        "Invalid volume: Volume {vid} is in-use: backing up an in-use volume must use the force flag."
                    )))
                }
                other => {
                    return Err(bad(format!(
                        "Invalid volume: Volume to be backed up must be available or in-use, but the current status is \"{}\".",
                        other.as_str()
                    )))
                }
            }
            if let Some(sid) = &req.snapshot_id {
                let s = self.snapshot_get(ctx, sid).await?;
                if s.volume_id != v.id {
                    return Err(bad(format!("Invalid snapshot: snapshot {sid} is not of volume {vid}.")));
                }
                if s.status != SnapshotStatus::Available {
                    return Err(bad(format!(
                        "Invalid snapshot: Snapshot to be backed up must be available, but the current status is \"{}\".",
                        s.status.as_str()
                    )));
                }
            }
            // An incremental backup follows the volume's latest available one.
            let parent = if incremental {
                let latest = self
                    .store
                    .backup_list(None, Some(&v.id))
                    .await?
                    .into_iter()
                    .filter(|b| b.status == BackupStatus::Available)
                    .max_by(|a, b| (&a.data_timestamp, &a.created_at).cmp(&(&b.data_timestamp, &b.created_at)));
                match latest {
                    Some(b) => Some(b.id),
                    None => return Err(bad("Invalid backup: No backups available to do an incremental backup.")),
                }
            } else {
                None
            };
            let now = now_text();
            let backup = Backup {
                id: uuid::Uuid::new_v4().to_string(),
                project_id: v.project_id.clone(),
                user_id: ctx.user_id().to_string(),
                volume_id: v.id.clone(),
                snapshot_id: req.snapshot_id.clone(),
                name: name.clone(),
                description: description.clone(),
                container: req.container.clone(),
                status: BackupStatus::Creating,
                fail_reason: None,
                size: v.size,
                object_count: 0,
                is_incremental: parent.is_some(),
                parent_id: parent,
                data_timestamp: now.clone(),
                metadata: metadata.clone(),
                volume_meta: volume_meta(&v),
                data_id: String::new(),
                deleted: false,
                rev: 0,
                created_at: now.clone(),
                updated_at: now,
            };
            let backup = Backup { data_id: backup.id.clone(), ..backup };
            // The volume itself is copied only when no snapshot is named; an in-use
            // one stays in-use.
            let hold = req.snapshot_id.is_none() && v.status == VolumeStatus::Available;
            let saga = Self::new_saga(
                backup_sagas::BACKUP_CREATE,
                &backup.id,
                &BackupData { volume_id: v.id.clone(), held: hold },
            );
            let claims = self.claims(&v.project_id, &[("backups", 1), ("backup_gigabytes", v.size)], "").await?;
            let mut tx = self.store.db.pool.begin().await?;
            if !super::quotas::claim_in(&mut tx, &v.project_id, &claims).await? {
                drop(tx);
                return Err(self.over_quota(&v.project_id, &claims).await);
            }
            if hold {
                v.status = VolumeStatus::BackingUp;
                if !Store::volume_save_in(&mut tx, &v).await? {
                    continue;
                }
            }
            Store::backup_insert_in(&mut tx, &backup).await?;
            self.sagas.insert_saga(&mut tx, &saga).await?;
            tx.commit().await?;
            self.notify("backup.create.start", &backup.id, &backup.project_id, "creating").await;
            self.run(saga);
            return Ok(backup);
        }
        Err(invalid(format!("Volume {vid} changed while the request ran; try again.")))
    }

    /// Applies `change` to a fresh copy of a backup of the caller's, saving it with a
    /// revision check.
    async fn backup_change<F>(&self, ctx: &AuthContext, id: &str, mut change: F) -> AppResult<Backup>
    where
        F: FnMut(&mut Backup) -> AppResult<()>,
    {
        for _ in 0..10 {
            let mut b = self.backup_get(ctx, id).await?;
            change(&mut b)?;
            if self.store.backup_save(&mut b).await? {
                return Ok(b);
            }
        }
        Err(invalid(format!("Backup {id} changed while the request ran; try again.")))
    }

    pub async fn backup_update(&self, ctx: &AuthContext, id: &str, req: BackupUpdate) -> AppResult<Backup> {
        require_writer(ctx)?;
        for (what, v) in [("name", &req.name), ("description", &req.description)] {
            if let Some(v) = v {
                check_text(what, v)?;
            }
        }
        if let Some(m) = &req.metadata {
            check_metadata(m)?;
        }
        self.backup_change(ctx, id, |b| {
            if let Some(n) = &req.name {
                b.name = n.clone();
            }
            if let Some(d) = &req.description {
                b.description = d.clone();
            }
            if let Some(m) = &req.metadata {
                b.metadata = m.clone();
            }
            Ok(())
        })
        .await
    }

    /// `os-reset_status` (admins): sets a backup's status by hand (`available` or
    /// `error`, as Cinder allows).
    pub async fn backup_reset_status(&self, ctx: &AuthContext, id: &str, status: &str) -> AppResult<()> {
        require_admin(ctx, "backup:backup-reset_status")?;
        let status = match BackupStatus::parse(status) {
            Some(s @ (BackupStatus::Available | BackupStatus::Error)) => s,
            _ => {
                return Err(bad(format!(
                    "Invalid status {status}: a backup's status may be reset to available or error."
                )))
            }
        };
        self.backup_change(ctx, id, |b| {
            b.status = status;
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// Deletes an available or failed backup no incremental backup follows; `force`
    /// (admins, `os-force_delete`) deletes one in any status.
    pub async fn backup_delete(&self, ctx: &AuthContext, id: &str, force: bool) -> AppResult<()> {
        require_writer(ctx)?;
        if force {
            require_admin(ctx, "backup:force_delete")?;
        }
        self.repository()?;
        for _ in 0..10 {
            let mut b = self.backup_get(ctx, id).await?;
            if b.status == BackupStatus::Deleting {
                return Ok(());
            }
            if !force
                && !matches!(b.status, BackupStatus::Available | BackupStatus::Error | BackupStatus::ErrorDeleting)
            {
                return Err(bad(format!(
                    "Invalid backup: Backup status must be available or error, but current status is: {}.",
                    b.status.as_str()
                )));
            }
            if self.backup_has_dependents(id).await? {
                return Err(bad("Invalid backup: Incremental backups exist for this backup."));
            }
            b.status = BackupStatus::Deleting;
            let saga = Self::new_saga(backup_sagas::BACKUP_DELETE, &b.id, &stratus_common::saga::NoData {});
            let mut tx = self.store.db.pool.begin().await?;
            if !Store::backup_save_in(&mut tx, &b).await? {
                continue;
            }
            self.sagas.insert_saga(&mut tx, &saga).await?;
            tx.commit().await?;
            self.notify("backup.delete.start", &b.id, &b.project_id, "deleting").await;
            self.run(saga);
            return Ok(());
        }
        Err(invalid(format!("Backup {id} changed while the request ran; try again.")))
    }

    /// Makes a volume what backup `id` holds: the volume named (available, at least
    /// the backup's size), or a new one in the backup's project.
    pub async fn backup_restore(&self, ctx: &AuthContext, id: &str, req: BackupRestore) -> AppResult<Restored> {
        require_writer(ctx)?;
        self.repository()?;
        if let Some(n) = &req.name {
            check_text("name", n)?;
        }
        for _ in 0..10 {
            let mut b = self.backup_get(ctx, id).await?;
            if b.status != BackupStatus::Available {
                return Err(bad(format!(
                    "Invalid backup: Backup status must be available, but current status is: {}.",
                    b.status.as_str()
                )));
            }
            b.status = BackupStatus::Restoring;
            let data = RestoreData { backup_id: b.id.clone(), data_id: b.data_id.clone(), made: false };
            let (mut v, made) = match &req.volume_id {
                Some(vid) => {
                    let v = self.volume_get(ctx, vid).await?;
                    if v.status != VolumeStatus::Available {
                        return Err(bad(format!(
                            "Invalid volume: Volume to be restored to must be available, but the current status is \"{}\".",
                            v.status.as_str()
                        )));
                    }
                    if v.size < b.size {
                        return Err(bad(format!(
                            "Invalid volume: volume size {} GiB is too small to restore backup of size {} GiB.",
                            v.size, b.size
                        )));
                    }
                    (v, false)
                }
                None => {
                    let name = req.name.clone().unwrap_or_else(|| format!("restore_backup_{}", b.id));
                    (self.restore_target(ctx, &b, name).await?, true)
                }
            };
            let saga = Self::new_saga(backup_sagas::BACKUP_RESTORE, &v.id, &RestoreData { made, ..data });
            v.status = VolumeStatus::RestoringBackup;
            v.control.saga_id = Some(saga.id.clone());
            let mut tx = self.store.db.pool.begin().await?;
            if made {
                let claims = self.claims(&v.project_id, &[("volumes", 1), ("gigabytes", v.size)], &v.type_id).await?;
                if !super::quotas::claim_in(&mut tx, &v.project_id, &claims).await? {
                    drop(tx);
                    return Err(self.over_quota(&v.project_id, &claims).await);
                }
                Store::volume_insert_in(&mut tx, &v).await?;
            } else if !Store::volume_save_in(&mut tx, &v).await? {
                continue;
            }
            if !Store::backup_save_in(&mut tx, &b).await? {
                continue;
            }
            self.sagas.insert_saga(&mut tx, &saga).await?;
            tx.commit().await?;
            self.notify("backup.restore.start", &b.id, &b.project_id, "restoring").await;
            self.run(saga);
            return Ok(Restored { backup_id: b.id, volume_id: v.id, volume_name: v.name });
        }
        Err(invalid(format!("Backup {id} changed while the request ran; try again.")))
    }

    /// The new volume a restore without a volume makes: the backup's size, of the
    /// default type, scheduled as any new volume.
    async fn restore_target(&self, ctx: &AuthContext, b: &Backup, name: String) -> AppResult<Volume> {
        let vtype = self.type_get(ctx, super::DEFAULT_TYPE).await?;
        self.check_volume_size(&b.project_id, b.size).await?;
        let backend = self
            .schedule(&vtype, b.size)
            .await?
            .map_err(|why| bad(format!("No backend can take the restored volume: {why}")))?;
        let mut v = Volume::fresh(&b.project_id, ctx.user_id(), name, b.size, &vtype.id, &backend);
        v.description = format!("auto-created to restore backup {}", b.id);
        Ok(v)
    }

    /// `GET /backups/{id}/export_record` (admins): the backup's record, to import
    /// into a cloud that reaches the same repository.
    pub async fn backup_export(&self, ctx: &AuthContext, id: &str) -> AppResult<(String, String)> {
        require_admin(ctx, "backup:export-import")?;
        let b = self.backup_get(ctx, id).await?;
        if b.status != BackupStatus::Available {
            return Err(bad(format!("Invalid backup: Backup status must be available, not {}.", b.status.as_str())));
        }
        let record = Record {
            id: b.id,
            data_id: b.data_id,
            volume_id: b.volume_id,
            snapshot_id: b.snapshot_id,
            name: b.name,
            description: b.description,
            container: b.container,
            size: b.size,
            object_count: b.object_count,
            is_incremental: b.is_incremental,
            parent_id: b.parent_id,
            data_timestamp: b.data_timestamp,
            metadata: b.metadata,
            volume_meta: b.volume_meta,
        };
        let url =
            base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&record).map_err(anyhow::Error::from)?);
        Ok((BACKUP_SERVICE.to_string(), url))
    }

    /// `POST /backups/import_record` (admins): a backup record exported before, into
    /// the caller's project; its data must be in this repository.
    pub async fn backup_import(&self, ctx: &AuthContext, service: &str, url: &str) -> AppResult<Backup> {
        require_admin(ctx, "backup:export-import")?;
        let project = project_of(ctx)?;
        if service != BACKUP_SERVICE {
            return Err(bad(format!("Invalid backup_service {service}: this cloud's is {BACKUP_SERVICE}.")));
        }
        let record: Record = base64::engine::general_purpose::STANDARD
            .decode(url.trim())
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| bad("Invalid backup_url: not a backup record this cloud exported."))?;
        if uuid::Uuid::parse_str(&record.id).is_err() {
            return Err(bad("Invalid backup_url: the record's id is not a UUID."));
        }
        if self.store.backup_get(&record.id).await?.is_some() {
            return Err(bad(format!("Invalid backup: backup {} exists already.", record.id)));
        }
        if self.repository()?.manifest(&record.data_id).await?.is_none() {
            return Err(bad(format!("Invalid backup: the data of backup {} is not in this repository.", record.id)));
        }
        let now = now_text();
        let b = Backup {
            id: record.id,
            project_id: project.clone(),
            user_id: ctx.user_id().to_string(),
            volume_id: record.volume_id,
            snapshot_id: record.snapshot_id,
            name: record.name,
            description: record.description,
            container: record.container,
            status: BackupStatus::Available,
            fail_reason: None,
            size: record.size,
            object_count: record.object_count,
            is_incremental: record.is_incremental,
            parent_id: record.parent_id,
            data_timestamp: record.data_timestamp,
            metadata: record.metadata,
            volume_meta: record.volume_meta,
            data_id: record.data_id,
            deleted: false,
            rev: 0,
            created_at: now.clone(),
            updated_at: now,
        };
        let claims = self.claims(&project, &[("backups", 1), ("backup_gigabytes", b.size)], "").await?;
        let mut tx = self.store.db.pool.begin().await?;
        if !super::quotas::claim_in(&mut tx, &project, &claims).await? {
            drop(tx);
            return Err(self.over_quota(&project, &claims).await);
        }
        Store::backup_insert_in(&mut tx, &b).await?;
        tx.commit().await?;
        Ok(b)
    }
}
