//! The sagas that change a server on its host: rebuild (a new disk from an image),
//! resize (another flavor, on the same host) and the revert of a resize. Each is one
//! command to the host's agent and an end:
//!
//! - `command`: sends the command (recorded on the server with the saga's progress)
//!   and waits for the agent's answer, which arrives on the server's document under
//!   `change`, tagged with the saga's id. A failure or a host that went down fails the
//!   saga. Sent again after the command timeout (the agent's operations are idempotent).
//! - `finish`: the server's new state, the quota it gives back (and, for a revert, the
//!   host claim of the flavor left), the instance action's end and the saga's end, in
//!   one transaction.
//!
//! What the request claimed (quota growth; for a resize the new flavor on the host,
//! under the consumer `<server>:resize`) was written with the saga, in the request's
//! transaction. A failed saga's `finished` gives back, in one transaction, what the
//! change would have kept: a failed resize returns to the old flavor, its quota and its
//! claim; a failed rebuild or revert leaves the server in ERROR with a fault. A delete
//! during a change cancels the saga, which unwinds and then starts the delete.

use super::resize::{resize_consumer, shape};
use super::{changed, moved_on, server_step, service, ComputeService, ServerSaga};
use crate::store::TaskState;
use crate::store::VmState;
use crate::store::{Charged, Server, Store};
use serde_json::json;
use std::sync::{Arc, Weak};
use stratus_common::db::now_text;
use stratus_common::saga::{nothing_to_undo, NoData, Outcome, Saga, SagaDef, SagaState, Step, StepFuture, StepResult};
use stratus_compute_protocol::Op;

pub const REBUILD: &str = "rebuild";
pub const RESIZE: &str = "resize";
pub const REVERT: &str = "resize_revert";

/// Which change a [`ChangeSaga`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Rebuild,
    Resize,
    Revert,
}

impl Change {
    pub fn kind(self) -> &'static str {
        match self {
            Change::Rebuild => REBUILD,
            Change::Resize => RESIZE,
            Change::Revert => REVERT,
        }
    }

    fn op(self) -> Op {
        match self {
            Change::Rebuild => Op::Rebuild,
            Change::Resize | Change::Revert => Op::Resize,
        }
    }

    /// The instance action it ends, and the event it announces (`<event>.end`).
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Change::Rebuild => ("rebuild", "rebuild"),
            Change::Resize => ("resize", "resize"),
            Change::Revert => ("revertResize", "resize.revert"),
        }
    }
}

pub struct ChangeSaga(pub Change, pub Weak<ComputeService>);

/// Whether the server still records saga `saga` as under way (its end removes it).
fn under_way(server: &Server, saga: &Saga) -> bool {
    server.control.saga_id.as_ref() == Some(&saga.id)
}

/// The steps. A command the host failed changed nothing; one it carried out is taken
/// back by its undo where that can be done (a resize or a revert, by resizing the guest
/// back). The failure's end (`finished`) gives back the claims.
const STEPS: &[Step<ChangeSaga>] = &[
    Step {
        name: "command",
        run: server_step!(step_command),
        undo: |def, saga, _| Box::pin(async move { service(&def.1)?.undo_command(def.0, saga).await }),
    },
    Step { name: "finish", run: server_step!(step_change_end), undo: nothing_to_undo },
];

impl ServerSaga for ChangeSaga {
    async fn load(&self, saga: &mut Saga) -> StepResult<Option<(Arc<ComputeService>, Server)>> {
        super::load_held(&self.1, saga).await
    }
}

impl SagaDef for ChangeSaga {
    type Data = NoData;

    fn kind(&self) -> &'static str {
        self.0.kind()
    }

    fn steps(&self) -> &'static [Step<Self>] {
        STEPS
    }

    fn finished<'a>(&'a self, saga: &'a Saga) -> StepFuture<'a, ()> {
        Box::pin(async move {
            if saga.state != SagaState::Failed {
                return Ok(());
            }
            Ok(service(&self.1)?.change_failed(self.0, saga).await?)
        })
    }

    fn stuck<'a>(&'a self, saga: &'a Saga) -> StepFuture<'a, ()> {
        Box::pin(async move { service(&self.1)?.saga_stuck(saga, self.0.names().0).await })
    }
}

