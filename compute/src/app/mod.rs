//! The compute service's application layer: policy, validation, quotas, the sagas that
//! build, change and delete servers, actions on servers, and the reconciler.

pub mod actions;
pub mod aggregates;
pub mod change;
pub mod create;
pub mod delete;
mod error;
pub mod flavors;
pub mod floating_ips;
pub mod groups;
pub mod guest_metadata;
pub mod hosts;
pub mod images;
pub mod interfaces;
pub mod keypairs;
pub mod migrations;
pub mod quotas;
pub mod resize;
pub mod security_groups;
pub mod servers;
pub mod snapshots;
pub mod tenant_networks;
pub mod usage;
pub mod volume_proxy;
pub mod volume_snapshots;
pub mod volumes;

use crate::clients::Clients;
use crate::scheduler::Scheduler;
use crate::store::{Ratios, Server, Store};
pub use error::{AppResult, Error};
use serde_json::{json, Value};
use std::sync::{Arc, Weak};
use std::time::Duration;
use stratus_common::auth::AuthContext;
use stratus_common::bus::Bus;
use stratus_common::db::now_text;
use stratus_common::limits::LimitsClient;
use stratus_common::saga::{Outcome, Saga, SagaRunner, StepError, StepResult};
use stratus_compute_protocol::Op;

/// Settings of the compute service.
#[derive(Debug, Clone)]
pub struct Settings {
    pub public_url: String,
    pub ratios: Ratios,
    /// A host not heard from for this long is down.
    pub host_down_after: Duration,
    /// How often the reconciler runs.
    pub reconcile_every: Duration,
    /// An agent command not answered for this long is sent again.
    pub command_timeout: Duration,
    /// How many other hosts a failed build tries.
    pub build_retries: i64,
    /// Guests seen on a host with no server there are destroyed after this long.
    pub orphan_grace: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            public_url: "http://localhost:8774".into(),
            ratios: Ratios::default(),
            host_down_after: Duration::from_secs(60),
            reconcile_every: Duration::from_secs(10),
            command_timeout: Duration::from_secs(30),
            build_retries: 3,
            orphan_grace: Duration::from_secs(60),
        }
    }
}

pub struct ComputeService {
    pub store: Store,
    pub bus: Bus,
    pub limits: Arc<LimitsClient>,
    pub clients: Clients,
    pub scheduler: Scheduler,
    pub settings: Settings,
    pub sagas: SagaRunner,
    /// Guests seen without a server, and since when (orphan grace).
    pub(crate) orphans:
        std::sync::Mutex<std::collections::HashMap<stratus_compute_protocol::ServerId, std::time::Instant>>,
}

impl ComputeService {
    pub fn new(
        store: Store,
        bus: Bus,
        limits: Arc<LimitsClient>,
        clients: Clients,
        scheduler: Scheduler,
        settings: Settings,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me: &Weak<ComputeService>| {
            use change::{Change, ChangeSaga};
            let defs = vec![
                create::CreateSaga(me.clone()).into(),
                delete::DeleteSaga(me.clone()).into(),
                ChangeSaga(Change::Rebuild, me.clone()).into(),
                ChangeSaga(Change::Resize, me.clone()).into(),
                ChangeSaga(Change::Revert, me.clone()).into(),
                volumes::VolumeSaga(volumes::ATTACH, me.clone()).into(),
                volumes::VolumeSaga(volumes::DETACH, me.clone()).into(),
                volumes::VolumeSaga(volumes::EXTEND, me.clone()).into(),
                volume_snapshots::SnapshotSaga(me.clone()).into(),
            ];
            let sagas = SagaRunner::new(store.db.clone(), "compute_sagas", defs);
            Self { store, bus, limits, clients, scheduler, settings, sagas, orphans: Default::default() }
        })
    }

    /// Announces a lifecycle event (`compute.instance.<what>`).
    pub(crate) async fn notify(&self, what: &str, s: &Server) {
        self.bus
            .emit(
                &format!("compute.instance.{what}"),
                &json!({"instance_id": s.id, "project_id": s.project_id, "user_id": s.user_id, "host": s.host,
                        "state": s.vm_state, "power_state": s.power_state.code(), "flavor": s.doc.get("flavor"),
                        "timestamp": now_text()}),
            )
            .await;
    }
}

