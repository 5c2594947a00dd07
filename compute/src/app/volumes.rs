//! Block-storage volumes on servers (`os-volume_attachments`: `server add|remove
//! volume`), in Cinder 3.0's attach steps (`volume/src/app/attachments.rs`), as two
//! sagas on the server:
//!
//! - attach: `reserve` (the volume is held: `attaching`) → `connect` (the volume
//!   service says how the host reaches its bytes) → `plug` (the host's agent adds the
//!   disk to the guest, live and in its definition, and answers) → `finish` (the
//!   volume is `in-use`; the server records it; the instance action and the saga end
//!   in one transaction). A failure unwinds: the disk is unplugged, the connection
//!   ended, the reservation given up; the volume is `available` again and the server
//!   as it was.
//! - detach: `begin` (`detaching`) → `unplug` (the agent removes the disk, waiting for
//!   the guest to let go) → `finish` (the connection ended, the attachment gone, the
//!   volume `available`; the server forgets it). A failure rolls the volume back to
//!   `in-use` (and plugs the disk back if it was unplugged).
//!
//! Like Nova's, neither sets a task state; the server's saga id holds it, so other
//! actions wait (409). A delete meanwhile cancels the saga, which unwinds, then deletes.
//! The delete saga detaches what is left (and deletes volumes marked
//! `delete_on_termination`).

use super::servers::refused;
use super::{bad, changed, conflict, moved_on, not_found, server_step, service, AppResult, ComputeService, ServerSaga};
use crate::store::{AttachedVolume, Server, Store, VmState};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::{Arc, Weak};
use stratus_common::auth::AuthContext;
use stratus_common::ids::ProjectId;
use stratus_common::saga::{
    nothing_to_undo, Outcome, Saga, SagaDef, SagaState, Step, StepError, StepFuture, StepResult,
};
use stratus_compute_protocol::{GuestSpec, Op, VolumeSpec};

pub const ATTACH: &str = "volume_attach";
pub const DETACH: &str = "volume_detach";
pub const EXTEND: &str = "volume_extend";

/// What an attach or detach saga works on.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VolumeData {
    pub volume_id: String,
    /// The volume's project (its URL in the volume API).
    pub project_id: ProjectId,
    /// The guest's device (attach: chosen by the request).
    pub device: String,
    pub delete_on_termination: bool,
    pub tag: Option<String>,
    /// The volume service's `connection_info` (attach: from the `connect` step).
    pub connection: Option<Value>,
    /// The size it grows to (extend), in GiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_size: Option<i64>,
}

impl VolumeData {
    /// The saga data of a volume the server has (a detach's, an extend's).
    fn of(attached: &AttachedVolume) -> Self {
        VolumeData {
            volume_id: attached.volume_id.clone(),
            project_id: attached.project_id.clone(),
            device: attached.device.clone(),
            delete_on_termination: attached.delete_on_termination,
            tag: attached.tag.clone(),
            connection: Some(attached.connection.clone()),
            new_size: None,
        }
    }
}

/// An `volumeAttachment` view, shaped by the request's microversion.
pub fn attachment_view(server_id: &str, v: &AttachedVolume, version: crate::microversion::Version) -> Value {
    let mut out = json!({"serverId": server_id, "volumeId": v.volume_id, "device": v.device});
    if version.at_least(89) {
        out["attachment_id"] = json!(v.attachment_id);
        out["bdm_uuid"] = json!(v.attachment_id);
    } else {
        out["id"] = json!(v.volume_id);
    }
    if version.at_least(70) {
        out["tag"] = json!(v.tag);
    }
    if version.at_least(79) {
        out["delete_on_termination"] = json!(v.delete_on_termination);
    }
    out
}

/// The first virtio disk name free on the server after its root disk (`vda`): as with
/// Nova, the config drive is a CD-ROM, so the first volume is `vdb`.
fn next_device(server: &Server) -> AppResult<String> {
    let used: Vec<String> =
        server.volumes().into_iter().map(|v| v.device.trim_start_matches("/dev/").to_string()).collect();
    (b'b'..=b'z')
        .map(|c| format!("vd{}", c as char))
        .find(|d| !used.contains(d))
        .map(|d| format!("/dev/{d}"))
        .ok_or_else(|| bad("The server has no free disk device left."))
}

/// The request's `device`: `/dev/` and a disk name, or nothing. Like Nova with libvirt,
/// the name is a hint the service does not follow: the guest names disks itself.
fn check_device(device: Option<&Value>) -> AppResult<()> {
    match device {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(d))
            if d.strip_prefix("/dev/").is_some_and(|n| {
                !n.is_empty() && n.len() <= 16 && n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            }) =>
        {
            Ok(())
        }
        Some(other) => Err(bad(format!("Invalid input for field/attribute device. Value: {other}."))),
    }
}

