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
use super::{keep_for_next_step, ComputeService};
use crate::store::VmState;
use crate::store::{Charged, Server, Store};
use futures::future::BoxFuture;
use serde_json::{json, Value};
use std::sync::Weak;
use stratus_common::db::now_text;
use stratus_common::saga::{Outcome, Saga, SagaDef, SagaState};
use stratus_compute_protocol::Op;

pub const REBUILD: &str = "rebuild";
pub const RESIZE: &str = "resize";
pub const REVERT: &str = "resize_revert";
pub const STEPS: &[&str] = &["command", "finish"];

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

fn svc(w: &Weak<ComputeService>) -> anyhow::Result<std::sync::Arc<ComputeService>> {
    w.upgrade().ok_or_else(|| anyhow::anyhow!("compute service stopped"))
}

/// Whether the server still records saga `saga` as under way (its end removes it).
fn under_way(server: &Server, saga: &Saga) -> bool {
    server.doc.get("saga_id").and_then(Value::as_str) == Some(saga.id.as_str())
}

impl SagaDef for ChangeSaga {
    fn kind(&self) -> &'static str {
        self.0.kind()
    }

    fn steps(&self) -> &'static [&'static str] {
        STEPS
    }

    fn run<'a>(&'a self, step: usize, saga: &'a mut Saga) -> BoxFuture<'a, anyhow::Result<Outcome>> {
        Box::pin(async move {
            let s = svc(&self.1)?;
            let Some(mut server) = s.server_for_step(saga).await? else {
                return Ok(Outcome::Fail("The server is gone.".into()));
            };
            if server.deleted {
                return Ok(Outcome::Fail("The server was deleted.".into()));
            }
            if !under_way(&server, saga) {
                // Ended already (a step run again after the end was written).
                return Ok(Outcome::Next);
            }
            let outcome = match step {
                0 => s.step_command(self.0, &mut server, saga).await?,
                _ => s.step_change_end(self.0, &mut server, saga).await?,
            };
            keep_for_next_step(saga, server, &outcome);
            Ok(outcome)
        })
    }

    fn undo<'a>(&'a self, _step: usize, _saga: &'a mut Saga) -> BoxFuture<'a, anyhow::Result<()>> {
        // The command changed nothing when it failed; `finished` gives back the claims.
        Box::pin(async { Ok(()) })
    }

    fn finished<'a>(&'a self, saga: &'a Saga) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            if saga.state != SagaState::Failed {
                return Ok(());
            }
            let s = svc(&self.1)?;
            s.change_failed(self.0, saga).await
        })
    }
}

impl ComputeService {
    async fn step_command(&self, change: Change, server: &mut Server, saga: &mut Saga) -> anyhow::Result<Outcome> {
        let host = server.host.clone().unwrap_or_default();
        if let Some(result) = server.doc.get("change").filter(|r| r["saga"].as_str() == Some(saga.id.as_str())) {
            return Ok(match result["error"].as_str() {
                None => Outcome::Next,
                Some(e) => Outcome::Fail(e.to_string()),
            });
        }
        let Some(row) = self.host_row(&host).await?.filter(|h| self.scheduler.is_up(h)) else {
            return Ok(Outcome::Fail(format!("The server's host {host} is down.")));
        };
        let op = change.op();
        if !self.command_due(server, op) {
            return Ok(Outcome::Pending);
        }
        let mut spec = Self::guest_spec(server);
        let resize = server.doc.get("resize").cloned().unwrap_or(json!({}));
        match change {
            Change::Rebuild => {
                if let Err(e) = self.add_config_drive(server, &row.driver, &mut spec).await {
                    tracing::warn!(error = %e, "cannot gather the rebuilt server's metadata; its config drive stays as it was");
                }
            }
            Change::Resize => (spec.vcpus, spec.ram_mb, spec.disk_gb) = shape(&resize["new_flavor"]),
            Change::Revert => (spec.vcpus, spec.ram_mb, spec.disk_gb) = shape(&resize["old_flavor"]),
        }
        self.send_to(server, &row, op, Some(spec), Some(saga)).await?;
        Ok(Outcome::Pending)
    }

    /// The change done: the server's new state, with what it gives back, its instance
    /// action's end and the saga's end in one transaction.
    async fn step_change_end(&self, change: Change, server: &mut Server, saga: &mut Saga) -> anyhow::Result<Outcome> {
        let result = server.doc.get("change").cloned().unwrap_or(json!({}));
        let power = result["power_state"].as_i64().unwrap_or(server.power_state);
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
        server.doc.remove("saga_id");
        server.doc.remove("action");
        let (action, event) = change.names();
        let mut tx = self.store.db.pool.begin().await?;
        let freed = match &freed_claim {
            Some(consumer) => Store::release_in(&mut tx, &[consumer], None).await?,
            None => Vec::new(),
        };
        if Store::server_save_charging_in(&mut tx, server, None, &[], &releases).await? != Charged::Saved {
            anyhow::bail!("server {} changed meanwhile", server.id);
        }
        Store::action_finish_in(&mut tx, &server.id, action, "Success", None).await?;
        if !self.sagas.finish_in(&mut tx, saga).await? {
            anyhow::bail!("saga {} moved on meanwhile", saga.id);
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
        server.doc.remove("saga_id");
        server.doc.remove("action");
        let delete_requested = server.doc.get("delete_requested").and_then(Value::as_bool).unwrap_or(false);
        server.task_state = delete_requested.then(|| "deleting".to_string());
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
