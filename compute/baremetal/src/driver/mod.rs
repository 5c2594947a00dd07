//! How the conductor reaches a node's BMC: power, the next boot device, and what the
//! hardware has (for inspection). One implementation per protocol:
//! [`redfish::Redfish`] (HTTP + JSON, a real server's BMC or sushy-tools' emulator),
//! [`ipmi::Ipmi`] (`ipmitool` over IPMI-over-LAN, a real BMC or virtualbmc) and
//! [`fake::FakeHardware`] (in memory, for tests and benchmarks at scale).

pub mod fake;
pub mod ipmi;
pub mod redfish;

use crate::model::{BootDevice, HardwareType, PowerState, PowerTarget};
use futures::future::BoxFuture;
use serde_json::{Map, Value};
use std::sync::Arc;

/// What out-of-band inspection learns about a node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inventory {
    pub cpus: Option<i64>,
    pub memory_mb: Option<i64>,
    pub local_gb: Option<i64>,
    pub cpu_arch: Option<String>,
    /// The MAC addresses of the node's network interfaces.
    pub macs: Vec<String>,
}

/// One node's BMC.
pub trait Bmc: Send + Sync {
    fn power_state(&self) -> BoxFuture<'_, anyhow::Result<PowerState>>;
    fn set_power(&self, target: PowerTarget) -> BoxFuture<'_, anyhow::Result<()>>;
    fn set_boot_device(&self, device: BootDevice, persistent: bool) -> BoxFuture<'_, anyhow::Result<()>>;
    /// The boot device set for the next boot, where the BMC says.
    fn boot_device(&self) -> BoxFuture<'_, anyhow::Result<Option<BootDevice>>>;
    /// What the hardware has; an error where the protocol cannot tell.
    fn inventory(&self) -> BoxFuture<'_, anyhow::Result<Inventory>>;
}

/// Builds the BMC of a node from its hardware type and `driver_info`.
#[derive(Clone)]
pub struct Drivers {
    pub http: reqwest::Client,
    pub fake: Arc<fake::FakeHardware>,
    /// The `ipmitool` to run (a path, or a name on `PATH`).
    pub ipmitool: String,
}

impl Drivers {
    pub fn new(http: reqwest::Client) -> Self {
        Self { http, fake: Arc::new(fake::FakeHardware::default()), ipmitool: "ipmitool".into() }
    }

    pub fn bmc(
        &self,
        node_id: &str,
        hardware: HardwareType,
        info: &Map<String, Value>,
    ) -> anyhow::Result<Box<dyn Bmc>> {
        Ok(match hardware {
            HardwareType::Redfish => Box::new(redfish::Redfish::new(self.http.clone(), info)?),
            HardwareType::Ipmi => Box::new(ipmi::Ipmi::new(self.ipmitool.clone(), info)?),
            HardwareType::Fake => Box::new(self.fake.node(node_id)),
        })
    }
}

/// A `driver_info` value as text (numbers too, as the clients send them either way).
pub(crate) fn info_text(info: &Map<String, Value>, key: &str) -> Option<String> {
    match info.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}
