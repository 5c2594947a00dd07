//! `createImage` of a server booted from a volume, as Nova's: each of its volumes is
//! snapshotted (crash-consistent, `force`) and an image with no data stands for them,
//! its `block_device_mapping` naming the snapshots (Nova's `bdm_v2` form). A server
//! booted from that image boots from a new volume made from the root volume's snapshot.
//!
//! The request makes the image (`queued`, as the caller: the image service's policy
//! and quota are the caller's) and answers its id; a saga held by the server does the
//! rest:
//!
//! - `snapshot`: a snapshot of each volume, in the volume's project. Each carries the
//!   image's id in its description, so a step run again after a crash finds the ones
//!   it made instead of making more. Undo: those snapshots are deleted.
//! - `image`: the image gets the mappings and becomes `active` (size 0).
//! - `finish`: the server is free again and the instance action ends, in one
//!   transaction.
//!
//! A failure at any step unwinds: the snapshots go, and so does the image. The saga is
//! written before the image is made, so a crash in between leaves a saga whose
//! `image` step finds no image and unwinds.

use super::servers::refused_or_forbidden;
use super::{changed, conflict, moved_on, server_step, service, AppResult, ComputeService, ServerSaga};
use crate::store::{AttachedVolume, Server, Store, TaskState, VmState};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::sync::{Arc, Weak};
use stratus_common::auth::AuthContext;
use stratus_common::image_cache::IMAGE_FIELDS;
use stratus_common::saga::{
    nothing_to_undo, Outcome, Saga, SagaDef, SagaState, Step, StepError, StepFuture, StepResult,
};

pub const VOLUME_SNAPSHOT: &str = "volume_backed_snapshot";
const ACTION: &str = "createImage";

/// What the saga works on.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SnapshotData {
    /// The image made by the request, that stands for the snapshots.
    pub image_id: String,
    /// The image's name (the snapshots are named after it).
    pub name: String,
    /// The server's volumes, the root first.
    pub volumes: Vec<AttachedVolume>,
    /// The snapshots made so far, one per volume in `volumes`' order.
    #[serde(default)]
    pub snapshots: Vec<MadeSnapshot>,
}

/// A snapshot the saga made.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MadeSnapshot {
    pub id: String,
    /// Its size in GiB (the volume's).
    pub size: i64,
}

impl SnapshotData {
    /// The description each snapshot carries: what finds it again.
    fn marker(&self, server: &str) -> String {
        format!("Made for image {} of server {server}", self.image_id)
    }
}

pub struct SnapshotSaga(pub Weak<ComputeService>);

const STEPS: &[Step<SnapshotSaga>] = &[
    Step {
        name: "snapshot",
        run: server_step!(step_snapshot_volumes),
        undo: |def, saga, data| Box::pin(async move { service(&def.0)?.drop_snapshots(saga, data).await }),
    },
    Step { name: "image", run: server_step!(step_snapshot_image), undo: nothing_to_undo },
    Step { name: "finish", run: server_step!(step_snapshot_end), undo: nothing_to_undo },
];

impl ServerSaga for SnapshotSaga {
    async fn load(&self, saga: &mut Saga) -> StepResult<Option<(Arc<ComputeService>, Server)>> {
        super::load_held(&self.0, saga).await
    }
}

impl SagaDef for SnapshotSaga {
    type Data = SnapshotData;

    fn kind(&self) -> &'static str {
        VOLUME_SNAPSHOT
    }

    fn steps(&self) -> &'static [Step<Self>] {
        STEPS
    }

    /// A failed snapshot's image goes (the snapshots went with the unwind), and the
    /// server is free again.
    fn finished<'a>(&'a self, saga: &'a Saga) -> StepFuture<'a, ()> {
        Box::pin(async move {
            if saga.state != SagaState::Failed {
                return Ok(());
            }
            let s = service(&self.0)?;
            let data: SnapshotData = saga.data_as()?;
            s.clients.image_delete(&data.image_id).await?;
            Ok(s.server_saga_failed(saga, ACTION, "snapshot.error").await?)
        })
    }

    fn stuck<'a>(&'a self, saga: &'a Saga) -> StepFuture<'a, ()> {
        Box::pin(async move { service(&self.0)?.saga_stuck(saga, ACTION).await })
    }
}

