//! Server groups and their scheduling policies (affinity, anti-affinity and the soft
//! variants, which the scheduler treats as preferences it may break).

use super::AppResult;
use super::{bad, forbidden, not_found, ComputeService};
use crate::store::{Server, ServerGroup};
use serde_json::Value;
use stratus_common::auth::AuthContext;
use stratus_common::db::now_text;
use stratus_compute_protocol::HostName;

pub const POLICIES: &[&str] = &["affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity"];

impl ComputeService {
    fn group_of(server: &Server) -> Option<String> {
        server.doc.get("hints").and_then(|h| h.get("group")).and_then(Value::as_str).map(str::to_string)
    }

    /// The server's group when its policy is (hard) anti-affinity: the claim checks it.
    pub(crate) async fn anti_affinity_group(&self, server: &Server) -> anyhow::Result<Option<String>> {
        let Some(gid) = Self::group_of(server) else { return Ok(None) };
        Ok(self.store.group_get(&gid).await?.filter(|g| g.policy == "anti-affinity").map(|g| g.id))
    }

    /// Hosts of the other members, when the group's policy is anti-affinity.
    pub(crate) async fn group_hosts_to_avoid(&self, server: &Server) -> anyhow::Result<Vec<HostName>> {
        self.member_hosts(server, "anti-affinity").await
    }

    /// Hosts of the other members, when the policy is affinity and members are placed.
    pub(crate) async fn group_hosts_required(&self, server: &Server) -> anyhow::Result<Option<Vec<HostName>>> {
        let hosts = self.member_hosts(server, "affinity").await?;
        Ok(if hosts.is_empty() { None } else { Some(hosts) })
    }

    async fn member_hosts(&self, server: &Server, policy: &str) -> anyhow::Result<Vec<HostName>> {
        let Some(gid) = Self::group_of(server) else { return Ok(Vec::new()) };
        let Some(g) = self.store.group_get(&gid).await? else { return Ok(Vec::new()) };
        if g.policy != policy {
            return Ok(Vec::new());
        }
        let mut hosts = Vec::new();
        for m in g.members.iter().filter(|m| **m != server.id) {
            if let Some(h) = self.store.server_get(m).await?.and_then(|s| s.host) {
                hosts.push(h);
            }
        }
        Ok(hosts)
    }

    pub(crate) async fn leave_group(&self, server: &Server) -> anyhow::Result<()> {
        if let Some(g) = Self::group_of(server) {
            self.store.group_member(&g, &server.id, false).await?;
        }
        Ok(())
    }

    pub async fn group_create(&self, ctx: &AuthContext, name: &str, policy: &str) -> AppResult<ServerGroup> {
        super::require_writer(ctx)?;
        let project = super::project_of(ctx)?;
        if name.trim().is_empty() || name.len() > 255 {
            return Err(bad("Invalid input for field/attribute name."));
        }
        if !POLICIES.contains(&policy) {
            return Err(bad(format!(
                "Invalid input for field/attribute policy: '{policy}' is not one of {POLICIES:?}."
            )));
        }
        let g = ServerGroup {
            id: uuid::Uuid::new_v4().to_string(),
            project_id: project.clone(),
            user_id: ctx.user_id().to_string(),
            name: name.to_string(),
            policy: policy.to_string(),
            members: Vec::new(),
            created_at: now_text(),
        };
        let limit = self.limit(&project, "server_groups").await?;
        if self.store.group_insert(&g, limit).await? {
            Ok(g)
        } else {
            Err(forbidden("Quota exceeded, too many server groups."))
        }
    }

    pub async fn group_get(&self, ctx: &AuthContext, id: &str) -> AppResult<ServerGroup> {
        match self.store.group_get(id).await? {
            Some(g) if ctx.is_admin() || ctx.project_id() == Some(g.project_id.as_str()) => Ok(g),
            _ => Err(not_found(format!("Instance group {id} could not be found."))),
        }
    }

    pub async fn group_list(&self, ctx: &AuthContext, all_projects: bool) -> AppResult<Vec<ServerGroup>> {
        let all = all_projects && ctx.is_admin();
        Ok(self
            .store
            .group_list()
            .await?
            .into_iter()
            .filter(|g| all || ctx.project_id() == Some(g.project_id.as_str()))
            .collect())
    }

    pub async fn group_delete(&self, ctx: &AuthContext, id: &str) -> AppResult<()> {
        super::require_writer(ctx)?;
        let g = self.group_get(ctx, id).await?;
        self.store.group_delete(&g).await?;
        Ok(())
    }
}
