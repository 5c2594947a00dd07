//! The sagas that do a volume service's work on a backend, each a table of steps
//! (`{name, run, undo}`) ending with a `finish` step that records the new state, the
//! quota given back and the saga's end in one transaction. Every saga passes the
//! generic saga tests (`tests/api.rs`).
//!
//! | saga | steps | a failure leaves |
//! |---|---|---|
//! | `volume_create` | `make` (undo: remove) → `finish` | the volume in `error` (its quota kept until deleted, as Cinder) |
//! | `volume_delete` | `remove` → `finish` (row deleted, quota given back) | `error_deleting`, to delete again |
//! | `volume_extend` | `grow` (detached: the backend grows it; attached: compute is told `volume-extended`) → `await` (attached: compute's `os-extend_volume_completion`) → `finish` (new size) | detached: `error_extending`; attached: `in-use` at its old size, with a user message; the growth's quota given back either way |
//! | `snapshot_create` | `copy` (undo: remove) → `finish` | the snapshot in `error` |
//! | `snapshot_delete` | `remove` → `finish` (row deleted, quota given back) | `error_deleting` |
//! | `volume_revert` | `revert` (the backend copies the snapshot over the volume) → `finish` (volume and snapshot `available`) | the volume in `error`, the snapshot `available` (as Cinder) |
//! | `volume_upload` | `export` (undo: remove the file) → `upload` (undo: delete the image) → `finish` | the volume `available` again, no image |
//!
//! Transient failures past the bound leave the saga stuck, and the volume or snapshot
//! in its error state with an event (`volume.<kind>.stuck`).

use super::quotas::{as_refs, releases};
use super::VolumeService;
use crate::driver::Source;
use crate::store::{Snapshot, SnapshotStatus, Store, Volume, VolumeStatus, USAGE};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Weak};
use stratus_common::db::now_text;
use stratus_common::saga::{
    nothing_to_undo, NoData, Outcome, Registered, Saga, SagaDef, SagaState, Step, StepError, StepFuture, StepResult,
};

pub const CREATE: &str = "volume_create";
pub const DELETE: &str = "volume_delete";
pub const EXTEND: &str = "volume_extend";
pub const SNAPSHOT_CREATE: &str = "snapshot_create";
pub const SNAPSHOT_DELETE: &str = "snapshot_delete";
pub const UPLOAD: &str = "volume_upload";
pub const REVERT: &str = "volume_revert";

/// What an extend grows the volume to; for an attached volume, the server whose
/// guest's disk grows with it, and the size to go back to if that fails.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtendData {
    pub new_size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default)]
    pub from_size: i64,
}

/// How long an attached volume's growth waits for the compute service's answer.
const EXTEND_ANSWER_WITHIN: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

pub(crate) fn definitions(me: &Weak<VolumeService>) -> Vec<Registered> {
    let mut all = vec![
        CreateVolume(me.clone()).into(),
        DeleteVolume(me.clone()).into(),
        ExtendVolume(me.clone()).into(),
        CreateSnapshot(me.clone()).into(),
        DeleteSnapshot(me.clone()).into(),
        UploadVolume(me.clone()).into(),
        RevertVolume(me.clone()).into(),
    ];
    all.extend(super::backup_sagas::definitions(me));
    all
}

pub(super) fn service(w: &Weak<VolumeService>) -> StepResult<Arc<VolumeService>> {
    w.upgrade().ok_or_else(|| StepError::Transient(anyhow::anyhow!("volume service stopped")))
}

pub(super) fn changed(what: &str, id: &str) -> StepError {
    StepError::Transient(anyhow::anyhow!("{what} {id} changed meanwhile"))
}