pub struct VolumeSaga(pub &'static str, pub Weak<ComputeService>);

fn under_way(server: &Server, saga: &Saga) -> bool {
    server.control.saga_id.as_ref() == Some(&saga.id)
}

const ATTACH_STEPS: &[Step<VolumeSaga>] = &[
    Step {
        name: "reserve",
        run: server_step!(step_reserve),
        undo: |def, saga, data| Box::pin(async move { service(&def.1)?.unreserve(saga, data).await }),
    },
    Step {
        name: "connect",
        run: server_step!(step_connect),
        undo: |def, saga, data| {
            Box::pin(async move {
                let s = service(&def.1)?;
                let host = s.store.server_get(&saga.subject).await?.and_then(|v| v.host).unwrap_or_default();
                let connector = s.connector(&host, &saga.subject).await?;
                s.volume_undo(data, json!({"os-terminate_connection": {"connector": connector}})).await
            })
        },
    },
    Step {
        name: "plug",
        run: server_step!(step_plug),
        undo: |def, saga, data| Box::pin(async move { service(&def.1)?.replug(saga, data, Op::DetachVolume).await }),
    },
    Step { name: "finish", run: server_step!(step_attach_end), undo: nothing_to_undo },
];

const DETACH_STEPS: &[Step<VolumeSaga>] = &[
    Step {
        name: "begin",
        run: server_step!(step_begin_detaching),
        undo: |def, _, data| {
            Box::pin(async move { service(&def.1)?.volume_undo(data, json!({"os-roll_detaching": {}})).await })
        },
    },
    Step {
        name: "unplug",
        run: server_step!(step_unplug),
        undo: |def, saga, data| Box::pin(async move { service(&def.1)?.replug(saga, data, Op::AttachVolume).await }),
    },
    Step { name: "finish", run: server_step!(step_detach_end), undo: nothing_to_undo },
];

/// The volume service grew an attached volume (`volume-extended`): the guest's disk
/// grows through its host (`grow`), then the volume service is told (`finish`). A
/// failure tells it too, and the volume goes back to its size.
const EXTEND_STEPS: &[Step<VolumeSaga>] = &[
    Step { name: "grow", run: server_step!(step_grow), undo: nothing_to_undo },
    Step { name: "finish", run: server_step!(step_extend_end), undo: nothing_to_undo },
];

/// A volume the volume service no longer has needs no undoing.
fn gone(e: crate::clients::CallError) -> Result<Value, crate::clients::CallError> {
    if e.is_not_found() {
        Ok(Value::Null)
    } else {
        Err(e)
    }
}

impl ServerSaga for VolumeSaga {
    async fn load(&self, saga: &mut Saga) -> StepResult<Option<(Arc<ComputeService>, Server)>> {
        super::load_held(&self.1, saga).await
    }
}

impl SagaDef for VolumeSaga {
    type Data = VolumeData;

    fn kind(&self) -> &'static str {
        self.0
    }

    fn steps(&self) -> &'static [Step<Self>] {
        match self.0 {
            ATTACH => ATTACH_STEPS,
            DETACH => DETACH_STEPS,
            _ => EXTEND_STEPS,
        }
    }

    fn finished<'a>(&'a self, saga: &'a Saga) -> StepFuture<'a, ()> {
        Box::pin(async move {
            if saga.state != SagaState::Failed {
                return Ok(());
            }
            Ok(service(&self.1)?.volume_saga_failed(self.0, saga).await?)
        })
    }

    fn stuck<'a>(&'a self, saga: &'a Saga) -> StepFuture<'a, ()> {
        Box::pin(async move { service(&self.1)?.saga_stuck(saga, action_of(self.0)).await })
    }
}

/// The instance action a volume saga records.
fn action_of(kind: &str) -> &'static str {
    match kind {
        ATTACH => "attach_volume",
        DETACH => "detach_volume",
        _ => "extend_volume",
    }
}

/// The notification a volume saga's end sends.
fn event_of(kind: &str, ok: bool) -> &'static str {
    match (kind, ok) {
        (ATTACH, true) => "volume_attach.end",
        (ATTACH, false) => "volume_attach.error",
        (DETACH, true) => "volume_detach.end",
        (DETACH, false) => "volume_detach.error",
        (_, true) => "volume_extend.end",
        (_, false) => "volume_extend.error",
    }
}

impl ComputeService {
    /// A server whose volumes may change now: ACTIVE, SHUTOFF or PAUSED on a host,
    /// nothing under way.
    async fn server_for_volume_change(&self, ctx: &AuthContext, id: &str, what: &str) -> AppResult<Server> {
        let s = self.server_for_action(ctx, id).await?;
        self.refuse_on_bare_metal(&s, what)?;
        if !matches!(s.vm_state, VmState::Active | VmState::Stopped | VmState::Paused) || s.busy() || s.host.is_none() {
            return Err(conflict(format!(
                "Cannot '{what}' instance {id} while it is in vm_state {} and task_state {}",
                s.vm_state,
                s.task_state.map_or("None", crate::store::TaskState::as_str)
            )));
        }
        Ok(s)
    }

    /// `GET /servers/{id}/os-volume_attachments`.
    pub async fn volume_attachments(&self, ctx: &AuthContext, id: &str) -> AppResult<Vec<AttachedVolume>> {
        Ok(self.server_get(ctx, id).await?.volumes())
    }

    /// `GET /servers/{id}/os-volume_attachments/{volume_id}`.
    pub async fn volume_attachment(&self, ctx: &AuthContext, id: &str, volume_id: &str) -> AppResult<AttachedVolume> {
        self.server_get(ctx, id)
            .await?
            .volumes()
            .into_iter()
            .find(|v| v.volume_id == volume_id)
            .ok_or_else(|| not_found(format!("Volume {volume_id} is not attached to server {id}.")))
    }

