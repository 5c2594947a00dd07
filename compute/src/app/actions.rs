//! Commands to agents and their results, instance actions (`server event list`), and
//! the power actions (stop, start, reboot).

use super::AppResult;
use super::{conflict, ComputeService};
use crate::store::TaskState;
use crate::store::VmState;
use crate::store::{Action, CommandAnswer, PendingCommand, Server, Store};
use stratus_common::auth::AuthContext;
use stratus_common::db::{now_text, parse_time};
use stratus_common::ids::SagaId;
use stratus_common::saga::Saga;
use stratus_compute_protocol::{Command, CommandResult, GuestSpec, Op, PowerState};

impl ComputeService {
    /// Sends a command for `server` to its host's agent. The command is recorded in the
    /// server's document and the server saved *before* it is sent, so an answer never
    /// races with the save: a result only counts if it answers the recorded command.
    /// Callers must not save the server again afterwards.
    pub(crate) async fn send(&self, server: &mut Server, op: Op, spec: Option<GuestSpec>) -> anyhow::Result<()> {
        let host = server.host.clone().ok_or_else(|| anyhow::anyhow!("server {} has no host", server.id))?;
        let row = self.host_row(&host).await?.ok_or_else(|| anyhow::anyhow!("unknown host {host}"))?;
        self.send_to(server, &row, op, spec, None).await
    }

    /// A host's row: the scheduler's view (kept current by every host report), else
    /// the database.
    pub(crate) async fn host_row(&self, host: &str) -> anyhow::Result<Option<crate::store::HostRow>> {
        match self.scheduler.host(host) {
            Some(row) => Ok(Some(row)),
            None => Ok(self.store.host_get(host).await?),
        }
    }

    /// [`Self::send`] to the server's host, whose row the caller has read.
    pub(crate) async fn send_to(
        &self,
        server: &mut Server,
        row: &crate::store::HostRow,
        op: Op,
        spec: Option<GuestSpec>,
        saga: Option<&mut Saga>,
    ) -> anyhow::Result<()> {
        let cmd = Self::command_record(server, &row.host, op, spec);
        match saga {
            // The saga waits for the answer: its progress is recorded with the server.
            Some(saga) => {
                let mut tx = self.store.db.pool.begin().await?;
                if !Store::server_save_in(&mut tx, server, None).await? {
                    anyhow::bail!("server {} changed meanwhile", server.id);
                }
                if !self.sagas.record_in(&mut tx, saga).await? {
                    anyhow::bail!("saga {} moved on meanwhile", saga.id);
                }
                tx.commit().await?;
                server.rev += 1;
            }
            None => self.save(server).await?,
        }
        self.command_enqueue(row, &cmd).await
    }

    /// Records `op` as the server's pending command (to be saved by the caller, before
    /// [`Self::command_enqueue`] sends what this returns).
    pub(crate) fn command_record(server: &mut Server, host: &str, op: Op, spec: Option<GuestSpec>) -> Command {
        let action_id = uuid::Uuid::new_v4().to_string();
        server.control.command = Some(PendingCommand { id: action_id.clone(), op, sent_at: now_text() });
        Command { action_id, server_id: server.id.as_str().into(), host: host.into(), op, spec }
    }

    /// Sends a recorded command to the agent of its host.
    pub(crate) async fn command_enqueue(&self, row: &crate::store::HostRow, cmd: &Command) -> anyhow::Result<()> {
        self.bus.enqueue(&row.queue, serde_json::to_vec(cmd)?).await?;
        Ok(())
    }

    /// Sends a command nobody waits for (destroying a guest left on a host, plugging
    /// a NIC).
    pub(crate) async fn send_untracked(
        &self,
        host: &str,
        server_id: &str,
        op: Op,
        spec: Option<GuestSpec>,
    ) -> anyhow::Result<()> {
        let Some(row) = self.host_row(host).await? else { return Ok(()) };
        let cmd = Command {
            action_id: uuid::Uuid::new_v4().to_string(),
            server_id: server_id.into(),
            host: host.into(),
            op,
            spec,
        };
        self.bus.enqueue(&row.queue, serde_json::to_vec(&cmd)?).await?;
        Ok(())
    }

    /// Whether a command of kind `op` should be sent (again): none sent yet, or the one
    /// sent has waited longer than the command timeout.
    pub(crate) fn command_due(&self, server: &Server, op: Op) -> bool {
        let Some(a) = &server.control.command else { return true };
        if a.op != op {
            return true;
        }
        let sent = parse_time(&a.sent_at);
        match sent {
            Some(t) => (chrono::Utc::now() - t).to_std().map(|d| d >= self.settings.command_timeout).unwrap_or(false),
            None => true,
        }
    }

