//! The backup sagas, step tables as in `sagas.rs` (and through the same generic saga
//! tests):
//!
//! | saga | steps | a failure leaves |
//! |---|---|---|
//! | `backup_create` | `copy` (the volume or snapshot exported raw, stored as chunks; undo: remove) → `finish` (backup available, volume available again) | the backup in `error` with its `fail_reason` (its quota kept until deleted, as Cinder), the volume as it was |
//! | `backup_delete` | `remove` (its chunks no other backup holds) → `finish` (row deleted, quota given back) | `error_deleting` |
//! | `backup_restore` | `make` (a new volume only; undo: remove) → `restore` (the backup's chunks written into the volume) → `finish` (volume available with the backed-up volume's metadata and bootable flag, backup available) | the volume in `error_restoring` (a new one in `error`), the backup available |

use super::sagas::{changed, service, Finished};
use super::VolumeService;
use crate::driver::backups::BackupRepository;
use crate::driver::Source;
use crate::store::{Backup, BackupStatus, Store, Volume, VolumeStatus};
use serde::{Deserialize, Serialize};
use std::sync::Weak;
use stratus_common::saga::{
    nothing_to_undo, NoData, Outcome, Registered, Saga, SagaDef, SagaState, Step, StepError, StepFuture, StepResult,
};

pub const BACKUP_CREATE: &str = "backup_create";
pub const BACKUP_DELETE: &str = "backup_delete";
pub const BACKUP_RESTORE: &str = "backup_restore";

/// The volume a backup copies, and whether the backup holds it in `backing-up`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupData {
    pub volume_id: String,
    pub held: bool,
}

/// The backup a restore copies from (its data's name in the repository), and whether
/// the restore made its volume.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreData {
    pub backup_id: String,
    pub data_id: String,
    pub made: bool,
}

pub(crate) fn definitions(me: &Weak<VolumeService>) -> Vec<Registered> {
    vec![CreateBackup(me.clone()).into(), DeleteBackup(me.clone()).into(), RestoreBackup(me.clone()).into()]
}

impl VolumeService {
    fn saga_repository(&self) -> StepResult<BackupRepository> {
        self.repository().cloned().map_err(|e| StepError::permanent(e.to_string()))
    }

    /// The saga's backup, live.
    async fn saga_backup(&self, saga: &Saga, id: &str) -> StepResult<Backup> {
        match self.store.backup_get(id).await? {
            Some(b) if !b.deleted => Ok(b),
            _ => Err(StepError::permanent(format!("Backup {id} is gone ({} saga {}).", saga.kind, saga.id))),
        }
    }

    async fn live_volume(&self, id: &str) -> StepResult<Volume> {
        match self.store.volume_get(id).await? {
            Some(v) if !v.deleted => Ok(v),
            _ => Err(StepError::permanent(format!("Volume {id} is gone."))),
        }
    }

    /// Writes the backup's volume (or snapshot) into the repository, once.
    async fn copy_to_repository(&self, b: &Backup) -> StepResult<()> {
        let repo = self.saga_repository()?;
        if repo.manifest(&b.data_id).await?.is_some() {
            return Ok(());
        }
        let v = self.live_volume(&b.volume_id).await?;
        let driver = self.saga_driver(&v.backend)?;
        let staged = repo.staging(&b.id, "raw");
        let exported = match &b.snapshot_id {
            Some(sn) => driver.export_snapshot(&v.id, sn, "raw", &staged).await,
            None => driver.export(&v.id, "raw", &staged).await,
        };
        let stored = match exported {
            Ok(()) => repo.store(&b.data_id, &staged).await.map(|_| ()),
            Err(e) => Err(e),
        };
        let _ = tokio::fs::remove_file(&staged).await;
        Ok(stored?)
    }

