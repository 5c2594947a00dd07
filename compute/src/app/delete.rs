//! The delete saga: destroy the guest on its host → let go of its volumes (deleting
//! those marked `delete_on_termination`) → remove ports → release the host claim and
//! quota → mark the server deleted. It only goes forward: every step is
//! idempotent and retried until it succeeds. A host that is down is not waited for (its
//! agent destroys the orphan guest when it comes back).

use super::{changed, moved_on, server_step, service, ComputeService, ServerSaga};
use crate::store::TaskState;
use crate::store::VmState;
use crate::store::{Server, Store};
use serde_json::json;
use std::sync::{Arc, Weak};
use stratus_common::db::now_text;
use stratus_common::saga::{nothing_to_undo, NoData, Outcome, Saga, SagaDef, SagaState, Step, StepFuture, StepResult};
use stratus_compute_protocol::{Op, PowerState};

pub const KIND: &str = "delete";

pub struct DeleteSaga(pub Weak<ComputeService>);

/// What destroying a server's guest takes now.
enum Destroy {
    /// Nothing: there is no guest, or it was destroyed.
    Needless,
    /// Nothing now: its host is down (its agent destroys the orphan when it comes back).
    HostDown,
    /// Its command was sent and is not overdue: wait for the answer.
    Waiting,
    /// Send the command to this host.
    Send(Box<crate::store::HostRow>),
}

/// The steps. A delete only goes forward (every step is retried until it succeeds),
/// so nothing is undone; a delete that fails for good leaves the server in ERROR,
/// to be deleted again.
const STEPS: &[Step<DeleteSaga>] = &[
    Step { name: "destroy", run: server_step!(step_destroy), undo: nothing_to_undo },
    Step { name: "volumes", run: server_step!(step_release_volumes), undo: nothing_to_undo },
    Step { name: "ports", run: server_step!(step_delete_ports), undo: nothing_to_undo },
    Step { name: "release", run: server_step!(step_release), undo: nothing_to_undo },
];

impl ServerSaga for DeleteSaga {
    async fn load(&self, saga: &mut Saga) -> StepResult<Option<(Arc<ComputeService>, Server)>> {
        let s = service(&self.0)?;
        // A server gone or deleted already: the step ran before a crash.
        Ok(s.server_for_step(saga).await?.filter(|server| !server.deleted).map(|server| (s, server)))
    }
}

impl SagaDef for DeleteSaga {
    type Data = NoData;

    fn kind(&self) -> &'static str {
        KIND
    }

    fn steps(&self) -> &'static [Step<Self>] {
        STEPS
    }

    fn finished<'a>(&'a self, saga: &'a Saga) -> StepFuture<'a, ()> {
        Box::pin(async move {
            if saga.state != SagaState::Failed {
                return Ok(());
            }
            let s = service(&self.0)?;
            let Some(mut server) = s.store.server_get(&saga.subject).await? else { return Ok(()) };
            if server.deleted || server.task_state != Some(TaskState::Deleting) {
                return Ok(());
            }
            server.vm_state = VmState::Error;
            server.task_state = None;
            server.set_fault(&saga.error);
            server.control.saga_id = None;
            server.control.command = None;
            server.control.delete_requested = false;
            if !s.store.server_save(&mut server, None).await? {
                return Err(changed(&server));
            }
            s.finish_action(&server, "delete", Some(&saga.error)).await;
            s.notify("delete.error", &server).await;
            Ok(())
        })
    }

    fn stuck<'a>(&'a self, saga: &'a Saga) -> StepFuture<'a, ()> {
        Box::pin(async move { service(&self.0)?.saga_stuck(saga, "delete").await })
    }
}

impl ComputeService {
    /// Starts deleting a server whose create saga (if any) has ended: the saga is
    /// written with the server's `deleting` state (and `action`, the user's instance
    /// action, when given) in one transaction, then driven without reading it back.
    pub(crate) async fn start_delete_with(
        &self,
        server: &Server,
        action: Option<&crate::store::Action>,
    ) -> anyhow::Result<bool> {
        let mut s = server.clone();
        let mut saga = Saga::fresh(Saga::new_id(), KIND, &s.id, &NoData {});
        // Results of the saga's commands poke it through the server's saga id.
        s.control.saga_id = Some(saga.id.clone());
        s.task_state = Some(TaskState::Deleting);
        // The first step's command is recorded with the delete itself (one transaction
        // instead of two), the saga written as having entered that step; the step then
        // finds it sent and waits for its answer, or sends it again when it is overdue
        // (as after a crash between this commit and the send).
        let destroy = match self.destroy_plan(&s).await? {
            Destroy::Send(row) => {
                saga.enter(STEPS[0].name);
                Some((Self::command_record(&mut s, &row.host, Op::Destroy, None), row))
            }
            Destroy::Needless | Destroy::HostDown | Destroy::Waiting => None,
        };
        let mut tx = self.store.db.pool.begin().await?;
        if !Store::server_save_in(&mut tx, &s, None).await? {
            return Ok(false);
        }
        self.sagas.insert_saga(&mut tx, &saga).await?;
        if let Some(a) = action {
            Store::action_start_in(&mut tx, a).await?;
        }
        tx.commit().await?;
        s.rev += 1;
        if let Some((cmd, row)) = destroy {
            if let Err(e) = self.command_enqueue(&row, &cmd).await {
                tracing::warn!(server = %s.id, error = %e, "cannot send the destroy command; it is sent again when overdue");
            }
        }
        saga.scratch = Some(Box::new(s));
        self.sagas.spawn_saga(saga);
        Ok(true)
    }