    /// Records that a user asked for an action on a server.
    pub(crate) async fn start_action(&self, ctx: &AuthContext, server: &Server, action: &str, request_id: &str) {
        if let Err(e) = self.store.action_start(&Self::new_action(ctx, server, action, request_id)).await {
            tracing::warn!(error = %e, "cannot record an instance action");
        }
    }

    /// The record of a user's action on a server, for [`Self::start_action`] or a
    /// caller's own transaction.
    pub(crate) fn new_action(ctx: &AuthContext, server: &Server, action: &str, request_id: &str) -> Action {
        Action {
            id: uuid::Uuid::new_v4().to_string(),
            server_id: server.id.to_string(),
            action: action.to_string(),
            request_id: request_id.to_string(),
            project_id: server.project_id.to_string(),
            user_id: ctx.user_id().to_string(),
            start_time: now_text(),
            finish_time: None,
            result: None,
            message: None,
        }
    }

    /// Marks the latest unfinished `action` of a server finished.
    pub(crate) async fn finish_action(&self, server: &Server, action: &str, error: Option<&str>) {
        let result = if error.is_some() { "Error" } else { "Success" };
        if let Err(e) = self.store.action_finish(&server.id, action, result, error).await {
            tracing::warn!(error = %e, "cannot finish an instance action");
        }
    }

    /// An agent's answer to a command.
    pub async fn on_result(&self, r: &CommandResult) -> anyhow::Result<()> {
        if matches!(r.op, Op::AttachInterface | Op::DetachInterface) {
            // Sent without waiting: the port's status tells whether the NIC works.
            if let Some(e) = &r.error {
                tracing::warn!(server = %r.server_id, op = ?r.op, error = %e, "interface change failed on the host");
            }
            return Ok(());
        }
        let Some(mut server) = self.store.server_get(&r.server_id).await? else { return Ok(()) };
        if server.control.command.as_ref().map(|c| c.id.as_str()) != Some(r.action_id.as_str()) {
            tracing::debug!(server = %r.server_id, action = %r.action_id, "result for a command no longer awaited");
            return Ok(());
        }
        server.control.command = None;
        match r.op {
            Op::Snapshot => return self.snapshot_done(server, r).await,
            Op::Spawn => {
                server.control.spawn = Some(answer(r, None));
            }
            Op::Destroy => {
                server.control.destroyed_on = Some(r.host.to_string());
            }
            Op::Rebuild | Op::Resize | Op::AttachVolume | Op::DetachVolume | Op::ExtendVolume => {
                server.control.change = Some(answer(r, server.control.saga_id.clone()));
            }
            Op::Stop | Op::Start | Op::SoftReboot | Op::HardReboot | Op::Pause | Op::Unpause => {
                let name = match r.op {
                    Op::Stop => "stop",
                    Op::Start => "start",
                    Op::Pause => "pause",
                    Op::Unpause => "unpause",
                    _ => "reboot",
                };
                server.task_state = None;
                if r.error.is_none() {
                    server.power_state = r.power_state;
                    server.vm_state = vm_state_of(r.power_state);
                }
                self.save(&mut server).await?;
                self.finish_action(&server, name, r.error.as_deref()).await;
                let event = match r.op {
                    Op::Stop => "power_off.end",
                    Op::Start => "power_on.end",
                    Op::Pause => "pause.end",
                    Op::Unpause => "unpause.end",
                    _ => "reboot.end",
                };
                self.notify(event, &server).await;
                return Ok(());
            }
            Op::AttachInterface | Op::DetachInterface => return Ok(()),
        }
        let Some(saga) = server.control.saga_id.clone() else {
            return self.save(&mut server).await;
        };
        // The saga's step saves the server with the result: hand it over unsaved. When
        // the saga is being driven already, or that step failed, save it here and poke
        // the saga (a save that finds the server changed gets the result sent again).
        if !self.sagas.drive_with(&saga, Box::new(server.clone())).await {
            tracing::debug!(server = %server.id, %saga, op = ?r.op, "saga busy or its step failed; saving the result here");
            self.save(&mut server).await?;
            self.sagas.drive(&saga).await;
        }
        Ok(())
    }