/// What a saga's last step saves.
pub(super) enum Finished<'a> {
    Volume(&'a Volume),
    Snapshot(&'a Snapshot),
    Backup(&'a crate::store::Backup),
}

impl VolumeService {
    /// Settles the groups and group snapshots that wait for their members (the
    /// reconciler's pass does it again if this fails).
    pub(super) async fn poke_groups(&self) {
        if !self.groups_may_be_pending() {
            return;
        }
        if let Err(e) = self.settle_groups().await {
            tracing::warn!(error = %e, "cannot settle the groups now; the reconciler will");
        }
    }

    /// The backend a saga works on; one this process lacks is a permanent error.
    pub(super) fn saga_driver(&self, backend: &str) -> StepResult<Arc<dyn crate::driver::VolumeDriver>> {
        self.driver(backend).map_err(|e| StepError::permanent(e.to_string()))
    }

    /// The saga's volume, live.
    pub(super) async fn saga_volume(&self, saga: &Saga) -> StepResult<Volume> {
        match self.store.volume_get(&saga.subject).await? {
            Some(v) if !v.deleted => Ok(v),
            _ => Err(StepError::permanent("The volume is gone.")),
        }
    }

    async fn saga_snapshot(&self, saga: &Saga) -> StepResult<(Snapshot, Volume)> {
        let Some(s) = self.store.snapshot_get(&saga.subject).await?.filter(|s| !s.deleted) else {
            return Err(StepError::permanent("The snapshot is gone."));
        };
        let v = self
            .store
            .volume_get(&s.volume_id)
            .await?
            .ok_or_else(|| StepError::permanent(format!("The snapshot's volume {} is gone.", s.volume_id)))?;
        Ok((s, v))
    }

    /// Saves the saga's volume or snapshot, gives `release` back from its project and
    /// ends the saga, in one transaction.
    pub(super) async fn finish(
        &self,
        subject: Finished<'_>,
        saga: &mut Saga,
        release: &[(&str, i64)],
    ) -> StepResult<Outcome> {
        let mut tx = self.store.db.pool.begin().await?;
        let (saved, what, id, project) = match subject {
            Finished::Volume(v) => (Store::volume_save_in(&mut tx, v).await?, "volume", &v.id, &v.project_id),
            Finished::Snapshot(s) => (Store::snapshot_save_in(&mut tx, s).await?, "snapshot", &s.id, &s.project_id),
            Finished::Backup(b) => (Store::backup_save_in(&mut tx, b).await?, "backup", &b.id, &b.project_id),
        };
        if !saved {
            return Err(changed(what, id));
        }
        stratus_common::db::usage::release(&mut tx, USAGE, project, release).await?;
        if !self.sagas.finish_in(&mut tx, saga).await? {
            return Err(changed("saga", &saga.id));
        }
        tx.commit().await?;
        Ok(Outcome::Finished)
    }

    /// Puts the saga's volume in `status` (a failure's or a stuck saga's end); nothing
    /// when the saga no longer works on it.
    pub(super) async fn volume_ends_in(
        &self,
        saga: &Saga,
        status: VolumeStatus,
        release: &[(&str, i64)],
    ) -> StepResult<()> {
        for _ in 0..5 {
            let Some(mut v) = self.store.volume_get(&saga.subject).await?.filter(|v| !v.deleted) else { return Ok(()) };
            if v.control.saga_id.as_ref() != Some(&saga.id) {
                return Ok(());
            }
            v.status = status;
            v.control.saga_id = None;
            let mut tx = self.store.db.pool.begin().await?;
            if !Store::volume_save_in(&mut tx, &v).await? {
                continue;
            }
            stratus_common::db::usage::release(&mut tx, USAGE, &v.project_id, release).await?;
            tx.commit().await?;
            self.notify(&format!("{}.error", saga.kind), &v.id, &v.project_id, status.as_str()).await;
            return Ok(());
        }
        Err(changed("volume", &saga.subject))
    }

    /// An attached volume that did not grow: back to its size, still `in-use` (its
    /// guest kept the disk it had), the growth's quota given back, and the project
    /// told why.
    async fn extend_attached_failed(&self, saga: &Saga, data: &ExtendData, release: &[(&str, i64)]) -> StepResult<()> {
        for _ in 0..5 {
            let Some(mut v) = self.store.volume_get(&saga.subject).await?.filter(|v| !v.deleted) else { return Ok(()) };
            if v.control.saga_id.as_ref() != Some(&saga.id) {
                return Ok(());
            }
            v.size = data.from_size;
            v.status = if v.attachments.is_empty() { VolumeStatus::Available } else { VolumeStatus::InUse };
            v.control.saga_id = None;
            v.control.extend_asked_at = None;
            v.control.extend_result = None;
            let m = super::messages::message(&v.project_id, "", &v.id, &super::messages::EXTEND_FAILED, &saga.error);
            let mut tx = self.store.db.pool.begin().await?;
            if !Store::volume_save_in(&mut tx, &v).await? {
                continue;
            }
            stratus_common::db::usage::release(&mut tx, USAGE, &v.project_id, release).await?;
            Store::message_insert_in(&mut tx, &m).await?;
            tx.commit().await?;
            self.notify("volume_extend.error", &v.id, &v.project_id, v.status.as_str()).await;
            return Ok(());
        }
        Err(changed("volume", &saga.subject))
    }

    async fn snapshot_ends_in(&self, saga: &Saga, from: SnapshotStatus, status: SnapshotStatus) -> StepResult<()> {
        for _ in 0..5 {
            let Some(mut s) = self.store.snapshot_get(&saga.subject).await?.filter(|s| !s.deleted) else {
                return Ok(());
            };
            if s.status != from {
                return Ok(());
            }
            s.status = status;
            if self.store.snapshot_save(&mut s).await? {
                self.notify(&format!("{}.error", saga.kind), &s.id, &s.project_id, status.as_str()).await;
                return Ok(());
            }
        }
        Err(changed("snapshot", &saga.subject))
    }
}

// ---- volume_create ----

pub struct CreateVolume(Weak<VolumeService>);

const CREATE_STEPS: &[Step<CreateVolume>] = &[
    Step {
        name: "make",
        run: |d, saga, _| {
            Box::pin(async move {
                let s = service(&d.0)?;
                let v = s.saga_volume(saga).await?;
                let driver = s.saga_driver(&v.backend)?;
                if let Some(image) = &v.image_id {
                    // Made already (a step run again): nothing to download. The image
                    // is downloaded once and kept as the base of every volume made
                    // from it.
                    if driver.size_of(&v.id).await?.is_none() {
                        if !driver.has_image(image).await? {
                            let staged = s.stage_image(image, &v.id).await?;
                            let format = v.image_meta.get("disk_format").and_then(|f| f.as_str()).unwrap_or("raw");
                            driver.keep_image(image, &staged, format).await?;
                        }
                        driver.create(&v.id, v.size, Source::Image { id: image }).await?;
                    }
                    s.unstage_image(&v.id).await;
                    return Ok(Outcome::Next);
                }
                // A snapshot's bytes are kept with its volume's: the driver is told both.
                let snapshot = match &v.snapshot_id {
                    Some(sn) => Some(
                        s.store
                            .snapshot_get(sn)
                            .await?
                            .ok_or_else(|| StepError::permanent(format!("Snapshot {sn} is gone.")))?,
                    ),
                    None => None,
                };
                let source = match (&snapshot, &v.source_volid) {
                    (Some(snap), _) => Source::Snapshot { volume: &snap.volume_id, id: &snap.id },
                    (None, Some(src)) => Source::Volume(src),
                    (None, None) => Source::Empty,
                };
                driver.create(&v.id, v.size, source).await?;
                Ok(Outcome::Next)
            })
        },
        undo: |d, saga, _| {
            Box::pin(async move {
                let s = service(&d.0)?;
                if let Some(v) = s.store.volume_get(&saga.subject).await? {
                    if let Ok(driver) = s.driver(&v.backend) {
                        driver.delete(&v.id).await?;
                        s.forget_image_if_unused(&v, driver.as_ref()).await?;
                    }
                    s.unstage_image(&v.id).await;
                }
                Ok(())
            })
        },
    },
    Step {
        name: "finish",
        run: |d, saga, _| {
            Box::pin(async move {
                let s = service(&d.0)?;
                let mut v = s.saga_volume(saga).await?;
                v.status = VolumeStatus::Available;
                v.control.saga_id = None;
                let out = s.finish(Finished::Volume(&v), saga, &[]).await?;
                s.notify("create.end", &v.id, &v.project_id, "available").await;
                s.poke_groups().await;
                Ok(out)
            })
        },
        undo: nothing_to_undo,
    },
];

impl SagaDef for CreateVolume {
    type Data = NoData;

    fn kind(&self) -> &'static str {
        CREATE
    }

    fn steps(&self) -> &'static [Step<Self>] {
        CREATE_STEPS
    }

    fn finished<'a>(&'a self, saga: &'a Saga) -> StepFuture<'a, ()> {
        Box::pin(async move {
            // A group or group snapshot may wait for this volume or snapshot.
            service(&self.0)?.poke_groups().await;
            if saga.state != SagaState::Failed {
                return Ok(());
            }
            // The quota stays counted until the volume in error is deleted, as Cinder's.
            service(&self.0)?.volume_ends_in(saga, VolumeStatus::Error, &[]).await
        })
    }

    fn stuck<'a>(&'a self, saga: &'a Saga) -> StepFuture<'a, ()> {
        Box::pin(async move { service(&self.0)?.volume_ends_in(saga, VolumeStatus::Error, &[]).await })
    }
}

