//! The network service's configuration section, `[network]`.

use crate::driver::Driver;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    pub port: u16,
    /// What binding a port does: `agent` (the network agent wires it and reports it
    /// ACTIVE) or `fake` (ACTIVE at once, no data plane; for tests at scale).
    pub driver: Driver,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self { port: 9696, driver: Driver::Agent }
    }
}