    /// A failed or stuck backup's end: the backup in `error` saying why, the volume it
    /// held available again.
    async fn backup_failed(&self, saga: &Saga) -> StepResult<()> {
        let data: BackupData = saga.data_as()?;
        if data.held {
            self.release_volume(&data.volume_id).await?;
        }
        for _ in 0..5 {
            let Some(mut b) = self.store.backup_get(&saga.subject).await?.filter(|b| !b.deleted) else { return Ok(()) };
            if b.status != BackupStatus::Creating {
                return Ok(());
            }
            b.status = BackupStatus::Error;
            b.fail_reason = Some(saga.error.clone());
            if self.store.backup_save(&mut b).await? {
                self.notify("backup.create.error", &b.id, &b.project_id, "error").await;
                return Ok(());
            }
        }
        Err(changed("backup", &saga.subject))
    }

    /// A volume a backup held in `backing-up`, available again.
    async fn release_volume(&self, id: &str) -> StepResult<()> {
        for _ in 0..5 {
            let Some(mut v) = self.store.volume_get(id).await?.filter(|v| !v.deleted) else { return Ok(()) };
            if v.status != VolumeStatus::BackingUp {
                return Ok(());
            }
            v.status = VolumeStatus::Available;
            if self.store.volume_save(&mut v).await? {
                return Ok(());
            }
        }
        Err(changed("volume", id))
    }

    /// A backup a restore held in `restoring`, available again.
    async fn backup_restored(&self, id: &str) -> StepResult<()> {
        for _ in 0..5 {
            let Some(mut b) = self.store.backup_get(id).await?.filter(|b| !b.deleted) else { return Ok(()) };
            if b.status != BackupStatus::Restoring {
                return Ok(());
            }
            b.status = BackupStatus::Available;
            if self.store.backup_save(&mut b).await? {
                return Ok(());
            }
        }
        Err(changed("backup", id))
    }

    async fn restore_failed(&self, saga: &Saga) -> StepResult<()> {
        let data: RestoreData = saga.data_as()?;
        let status = if data.made { VolumeStatus::Error } else { VolumeStatus::ErrorRestoring };
        self.volume_ends_in(saga, status, &[]).await?;
        self.backup_restored(&data.backup_id).await
    }
}

// ---- backup_create ----

pub struct CreateBackup(Weak<VolumeService>);

const CREATE_STEPS: &[Step<CreateBackup>] = &[
    Step {
        name: "copy",
        run: |d, saga, _| {
            Box::pin(async move {
                let s = service(&d.0)?;
                let b = s.saga_backup(saga, &saga.subject).await?;
                s.copy_to_repository(&b).await?;
                Ok(Outcome::Next)
            })
        },
        undo: |d, saga, _| {
            Box::pin(async move {
                let s = service(&d.0)?;
                let repo = s.saga_repository()?;
                let _ = tokio::fs::remove_file(repo.staging(&saga.subject, "raw")).await;
                if let Some(b) = s.store.backup_get(&saga.subject).await? {
                    repo.delete(&b.data_id).await?;
                }
                Ok(())
            })
        },
    },
    Step {
        name: "finish",
        run: |d, saga, data| {
            Box::pin(async move {
                let s = service(&d.0)?;
                let mut b = s.saga_backup(saga, &saga.subject).await?;
                let manifest = s
                    .saga_repository()?
                    .manifest(&b.data_id)
                    .await?
                    .ok_or_else(|| StepError::permanent("The backup's data is gone from the repository."))?;
                b.status = BackupStatus::Available;
                b.object_count = manifest.objects() as i64;
                let mut tx = s.store.db.pool.begin().await?;
                if data.held {
                    let mut v = s.live_volume(&data.volume_id).await?;
                    if v.status == VolumeStatus::BackingUp {
                        v.status = VolumeStatus::Available;
                        if !Store::volume_save_in(&mut tx, &v).await? {
                            return Err(changed("volume", &v.id));
                        }
                    }
                }
                if !Store::backup_save_in(&mut tx, &b).await? {
                    return Err(changed("backup", &b.id));
                }
                if !s.sagas.finish_in(&mut tx, saga).await? {
                    return Err(changed("saga", &saga.id));
                }
                tx.commit().await?;
                s.notify("backup.create.end", &b.id, &b.project_id, "available").await;
                Ok(Outcome::Finished)
            })
        },
        undo: nothing_to_undo,
    },
];