// ---- volume_delete ----

pub struct DeleteVolume(Weak<VolumeService>);

const DELETE_STEPS: &[Step<DeleteVolume>] = &[
    Step {
        // A cascading delete: the snapshots go first, each by its own saga, which
        // pokes this one when it ends.
        name: "snapshots",
        run: |d, saga, _| {
            Box::pin(async move {
                let s = service(&d.0)?;
                let snaps = s.store.snapshot_list(None, Some(&saga.subject)).await?;
                if snaps.is_empty() {
                    return Ok(Outcome::Next);
                }
                if let Some(failed) = snaps.iter().find(|sn| sn.status != SnapshotStatus::Deleting) {
                    return Err(StepError::permanent(format!(
                        "Snapshot {} of the volume is {}, not being deleted.",
                        failed.id,
                        failed.status.as_str()
                    )));
                }
                Ok(Outcome::Pending)
            })
        },
        undo: nothing_to_undo,
    },
    Step {
        name: "remove",
        run: |d, saga, _| {
            Box::pin(async move {
                let s = service(&d.0)?;
                // A volume no backend took has nothing on any.
                let Some(v) = s.store.volume_get(&saga.subject).await?.filter(|v| !v.deleted && !v.backend.is_empty())
                else {
                    return Ok(Outcome::Next);
                };
                let driver = s.saga_driver(&v.backend)?;
                driver.delete(&v.id).await?;
                s.forget_image_if_unused(&v, driver.as_ref()).await?;
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
                let Some(mut v) = s.store.volume_get(&saga.subject).await?.filter(|v| !v.deleted) else {
                    return Ok(Outcome::Next);
                };
                v.deleted = true;
                v.control.saga_id = None;
                let given = releases(&[("volumes", 1), ("gigabytes", v.size)], &v.type_id);
                let out = s.finish(Finished::Volume(&v), saga, &as_refs(&given)).await?;
                s.notify("delete.end", &v.id, &v.project_id, "deleted").await;
                s.poke_groups().await;
                Ok(out)
            })
        },
        undo: nothing_to_undo,
    },
];

