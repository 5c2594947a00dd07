//! The delete saga: destroy the guest on its host → remove ports → release the host
//! claim and quota → mark the server deleted. It only goes forward: every step is
//! idempotent and retried until it succeeds. A host that is down is not waited for (its
//! agent destroys the orphan guest when it comes back).

use super::ComputeService;
use crate::store::Server;
use futures::future::BoxFuture;
use serde_json::json;
use std::sync::Weak;
use stratus_common::db::now_text;
use stratus_common::saga::{Outcome, Saga, SagaDef};
use stratus_compute_agent::protocol::{power, Op};

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
            let Some(server) = s.store.server_get(&saga.subject).await? else { return Ok(Outcome::Next) };
            if server.deleted {
                return Ok(Outcome::Next);
            }
            match step {
                0 => s.step_destroy(server).await,
                1 => {
                    let mut server = server;
                    s.ports_remove(&mut server).await?;
                    Ok(Outcome::Next)
                }
                _ => s.step_release(server).await,
            }
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
    /// Starts deleting a server whose create saga (if any) has ended.
    pub(crate) async fn start_delete(&self, server: &Server) -> anyhow::Result<()> {
        let id = uuid::Uuid::new_v4().to_string();
        let mut conn = self.store.db.pool.acquire().await?;
        self.sagas.insert(&mut conn, &id, KIND, &server.id, &json!({})).await?;
        drop(conn);
        // Results of the saga's commands poke it through the server's saga id.
        if let Some(mut s) = self.store.server_get(&server.id).await? {
            s.doc.insert("saga_id".into(), json!(id));
            s.task_state = Some("deleting".into());
            self.save(&mut s).await?;
        }
        self.sagas.spawn(&id);
        Ok(())
    }

    async fn step_destroy(&self, mut server: Server) -> anyhow::Result<Outcome> {
        let Some(host) = server.host.clone() else { return Ok(Outcome::Next) };
        if server.doc.get("destroyed_on").and_then(|v| v.as_str()) == Some(host.as_str()) {
            return Ok(Outcome::Next);
        }
        let Some(row) = self.store.host_get(&host).await?.filter(|h| self.scheduler.is_up(h)) else {
            tracing::info!(server = %server.id, host, "host is down; deleting without it");
            return Ok(Outcome::Next);
        };
        if !self.command_due(&server, Op::Destroy) {
            return Ok(Outcome::Pending);
        }
        self.send_to(&mut server, &row, Op::Destroy, None).await?;
        Ok(Outcome::Pending)
    }

    async fn step_release(&self, mut server: Server) -> anyhow::Result<Outcome> {
        let released_from = server.host.clone();
        self.store.release(&server.id, None).await?;
        self.store.release(&super::resize::resize_consumer(&server.id), None).await?;
        self.scheduler_refresh(released_from.as_deref()).await;
        self.store.server_uncharge(&server).await?;
        self.leave_group(&server).await?;
        server.charged = false;
        server.vm_state = "deleted".into();
        server.task_state = None;
        server.power_state = power::NOSTATE;
        server.terminated_at = Some(now_text());
        server.doc.remove("action");
        server.doc.remove("saga_id");
        server.deleted = true;
        self.save(&mut server).await?;
        self.finish_action(&server, "delete", None).await;
        self.notify("delete.end", &server).await;
        Ok(Outcome::Next)
    }
}