    /// `POST /servers/{id}/os-volume_attachments`: checks the volume (the caller must
    /// see it, available, or in use by other servers when it is multiattach and the
    /// request speaks 2.60 or later: `multiattach_ok`), picks the device, and starts
    /// the attach saga. Answers the attachment as it will be; the volume shows
    /// `in-use` when it is done.
    pub async fn volume_attach(
        &self,
        ctx: &AuthContext,
        id: &str,
        body: &serde_json::Map<String, Value>,
        request_id: &str,
        multiattach_ok: bool,
    ) -> AppResult<AttachedVolume> {
        let volume_id = body
            .get("volumeId")
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                bad("Invalid input for field/attribute volumeAttachment: 'volumeId' is a required property.")
            })?
            .to_string();
        for key in body.keys() {
            if !matches!(key.as_str(), "volumeId" | "device" | "tag" | "delete_on_termination") {
                return Err(bad(format!("Additional properties are not allowed ('{key}' was unexpected)")));
            }
        }
        check_device(body.get("device"))?;
        let tag = match body.get("tag") {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) if !t.is_empty() && t.len() <= 60 && !t.contains(['/', ',']) => Some(t.clone()),
            Some(other) => return Err(bad(format!("Invalid input for field/attribute tag. Value: {other}."))),
        };
        let delete_on_termination = match body.get("delete_on_termination") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(bad(format!("Invalid input for field/attribute delete_on_termination. Value: {other}.")))
            }
        };
        let mut server = self.server_for_volume_change(ctx, id, "attach_volume").await?;
        let own = super::project_of(ctx).map(ProjectId::from).unwrap_or_else(|_| server.project_id.clone());
        let volume = self.clients.volume_as(&ctx.token, &own, &volume_id).await.map_err(|e| match e {
            e if e.is_not_found() => not_found(format!("Volume {volume_id} could not be found.")),
            e => refused(&format!("Volume {volume_id}"), e),
        })?;
        if server.volumes().iter().any(|v| v.volume_id == volume_id) {
            return Err(bad(format!("Invalid volume: volume {volume_id} is already attached to this server.")));
        }
        let multiattach = volume["multiattach"] == true;
        if multiattach && !multiattach_ok {
            return Err(bad("Multiattach volumes are only supported starting with compute API version 2.60."));
        }
        let status = volume["status"].as_str().unwrap_or("unknown");
        if !(status == "available" || (multiattach && status == "in-use")) {
            return Err(bad(format!("Invalid volume: volume {volume_id} status must be 'available', not '{status}'.")));
        }
        let project_id = ProjectId::from(volume["os-vol-tenant-attr:tenant_id"].as_str().unwrap_or(&own));
        let device = next_device(&server)?;
        let data = VolumeData {
            volume_id: volume_id.clone(),
            project_id: project_id.clone(),
            device: device.clone(),
            delete_on_termination,
            tag: tag.clone(),
            connection: None,
            new_size: None,
        };
        self.start_volume_saga(ctx, &mut server, ATTACH, &data, request_id).await?;
        Ok(AttachedVolume {
            volume_id,
            project_id,
            device,
            attachment_id: None,
            delete_on_termination,
            tag,
            connection: Value::Null,
            boot: false,
        })
    }

    /// `DELETE /servers/{id}/os-volume_attachments/{volume_id}`: starts the detach saga.
    pub async fn volume_detach(&self, ctx: &AuthContext, id: &str, volume_id: &str, request_id: &str) -> AppResult<()> {
        // The server as it is once any attach or detach under way has ended (a detach
        // asked just as the last one ends must not find the volume it let go of).
        let mut server = self.server_for_volume_change(ctx, id, "detach_volume").await?;
        let Some(attached) = server.volumes().into_iter().find(|v| v.volume_id == volume_id) else {
            return Err(not_found(format!("Volume {volume_id} is not attached to server {id}.")));
        };
        if attached.boot {
            return Err(bad(format!("Cannot detach volume {volume_id}: it is the root device of server {id}.")));
        }
        let data = VolumeData::of(&attached);
        // As Nova: the volume shows `detaching` before the answer, so a client that
        // looks at once sees the detach under way (the saga's first step repeats it).
        self.clients
            .volume_action(&data.project_id, volume_id, json!({"os-begin_detaching": {}}))
            .await
            .map_err(|e| refused(&format!("Volume {volume_id}"), e))?;
        let started = self.start_volume_saga(ctx, &mut server, DETACH, &data, request_id).await;
        if started.is_err() {
            let roll = json!({"os-roll_detaching": {}});
            if let Err(e) = self.clients.volume_action(&data.project_id, volume_id, roll).await {
                tracing::warn!(volume = volume_id, error = %e, "cannot roll back a detach that did not start");
            }
        }
        started
    }

    /// The volume service grew volume `volume_id`, attached to server `id`
    /// (`volume-extended`): starts the saga that grows the guest's disk to the
    /// volume's new size and tells the volume service when it has.
    pub async fn volume_extended(
        &self,
        ctx: &AuthContext,
        id: &str,
        volume_id: &str,
        request_id: &str,
    ) -> AppResult<()> {
        let mut server = self.server_for_volume_change(ctx, id, "extend_volume").await?;
        let Some(attached) = server.volumes().into_iter().find(|v| v.volume_id == volume_id) else {
            return Err(not_found(format!("Volume {volume_id} is not attached to server {id}.")));
        };
        let volume = self.clients.volume(&attached.project_id, volume_id).await.map_err(|e| match e {
            e if e.is_not_found() => not_found(format!("Volume {volume_id} could not be found.")),
            e => refused(&format!("Volume {volume_id}"), e),
        })?;
        let size = volume["size"].as_i64().filter(|s| *s > 0).ok_or_else(|| bad("The volume shows no size."))?;
        let data = VolumeData { new_size: Some(size), ..VolumeData::of(&attached) };
        self.start_volume_saga(ctx, &mut server, EXTEND, &data, request_id).await
    }

    async fn step_grow(
        &self,
        _: &VolumeSaga,
        server: &mut Server,
        saga: &mut Saga,
        data: &mut VolumeData,
    ) -> StepResult<Outcome> {
        self.volume_command(server, saga, data, Op::ExtendVolume).await
    }

    async fn step_extend_end(
        &self,
        _: &VolumeSaga,
        server: &mut Server,
        saga: &mut Saga,
        data: &mut VolumeData,
    ) -> StepResult<Outcome> {
        let done = json!({"os-extend_volume_completion": {"error": false}});
        self.clients.volume_action(&data.project_id, &data.volume_id, done).await.or_else(gone)?;
        let volumes = server.volumes();
        self.end_volume_saga(server, saga, volumes, EXTEND).await
    }

    /// Writes the saga with the server that records it and the instance action, in
    /// one transaction, then drives it in the background.
    async fn start_volume_saga(
        &self,
        ctx: &AuthContext,
        server: &mut Server,
        kind: &'static str,
        data: &VolumeData,
        request_id: &str,
    ) -> AppResult<()> {
        let saga = self.hold_for_saga(ctx, server, kind, action_of(kind), data, request_id).await?;
        self.sagas.spawn_saga(saga);
        Ok(())
    }

    /// Writes a saga of `kind` on `server` (which holds its id, so other actions wait),
    /// the server and the instance action `action` in one transaction; answers the
    /// saga, not driven yet, carrying the server as saved.
    pub(crate) async fn hold_for_saga<T: Serialize>(
        &self,
        ctx: &AuthContext,
        server: &mut Server,
        kind: &str,
        action: &str,
        data: &T,
        request_id: &str,
    ) -> AppResult<Saga> {
        let mut saga = Saga::fresh(Saga::new_id(), kind, &server.id, data);
        server.control.saga_id = Some(saga.id.clone());
        server.control.change = None;
        let action = Self::new_action(ctx, server, action, request_id);
        let mut tx = self.store.db.pool.begin().await?;
        if !Store::server_save_in(&mut tx, server, Some(None)).await? {
            return Err(conflict(format!("Instance {} is busy with another task.", server.id)));
        }
        self.sagas.insert_saga(&mut tx, &saga).await?;
        Store::action_start_in(&mut tx, &action).await?;
        tx.commit().await?;
        server.rev += 1;
        saga.scratch = Some(Box::new(server.clone()));
        Ok(saga)
    }

    async fn step_reserve(
        &self,
        _: &VolumeSaga,
        server: &mut Server,
        _: &mut Saga,
        data: &mut VolumeData,
    ) -> StepResult<Outcome> {
        let reserve = json!({"os-reserve": {"instance_uuid": server.id}});
        self.clients.volume_action(&data.project_id, &data.volume_id, reserve).await?;
        Ok(Outcome::Next)
    }

    /// A volume action that takes something back; a volume gone already needs none.
    async fn volume_undo(&self, data: &VolumeData, action: Value) -> StepResult<()> {
        self.clients.volume_action(&data.project_id, &data.volume_id, action).await.or_else(gone)?;
        Ok(())
    }

    /// Gives the volume back: the attachment `finish` made for the server, if it got
    /// that far before the saga was cancelled or failed, and the reservation.
    async fn unreserve(&self, saga: &Saga, data: &VolumeData) -> StepResult<()> {
        let volume = match self.clients.volume(&data.project_id, &data.volume_id).await {
            Ok(v) => v,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let ours = volume["attachments"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["server_id"].as_str() == Some(saga.subject.as_str()))
            .filter_map(|a| a["attachment_id"].as_str());
        for attachment in ours {
            self.volume_undo(data, json!({"os-detach": {"attachment_id": attachment}})).await?;
        }
        self.volume_undo(data, json!({"os-unreserve": {}})).await
    }

    async fn step_connect(
        &self,
        _: &VolumeSaga,
        server: &mut Server,
        _: &mut Saga,
        data: &mut VolumeData,
    ) -> StepResult<Outcome> {
        data.connection = Some(self.connect(server, data).await?);
        Ok(Outcome::Next)
    }

    /// What a host says of itself to the volume service (Cinder's connector): its name
    /// and, when its agent reported one, the address the volume service limits a
    /// network export to.
    /// The connector of `server` on `host`: Nova's, and the server itself (`instance`,
    /// a Stratus extension: a host keeps a multiattach volume while another of its
    /// servers has it).
    async fn connector(&self, host: &str, server: &str) -> StepResult<Value> {
        let mut c = json!({"host": host, "platform": "x86_64", "os_type": "linux", "multipath": false,
                           "instance": server});
        if let Some(ip) = self.store.host_get(host).await?.and_then(|h| h.host_ip) {
            c["ip"] = json!(ip);
        }
        Ok(c)
    }

    /// `os-initialize_connection` for the server's host: how it reaches the volume.
    async fn connect(&self, server: &Server, data: &VolumeData) -> StepResult<Value> {
        let host = server.host.clone().unwrap_or_default();
        let ask = json!({"os-initialize_connection": {"connector": self.connector(&host, &server.id).await?}});
        let answer = self.clients.volume_action(&data.project_id, &data.volume_id, ask).await?;
        let info = answer["connection_info"].clone();
        if !info["driver_volume_type"].is_string() {
            return Err(StepError::permanent(format!(
                "The volume service gave no connection info for volume {}.",
                data.volume_id
            )));
        }
        Ok(info)
    }

    /// `os-attach` of the volume to the server at `data.device`; the attachment as the
    /// volume service recorded it.
    async fn mark_attached(&self, server: &Server, data: &VolumeData) -> StepResult<AttachedVolume> {
        let attach = json!({"os-attach": {"instance_uuid": server.id, "mountpoint": data.device,
                                          "host_name": server.host, "mode": "rw"}});
        self.clients.volume_action(&data.project_id, &data.volume_id, attach).await?;
        let volume = self.clients.volume(&data.project_id, &data.volume_id).await?;
        let attachment_id = volume["attachments"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["server_id"].as_str() == Some(server.id.as_str()))
            .and_then(|a| a["attachment_id"].as_str())
            .map(str::to_string);
        Ok(AttachedVolume {
            volume_id: data.volume_id.clone(),
            project_id: data.project_id.clone(),
            device: data.device.clone(),
            attachment_id,
            delete_on_termination: data.delete_on_termination,
            tag: data.tag.clone(),
            connection: data.connection.clone().unwrap_or_default(),
            boot: data.device == "/dev/vda",
        })
    }

    /// The volume as the host's agent reaches it.
    fn volume_spec(server: &Server, data: &VolumeData) -> GuestSpec {
        let info = data.connection.clone().unwrap_or_default();
        GuestSpec {
            name: server.name.clone(),
            volumes: vec![VolumeSpec {
                volume_id: data.volume_id.clone(),
                device: data.device.clone(),
                driver_volume_type: info["driver_volume_type"].as_str().unwrap_or_default().to_string(),
                data: info["data"].clone(),
                boot: false,
                size_gb: data.new_size,
            }],
            ..Default::default()
        }
    }

    /// Sends the volume command and waits for the agent's answer (tagged with the
    /// saga's id); sent again after the command timeout.
    async fn volume_command(
        &self,
        server: &mut Server,
        saga: &mut Saga,
        data: &VolumeData,
        op: Op,
    ) -> StepResult<Outcome> {
        self.host_step(server, saga, op, async |server: &Server, _: &crate::store::HostRow| {
            Self::volume_spec(server, data)
        })
        .await
    }

    async fn step_plug(
        &self,
        _: &VolumeSaga,
        server: &mut Server,
        saga: &mut Saga,
        data: &mut VolumeData,
    ) -> StepResult<Outcome> {
        self.volume_command(server, saga, data, Op::AttachVolume).await
    }

    async fn step_unplug(
        &self,
        _: &VolumeSaga,
        server: &mut Server,
        saga: &mut Saga,
        data: &mut VolumeData,
    ) -> StepResult<Outcome> {
        self.volume_command(server, saga, data, Op::DetachVolume).await
    }

    /// Takes back a plug or an unplug on the host, untracked as other unwinds' commands
    /// are (the agent's operations are idempotent).
    async fn replug(&self, saga: &Saga, data: &VolumeData, op: Op) -> StepResult<()> {
        let Some(server) = self.store.server_get(&saga.subject).await? else { return Ok(()) };
        let (Some(host), false) = (server.host.clone(), server.deleted) else { return Ok(()) };
        if data.connection.is_none() {
            return Ok(());
        }
        self.send_untracked(&host, &server.id, op, Some(Self::volume_spec(&server, data))).await?;
        Ok(())
    }

    async fn step_begin_detaching(
        &self,
        _: &VolumeSaga,
        _: &mut Server,
        _: &mut Saga,
        data: &mut VolumeData,
    ) -> StepResult<Outcome> {
        self.clients.volume_action(&data.project_id, &data.volume_id, json!({"os-begin_detaching": {}})).await?;
        Ok(Outcome::Next)
    }

    /// Ends a volume saga: the server's new list of volumes, the instance action's end
    /// and the saga's end, in one transaction.
    async fn end_volume_saga(
        &self,
        server: &mut Server,
        saga: &mut Saga,
        volumes: Vec<AttachedVolume>,
        kind: &str,
    ) -> StepResult<Outcome> {
        server.set_volumes(&volumes);
        server.control.saga_id = None;
        server.control.command = None;
        server.control.change = None;
        let mut tx = self.store.db.pool.begin().await?;
        if !Store::server_save_in(&mut tx, server, None).await? {
            return Err(changed(server));
        }
        Store::action_finish_in(&mut tx, &server.id, action_of(kind), "Success", None).await?;
        if !self.sagas.finish_in(&mut tx, saga).await? {
            return Err(moved_on(saga));
        }
        tx.commit().await?;
        server.rev += 1;
        self.notify(event_of(kind, true), server).await;
        Ok(Outcome::Finished)
    }

    async fn step_attach_end(
        &self,
        _: &VolumeSaga,
        server: &mut Server,
        saga: &mut Saga,
        data: &mut VolumeData,
    ) -> StepResult<Outcome> {
        let attached = self.mark_attached(server, data).await?;
        let mut volumes = server.volumes();
        volumes.retain(|v| v.volume_id != data.volume_id);
        volumes.push(attached);
        self.end_volume_saga(server, saga, volumes, ATTACH).await
    }

    async fn step_detach_end(
        &self,
        _: &VolumeSaga,
        server: &mut Server,
        saga: &mut Saga,
        data: &mut VolumeData,
    ) -> StepResult<Outcome> {
        let attached = server.volumes().into_iter().find(|v| v.volume_id == data.volume_id);
        let host = server.host.clone().unwrap_or_default();
        self.volume_release(&host, &server.id, data, attached.and_then(|a| a.attachment_id)).await?;
        let mut volumes = server.volumes();
        volumes.retain(|v| v.volume_id != data.volume_id);
        self.end_volume_saga(server, saga, volumes, DETACH).await
    }

    /// Tells the volume service the host let go of a volume and the attachment is
    /// gone (the volume is `available` again). A volume gone already is fine.
    async fn volume_release(
        &self,
        host: &str,
        server: &str,
        data: &VolumeData,
        attachment: Option<String>,
    ) -> StepResult<()> {
        let connector = self.connector(host, server).await?;
        self.volume_undo(data, json!({"os-terminate_connection": {"connector": connector}})).await?;
        self.volume_undo(data, json!({"os-detach": {"attachment_id": attachment}})).await
    }

    /// The delete saga's step: every volume still attached is let go (its guest is
    /// destroyed already), and the ones marked `delete_on_termination` are deleted.
    pub(crate) async fn volumes_release_all(&self, server: &mut Server) -> StepResult<()> {
        let host = server.host.clone().unwrap_or_default();
        for v in server.volumes() {
            let data = VolumeData {
                volume_id: v.volume_id.clone(),
                project_id: v.project_id.clone(),
                device: v.device.clone(),
                ..Default::default()
            };
            self.volume_release(&host, &server.id, &data, v.attachment_id.clone()).await?;
            if v.delete_on_termination {
                self.clients.volume_delete(&v.project_id, &v.volume_id).await?;
            }
            let mut left = server.volumes();
            left.retain(|x| x.volume_id != v.volume_id);
            server.set_volumes(&left);
            if !self.store.server_save(server, None).await? {
                return Err(changed(server));
            }
        }
        Ok(())
    }

    /// A volume saga that failed (and unwound): the server is free again, its
    /// instance action ends in error; a delete asked for meanwhile starts now.
    async fn volume_saga_failed(&self, kind: &str, saga: &Saga) -> anyhow::Result<()> {
        if kind == EXTEND {
            // The volume service takes the volume back to its size.
            let data: VolumeData = saga.data_as()?;
            let failed = json!({"os-extend_volume_completion": {"error": true}});
            if let Err(e) = self.clients.volume_action(&data.project_id, &data.volume_id, failed).await.or_else(gone) {
                tracing::warn!(volume = %data.volume_id, error = %e, "cannot tell the volume service the extend failed");
            }
        }
        self.server_saga_failed(saga, action_of(kind), event_of(kind, false)).await
    }

    /// A failed saga held by its server lets go of it: the instance action `action`
    /// ends in error, `event` is announced, and a delete asked meanwhile starts.
    pub(crate) async fn server_saga_failed(&self, saga: &Saga, action: &str, event: &str) -> anyhow::Result<()> {
        let Some(mut server) = self.store.server_get(&saga.subject).await? else { return Ok(()) };
        if server.deleted || !under_way(&server, saga) {
            return Ok(());
        }
        server.control.saga_id = None;
        server.control.command = None;
        server.control.change = None;
        let delete_requested = server.control.delete_requested;
        if delete_requested {
            server.task_state = Some(crate::store::TaskState::Deleting);
        }
        self.save(&mut server).await?;
        self.finish_action(&server, action, Some(&saga.error)).await;
        self.notify(event, &server).await;
        if delete_requested {
            self.start_delete(&server).await?;
        }
        Ok(())
    }
}