impl SagaDef for DeleteVolume {
    type Data = NoData;

    fn kind(&self) -> &'static str {
        DELETE
    }

    fn steps(&self) -> &'static [Step<Self>] {
        DELETE_STEPS
    }

    fn finished<'a>(&'a self, saga: &'a Saga) -> StepFuture<'a, ()> {
        Box::pin(async move {
            // A group or group snapshot may wait for this volume or snapshot.
            service(&self.0)?.poke_groups().await;
            if saga.state != SagaState::Failed {
                return Ok(());
            }
            service(&self.0)?.volume_ends_in(saga, VolumeStatus::ErrorDeleting, &[]).await
        })
    }

    fn stuck<'a>(&'a self, saga: &'a Saga) -> StepFuture<'a, ()> {
        Box::pin(async move { service(&self.0)?.volume_ends_in(saga, VolumeStatus::ErrorDeleting, &[]).await })
    }
}

// ---- volume_extend ----

pub struct ExtendVolume(Weak<VolumeService>);

const EXTEND_STEPS: &[Step<ExtendVolume>] = &[
    Step {
        name: "grow",
        run: |d, saga, data| {
            Box::pin(async move {
                let s = service(&d.0)?;
                let mut v = s.saga_volume(saga).await?;
                let Some(server) = &data.server else {
                    s.saga_driver(&v.backend)?.extend(&v.id, data.new_size).await?;
                    return Ok(Outcome::Next);
                };
                // Attached: the guest's hypervisor has the image open and grows it;
                // compute answers with `os-extend_volume_completion`.
                if v.control.extend_asked_at.is_none() {
                    s.tell_compute_extended(server, &v.id).await?;
                    v.control.extend_asked_at = Some(now_text());
                    if !s.store.volume_save(&mut v).await? {
                        return Err(changed("volume", &v.id));
                    }
                }
                Ok(Outcome::Next)
            })
        },
        // A grown volume cannot shrink back: its failure's end says error_extending.
        undo: nothing_to_undo,
    },
    Step {
        name: "await",
        run: |d, saga, data| {
            Box::pin(async move {
                if data.server.is_none() {
                    return Ok(Outcome::Next);
                }
                let s = service(&d.0)?;
                let v = s.saga_volume(saga).await?;
                match v.control.extend_result {
                    Some(true) => Ok(Outcome::Next),
                    Some(false) => Err(StepError::permanent(
                        "The compute service could not grow the guest's disk; the volume keeps its size.",
                    )),
                    None => {
                        let asked = v.control.extend_asked_at.as_deref().and_then(stratus_common::db::parse_time);
                        if asked.is_some_and(|t| chrono::Utc::now() - t > EXTEND_ANSWER_WITHIN) {
                            return Err(StepError::permanent(
                                "The compute service did not say within 10 minutes whether the guest's disk grew.",
                            ));
                        }
                        Ok(Outcome::Pending)
                    }
                }
            })
        },
        undo: nothing_to_undo,
    },
    Step {
        name: "finish",
        run: |d, saga, data| {
            Box::pin(async move {
                let s = service(&d.0)?;
                let mut v = s.saga_volume(saga).await?;
                v.size = data.new_size;
                v.status = if data.server.is_some() { VolumeStatus::InUse } else { VolumeStatus::Available };
                v.control.saga_id = None;
                v.control.extend_asked_at = None;
                v.control.extend_result = None;
                let out = s.finish(Finished::Volume(&v), saga, &[]).await?;
                s.notify("resize.end", &v.id, &v.project_id, v.status.as_str()).await;
                Ok(out)
            })
        },
        undo: nothing_to_undo,
    },
];