pub fn bad(message: impl Into<String>) -> Error {
    Error::BadRequest(message.into())
}

pub fn forbidden(message: impl Into<String>) -> Error {
    Error::Forbidden(message.into())
}

pub fn conflict(message: impl Into<String>) -> Error {
    Error::Conflict(message.into())
}

pub fn not_found(message: impl Into<String>) -> Error {
    Error::NotFound(message.into())
}

pub fn unavailable(e: impl std::fmt::Display) -> Error {
    tracing::warn!(error = %e, "a service compute depends on failed");
    Error::Unavailable(e.to_string())
}

/// Policy: admin, or a member of the project (readers may only read).
pub(crate) fn require_writer(ctx: &AuthContext) -> AppResult<()> {
    if ctx.is_admin() || ctx.has_role("member") {
        Ok(())
    } else {
        Err(forbidden("Policy doesn't allow this operation: readers cannot change compute resources."))
    }
}

pub(crate) fn require_admin(ctx: &AuthContext, what: &str) -> AppResult<()> {
    if ctx.is_admin() {
        Ok(())
    } else {
        Err(forbidden(format!("Policy doesn't allow {what} to be performed.")))
    }
}

pub(crate) fn project_of(ctx: &AuthContext) -> AppResult<String> {
    ctx.project_id().map(str::to_string).ok_or_else(|| forbidden("A project-scoped token is needed."))
}