impl ComputeService {
    async fn step_command(
        &self,
        def: &ChangeSaga,
        server: &mut Server,
        saga: &mut Saga,
        _: &mut NoData,
    ) -> StepResult<Outcome> {
        let change = def.0;
        let resize = server.doc.get("resize").cloned().unwrap_or(json!({}));
        self.host_step(server, saga, change.op(), async |server: &Server, row: &crate::store::HostRow| {
            let mut spec = Self::guest_spec(server);
            match change {
                Change::Rebuild => {
                    if let Err(e) = self.add_config_drive(server, &row.driver, &mut spec).await {
                        tracing::warn!(error = %e, "cannot gather the rebuilt server's metadata; its config drive stays as it was");
                    }
                }
                Change::Resize => (spec.vcpus, spec.ram_mb, spec.disk_gb) = shape(&resize["new_flavor"]),
                Change::Revert => (spec.vcpus, spec.ram_mb, spec.disk_gb) = shape(&resize["old_flavor"]),
            }
            spec
        })
        .await
    }

    /// Takes back what the command may have done on the host: a resized guest goes
    /// back to the flavor it had before. Sent whether or not the host reported the
    /// change (its report may not have been saved yet), untracked as a destroy in an
    /// unwind is; the agent resizes idempotently, so a guest that never changed stays.
    /// A rebuilt disk cannot be taken back: the failure's end leaves the server in ERROR.
    async fn undo_command(&self, change: Change, saga: &Saga) -> StepResult<()> {
        let Some(server) = self.store.server_get(&saga.subject).await? else { return Ok(()) };
        let (Some(host), false) = (server.host.clone(), server.deleted) else { return Ok(()) };
        let resize = server.doc.get("resize").cloned().unwrap_or(json!({}));
        let before = match change {
            Change::Rebuild => return Ok(()),
            Change::Resize => &resize["old_flavor"],
            Change::Revert => &resize["new_flavor"],
        };
        if before.is_null() {
            return Ok(());
        }
        let mut spec = Self::guest_spec(&server);
        (spec.vcpus, spec.ram_mb, spec.disk_gb) = shape(before);
        self.send_untracked(&host, &server.id, Op::Resize, Some(spec)).await?;
        Ok(())
    }