/// What a server boots from.
pub enum BootSource {
    /// An image copied onto the host (its id, and what the image service says of it).
    Image(String, Value),
    /// A volume: the user's, or one the create saga makes from an image.
    Volume(BootVolume),
}

/// A server's boot volume as its create request asked for it (`boot_volume` in the
/// server's document).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BootVolume {
    /// `volume` (the user's volume `uuid`), `image` (a volume made from image `uuid`)
    /// or `snapshot` (a volume made from volume snapshot `uuid`: the root of a
    /// volume-backed server's snapshot image).
    pub source: String,
    pub uuid: String,
    /// GiB, for a volume made from an image.
    pub size: i64,
    pub delete_on_termination: bool,
    /// What is known of the image it holds (`kernel_id`, `ramdisk_id`,
    /// `os_command_line`, `min_ram`, ...).
    #[serde(default)]
    pub image_meta: Value,
}

/// The boot volume of an image that stands for a volume-backed server's snapshot (its
/// `block_device_mapping` names the root volume's snapshot, as Nova writes it): a new
/// volume made from that snapshot. `None` for an image with data.
fn snapshot_boot(img: &Value) -> Option<BootVolume> {
    let text = img["block_device_mapping"].as_str()?;
    let mappings: Vec<Value> = serde_json::from_str(text).ok()?;
    let root = mappings.iter().find(|m| super::as_int(&m["boot_index"]) == Some(0))?;
    if root["source_type"] != "snapshot" {
        return None;
    }
    Some(BootVolume {
        source: "snapshot".into(),
        uuid: root["snapshot_id"].as_str()?.to_string(),
        size: super::as_int(&root["volume_size"]).unwrap_or(1),
        delete_on_termination: root["delete_on_termination"] == true,
        image_meta: img.clone(),
    })
}

