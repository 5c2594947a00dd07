//! Usage (Nova's simple tenant usage): instance hours within a window per project, from
//! each server's life (creation to deletion) times its flavor.

use super::AppResult;
use super::{forbidden, ComputeService};
use crate::store::{Server, ServerFilter};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use stratus_common::auth::AuthContext;
use stratus_common::db::parse_time;

/// One server's share of a window.
pub struct ServerUsage {
    pub server: Server,
    pub hours: f64,
    /// Seconds from creation to the end of the window (or its deletion).
    pub uptime: i64,
}

/// One project's usage in a window.
#[derive(Default)]
pub struct ProjectUsage {
    pub memory_mb_hours: f64,
    pub vcpu_hours: f64,
    pub disk_gb_hours: f64,
    pub hours: f64,
    pub servers: Vec<ServerUsage>,
}

impl ComputeService {
    /// Usage in `[start, end]` of one project (`only`), or of every project for admins
    /// (of the caller's project otherwise), keyed by project.
    pub async fn usage(
        &self,
        ctx: &AuthContext,
        only: Option<&str>,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> AppResult<BTreeMap<String, ProjectUsage>> {
        let now = Utc::now();
        let end = end.min(now);
        let project = ctx
            .readable_project(only)
            .map_err(|()| forbidden("Policy doesn't allow showing another project's usage."))?;
        let filter = ServerFilter { project: project.as_deref(), include_deleted: true, ..Default::default() };
        let mut out: BTreeMap<String, ProjectUsage> = BTreeMap::new();
        for server in self.store.server_list(&filter).await? {
            let Some(created) = parse_time(&server.created_at) else { continue };
            let gone = server.terminated_at.as_deref().and_then(parse_time).unwrap_or(now);
            let (from, to) = (created.max(start), gone.min(end));
            if to <= from {
                continue;
            }
            let hours = (to - from).num_milliseconds() as f64 / 3_600_000.0;
            let u = out.entry(server.project_id.to_string()).or_default();
            u.memory_mb_hours += hours * server.ram as f64;
            u.vcpu_hours += hours * server.vcpus as f64;
            u.disk_gb_hours += hours * server.disk as f64;
            u.hours += hours;
            u.servers.push(ServerUsage { hours, uptime: (to - created).num_seconds(), server });
        }
        Ok(out)
    }
}