impl SagaDef for ExtendVolume {
    type Data = ExtendData;

    fn kind(&self) -> &'static str {
        EXTEND
    }

    fn steps(&self) -> &'static [Step<Self>] {
        EXTEND_STEPS
    }

    fn finished<'a>(&'a self, saga: &'a Saga) -> StepFuture<'a, ()> {
        Box::pin(async move {
            if saga.state != SagaState::Failed {
                return Ok(());
            }
            let s = service(&self.0)?;
            let data: ExtendData = saga.data_as()?;
            let Some(v) = s.store.volume_get(&saga.subject).await? else { return Ok(()) };
            // The growth claimed by the request goes back with the failure's end.
            let growth = if data.from_size > 0 { data.new_size - data.from_size } else { data.new_size - v.size };
            let given = releases(&[("gigabytes", growth.max(0))], &v.type_id);
            if data.server.is_some() {
                return s.extend_attached_failed(saga, &data, &as_refs(&given)).await;
            }
            s.volume_ends_in(saga, VolumeStatus::ErrorExtending, &as_refs(&given)).await
        })
    }

    fn stuck<'a>(&'a self, saga: &'a Saga) -> StepFuture<'a, ()> {
        Box::pin(async move {
            let s = service(&self.0)?;
            let data: ExtendData = saga.data_as()?;
            if data.server.is_some() {
                return s.extend_attached_failed(saga, &data, &[]).await;
            }
            s.volume_ends_in(saga, VolumeStatus::ErrorExtending, &[]).await
        })
    }
}

