//! The reservation service's rules: who may do what, allocation of hosts to leases,
//! and the event schedule that starts and ends them. One file per resource;
//! `events.rs` holds the schedule.

mod error;
pub mod events;
pub mod floatingips;
mod health;
pub mod hosts;
pub mod leases;

pub use error::{bad, AppResult, Error};

use crate::compute::Compute;
use crate::network::Network;
use crate::store::Store;
use serde_json::json;
use std::sync::Arc;
use stratus_common::auth::AuthContext;
use stratus_common::bus::Bus;
use stratus_common::db::now_text;

#[derive(Debug, Clone)]
pub struct Settings {
    pub public_url: String,
    /// Minutes before a lease's end its `before_end_lease` event fires by default.
    pub before_end_minutes: i64,
    /// Attempts at an event before the lease goes to ERROR.
    pub event_attempts: i64,
    /// The longest the schedule sleeps between looks at the event table.
    pub tick: std::time::Duration,
    /// How often the hosts of active leases are checked for failures.
    pub health_every: std::time::Duration,
    /// Every project's users may read hosts and allocations (`[reservation]
    /// hosts_visible_to_projects`).
    pub hosts_visible_to_projects: bool,
    /// The hosts' hardware is served without a token (`[reservation] hardware_catalog`).
    pub hardware_catalog: bool,
    /// The region, which names the catalog's one site (`CHI@UC` → site `uc`).
    pub region: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            public_url: String::new(),
            before_end_minutes: 60,
            event_attempts: 8,
            tick: std::time::Duration::from_secs(1),
            health_every: std::time::Duration::from_secs(30),
            hosts_visible_to_projects: false,
            hardware_catalog: false,
            region: "RegionOne".into(),
        }
    }
}

pub struct ReservationService {
    pub store: Store,
    pub bus: Bus,
    pub compute: Arc<dyn Compute>,
    pub network: Arc<dyn Network>,
    pub settings: Settings,
    /// Wakes the schedule when an event may have become due (a lease made or moved).
    pub(crate) wake: tokio::sync::Notify,
    /// Firing an event and deleting or moving a lease take turns, so a lease is never
    /// deleted between its hosts being handed over and the lease recording it.
    pub(crate) turns: tokio::sync::Mutex<()>,
}

impl ReservationService {
    pub fn new(
        store: Store,
        bus: Bus,
        compute: Arc<dyn Compute>,
        network: Arc<dyn Network>,
        settings: Settings,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            bus,
            compute,
            network,
            settings,
            wake: tokio::sync::Notify::new(),
            turns: tokio::sync::Mutex::new(()),
        })
    }

    /// Announces a lifecycle event (`reservation.<what>`).
    pub(crate) async fn notify(&self, what: &str, lease: &crate::store::Lease) {
        self.notify_with(what, lease, serde_json::Value::Null).await
    }

    /// Announces a lifecycle event with more fields (`usage` for metering).
    pub(crate) async fn notify_with(&self, what: &str, lease: &crate::store::Lease, more: serde_json::Value) {
        let mut body = json!({"lease_id": lease.id, "project_id": lease.project_id, "status": lease.status.as_str(),
                              "degraded": lease.degraded, "timestamp": now_text()});
        if let (serde_json::Value::Object(b), serde_json::Value::Object(m)) = (&mut body, more) {
            b.extend(m);
        }
        self.bus.emit(&format!("reservation.{what}"), &body).await;
    }
}

/// Policy: admin, or a member of the project (readers may only read).
pub(crate) fn require_writer(ctx: &AuthContext) -> AppResult<()> {
    if ctx.is_admin() || ctx.has_role("member") {
        Ok(())
    } else {
        Err(Error::Forbidden("Policy doesn't allow this operation: readers cannot change leases.".into()))
    }
}

pub(crate) fn require_admin(ctx: &AuthContext, what: &str) -> AppResult<()> {
    if ctx.is_admin() {
        Ok(())
    } else {
        Err(Error::Forbidden(format!("Policy doesn't allow blazar:{what} to be performed.")))
    }
}

pub(crate) fn project_of(ctx: &AuthContext) -> AppResult<String> {
    ctx.project_id().map(str::to_string).ok_or_else(|| Error::Forbidden("A project-scoped token is needed.".into()))
}