impl ComputeService {
    /// `createImage` of a server booted from a volume: checks the server, makes the
    /// image as the caller and starts the saga; answers the image's id (`queued` until
    /// the saga ends, then `active`).
    pub(crate) async fn volume_backed_snapshot(
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
                "Cannot '{ACTION}' instance {} while it is in vm_state {} and task_state {}",
                server.id,
                server.vm_state,
                server.task_state.map_or("None", TaskState::as_str)
            )));
        }
        let mut volumes = server.volumes();
        volumes.sort_by_key(|v| !v.boot);
        let Some(root) = volumes.first().filter(|v| v.boot) else {
            return Err(conflict(format!("Instance {} has no root volume.", server.id)));
        };
        // What the root volume shows of its image (a kernel to boot with, ...), as Nova
        // keeps the instance's image properties.
        let root = self
            .clients
            .volume_as(&ctx.token, &root.project_id, &root.volume_id)
            .await
            .map_err(|e| refused_or_forbidden("The root volume", e))?;
        let root_meta = root["volume_image_metadata"].as_object().cloned().unwrap_or_default();
        let data = SnapshotData {
            image_id: uuid::Uuid::new_v4().to_string(),
            name: name.to_string(),
            volumes,
            snapshots: Vec::new(),
        };
        let image = snapshot_image(ctx, server, &data, &root_meta, metadata);
        let mut server = server.clone();
        let saga = self.hold_for_saga(ctx, &mut server, VOLUME_SNAPSHOT, ACTION, &data, request_id).await?;
        if let Err(e) = self.clients.image_create(&ctx.token, Value::Object(image)).await {
            // Unwound at once: nothing was made.
            self.sagas.cancel(&saga.id, &format!("the image could not be made: {e}")).await?;
            self.sagas.drive(&saga.id).await;
            return Err(refused_or_forbidden("The snapshot image", e));
        }
        self.notify("snapshot.start", &server).await;
        self.sagas.spawn_saga(saga);
        Ok(data.image_id)
    }

    async fn step_snapshot_volumes(
        &self,
        _: &SnapshotSaga,
        server: &mut Server,
        _: &mut Saga,
        data: &mut SnapshotData,
    ) -> StepResult<Outcome> {
        let marker = data.marker(&server.id);
        for v in data.volumes.clone().iter().skip(data.snapshots.len()) {
            let project = v.project_id.as_str();
            let made = self.clients.snapshots_of(project, &v.volume_id).await?;
            let snap = match made.into_iter().find(|s| s["description"].as_str() == Some(marker.as_str())) {
                Some(s) => s,
                None => {
                    let body = json!({"snapshot": {"volume_id": v.volume_id, "force": true,
                                                   "name": format!("snapshot for {}", data.name),
                                                   "description": marker}});
                    self.clients.snapshot_create(project, body).await?
                }
            };
            let id = snap["id"].as_str().filter(|id| !id.is_empty()).ok_or_else(|| {
                StepError::permanent(format!("The volume service made no snapshot of volume {}.", v.volume_id))
            })?;
            data.snapshots.push(MadeSnapshot { id: id.to_string(), size: snap["size"].as_i64().unwrap_or(1) });
        }
        Ok(Outcome::Next)
    }

    /// Deletes the snapshots the saga made (recorded, or found by their marker after
    /// a crash cut the step short).
    async fn drop_snapshots(&self, saga: &Saga, data: &SnapshotData) -> StepResult<()> {
        let marker = data.marker(&saga.subject);
        for v in &data.volumes {
            let project = v.project_id.as_str();
            let made = match self.clients.snapshots_of(project, &v.volume_id).await {
                Ok(made) => made,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            };
            for s in made.iter().filter(|s| s["description"].as_str() == Some(marker.as_str())) {
                let id = s["id"].as_str().unwrap_or_default();
                // A snapshot still being made cannot go yet: the unwind is tried again.
                self.clients.snapshot_delete(project, id).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            }
        }
        Ok(())
    }

    async fn step_snapshot_image(
        &self,
        _: &SnapshotSaga,
        _: &mut Server,
        _: &mut Saga,
        data: &mut SnapshotData,
    ) -> StepResult<Outcome> {
        let image = self.clients.image_as_service(&data.image_id).await?;
        if image["status"] == "active" {
            return Ok(Outcome::Next);
        }
        self.clients.image_finish_volume_snapshot(&data.image_id, &mappings(data)).await?;
        Ok(Outcome::Next)
    }

    async fn step_snapshot_end(
        &self,
        _: &SnapshotSaga,
        server: &mut Server,
        saga: &mut Saga,
        _: &mut SnapshotData,
    ) -> StepResult<Outcome> {
        server.control.saga_id = None;
        let mut tx = self.store.db.pool.begin().await?;
        if !Store::server_save_in(&mut tx, server, None).await? {
            return Err(changed(server));
        }
        Store::action_finish_in(&mut tx, &server.id, ACTION, "Success", None).await?;
        if !self.sagas.finish_in(&mut tx, saga).await? {
            return Err(moved_on(saga));
        }
        tx.commit().await?;
        server.rev += 1;
        self.notify("snapshot.end", server).await;
        Ok(Outcome::Finished)
    }
}