// ---- snapshot_create ----

pub struct CreateSnapshot(Weak<VolumeService>);

const SNAPSHOT_CREATE_STEPS: &[Step<CreateSnapshot>] = &[
    Step {
        name: "copy",
        run: |d, saga, _| {
            Box::pin(async move {
                let s = service(&d.0)?;
                let (snap, v) = s.saga_snapshot(saga).await?;
                s.saga_driver(&v.backend)?.snapshot(&v.id, &snap.id).await?;
                Ok(Outcome::Next)
            })
        },
        undo: |d, saga, _| {
            Box::pin(async move {
                let s = service(&d.0)?;
                if let Some(snap) = s.store.snapshot_get(&saga.subject).await? {
                    if let Some(v) = s.store.volume_get(&snap.volume_id).await? {
                        if let Ok(driver) = s.driver(&v.backend) {
                            driver.delete_snapshot(&snap.volume_id, &snap.id).await?;
                        }
                    }
                }
                Ok(())
            })
        },
    },
    Step {
        name: "finish",
        run: |d, saga, _| {
            Box::pin(async move {
                let s = service(&d.0)?;
                let (mut snap, _) = s.saga_snapshot(saga).await?;
                snap.status = SnapshotStatus::Available;
                let out = s.finish(Finished::Snapshot(&snap), saga, &[]).await?;
                s.notify("snapshot.create.end", &snap.id, &snap.project_id, "available").await;
                s.poke_groups().await;
                Ok(out)
            })
        },
        undo: nothing_to_undo,
    },
];

impl SagaDef for CreateSnapshot {
    type Data = NoData;

    fn kind(&self) -> &'static str {
        SNAPSHOT_CREATE
    }

    fn steps(&self) -> &'static [Step<Self>] {
        SNAPSHOT_CREATE_STEPS
    }

    fn finished<'a>(&'a self, saga: &'a Saga) -> StepFuture<'a, ()> {
        Box::pin(async move {
            // A group or group snapshot may wait for this volume or snapshot.
            service(&self.0)?.poke_groups().await;
            if saga.state != SagaState::Failed {
                return Ok(());
            }
            service(&self.0)?.snapshot_ends_in(saga, SnapshotStatus::Creating, SnapshotStatus::Error).await
        })
    }

    fn stuck<'a>(&'a self, saga: &'a Saga) -> StepFuture<'a, ()> {
        Box::pin(async move {
            service(&self.0)?.snapshot_ends_in(saga, SnapshotStatus::Creating, SnapshotStatus::Error).await
        })
    }
}

// ---- snapshot_delete ----

pub struct DeleteSnapshot(Weak<VolumeService>);