    /// Refuses `action` on a server that has a whole bare-metal node for a host: a
    /// physical machine cannot be paused, resized, or have NICs or volumes plugged live.
    pub(crate) fn refuse_on_bare_metal(&self, server: &Server, action: &str) -> AppResult<()> {
        let host = server.host.as_deref().and_then(|h| self.scheduler.host(h));
        if host.is_some_and(|h| h.resource_class.is_some()) {
            return Err(conflict(format!(
                "Cannot '{action}' instance {}: it is a bare-metal server (it has the whole node {}), which cannot do that.",
                server.id,
                server.host.as_deref().unwrap_or_default()
            )));
        }
        Ok(())
    }

    /// Stop, start or reboot: one command to the agent; the server's task state says
    /// it is under way, and a second action meanwhile gets 409.
    pub async fn server_power(&self, ctx: &AuthContext, id: &str, op: Op, request_id: &str) -> AppResult<()> {
        let mut server = self.server_for_action(ctx, id).await?;
        let (needs, task, action) = match op {
            Op::Stop => (Some(VmState::Active), TaskState::PoweringOff, "stop"),
            Op::Start => (Some(VmState::Stopped), TaskState::PoweringOn, "start"),
            Op::SoftReboot => (Some(VmState::Active), TaskState::Rebooting, "reboot"),
            Op::HardReboot => (None, TaskState::RebootingHard, "reboot"),
            Op::Pause => (Some(VmState::Active), TaskState::Pausing, "pause"),
            Op::Unpause => (Some(VmState::Paused), TaskState::Unpausing, "unpause"),
            _ => return Err(super::bad("Unsupported action.")),
        };
        if matches!(op, Op::Pause | Op::Unpause) {
            self.refuse_on_bare_metal(&server, action)?;
        }
        let state_ok = match needs {
            None => matches!(server.vm_state, VmState::Active | VmState::Stopped | VmState::Error),
            Some(needs) => server.vm_state == needs,
        };
        if !state_ok || server.busy() {
            return Err(conflict(format!(
                "Cannot '{action}' instance {id} while it is in vm_state {} and task_state {}",
                server.vm_state,
                server.task_state.map_or("None", TaskState::as_str)
            )));
        }
        server.task_state = Some(task);
        if !self.store.server_save(&mut server, Some(None)).await? {
            return Err(conflict(format!("Instance {id} is busy with another task.")));
        }
        self.start_action(ctx, &server, action, request_id).await;
        if let Err(e) = self.send(&mut server, op, None).await {
            tracing::warn!(error = %e, "cannot send a power command now; the reconciler will");
        }
        Ok(())
    }

    /// Power actions and snapshots left without an answer: sent again (idempotent at
    /// the agent), or, when the host is gone, ended so nothing stays in a task state.
    pub(crate) async fn retry_power_actions(&self, servers: &[Server]) -> anyhow::Result<()> {
        for s in servers {
            let op = match s.task_state {
                Some(TaskState::ImageSnapshot) => Op::Snapshot,
                Some(TaskState::PoweringOff) => Op::Stop,
                Some(TaskState::PoweringOn) => Op::Start,
                Some(TaskState::Rebooting) => Op::SoftReboot,
                Some(TaskState::RebootingHard) => Op::HardReboot,
                Some(TaskState::Pausing) => Op::Pause,
                Some(TaskState::Unpausing) => Op::Unpause,
                _ => continue,
            };
            if !self.command_due(s, op) {
                continue;
            }
            let mut s = s.clone();
            let up = match &s.host {
                Some(h) => self.store.host_get(h).await?.is_some_and(|h| self.scheduler.is_up(&h)),
                None => false,
            };
            if op == Op::Snapshot {
                self.retry_snapshot(&s, up).await?;
            } else if up {
                self.send(&mut s, op, None).await?;
            } else {
                s.task_state = None;
                s.control.command = None;
                self.save(&mut s).await?;
            }
        }
        Ok(())
    }
}

/// Nova's VM state for a guest's power state (after a power action or a drift).
pub(crate) fn vm_state_of(power_state: PowerState) -> VmState {
    match power_state {
        PowerState::Running => VmState::Active,
        PowerState::Paused => VmState::Paused,
        _ => VmState::Stopped,
    }
}

/// A host's answer as the server records it.
fn answer(r: &CommandResult, saga: Option<SagaId>) -> CommandAnswer {
    CommandAnswer { host: r.host.clone(), error: r.error.clone(), power_state: r.power_state, saga }
}