    /// The change done: the server's new state, with what it gives back, its instance
    /// action's end and the saga's end in one transaction.
    async fn step_change_end(
        &self,
        def: &ChangeSaga,
        server: &mut Server,
        saga: &mut Saga,
        _: &mut NoData,
    ) -> StepResult<Outcome> {
        let change = def.0;
        let power = server.control.change.as_ref().map_or(server.power_state, |r| r.power_state);
        let resize = server.doc.get("resize").cloned().unwrap_or(json!({}));
        let (ov, or, od) = shape(&resize["old_flavor"]);
        let (nv, nr, nd) = shape(&resize["new_flavor"]);
        let mut releases = Vec::new();
        let mut freed_claim = None;
        server.task_state = None;
        server.power_state = power;
        match change {
            Change::Rebuild => {
                server.vm_state = super::actions::vm_state_of(power);
                server.launched_at = Some(now_text());
            }
            Change::Resize => {
                server.doc.insert("flavor".into(), resize["new_flavor"].clone());
                (server.vcpus, server.ram, server.disk) = (nv, nr, nd);
                server.vm_state = VmState::Resized;
                releases = vec![("cores", (ov - nv).max(0)), ("ram", (or - nr).max(0))];
            }
            Change::Revert => {
                server.doc.insert("flavor".into(), resize["old_flavor"].clone());
                server.doc.remove("resize");
                (server.vcpus, server.ram, server.disk) = (ov, or, od);
                server.vm_state =
                    resize["old_vm_state"].as_str().and_then(|v| v.parse().ok()).unwrap_or(VmState::Active);
                releases = vec![("cores", (nv - ov).max(0)), ("ram", (nr - or).max(0))];
                freed_claim = Some(resize_consumer(&server.id));
            }
        }
        server.control.saga_id = None;
        server.control.command = None;
        let (action, event) = change.names();
        let mut tx = self.store.db.pool.begin().await?;
        let freed = match &freed_claim {
            Some(consumer) => Store::release_in(&mut tx, &[consumer], None).await?,
            None => Vec::new(),
        };
        if Store::server_save_charging_in(&mut tx, server, None, &[], &releases).await? != Charged::Saved {
            return Err(changed(server));
        }
        Store::action_finish_in(&mut tx, &server.id, action, "Success", None).await?;
        match change {
            Change::Resize => Store::migration_move_in(&mut tx, &server.id, &["migrating"], "finished").await?,
            Change::Revert => Store::migration_move_in(&mut tx, &server.id, &["reverting"], "reverted").await?,
            Change::Rebuild => {}
        }
        if !self.sagas.finish_in(&mut tx, saga).await? {
            return Err(moved_on(saga));
        }
        tx.commit().await?;
        server.rev += 1;
        for row in freed {
            self.scheduler.update(row);
        }
        self.notify(&format!("{event}.end"), server).await;
        Ok(Outcome::Finished)
    }

    /// A failed change: a resize returns to the old flavor, its quota and its host
    /// claim; a rebuild or a revert leaves the server in ERROR. With the instance
    /// action's end, in one transaction; nothing when done already.
    async fn change_failed(&self, change: Change, saga: &Saga) -> anyhow::Result<()> {
        let Some(mut server) = self.store.server_get(&saga.subject).await? else { return Ok(()) };
        if server.deleted || !under_way(&server, saga) {
            return Ok(());
        }
        let resize = server.doc.get("resize").cloned().unwrap_or(json!({}));
        let mut releases = Vec::new();
        let mut freed_claim = None;
        match change {
            Change::Resize => {
                let (ov, or, od) = shape(&resize["old_flavor"]);
                let (nv, nr, _) = shape(&resize["new_flavor"]);
                server.doc.remove("resize");
                (server.vcpus, server.ram, server.disk) = (ov, or, od);
                server.vm_state =
                    resize["old_vm_state"].as_str().and_then(|v| v.parse().ok()).unwrap_or(VmState::Active);
                releases = vec![("cores", (nv - ov).max(0)), ("ram", (nr - or).max(0))];
                freed_claim = Some(resize_consumer(&server.id));
            }
            Change::Rebuild | Change::Revert => server.vm_state = VmState::Error,
        }
        server.set_fault(&saga.error);
        server.control.saga_id = None;
        server.control.command = None;
        let delete_requested = server.control.delete_requested;
        server.task_state = delete_requested.then_some(TaskState::Deleting);
        let (action, event) = change.names();
        let mut tx = self.store.db.pool.begin().await?;
        let freed = match &freed_claim {
            Some(consumer) => Store::release_in(&mut tx, &[consumer], None).await?,
            None => Vec::new(),
        };
        if Store::server_save_charging_in(&mut tx, &server, None, &[], &releases).await? != Charged::Saved {
            anyhow::bail!("server {} changed meanwhile", server.id);
        }
        Store::action_finish_in(&mut tx, &server.id, action, "Error", Some(&saga.error)).await?;
        if matches!(change, Change::Resize | Change::Revert) {
            Store::migration_move_in(&mut tx, &server.id, crate::store::OPEN_MIGRATIONS, "error").await?;
        }
        tx.commit().await?;
        server.rev += 1;
        for row in freed {
            self.scheduler.update(row);
        }
        self.notify(&format!("{event}.error"), &server).await;
        if delete_requested {
            self.start_delete(&server).await?;
        }
        Ok(())
    }
}