impl SagaDef for CreateBackup {
    type Data = BackupData;

    fn kind(&self) -> &'static str {
        BACKUP_CREATE
    }

    fn steps(&self) -> &'static [Step<Self>] {
        CREATE_STEPS
    }

    fn finished<'a>(&'a self, saga: &'a Saga) -> StepFuture<'a, ()> {
        Box::pin(async move {
            if saga.state != SagaState::Failed {
                return Ok(());
            }
            service(&self.0)?.backup_failed(saga).await
        })
    }

    fn stuck<'a>(&'a self, saga: &'a Saga) -> StepFuture<'a, ()> {
        Box::pin(async move { service(&self.0)?.backup_failed(saga).await })
    }
}

// ---- backup_delete ----

pub struct DeleteBackup(Weak<VolumeService>);

const DELETE_STEPS: &[Step<DeleteBackup>] = &[
    Step {
        // The data goes with the last record that names it (an imported record
        // shares its source's).
        name: "remove",
        run: |d, saga, _| {
            Box::pin(async move {
                let s = service(&d.0)?;
                let b = s.saga_backup(saga, &saga.subject).await?;
                if s.store.backup_data_holders(&b.data_id).await? <= 1 {
                    s.saga_repository()?.delete(&b.data_id).await?;
                }
                Ok(Outcome::Next)
            })
        },
        undo: nothing_to_undo,
    },
    Step {
        name: "finish",
        run: |d, saga, _| {
            Box::pin(async move {
                let s = service(&d.0)?;
                let mut b = s.saga_backup(saga, &saga.subject).await?;
                b.deleted = true;
                let out = s.finish(Finished::Backup(&b), saga, &[("backups", 1), ("backup_gigabytes", b.size)]).await?;
                s.notify("backup.delete.end", &b.id, &b.project_id, "deleted").await;
                Ok(out)
            })
        },
        undo: nothing_to_undo,
    },
];

impl VolumeService {
    async fn backup_delete_failed(&self, saga: &Saga) -> StepResult<()> {
        for _ in 0..5 {
            let Some(mut b) = self.store.backup_get(&saga.subject).await?.filter(|b| !b.deleted) else { return Ok(()) };
            b.status = BackupStatus::ErrorDeleting;
            b.fail_reason = Some(saga.error.clone());
            if self.store.backup_save(&mut b).await? {
                self.notify("backup.delete.error", &b.id, &b.project_id, "error_deleting").await;
                return Ok(());
            }
        }
        Err(changed("backup", &saga.subject))
    }
}

impl SagaDef for DeleteBackup {
    type Data = NoData;

    fn kind(&self) -> &'static str {
        BACKUP_DELETE
    }

    fn steps(&self) -> &'static [Step<Self>] {
        DELETE_STEPS
    }

    fn finished<'a>(&'a self, saga: &'a Saga) -> StepFuture<'a, ()> {
        Box::pin(async move {
            if saga.state != SagaState::Failed {
                return Ok(());
            }
            service(&self.0)?.backup_delete_failed(saga).await
        })
    }

    fn stuck<'a>(&'a self, saga: &'a Saga) -> StepFuture<'a, ()> {
        Box::pin(async move { service(&self.0)?.backup_delete_failed(saga).await })
    }
}

// ---- backup_restore ----

pub struct RestoreBackup(Weak<VolumeService>);