    /// [`Self::start_delete_with`] for a server read afresh (by the reconciler, or
    /// when a create saga that was asked to stop has ended). False when the server is
    /// gone or deleted already.
    pub(crate) async fn start_delete(&self, server: &Server) -> anyhow::Result<bool> {
        for _ in 0..5 {
            let Some(s) = self.store.server_get(&server.id).await? else { return Ok(false) };
            if s.deleted {
                // A delete saga finished meanwhile.
                return Ok(false);
            }
            if self.start_delete_with(&s, None).await? {
                return Ok(true);
            }
        }
        anyhow::bail!("server {} changed meanwhile", server.id)
    }

    async fn step_destroy(
        &self,
        _: &DeleteSaga,
        server: &mut Server,
        saga: &mut Saga,
        _: &mut NoData,
    ) -> StepResult<Outcome> {
        match self.destroy_plan(server).await? {
            Destroy::Needless => Ok(Outcome::Next),
            Destroy::HostDown => {
                tracing::info!(server = %server.id, host = ?server.host, "host is down; deleting without it");
                Ok(Outcome::Next)
            }
            Destroy::Waiting => Ok(Outcome::Pending),
            Destroy::Send(row) => {
                self.send_to(server, &row, Op::Destroy, None, Some(saga)).await?;
                Ok(Outcome::Pending)
            }
        }
    }

    /// What destroying the server's guest takes now.
    async fn destroy_plan(&self, server: &Server) -> anyhow::Result<Destroy> {
        let Some(host) = server.host.clone() else { return Ok(Destroy::Needless) };
        if server.control.destroyed_on.as_deref() == Some(host.as_str()) {
            return Ok(Destroy::Needless);
        }
        let Some(row) = self.host_row(&host).await?.filter(|h| self.scheduler.is_up(h)) else {
            return Ok(Destroy::HostDown);
        };
        Ok(if self.command_due(server, Op::Destroy) { Destroy::Send(Box::new(row)) } else { Destroy::Waiting })
    }

    async fn step_release_volumes(
        &self,
        _: &DeleteSaga,
        server: &mut Server,
        _: &mut Saga,
        _: &mut NoData,
    ) -> StepResult<Outcome> {
        self.volumes_release_all(server).await?;
        Ok(Outcome::Next)
    }

    async fn step_delete_ports(
        &self,
        _: &DeleteSaga,
        server: &mut Server,
        _: &mut Saga,
        _: &mut NoData,
    ) -> StepResult<Outcome> {
        self.ports_remove(server, false).await?;
        Ok(Outcome::Next)
    }

    async fn step_release(
        &self,
        _: &DeleteSaga,
        server: &mut Server,
        saga: &mut Saga,
        _: &mut NoData,
    ) -> StepResult<Outcome> {
        self.leave_group(server).await?;
        // A snapshot under way when the delete came: its image goes with the server
        // (as Nova's does), and a finished upload's answer finds no server to end.
        if let Some(image) = server.control.snapshot_image.take() {
            self.clients.image_delete(&image).await?;
            self.finish_action(server, "createImage", Some("The server was deleted during the snapshot.")).await;
        }
        server.vm_state = VmState::Deleted;
        server.task_state = None;
        server.power_state = PowerState::NoState;
        server.terminated_at = Some(now_text());
        // The ports step removed them without saving.
        server.doc.insert("ports".into(), json!([]));
        server.doc.insert("addresses".into(), json!({}));
        server.control.command = None;
        server.control.saga_id = None;
        server.deleted = true;
        // The host claims and quota given back with the server, its instance action and
        // the saga's end, in one transaction.
        let mut tx = self.store.db.pool.begin().await?;
        let resize = super::resize::resize_consumer(&server.id);
        let freed = Store::release_in(&mut tx, &[&server.id, &resize], None).await?;
        if !Store::server_save_uncharged_in(&mut tx, server).await? {
            return Err(changed(server));
        }
        Store::action_finish_in(&mut tx, &server.id, "delete", "Success", None).await?;
        if !self.sagas.finish_in(&mut tx, saga).await? {
            return Err(moved_on(saga));
        }
        tx.commit().await?;
        for row in freed {
            self.scheduler.update(row);
        }
        (server.rev, server.charged) = (server.rev + 1, false);
        self.notify("delete.end", server).await;
        Ok(Outcome::Finished)
    }
}