/// The name of the volume the create saga makes for a server (found by it again
/// when the step runs twice).
fn boot_volume_name(server_id: &str) -> String {
    format!("boot-{server_id}")
}

fn flag(v: &Value) -> AppResult<bool> {
    match v {
        Value::Null => Ok(false),
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(bad(format!("Invalid input for field/attribute delete_on_termination. Value: {other}."))),
    }
}

impl ComputeService {
    /// What a create request boots from: `imageRef`, or the `block_device_mapping_v2`
    /// entry with boot index 0 (`openstack server create --volume V`, or `--image I
    /// --boot-from-volume SIZE`), checked as the caller sees it.
    pub(crate) async fn boot_source(
        &self,
        token: &str,
        project: &str,
        image_ref: Option<String>,
        bdms: Option<&Value>,
    ) -> AppResult<BootSource> {
        let image_ref = image_ref.filter(|s| !s.is_empty());
        let bdms = match bdms {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a.clone(),
            Some(_) => return Err(bad("Invalid input for field/attribute block_device_mapping_v2.")),
        };
        let boot = bdms.iter().find(|b| super::as_int(&b["boot_index"]) == Some(0));
        for b in bdms.iter().filter(|b| super::as_int(&b["boot_index"]) != Some(0)) {
            if b["destination_type"].as_str() == Some("volume") || b["source_type"].as_str() == Some("volume") {
                return Err(bad(
                    "Only the boot device can be a volume at create: attach other volumes once the server is ACTIVE.",
                ));
            }
        }
        let image = |id: String| async move {
            let id = super::servers::ref_id(&id).to_string();
            let image = self.clients.image(token, &id).await.map_err(|e| refused(&format!("Image {id}"), e))?;
            if image["status"] != "active" {
                return Err(bad(format!("Image {id} is not active.")));
            }
            Ok::<_, super::Error>((id, image))
        };
        let Some(b) = boot else {
            let id = image_ref.ok_or_else(|| bad("Invalid input: an imageRef is required to boot a server."))?;
            let (id, img) = image(id).await?;
            return Ok(snapshot_boot(&img).map_or(BootSource::Image(id, img), BootSource::Volume));
        };
        let source = b["source_type"].as_str().unwrap_or("image");
        let destination = b["destination_type"].as_str().unwrap_or(if source == "volume" { "volume" } else { "local" });
        let uuid = b["uuid"].as_str().filter(|u| !u.is_empty()).map(str::to_string);
        let delete_on_termination = flag(&b["delete_on_termination"])?;
        match (source, destination) {
            ("image", "local") => {
                let id = uuid.or(image_ref).ok_or_else(|| bad("The boot image mapping names no image."))?;
                let (id, img) = image(id).await?;
                Ok(snapshot_boot(&img).map_or(BootSource::Image(id, img), BootSource::Volume))
            }
            ("volume", "volume") => {
                let id = uuid.ok_or_else(|| bad("The boot volume mapping names no volume (uuid)."))?;
                let v = self.clients.volume_as(token, project, &id).await.map_err(|e| match e {
                    e if e.is_not_found() => {
                        bad(format!("Block Device Mapping is Invalid: failed to get volume {id}."))
                    }
                    e => refused(&format!("Volume {id}"), e),
                })?;
                if v["status"] != "available" {
                    return Err(bad(format!(
                        "Block Device Mapping is Invalid: volume {id} is {}, not available.",
                        v["status"].as_str().unwrap_or("unknown")
                    )));
                }
                if v["bootable"] != "true" && v["bootable"] != true {
                    return Err(bad(format!("Block Device Mapping is Invalid: volume {id} is not bootable.")));
                }
                Ok(BootSource::Volume(BootVolume {
                    source: "volume".into(),
                    uuid: id,
                    size: super::as_int(&v["size"]).unwrap_or(1),
                    delete_on_termination,
                    image_meta: v.get("volume_image_metadata").cloned().unwrap_or(json!({})),
                }))
            }
            ("image", "volume") => {
                let id = uuid.or(image_ref).ok_or_else(|| bad("The boot image mapping names no image."))?;
                let (id, img) = image(id).await?;
                let format = img["disk_format"].as_str().unwrap_or_default();
                if !matches!(format, "raw" | "qcow2") {
                    return Err(bad(format!("Image {id} is {format}: volumes are made from raw or qcow2 images.")));
                }
                let bytes = img["virtual_size"].as_u64().or(img["size"].as_u64()).unwrap_or(0);
                let least = (bytes.div_ceil(1 << 30) as i64).max(super::as_int(&img["min_disk"]).unwrap_or(0)).max(1);
                let size = match &b["volume_size"] {
                    Value::Null => least,
                    v => super::as_int(v)
                        .filter(|n| (1..=16_384).contains(n))
                        .ok_or_else(|| bad(format!("Invalid input for field/attribute volume_size. Value: {v}.")))?,
                };
                if size < least {
                    return Err(bad(format!("Volume size {size} GiB is smaller than image {id} needs ({least} GiB).")));
                }
                Ok(BootSource::Volume(BootVolume {
                    source: "image".into(),
                    uuid: id,
                    size,
                    delete_on_termination,
                    image_meta: img,
                }))
            }
            (s, d) => {
                Err(bad(format!("Booting from {s} to {d} is not supported by this cloud: use an image or a volume.")))
            }
        }
    }