/// A JSON value as an integer (numbers or numeric strings).
pub(crate) fn as_int(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

impl ComputeService {
    /// Saves a server read earlier; an error when someone saved it meanwhile (the
    /// caller, a saga step or a result handler, runs again with a fresh copy).
    pub(crate) async fn save(&self, s: &mut Server) -> anyhow::Result<()> {
        if self.store.server_save(s, None).await? {
            Ok(())
        } else {
            anyhow::bail!("server {} changed meanwhile", s.id)
        }
    }

    /// The saga's server: the copy the previous step (or the saga's starter) left, else
    /// read from the database.
    pub(crate) async fn server_for_step(&self, saga: &mut Saga) -> anyhow::Result<Option<Server>> {
        if let Some(s) = saga.take_scratch::<Server>().filter(|s| s.id == saga.subject) {
            return Ok(Some(s));
        }
        Ok(self.store.server_get(&saga.subject).await?)
    }

    /// [`Self::save`] for API requests: a concurrent change is a 409.
    /// Applies `change` to the server as it is now and saves it, reading it again and
    /// re-applying when something else (a saga, the reconciler) saved it meanwhile: a
    /// user's edit never fails because the server was busy with its own work.
    pub(crate) async fn change_api(
        &self,
        ctx: &AuthContext,
        id: &str,
        change: impl Fn(&mut Server) -> AppResult<()>,
    ) -> AppResult<Server> {
        for _ in 0..10 {
            let mut s = self.server_for_action(ctx, id).await?;
            change(&mut s)?;
            if self.store.server_save(&mut s, None).await? {
                return Ok(s);
            }
        }
        Err(conflict(format!("Instance {id} changed while the request ran; try again.")))
    }

    pub(crate) async fn save_api(&self, s: &mut Server) -> AppResult<()> {
        if self.store.server_save(s, None).await? {
            Ok(())
        } else {
            Err(conflict(format!("Instance {} changed while the request ran; try again.", s.id)))
        }
    }
}

pub fn not_implemented(message: impl Into<String>) -> Error {
    Error::NotImplemented(message.into())
}

impl ComputeService {
    /// A server's instance actions (`server event list`), newest first; with
    /// `deleted_too` (Nova from 2.21) a deleted server's as well.
    pub async fn server_actions(
        &self,
        ctx: &AuthContext,
        id: &str,
        deleted_too: bool,
    ) -> AppResult<Vec<crate::store::Action>> {
        match self.store.server_get(id).await? {
            Some(s)
                if (deleted_too || !s.deleted)
                    && (ctx.is_admin() || ctx.project_id() == Some(s.project_id.as_str())) =>
            {
                Ok(self.store.actions(id).await?)
            }
            _ => Err(not_found(format!("Instance {id} could not be found."))),
        }
    }

    /// The guest's console output, asked of its host's agent.
    pub async fn console_log(&self, server: &Server) -> AppResult<String> {
        let answer = self.ask_host(server, json!({})).await?;
        Ok(answer["output"].as_str().unwrap_or_default().to_string())
    }

    /// `GET /servers/{id}/diagnostics` (admins, as Nova's policy): what the server's
    /// host measures of its guest.
    pub async fn server_diagnostics(
        &self,
        ctx: &AuthContext,
        id: &str,
    ) -> AppResult<stratus_compute_protocol::Diagnostics> {
        require_admin(ctx, "os_compute_api:os-server-diagnostics")?;
        let server = self.server_get(ctx, id).await?;
        let mut answer = self.ask_host(&server, json!({"ask": "diagnostics"})).await?;
        serde_json::from_value(answer["diagnostics"].take())
            .map_err(|e| conflict(format!("The host's agent answered no diagnostics: {e}")))
    }

    /// Asks the agent of the server's host about its guest (`extra`: what to ask,
    /// besides host and server); its refusal is a 404, no agent a 409.
    async fn ask_host(&self, server: &Server, extra: Value) -> AppResult<Value> {
        let host = server.host.clone().ok_or_else(|| conflict("The server is not on a host."))?;
        let row = self.store.host_get(&host).await?.ok_or_else(|| conflict(format!("Host {host} is unknown.")))?;
        let mut ask = json!({"host": host, "server_id": server.id});
        if let (Some(a), Value::Object(more)) = (ask.as_object_mut(), extra) {
            a.extend(more);
        }
        let answer = self
            .bus
            .request(
                &stratus_compute_protocol::console_subject(&row.queue),
                ask.to_string().into_bytes(),
                Duration::from_secs(10),
            )
            .await
            .map_err(|e| conflict(format!("The host's agent did not answer: {e}")))?;
        let v: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
        match v["error"].as_str() {
            Some(e) => Err(not_found(e.to_string())),
            None => Ok(v),
        }
    }
}

/// The compute service a saga definition belongs to.
pub(crate) fn service(w: &Weak<ComputeService>) -> anyhow::Result<Arc<ComputeService>> {
    w.upgrade().ok_or_else(|| anyhow::anyhow!("compute service stopped"))
}

/// A saved copy was stale: someone saved the server meanwhile (the step runs again
/// with a fresh copy).
pub(crate) fn changed(server: &Server) -> StepError {
    StepError::Transient(anyhow::anyhow!("server {} changed meanwhile", server.id))
}

/// The saga was moved on by someone else meanwhile (a cancel): the drive reads it again.
pub(crate) fn moved_on(saga: &Saga) -> StepError {
    StepError::Transient(anyhow::anyhow!("saga {} moved on meanwhile", saga.id))
}

/// A refusal from another service (4xx) fails the step for good; anything else is
/// retried.
impl From<crate::clients::CallError> for StepError {
    fn from(e: crate::clients::CallError) -> Self {
        match e {
            crate::clients::CallError::Refused(_, m) => StepError::Permanent(m),
            crate::clients::CallError::Unavailable(m) => StepError::Transient(anyhow::anyhow!(m)),
        }
    }
}

/// A saga acting on one server: what each of its steps starts from.
pub(crate) trait ServerSaga {
    /// The service and the saga's server (the copy the previous step handed on, else
    /// read afresh), or `None` when the step has nothing to do (the saga's work on the
    /// server ended already). A server that cannot be worked on is a permanent error.
    async fn load(&self, saga: &mut Saga) -> StepResult<Option<(Arc<ComputeService>, Server)>>;
}

/// The `run` of a server saga's step, in its step table: loads the server
/// ([`ServerSaga::load`]), runs `ComputeService::$method(definition, server, saga,
/// data)`, and hands the server on to the next step.
macro_rules! server_step {
    ($method:ident) => {
        |def, saga, data| {
            Box::pin(async move {
                let Some((svc, mut server)) = $crate::app::ServerSaga::load(def, saga).await? else {
                    return Ok(stratus_common::saga::Outcome::Next);
                };
                let outcome = svc.$method(def, &mut server, saga, data).await?;
                $crate::app::keep_for_next_step(saga, server, &outcome);
                Ok(outcome)
            })
        }
    };
}
pub(crate) use server_step;

impl ComputeService {
    /// A saga of a server got stuck (transient failures past the bound): the server goes
    /// to ERROR with a fault saying where and why, its instance action ends in error, and
    /// an event says so. Deleting the server unwinds the saga.
    pub(crate) async fn saga_stuck(&self, saga: &Saga, action: &str) -> StepResult<()> {
        let Some(mut server) = self.store.server_get(&saga.subject).await? else { return Ok(()) };
        if server.deleted {
            return Ok(());
        }
        let at = self.sagas.steps_of(&saga.kind).get(saga.step.max(0) as usize).copied().unwrap_or("?");
        let message = format!(
            "The {} task is stuck at its step {at} after {} failed attempts; an operator must look. Last error: {}",
            saga.kind, saga.attempts, saga.last_error
        );
        server.vm_state = crate::store::VmState::Error;
        server.set_fault(&message);
        if !self.store.server_save(&mut server, None).await? {
            return Err(changed(&server));
        }
        self.finish_action(&server, action, Some(&message)).await;
        self.notify(&format!("{}.stuck", saga.kind), &server).await;
        Ok(())
    }
}

/// [`ServerSaga::load`] for a saga that holds a live server while it runs (a change,
/// a volume attach or detach): a server gone or deleted fails the step for good; one
/// the saga no longer holds (its end was written already) has nothing left to do.
pub(crate) async fn load_held(
    w: &Weak<ComputeService>,
    saga: &mut Saga,
) -> StepResult<Option<(Arc<ComputeService>, Server)>> {
    let s = service(w)?;
    let Some(server) = s.server_for_step(saga).await? else {
        return Err(StepError::permanent("The server is gone."));
    };
    if server.deleted {
        return Err(StepError::permanent("The server was deleted."));
    }
    if server.control.saga_id.as_ref() != Some(&saga.id) {
        return Ok(None);
    }
    Ok(Some((s, server)))
}

impl ComputeService {
    /// A saga step that has the server's host carry out `op`: the host's answer
    /// (tagged with the saga's id) ends the step, for good when it failed; otherwise the
    /// command is sent (again after the command timeout) with the spec `spec` makes,
    /// and the step waits. A host that is down fails the step for good.
    pub(crate) async fn host_step<F>(
        &self,
        server: &mut Server,
        saga: &mut Saga,
        op: Op,
        spec: F,
    ) -> StepResult<Outcome>
    where
        F: AsyncFnOnce(&Server, &crate::store::HostRow) -> stratus_compute_protocol::GuestSpec,
    {
        if let Some(result) = server.control.change.as_ref().filter(|r| r.saga.as_ref() == Some(&saga.id)) {
            return match result.error.as_deref() {
                None => Ok(Outcome::Next),
                Some(e) => Err(StepError::permanent(e)),
            };
        }
        let host = server.host.clone().unwrap_or_default();
        let Some(row) = self.host_row(&host).await?.filter(|h| self.scheduler.is_up(h)) else {
            return Err(StepError::Permanent(format!("The server's host {host} is down.")));
        };
        if !self.command_due(server, op) {
            return Ok(Outcome::Pending);
        }
        let spec = spec(server, &row).await;
        self.send_to(server, &row, op, Some(spec), Some(saga)).await?;
        Ok(Outcome::Pending)
    }
}

/// Leaves the server for the next step of this drive. Steps that answer `Next` or
/// `Goto` have saved every change they made, so the copy matches the database (a save
/// by someone else meanwhile makes the next step's save fail, and the step runs again
/// with a fresh copy). One exception: in a create saga's first, unbroken drive the
/// ports step leaves its record for the spawn step's save.
pub(crate) fn keep_for_next_step(saga: &mut Saga, server: Server, outcome: &Outcome) {
    if matches!(outcome, Outcome::Next | Outcome::Goto(_)) {
        saga.scratch = Some(Box::new(server));
    }
}
