//! Hosts and the reconciler: host reports (capacity, heartbeat, guests) are recorded
//! for placement and compared with the servers the database puts on that host; agent
//! results move sagas and actions on; a periodic pass resumes sagas, re-sends
//! unanswered commands and ends anything left in a transitional state.

use super::ComputeService;
use crate::store::ServerFilter;
use crate::store::TaskState;
use crate::store::VmState;
use std::sync::Arc;
use std::time::Instant;
use stratus_common::supervisor::SUPERVISOR;
use stratus_compute_protocol::{
    AgentHosts, Command, CommandResult, HostReport, Op, PowerState, AGENT_HOSTS_SUBJECT, REPORT_SUBJECT, RESULTS_QUEUE,
};

/// What a reconciler pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Repairs {
    pub sagas_resumed: usize,
    pub deletes_restarted: usize,
}

impl ComputeService {
    /// Starts the background work: host reports, agent results and the reconciler.
    pub async fn start(self: &Arc<Self>) -> anyhow::Result<()> {
        self.scheduler.load(self.store.host_list().await?);
        // The first subscriptions are made here, so nothing published once `start`
        // returned is missed; a restarted task subscribes anew.
        let reports = Arc::new(std::sync::Mutex::new(Some(self.bus.subscribe(REPORT_SUBJECT).await?)));
        let me = self.clone();
        SUPERVISOR.spawn("compute.host-reports", move |_task| {
            let (me, first) = (me.clone(), reports.clone());
            async move {
                let taken = first.lock().unwrap().take();
                let mut reports = match taken {
                    Some(s) => s,
                    None => me.bus.subscribe(REPORT_SUBJECT).await?,
                };
                while let Some(m) = reports.next().await {
                    match m.json::<HostReport>() {
                        Ok(r) => {
                            if let Err(e) = me.on_report(&r).await {
                                tracing::warn!(host = %r.host, error = %e, "cannot record a host report");
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "malformed host report"),
                    }
                }
                Ok(())
            }
        });
        let listings = Arc::new(std::sync::Mutex::new(Some(self.bus.subscribe(AGENT_HOSTS_SUBJECT).await?)));
        let me = self.clone();
        SUPERVISOR.spawn("compute.agent-hosts", move |_task| {
            let (me, first) = (me.clone(), listings.clone());
            async move {
                let taken = first.lock().unwrap().take();
                let mut listings = match taken {
                    Some(s) => s,
                    None => me.bus.subscribe(AGENT_HOSTS_SUBJECT).await?,
                };
                while let Some(m) = listings.next().await {
                    match m.json::<AgentHosts>() {
                        Ok(a) => {
                            if let Err(e) = me.on_agent_hosts(&a).await {
                                tracing::warn!(queue = %a.queue, error = %e, "cannot apply an agent's host list");
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "malformed agent host list"),
                    }
                }
                Ok(())
            }
        });
        let ack_wait = std::time::Duration::from_secs(30);
        let results = Arc::new(std::sync::Mutex::new(Some(self.bus.work(RESULTS_QUEUE, ack_wait).await?)));
        let me = self.clone();
        SUPERVISOR.spawn("compute.agent-results", move |_task| {
            let (me, first) = (me.clone(), results.clone());
            async move {
                let taken = first.lock().unwrap().take();
                let mut results = match taken {
                    Some(q) => q,
                    None => me.bus.work(RESULTS_QUEUE, ack_wait).await?,
                };
                while let Some(item) = results.next().await {
                    let me = me.clone();
                    tokio::spawn(async move {
                        match serde_json::from_slice::<CommandResult>(item.payload()) {
                            Ok(r) => match me.on_result(&r).await {
                                Ok(()) => {
                                    let _ = item.ack().await;
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "cannot apply an agent result; it will come again");
                                    let _ = item.nack().await;
                                }
                            },
                            Err(_) => {
                                let _ = item.ack().await;
                            }
                        }
                    });
                }
                Ok(())
            }
        });
        let me = self.clone();
        SUPERVISOR.spawn_every("compute.reconciler", self.settings.reconcile_every, move || {
            let me = me.clone();
            async move {
                let r = me.reconcile().await?;
                if r != Repairs::default() {
                    tracing::info!(?r, "compute state repaired");
                }
                anyhow::Ok(())
            }
        });
        Ok(())
    }

    /// One reconciler pass.
    pub async fn reconcile(&self) -> anyhow::Result<Repairs> {
        let mut repairs = Repairs::default();
        self.scheduler.load(self.store.host_list().await?);
        repairs.sagas_resumed = self.sagas.resume_all().await?;
        let servers = self.store.server_list(&ServerFilter::default()).await?;
        for s in &servers {
            if s.task_state == Some(TaskState::Deleting) && self.sagas.unfinished(Some(&s.id)).await?.is_empty() {
                // One server changing under the pass does not stop the others.
                match self.start_delete(s).await {
                    Ok(true) => repairs.deletes_restarted += 1,
                    Ok(false) => {}
                    Err(e) => tracing::warn!(server = %s.id, error = %format!("{e:#}"), "cannot restart a delete"),
                }
            }
        }
        let idle: Vec<_> = servers.into_iter().filter(|s| s.control.saga_id.is_none()).collect();
        self.retry_power_actions(&idle).await?;
        let old = chrono::Utc::now() - chrono::Duration::days(7);
        self.sagas.purge_finished(&stratus_common::db::time_text(old)).await?;
        Ok(repairs)
    }

    /// Forgets the hosts of agent `a.queue` that it no longer runs (a deleted bare-metal
    /// node), each only while nothing is placed on it.
    pub async fn on_agent_hosts(&self, a: &AgentHosts) -> anyhow::Result<()> {
        for host in self.store.hosts_of_queue(&a.queue).await? {
            if a.hosts.iter().any(|h| *h == host) {
                continue;
            }
            if self.store.host_delete(&host).await? {
                self.scheduler.remove(&host);
                tracing::info!(host = %host, "forgot a host its agent no longer runs");
            }
        }
        Ok(())
    }

    /// Records a host's report, then compares its guests with the database.
    pub async fn on_report(&self, r: &HostReport) -> anyhow::Result<()> {
        self.scheduler.update(self.store.host_report(r, &self.settings.ratios).await?);
        let servers = self.store.server_list(&ServerFilter { host: Some(&r.host), ..Default::default() }).await?;
        for mut s in servers.iter().cloned() {
            if s.task_state.is_some()
                || s.control.saga_id.is_some()
                || !matches!(s.vm_state, VmState::Active | VmState::Stopped | VmState::Paused)
            {
                continue;
            }
            // Saved after the agent listed its guests (a build that ended meanwhile):
            // the report is older than the server.
            if r.taken_at.as_deref().is_some_and(|t| s.updated_at.as_str() >= t) {
                continue;
            }
            let seen =
                r.guests.iter().find(|g| g.server_id == s.id).map(|g| g.power_state).unwrap_or(PowerState::NoState);
            if seen == s.power_state {
                continue;
            }
            tracing::info!(server = %s.id, from = %s.power_state, to = %seen, "power state changed outside the API");
            s.power_state = seen;
            let event = match seen {
                PowerState::Running => "power_on.end",
                PowerState::Shutdown | PowerState::Crashed => "power_off.end",
                PowerState::Paused => "pause.end",
                _ => "power_state.change",
            };
            if seen != PowerState::NoState {
                s.vm_state = super::actions::vm_state_of(seen);
            }
            if self.store.server_save(&mut s, Some(None)).await? {
                self.notify(event, &s).await;
            }
        }
        // Guests with no server on this host: destroyed after a grace period (a build
        // may have been reported before the database says where it went).
        let now = Instant::now();
        let mut doomed = Vec::new();
        {
            let mut orphans = self.orphans.lock().unwrap();
            for g in &r.guests {
                if servers.iter().any(|s| s.id == g.server_id) {
                    orphans.remove(&g.server_id);
                    continue;
                }
                let since = *orphans.entry(g.server_id.clone()).or_insert(now);
                if now.duration_since(since) >= self.settings.orphan_grace {
                    doomed.push(g.server_id.clone());
                }
            }
        }
        for id in doomed {
            // A server being built there right now is not an orphan.
            if let Some(s) = self.store.server_get(&id).await? {
                if !s.deleted && s.host.as_deref() == Some(r.host.as_str()) {
                    continue;
                }
            }
            tracing::info!(host = %r.host, guest = %id, "destroying an orphan guest");
            let cmd = Command {
                action_id: uuid::Uuid::new_v4().to_string(),
                server_id: id.clone(),
                host: r.host.clone(),
                op: Op::Destroy,
                spec: None,
            };
            self.bus.enqueue(&r.queue, serde_json::to_vec(&cmd)?).await?;
            self.orphans.lock().unwrap().remove(&id);
        }
        Ok(())
    }
}

/// A host as the admin views (hypervisors, services, zones) show it.
pub struct HostView {
    pub row: crate::store::HostRow,
    pub up: bool,
    /// Servers placed on the host.
    pub servers: i64,
}

impl ComputeService {
    /// Every host with whether it is up and how many servers it has. `policy`: the
    /// admin-only rule the view needs, if any.
    pub async fn host_views(
        &self,
        ctx: &stratus_common::auth::AuthContext,
        policy: Option<&str>,
    ) -> super::AppResult<Vec<HostView>> {
        if let Some(p) = policy {
            super::require_admin(ctx, p)?;
        }
        let counts = self.store.servers_per_host().await?;
        Ok(self
            .store
            .host_list()
            .await?
            .into_iter()
            .map(|row| HostView {
                up: self.scheduler.is_up(&row),
                servers: counts.get(row.host.as_str()).copied().unwrap_or(0),
                row,
            })
            .collect())
    }
}

impl ComputeService {
    /// Hands a host to a lease's reservation, whole or (`slice`: vCPUs, MB of RAM, GB
    /// of disk) a slice of it (the reservation service calls this at the lease's start;
    /// idempotent). Admin only.
    pub async fn host_reserve(
        &self,
        ctx: &stratus_common::auth::AuthContext,
        host: &str,
        reservation: &crate::store::HostReservation,
        slice: Option<(i64, i64, i64)>,
    ) -> super::AppResult<()> {
        super::require_admin(ctx, "os_compute_api:os-hypervisors:reserve")?;
        if reservation.id.is_empty() || reservation.project_id.is_empty() {
            return Err(super::bad("A reservation needs an id and a project_id."));
        }
        if slice.is_some_and(|(c, r, d)| c < 0 || r < 0 || d < 0 || c + r + d == 0) {
            return Err(super::bad("A slice holds vcpus, memory_mb and disk_gb of at least 0, not all 0."));
        }
        let held = match slice {
            Some(size) => self.store.host_slice(host, reservation, size).await?,
            None => self.store.host_reserve(host, reservation).await?,
        };
        match held {
            Some(row) => {
                self.scheduler.update(row);
                Ok(())
            }
            None => match self.store.host_get(host).await? {
                None => Err(super::not_found(format!("Hypervisor {host} could not be found."))),
                Some(row) => Err(super::conflict(match row.reservation {
                    Some(r) => format!("Hypervisor {host} is held by reservation {}.", r.id),
                    None => format!("Hypervisor {host} holds slices for other reservations; it cannot be held whole."),
                })),
            },
        }
    }

