//! The compute agent's configuration section, `[compute_agent]`.

use serde::{Deserialize, Serialize};
use stratus_common::config::{check_ip, check_url, ConfigError};

/// The compute agent: runs the guests of this host (or, with the fake driver, of many
/// emulated hosts).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ComputeAgentConfig {
    /// Whether all-in-one runs an agent.
    pub enabled: bool,
    /// `libvirt` (real guests), `fake` (guests in memory, for tests at scale), or `auto`:
    /// libvirt when a daemon answers at `libvirt_uri`, else fake.
    pub driver: ComputeDriver,
    pub libvirt_uri: String,
    /// `kvm`, `qemu` (software emulation) or `auto` (kvm where the CPU can).
    pub virt_type: VirtType,
    /// Instance disks, config drives, consoles and the image cache; empty =
    /// `<data_dir>/compute-agent`.
    pub state_dir: String,
    /// The image service the cache downloads from; empty = this config's image address.
    pub image_url: String,
    /// How long an image no guest uses stays cached (seconds).
    pub image_cache_grace_secs: u64,
    /// How long a guest gets to power off cleanly on stop and soft reboot (seconds).
    pub shutdown_timeout_secs: u64,
    /// How long a new guest waits for the network agent to plug its taps (seconds).
    pub vif_plug_timeout_secs: u64,
    /// Host name (default: the machine's).
    pub host: String,
    /// The address other hosts reach this one at (storage hosts serve it volumes over
    /// the network); empty = `[server] public_host`.
    pub my_ip: String,
    pub availability_zone: String,
    /// With the fake driver: how many hosts to emulate, and their size.
    pub fake_hosts: usize,
    pub fake_vcpus: i64,
    pub fake_ram_mb: i64,
    pub fake_disk_gb: i64,
    pub fake_boot_delay_ms: u64,
    pub fake_failure_rate: f64,
    /// How often each host reports (seconds).
    pub report_secs: u64,
    /// Whether all-in-one also runs an agent whose hosts are the bare-metal nodes (the
    /// `ironic` driver), beside the hypervisor's.
    pub baremetal_nodes: bool,
    /// The bare-metal service the `ironic` driver drives; empty = this config's
    /// bare-metal address.
    pub baremetal_url: String,
    /// How long the `ironic` driver waits for a node's deploy or undeploy (seconds).
    pub baremetal_deploy_timeout_secs: u64,
}

impl Default for ComputeAgentConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            driver: ComputeDriver::Auto,
            libvirt_uri: "qemu:///system".into(),
            virt_type: VirtType::Auto,
            state_dir: String::new(),
            image_url: String::new(),
            image_cache_grace_secs: 3600,
            shutdown_timeout_secs: 60,
            vif_plug_timeout_secs: 300,
            host: String::new(),
            my_ip: String::new(),
            availability_zone: "nova".into(),
            fake_hosts: 1,
            fake_vcpus: 8,
            fake_ram_mb: 16384,
            fake_disk_gb: 200,
            fake_boot_delay_ms: 0,
            fake_failure_rate: 0.0,
            report_secs: 10,
            baremetal_nodes: true,
            baremetal_url: String::new(),
            baremetal_deploy_timeout_secs: 3600,
        }
    }
}

/// The compute agent's hypervisor driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ComputeDriver {
    /// libvirt when a daemon answers at `libvirt_uri`, else fake.
    Auto,
    Libvirt,
    Fake,
    /// The bare-metal service's nodes are the hosts (Nova's ironic driver).
    Ironic,
}

/// The libvirt domain type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VirtType {
    /// kvm where the CPU can, else qemu.
    Auto,
    Kvm,
    Qemu,
}

stratus_common::from_str_by_serde!(ComputeDriver, VirtType);

impl ComputeAgentConfig {
    /// Checks what types alone cannot; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_ip("compute_agent.my_ip", &self.my_ip)?;
        check_url("compute_agent.image_url", &self.image_url)?;
        check_url("compute_agent.baremetal_url", &self.baremetal_url)
    }
}
