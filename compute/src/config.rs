//! The compute service's configuration section, `[compute]`.

use crate::scheduler::Weigher;
use serde::{Deserialize, Serialize};
use stratus_common::config::{check_url, ConfigError};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ComputeConfig {
    pub port: u16,
    /// The network, image and block-storage APIs compute calls (default: this
    /// deployment's own).
    pub network_url: String,
    pub image_url: String,
    pub volume_url: String,
    /// How the scheduler orders hosts: `spread` (emptiest first) or `pack`.
    pub weigher: Weigher,
    /// Placement hands out `(total - reserved) * ratio` of each host.
    pub cpu_allocation_ratio: f64,
    pub ram_allocation_ratio: f64,
    pub disk_allocation_ratio: f64,
    pub reserved_host_memory_mb: i64,
    pub reserved_host_disk_gb: i64,
    /// A host not heard from for this long is down (seconds).
    pub host_down_secs: u64,
    /// How often the reconciler runs (seconds).
    pub reconcile_secs: u64,
    /// An agent command not answered in this time is sent again (seconds).
    pub command_timeout_secs: u64,
    /// Other hosts a failed build is retried on.
    pub build_retries: i64,
    /// The metadata API guests reach through the network agent's proxy.
    pub metadata_port: u16,
    /// Shared secret the proxy signs instance ids with (Nova's
    /// `metadata_proxy_shared_secret`); empty = `[network_agent] metadata_secret`, and
    /// when both are empty one generated in the data directory (single-host setups).
    pub metadata_secret: String,
}

impl Default for ComputeConfig {
    fn default() -> Self {
        Self {
            port: 8774,
            network_url: String::new(),
            image_url: String::new(),
            volume_url: String::new(),
            weigher: Weigher::Spread,
            cpu_allocation_ratio: 16.0,
            ram_allocation_ratio: 1.5,
            disk_allocation_ratio: 1.0,
            reserved_host_memory_mb: 512,
            reserved_host_disk_gb: 0,
            host_down_secs: 60,
            reconcile_secs: 10,
            command_timeout_secs: 30,
            build_retries: 3,
            metadata_port: 8775,
            metadata_secret: String::new(),
        }
    }
}

impl ComputeConfig {
    /// Checks what types alone cannot; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_url("compute.network_url", &self.network_url)?;
        check_url("compute.image_url", &self.image_url)?;
        check_url("compute.volume_url", &self.volume_url)
    }
}