/// The image that stands for the snapshots, before they exist: the root volume's
/// image properties, the snapshot's own, then the request's metadata (which may set
/// any property).
fn snapshot_image(
    ctx: &AuthContext,
    server: &Server,
    data: &SnapshotData,
    root_meta: &Map<String, Value>,
    metadata: &Map<String, Value>,
) -> Map<String, Value> {
    let mut image = Map::new();
    for (k, v) in root_meta
        .iter()
        .filter(|(k, _)| !IMAGE_FIELDS.contains(&k.as_str()) && !super::snapshots::NOT_INHERITED.contains(&k.as_str()))
    {
        if k != "image_id" && k != "image_name" && k != "checksum" && k != "size" {
            image.insert(k.clone(), v.clone());
        }
    }
    let disk_format = root_meta.get("disk_format").and_then(Value::as_str).filter(|f| *f == "qcow2" || *f == "raw");
    image.extend(
        json!({
            "id": data.image_id, "name": data.name, "container_format": "bare",
            "disk_format": disk_format.unwrap_or("raw"), "visibility": "private", "image_type": "snapshot",
            "instance_uuid": server.id.as_str(), "user_id": ctx.user_id(), "owner_id": server.project_id.as_str(),
            "bdm_v2": "True", "root_device_name": "/dev/vda",
        })
        .as_object()
        .cloned()
        .unwrap_or_default(),
    );
    image.extend(metadata.clone());
    image
}

/// The image's `block_device_mapping`: a mapping per snapshot, in Nova's `bdm_v2` form.
fn mappings(data: &SnapshotData) -> Value {
    let mappings = data.volumes.iter().zip(&data.snapshots).map(|(v, snapshot)| {
        json!({
            "source_type": "snapshot", "destination_type": "volume", "snapshot_id": snapshot.id,
            "volume_size": snapshot.size, "boot_index": if v.boot { json!(0) } else { Value::Null },
            "delete_on_termination": v.delete_on_termination, "device_name": v.device, "device_type": "disk",
            "disk_bus": "virtio", "guest_format": null, "volume_type": null, "no_device": null, "image_id": null,
            "volume_id": null, "tag": v.tag,
        })
    });
    Value::Array(mappings.collect())
}