    /// Gives a host back from a reservation (idempotent). Admin only.
    pub async fn host_unreserve(
        &self,
        ctx: &stratus_common::auth::AuthContext,
        host: &str,
        reservation: &str,
    ) -> super::AppResult<()> {
        super::require_admin(ctx, "os_compute_api:os-hypervisors:reserve")?;
        match self.store.host_unreserve(host, reservation).await? {
            Some(row) => {
                self.scheduler.update(row);
                Ok(())
            }
            None => Err(super::not_found(format!("Hypervisor {host} could not be found."))),
        }
    }
}

impl ComputeService {
    /// The uptime and load a host's agent last reported; `None` for a host that is no
    /// machine of its own. Admin only.
    pub async fn host_uptime(
        &self,
        ctx: &stratus_common::auth::AuthContext,
        host: &str,
    ) -> super::AppResult<Option<String>> {
        super::require_admin(ctx, "os_compute_api:os-hypervisors:uptime")?;
        Ok(self.store.host_get(host).await?.and_then(|h| h.uptime))
    }

    /// The servers on a host, as (name, id), oldest first (`os-hypervisors` with their
    /// servers). Admin only.
    pub async fn host_servers(
        &self,
        ctx: &stratus_common::auth::AuthContext,
        host: &str,
    ) -> super::AppResult<Vec<(String, String)>> {
        super::require_admin(ctx, "os_compute_api:os-hypervisors:servers")?;
        let mut list = self.store.server_list(&ServerFilter { host: Some(host), ..Default::default() }).await?;
        list.reverse();
        Ok(list.into_iter().map(|s| (s.name, s.id.to_string())).collect())
    }
}

/// What one project's servers hold on a host (`GET /os-hosts/{host}`).
#[derive(Debug, Clone, Default)]
pub struct HostUse {
    pub project: String,
    pub vcpus: i64,
    pub ram_mb: i64,
    pub disk_gb: i64,
}

impl ComputeService {
    /// Enables or disables a compute host for new servers (`os-services`, `os-hosts`):
    /// the servers on it stay. Admin only.
    pub async fn host_set_enabled(
        &self,
        ctx: &stratus_common::auth::AuthContext,
        host: &str,
        enabled: bool,
        reason: Option<&str>,
    ) -> super::AppResult<crate::store::HostRow> {
        super::require_admin(ctx, "os_compute_api:os-services:update")?;
        if let Some(r) = reason {
            if r.chars().count() > 255 || r.trim().is_empty() {
                return Err(super::Error::BadRequest("disabled_reason is 1 to 255 characters.".into()));
            }
        }
        let reason = if enabled { None } else { reason };
        if !self.store.host_enable(host, enabled, reason).await? {
            return Err(super::not_found(format!("Compute host {host} could not be found.")));
        }
        let row = self
            .store
            .host_get(host)
            .await?
            .ok_or_else(|| super::not_found(format!("Compute host {host} could not be found.")))?;
        self.scheduler.update(row.clone());
        tracing::info!(host, enabled, reason, "compute host {}", if enabled { "enabled" } else { "disabled" });
        Ok(row)
    }

    /// A host's row and what each project's servers hold on it. Admin only.
    pub async fn host_use(
        &self,
        ctx: &stratus_common::auth::AuthContext,
        host: &str,
    ) -> super::AppResult<(crate::store::HostRow, Vec<HostUse>)> {
        super::require_admin(ctx, "os_compute_api:os-hosts:show")?;
        let row = self
            .store
            .host_get(host)
            .await?
            .ok_or_else(|| super::not_found(format!("Compute host {host} could not be found.")))?;
        let mut by_project: std::collections::BTreeMap<String, HostUse> = Default::default();
        for s in self.store.server_list(&ServerFilter { host: Some(host), ..Default::default() }).await? {
            let u = by_project
                .entry(s.project_id.to_string())
                .or_insert_with(|| HostUse { project: s.project_id.to_string(), ..Default::default() });
            u.vcpus += s.vcpus;
            u.ram_mb += s.ram;
            u.disk_gb += s.disk;
        }
        Ok((row, by_project.into_values().collect()))
    }
}