const RESTORE_STEPS: &[Step<RestoreBackup>] = &[
    Step {
        name: "make",
        run: |d, saga, data| {
            Box::pin(async move {
                if !data.made {
                    return Ok(Outcome::Next);
                }
                let s = service(&d.0)?;
                let v = s.saga_volume(saga).await?;
                let driver = s.saga_driver(&v.backend)?;
                if driver.size_of(&v.id).await?.is_none() {
                    driver.create(&v.id, v.size, Source::Empty).await?;
                }
                Ok(Outcome::Next)
            })
        },
        undo: |d, saga, data| {
            Box::pin(async move {
                if !data.made {
                    return Ok(());
                }
                let s = service(&d.0)?;
                if let Some(v) = s.store.volume_get(&saga.subject).await? {
                    s.saga_driver(&v.backend)?.delete(&v.id).await?;
                }
                Ok(())
            })
        },
    },
    Step {
        name: "restore",
        run: |d, saga, data| {
            Box::pin(async move {
                let s = service(&d.0)?;
                let v = s.saga_volume(saga).await?;
                let driver = s.saga_driver(&v.backend)?;
                let repo = s.saga_repository()?;
                let staged = repo.staging(&v.id, "restore.raw");
                let restored = match repo.restore(&data.data_id, &staged).await {
                    Ok(()) => driver.import(&v.id, &staged, "raw").await,
                    Err(e) => Err(e),
                };
                let _ = tokio::fs::remove_file(&staged).await;
                restored?;
                Ok(Outcome::Next)
            })
        },
        // What the volume held before is gone: a failure's end says so.
        undo: nothing_to_undo,
    },
    Step {
        name: "finish",
        run: |d, saga, data| {
            Box::pin(async move {
                let s = service(&d.0)?;
                let mut v = s.saga_volume(saga).await?;
                let mut b = s.saga_backup(saga, &data.backup_id).await?;
                // The volume is again what the backed-up one was: its metadata, its
                // bootable flag and what it showed of its image.
                if let Some(m) = b.volume_meta.get("metadata").and_then(|m| m.as_object()) {
                    v.metadata.extend(m.clone());
                }
                if let Some(true) = b.volume_meta.get("bootable").and_then(|x| x.as_bool()) {
                    v.bootable = true;
                }
                if let Some(m) = b.volume_meta.get("image_meta").and_then(|m| m.as_object()).filter(|m| !m.is_empty()) {
                    v.image_meta = m.clone();
                }
                v.status = VolumeStatus::Available;
                v.control.saga_id = None;
                let mut tx = s.store.db.pool.begin().await?;
                if !Store::volume_save_in(&mut tx, &v).await? {
                    return Err(changed("volume", &v.id));
                }
                if b.status == BackupStatus::Restoring {
                    b.status = BackupStatus::Available;
                    if !Store::backup_save_in(&mut tx, &b).await? {
                        return Err(changed("backup", &b.id));
                    }
                }
                if !s.sagas.finish_in(&mut tx, saga).await? {
                    return Err(changed("saga", &saga.id));
                }
                tx.commit().await?;
                s.notify("backup.restore.end", &b.id, &b.project_id, "available").await;
                Ok(Outcome::Finished)
            })
        },
        undo: nothing_to_undo,
    },
];

impl SagaDef for RestoreBackup {
    type Data = RestoreData;

    fn kind(&self) -> &'static str {
        BACKUP_RESTORE
    }

    fn steps(&self) -> &'static [Step<Self>] {
        RESTORE_STEPS
    }

    fn finished<'a>(&'a self, saga: &'a Saga) -> StepFuture<'a, ()> {
        Box::pin(async move {
            if saga.state != SagaState::Failed {
                return Ok(());
            }
            service(&self.0)?.restore_failed(saga).await
        })
    }

    fn stuck<'a>(&'a self, saga: &'a Saga) -> StepFuture<'a, ()> {
        Box::pin(async move { service(&self.0)?.restore_failed(saga).await })
    }
}
