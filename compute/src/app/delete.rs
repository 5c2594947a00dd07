//! The delete saga: destroy the guest on its host → remove ports → release the host
//! claim and quota → mark the server deleted. It only goes forward: every step is
//! idempotent and retried until it succeeds. A host that is down is not waited for (its
//! agent destroys the orphan guest when it comes back).

use super::keep_for_next_step;
use super::ComputeService;
use crate::store::VmState;
use crate::store::{Server, Store};
use futures::future::BoxFuture;
use serde_json::json;
use std::sync::Weak;
use stratus_common::db::now_text;
use stratus_common::saga::{Outcome, Saga, SagaDef};
use stratus_compute_protocol::{power, Op};

pub const KIND: &str = "delete";
pub const STEPS: &[&str] = &["destroy", "ports", "release"];

pub struct DeleteSaga(pub Weak<ComputeService>);

impl SagaDef for DeleteSaga {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn steps(&self) -> &'static [&'static str] {
        STEPS
    }

    fn run<'a>(&'a self, step: usize, saga: &'a mut Saga) -> BoxFuture<'a, anyhow::Result<Outcome>> {
        Box::pin(async move {
            let s = self.0.upgrade().ok_or_else(|| anyhow::anyhow!("compute service stopped"))?;
            let Some(mut server) = s.server_for_step(saga).await? else { return Ok(Outcome::Next) };
            if server.deleted {
                return Ok(Outcome::Next);
            }
            let outcome = match step {
                0 => s.step_destroy(&mut server, saga).await?,
                1 => {
                    s.ports_remove(&mut server).await?;
                    Outcome::Next
                }
                _ => s.step_release(&mut server, saga).await?,
            };
            keep_for_next_step(saga, server, &outcome);
            Ok(outcome)
        })
    }

    fn undo<'a>(&'a self, _step: usize, _saga: &'a mut Saga) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async { Ok(()) })
    }

    fn finished<'a>(&'a self, _saga: &'a Saga) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async { Ok(()) })
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
        let saga = Saga::fresh(&uuid::Uuid::new_v4().to_string(), KIND, &s.id, json!({}));
        // Results of the saga's commands poke it through the server's saga id.
        s.doc.insert("saga_id".into(), json!(saga.id));
        s.task_state = Some("deleting".into());
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
        let mut saga = saga;
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

    async fn step_destroy(&self, server: &mut Server, saga: &mut Saga) -> anyhow::Result<Outcome> {
        let Some(host) = server.host.clone() else { return Ok(Outcome::Next) };
        if server.doc.get("destroyed_on").and_then(|v| v.as_str()) == Some(host.as_str()) {
            return Ok(Outcome::Next);
        }
        let Some(row) = self.host_row(&host).await?.filter(|h| self.scheduler.is_up(h)) else {
            tracing::info!(server = %server.id, host, "host is down; deleting without it");
            return Ok(Outcome::Next);
        };
        if !self.command_due(server, Op::Destroy) {
            return Ok(Outcome::Pending);
        }
        self.send_to(server, &row, Op::Destroy, None, Some(saga)).await?;
        Ok(Outcome::Pending)
    }

    async fn step_release(&self, server: &mut Server, saga: &mut Saga) -> anyhow::Result<Outcome> {
        self.leave_group(server).await?;
        server.vm_state = VmState::Deleted;
        server.task_state = None;
        server.power_state = power::NOSTATE;
        server.terminated_at = Some(now_text());
        server.doc.remove("action");
        server.doc.remove("saga_id");
        server.deleted = true;
        // The host claims and quota given back with the server, its instance action and
        // the saga's end, in one transaction.
        let mut tx = self.store.db.pool.begin().await?;
        let resize = super::resize::resize_consumer(&server.id);
        let freed = Store::release_in(&mut tx, &[&server.id, &resize], None).await?;
        if !Store::server_save_uncharged_in(&mut tx, server).await? {
            anyhow::bail!("server {} changed meanwhile", server.id);
        }
        Store::action_finish_in(&mut tx, &server.id, "delete", "Success", None).await?;
        if !self.sagas.finish_in(&mut tx, saga).await? {
            anyhow::bail!("saga {} moved on meanwhile", saga.id);
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
