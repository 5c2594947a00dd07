//! The reservation service's configuration section, `[reservation]`.

use serde::{Deserialize, Serialize};
use stratus_common::config::{check_url, ConfigError};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReservationConfig {
    pub port: u16,
    /// The compute API (ending in `/v2.1`) whose hosts are leased; empty = this
    /// deployment's own.
    pub compute_url: String,
    /// The network API whose floating IPs are leased; empty = this deployment's own.
    pub network_url: String,
    /// The image service that keeps the snapshots of `before_end: snapshot`; empty =
    /// this deployment's own.
    pub image_url: String,
    /// When a lease's `before_end_lease` event fires if the lease names no time: this
    /// many minutes before its end (never before its start).
    pub before_end_minutes: i64,
    /// How many times a lease event is tried (with growing pauses) before the lease
    /// goes to ERROR.
    pub event_attempts: i64,
    /// How often the hosts of active leases are checked; a failed one is replaced.
    pub health_secs: u64,
    /// Lets every project's users read the reservable hosts, their extra capabilities
    /// and allocations (never change them), as Chameleon runs Blazar so its users can
    /// pick node types and see when hosts are free. Off: the admin's alone (Blazar's
    /// default).
    pub hosts_visible_to_projects: bool,
    /// Serves the reservable hosts' hardware, without a token, as Chameleon's
    /// reference API (`/reference/sites.json`, `…/clusters/chameleon/nodes.json`):
    /// what python-chi's `chi.hardware` reads (`CHI_RESOURCE_API_URL`).
    pub hardware_catalog: bool,
}

impl Default for ReservationConfig {
    fn default() -> Self {
        Self {
            port: 1234,
            compute_url: String::new(),
            network_url: String::new(),
            image_url: String::new(),
            before_end_minutes: 60,
            event_attempts: 8,
            health_secs: 30,
            hosts_visible_to_projects: false,
            hardware_catalog: false,
        }
    }
}

impl ReservationConfig {
    /// Checks what types alone cannot; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_url("reservation.compute_url", &self.compute_url)?;
        check_url("reservation.network_url", &self.network_url)?;
        check_url("reservation.image_url", &self.image_url)
    }
}