    /// The create saga's `boot_volume` step: the boot volume (made from its image the
    /// first time, found again after that), once available, is reserved, connected and
    /// attached to the server as `/dev/vda`, and recorded on it.
    pub(crate) async fn boot_volume_prepare(&self, server: &mut Server) -> StepResult<()> {
        let Some(bv) = boot_volume_of(server) else { return Ok(()) };
        if server.volumes().iter().any(|v| v.boot) {
            return Ok(());
        }
        let project = server.project_id.clone();
        let volume_id = match bv.source.as_str() {
            "volume" => bv.uuid.clone(),
            source => match self.made_boot_volume(server).await? {
                Some(id) => id,
                None => {
                    let from = if source == "snapshot" { "snapshot_id" } else { "imageRef" };
                    let ask = json!({"volume": {"size": bv.size, from: bv.uuid, "name": boot_volume_name(&server.id),
                                                "description": format!("The boot volume of server {}", server.id)}});
                    let made = self.clients.volume_create(&project, ask).await?;
                    made["id"].as_str().unwrap_or_default().to_string()
                }
            },
        };
        // Made from an image, it may take a while. Reserved or attached for this server
        // already: the step ran before (the calls below are repeated harmlessly).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
        let ours = |v: &Value| {
            v["attachments"].as_array().is_some_and(|a| a.iter().all(|x| x["server_id"].as_str() == Some(&server.id)))
        };
        loop {
            let v = self.clients.volume(&project, &volume_id).await?;
            match v["status"].as_str().unwrap_or_default() {
                "available" | "attaching" | "in-use" if ours(&v) => break,
                "creating" | "downloading" if std::time::Instant::now() < deadline => {}
                "creating" | "downloading" => {
                    return Err(StepError::Transient(anyhow::anyhow!("boot volume {volume_id} is still being made")))
                }
                s => return Err(StepError::Permanent(format!("The boot volume {volume_id} is {s}, not available."))),
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        let mut data = VolumeData {
            volume_id: volume_id.clone(),
            project_id: project.clone(),
            device: "/dev/vda".into(),
            delete_on_termination: bv.delete_on_termination,
            tag: None,
            connection: None,
            new_size: None,
        };
        let v = self.clients.volume(&project, &volume_id).await?;
        if v["status"] != "in-use" {
            let reserve = json!({"os-reserve": {"instance_uuid": server.id}});
            self.clients.volume_action(&project, &volume_id, reserve).await?;
        }
        data.connection = Some(self.connect(server, &data).await?);
        let mut volumes = server.volumes();
        volumes.insert(0, self.mark_attached(server, &data).await?);
        server.set_volumes(&volumes);
        if !self.store.server_save(server, None).await? {
            return Err(changed(server));
        }
        Ok(())
    }

    /// The volume the create saga made for `server` from an image, if any.
    async fn made_boot_volume(&self, server: &Server) -> StepResult<Option<String>> {
        let found = self.clients.volumes_named(&server.project_id, &boot_volume_name(&server.id)).await?;
        Ok(found.first().and_then(|v| v["id"].as_str()).map(str::to_string))
    }

    /// The undo of `boot_volume`: the volume is let go, and one the saga made from an
    /// image is deleted when it was to go with the server.
    pub(crate) async fn boot_volume_release(&self, server_id: &str) -> StepResult<()> {
        let Some(mut server) = self.store.server_get(server_id).await? else { return Ok(()) };
        let Some(bv) = boot_volume_of(&server) else { return Ok(()) };
        let recorded = server.volumes().into_iter().find(|v| v.boot).map(|v| v.volume_id);
        let volume_id = match (recorded, bv.source.as_str()) {
            (Some(id), _) => Some(id),
            (None, "volume") => Some(bv.uuid.clone()),
            (None, _) => self.made_boot_volume(&server).await?,
        };
        let Some(volume_id) = volume_id else { return Ok(()) };
        let data =
            VolumeData { volume_id: volume_id.clone(), project_id: server.project_id.clone(), ..Default::default() };
        let saga = Saga::fresh(Default::default(), ATTACH, &server.id, &data);
        self.unreserve(&saga, &data).await?;
        if bv.source != "volume" && bv.delete_on_termination {
            self.clients.volume_delete(&server.project_id, &volume_id).await?;
        }
        let mut volumes = server.volumes();
        volumes.retain(|v| !v.boot);
        server.set_volumes(&volumes);
        if !self.store.server_save(&mut server, None).await? {
            return Err(changed(&server));
        }
        Ok(())
    }
}

/// The boot volume a server's create asked for.
pub(crate) fn boot_volume_of(server: &Server) -> Option<BootVolume> {
    server.doc.get("boot_volume").and_then(|v| serde_json::from_value(v.clone()).ok())
}