const SNAPSHOT_DELETE_STEPS: &[Step<DeleteSnapshot>] = &[
    Step {
        name: "remove",
        run: |d, saga, _| {
            Box::pin(async move {
                let s = service(&d.0)?;
                let Some(snap) = s.store.snapshot_get(&saga.subject).await?.filter(|x| !x.deleted) else {
                    return Ok(Outcome::Next);
                };
                if let Some(v) = s.store.volume_get(&snap.volume_id).await? {
                    s.saga_driver(&v.backend)?.delete_snapshot(&snap.volume_id, &snap.id).await?;
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
                let Some(mut snap) = s.store.snapshot_get(&saga.subject).await?.filter(|x| !x.deleted) else {
                    return Ok(Outcome::Next);
                };
                snap.deleted = true;
                // The snapshot counted in its volume's type (a volume with snapshots
                // keeps its type and outlives them).
                let type_id = s.store.volume_get(&snap.volume_id).await?.map(|v| v.type_id).unwrap_or_default();
                let given = releases(&[("snapshots", 1), ("gigabytes", snap.size)], &type_id);
                let out = s.finish(Finished::Snapshot(&snap), saga, &as_refs(&given)).await?;
                s.notify("snapshot.delete.end", &snap.id, &snap.project_id, "deleted").await;
                s.poke_groups().await;
                // A volume deleted with its snapshots waits for them.
                if let Some(v) = s.store.volume_get(&snap.volume_id).await? {
                    if let (VolumeStatus::Deleting, Some(id)) = (v.status, v.control.saga_id.as_ref()) {
                        s.sagas.spawn(id);
                    }
                }
                Ok(out)
            })
        },
        undo: nothing_to_undo,
    },
];

impl SagaDef for DeleteSnapshot {
    type Data = NoData;

    fn kind(&self) -> &'static str {
        SNAPSHOT_DELETE
    }

    fn steps(&self) -> &'static [Step<Self>] {
        SNAPSHOT_DELETE_STEPS
    }

    fn finished<'a>(&'a self, saga: &'a Saga) -> StepFuture<'a, ()> {
        Box::pin(async move {
            // A group or group snapshot may wait for this volume or snapshot.
            service(&self.0)?.poke_groups().await;
            if saga.state != SagaState::Failed {
                return Ok(());
            }
            service(&self.0)?.snapshot_ends_in(saga, SnapshotStatus::Deleting, SnapshotStatus::ErrorDeleting).await
        })
    }

    fn stuck<'a>(&'a self, saga: &'a Saga) -> StepFuture<'a, ()> {
        Box::pin(async move {
            service(&self.0)?.snapshot_ends_in(saga, SnapshotStatus::Deleting, SnapshotStatus::ErrorDeleting).await
        })
    }
}

// ---- volume_upload ----

pub struct UploadVolume(Weak<VolumeService>);

const UPLOAD_STEPS: &[Step<UploadVolume>] = &[
    Step {
        name: "export",
        run: |d, saga, data| {
            Box::pin(async move {
                let s = service(&d.0)?;
                let v = s.saga_volume(saga).await?;
                s.stage_export(&v, &data.disk_format).await?;
                Ok(Outcome::Next)
            })
        },
        undo: |d, saga, _| {
            Box::pin(async move {
                service(&d.0)?.unstage_export(&saga.subject).await;
                Ok(())
            })
        },
    },
    Step {
        name: "upload",
        run: |d, saga, data| {
            Box::pin(async move {
                let s = service(&d.0)?;
                let v = s.saga_volume(saga).await?;
                match s.image_status(&data.image_id).await?.as_deref() {
                    // Sent before a crash.
                    Some("active") => return Ok(Outcome::Next),
                    None => {
                        return Err(StepError::permanent(format!(
                            "Image {} was deleted during the upload.",
                            data.image_id
                        )))
                    }
                    _ => {}
                }
                let file = s.stage_export(&v, &data.disk_format).await?;
                s.upload_file(&data.image_id, &file).await?;
                Ok(Outcome::Next)
            })
        },
        // The image made for the upload goes with it (as Cinder's does).
        undo: |d, _, data| {
            Box::pin(async move {
                service(&d.0)?.delete_image(&data.image_id).await?;
                Ok(())
            })
        },
    },
    Step {
        name: "finish",
        run: |d, saga, _| {
            Box::pin(async move {
                let s = service(&d.0)?;
                let mut v = s.saga_volume(saga).await?;
                s.unstage_export(&v.id).await;
                v.status = VolumeStatus::Available;
                v.control.saga_id = None;
                let out = s.finish(Finished::Volume(&v), saga, &[]).await?;
                s.notify("upload.end", &v.id, &v.project_id, "available").await;
                Ok(out)
            })
        },
        undo: nothing_to_undo,
    },
];

impl SagaDef for UploadVolume {
    type Data = super::images::UploadData;

