//! The bare-metal service's configuration section, `[baremetal]`.

use serde::{Deserialize, Serialize};
use stratus_common::config::{check_url, ConfigError};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BaremetalConfig {
    pub port: u16,
    /// How often the power state of idle nodes is read from their BMCs, in seconds.
    pub power_sync_secs: u64,
    /// Consecutive failed power reads after which a node goes into maintenance.
    pub power_sync_failures: u32,
    /// How long a power request may take to show on the BMC, in seconds.
    pub power_timeout_secs: u64,
    /// The `ipmitool` the IPMI driver runs (a path, or a name on PATH).
    pub ipmitool: String,
    /// The deploy ramdisk's kernel and initramfs (files on this host; made by
    /// `deploy/ramdisk/build.sh`); the direct deploy needs both.
    pub deploy_kernel: String,
    pub deploy_ramdisk: String,
    /// Extra kernel arguments for the deploy ramdisk (a serial console, say).
    pub deploy_kernel_args: String,
    /// The bare-metal API as nodes reach it on the provisioning network; empty = the
    /// public URL.
    pub agent_url: String,
    /// How long the deploy ramdisk may take to write or wipe, in seconds.
    pub callback_timeout_secs: u64,
    /// The interface on the provisioning network where this service runs DHCP for
    /// network-booting nodes; empty = none (DHCP is someone else's).
    pub provisioning_interface: String,
    /// The addresses that DHCP hands out there (dnsmasq's `FIRST,LAST[,NETMASK]`).
    pub dhcp_range: String,
    /// The image API deploys fetch images from; empty = this deployment's own.
    pub image_url: String,
}

impl Default for BaremetalConfig {
    fn default() -> Self {
        Self {
            port: 6385,
            power_sync_secs: 60,
            power_sync_failures: 3,
            power_timeout_secs: 60,
            ipmitool: "ipmitool".into(),
            deploy_kernel: String::new(),
            deploy_ramdisk: String::new(),
            deploy_kernel_args: "console=tty0 console=ttyS0,115200".into(),
            agent_url: String::new(),
            callback_timeout_secs: 1800,
            provisioning_interface: String::new(),
            dhcp_range: String::new(),
            image_url: String::new(),
        }
    }
}

impl BaremetalConfig {
    /// Checks what types alone cannot; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.provisioning_interface.is_empty() && self.dhcp_range.is_empty() {
            return Err(ConfigError::Invalid(
                "baremetal.dhcp_range: needed with baremetal.provisioning_interface (FIRST,LAST)".into(),
            ));
        }
        check_url("baremetal.agent_url", &self.agent_url)?;
        check_url("baremetal.image_url", &self.image_url)
    }
}