    fn kind(&self) -> &'static str {
        UPLOAD
    }

    fn steps(&self) -> &'static [Step<Self>] {
        UPLOAD_STEPS
    }

    fn finished<'a>(&'a self, saga: &'a Saga) -> StepFuture<'a, ()> {
        Box::pin(async move {
            if saga.state != SagaState::Failed {
                return Ok(());
            }
            // The image the request made goes (whichever step failed), and the volume
            // itself is as it was: available again.
            let s = service(&self.0)?;
            let data: super::images::UploadData = saga.data_as()?;
            s.delete_image(&data.image_id).await?;
            s.unstage_export(&saga.subject).await;
            s.volume_ends_in(saga, VolumeStatus::Available, &[]).await
        })
    }

    fn stuck<'a>(&'a self, saga: &'a Saga) -> StepFuture<'a, ()> {
        Box::pin(async move { service(&self.0)?.volume_ends_in(saga, VolumeStatus::Error, &[]).await })
    }
}

// ---- volume_revert ----

/// The snapshot a revert makes the volume again.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevertData {
    pub snapshot_id: String,
}

pub struct RevertVolume(Weak<VolumeService>);

impl VolumeService {
    /// A failed or stuck revert's end, as Cinder's: the volume in `error` (it may be
    /// half written), the snapshot `available` again.
    async fn revert_failed(&self, saga: &Saga) -> StepResult<()> {
        let data: RevertData = saga.data_as()?;
        self.volume_ends_in(saga, VolumeStatus::Error, &[]).await?;
        let Some(mut snap) = self.store.snapshot_get(&data.snapshot_id).await?.filter(|s| !s.deleted) else {
            return Ok(());
        };
        if snap.status == SnapshotStatus::Restoring {
            snap.status = SnapshotStatus::Available;
            if !self.store.snapshot_save(&mut snap).await? {
                return Err(changed("snapshot", &snap.id));
            }
        }
        Ok(())
    }
}

const REVERT_STEPS: &[Step<RevertVolume>] = &[
    Step {
        name: "revert",
        run: |d, saga, data| {
            Box::pin(async move {
                let s = service(&d.0)?;
                let v = s.saga_volume(saga).await?;
                s.saga_driver(&v.backend)?.revert(&v.id, &data.snapshot_id).await?;
                Ok(Outcome::Next)
            })
        },
        // What the volume held before is gone: a failure's end says error.
        undo: nothing_to_undo,
    },
    Step {
        name: "finish",
        run: |d, saga, data| {
            Box::pin(async move {
                let s = service(&d.0)?;
                let mut v = s.saga_volume(saga).await?;
                let Some(mut snap) = s.store.snapshot_get(&data.snapshot_id).await?.filter(|x| !x.deleted) else {
                    return Err(StepError::permanent("The snapshot is gone."));
                };
                v.status = VolumeStatus::Available;
                v.control.saga_id = None;
                snap.status = SnapshotStatus::Available;
                let mut tx = s.store.db.pool.begin().await?;
                if !Store::volume_save_in(&mut tx, &v).await? || !Store::snapshot_save_in(&mut tx, &snap).await? {
                    return Err(changed("volume", &v.id));
                }
                if !s.sagas.finish_in(&mut tx, saga).await? {
                    return Err(changed("saga", &saga.id));
                }
                tx.commit().await?;
                s.notify("revert.end", &v.id, &v.project_id, "available").await;
                Ok(Outcome::Finished)
            })
        },
        undo: nothing_to_undo,
    },
];

impl SagaDef for RevertVolume {
    type Data = RevertData;

    fn kind(&self) -> &'static str {
        REVERT
    }

    fn steps(&self) -> &'static [Step<Self>] {
        REVERT_STEPS
    }

    fn finished<'a>(&'a self, saga: &'a Saga) -> StepFuture<'a, ()> {
        Box::pin(async move {
            if saga.state != SagaState::Failed {
                return Ok(());
            }
            service(&self.0)?.revert_failed(saga).await
        })
    }

    fn stuck<'a>(&'a self, saga: &'a Saga) -> StepFuture<'a, ()> {
        Box::pin(async move { service(&self.0)?.revert_failed(saga).await })
    }
}
