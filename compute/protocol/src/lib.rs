//! What the compute service and its agents say to each other over the bus.
//!
//! - Commands go to the work queue an agent process listens on (`queue` in its host
//!   reports; `compute.agent.<name>`): at least once, so every operation is idempotent,
//!   keyed by server id (spawning a guest that exists, or destroying one that does not,
//!   succeeds) and answered with the command's action id.
//! - Results go to the durable queue [`RESULTS_QUEUE`], which the compute service
//!   consumes; a result for an action the service no longer waits for is dropped.
//! - Host reports (capacity and the guests each host runs) are published on
//!   [`REPORT_SUBJECT`] every few seconds; they are the heartbeat, and what the
//!   service's reconciler compares with the database.

use serde::{Deserialize, Serialize};

pub const RESULTS_QUEUE: &str = "compute.results";
pub const REPORT_SUBJECT: &str = "compute.hosts.report";
/// Where an agent whose hosts come and go (bare-metal nodes) says which it runs now
/// ([`AgentHosts`]), after each listing: compute forgets that agent's other hosts
/// when nothing is placed on them.
pub const AGENT_HOSTS_SUBJECT: &str = "compute.hosts.agent";

/// The work queue of an agent process.
pub fn agent_queue(agent: &str) -> String {
    format!("compute.agent.{agent}")
}

/// Nova's power states.
pub mod power {
    pub const NOSTATE: i64 = 0;
    pub const RUNNING: i64 = 1;
    pub const PAUSED: i64 = 3;
    pub const SHUTDOWN: i64 = 4;
    pub const CRASHED: i64 = 6;
}

/// What a guest is made of (flavor, image, NICs, and what its metadata shows).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct GuestSpec {
    pub name: String,
    pub vcpus: i64,
    pub ram_mb: i64,
    pub disk_gb: i64,
    pub image_id: String,
    /// The kernel and ramdisk for direct boot, as the service checked them against the
    /// server's project; the agent never takes them from the image's own properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramdisk_id: Option<String>,
    #[serde(default)]
    pub ports: Vec<PortSpec>,
    #[serde(default)]
    pub user_data: Option<String>,
    #[serde(default)]
    pub key_data: Option<String>,
    /// Files of the config drive (path → base64 content), for drivers that attach one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_drive: Option<std::collections::BTreeMap<String, String>>,
    /// Block-storage volumes attached to the guest (for `AttachVolume` and
    /// `DetachVolume`, the one to plug or unplug). One marked `boot` is the guest's
    /// root disk (boot from volume): no disk is made from `image_id` then.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeSpec>,
    /// The kernel command line for direct boot, when the service knows it (a guest
    /// booted from a volume); else the image's `os_command_line`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_line: Option<String>,
}

impl GuestSpec {
    /// The volume the guest boots from, if any.
    pub fn boot_volume(&self) -> Option<&VolumeSpec> {
        self.volumes.iter().find(|v| v.boot)
    }
}

/// A volume as the host reaches it: the volume service's `connection_info`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct VolumeSpec {
    pub volume_id: String,
    /// The guest's device name (`vdb`).
    pub device: String,
    /// `file` (a local image file, `data.device_path` in `data.format`), `nbd` (an
    /// export of the storage host: `data.host`, `data.port`, `data.name`, read as
    /// `data.format`) or `fake`.
    pub driver_volume_type: String,
    #[serde(default)]
    pub data: serde_json::Value,
    /// The guest's root disk (boot index 0).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub boot: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PortSpec {
    pub id: String,
    pub mac_address: String,
    pub network_id: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Spawn,
    Destroy,
    Stop,
    Start,
    SoftReboot,
    HardReboot,
    /// Freeze the guest's vCPUs in memory (Nova's pause), and thaw them.
    Pause,
    Unpause,
    /// Plug a NIC for the port in the spec's `ports` (one) into the running guest.
    AttachInterface,
    /// Unplug the NIC of the port in the spec's `ports` (one).
    DetachInterface,
    /// Plug the volume in the spec's `volumes` (one) into the guest, live and in its
    /// persistent definition.
    AttachVolume,
    /// Unplug the volume in the spec's `volumes` (one).
    DetachVolume,
    /// Re-create the guest's disk from the spec's image, keeping its identity.
    Rebuild,
    /// Give the guest the spec's vCPUs, RAM and disk (a resize, or its revert).
    Resize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Command {
    pub action_id: String,
    pub server_id: String,
    pub host: String,
    pub op: Op,
    #[serde(default)]
    pub spec: Option<GuestSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommandResult {
    pub action_id: String,
    pub server_id: String,
    pub host: String,
    pub op: Op,
    /// `None` on success; why otherwise.
    pub error: Option<String>,
    /// The guest's power state after the command.
    pub power_state: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GuestState {
    pub server_id: String,
    pub power_state: i64,
}

/// A host's capacity and guests, sent periodically.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostReport {
    pub host: String,
    /// The queue that reaches the agent running this host.
    pub queue: String,
    pub availability_zone: String,
    pub hypervisor_type: String,
    pub driver: String,
    pub vcpus: i64,
    pub ram_mb: i64,
    pub disk_gb: i64,
    #[serde(default)]
    pub traits: Vec<String>,
    /// A host a server takes whole (a bare-metal node) names its custom resource
    /// class (`CUSTOM_BAREMETAL`); only flavors asking for that class
    /// (`resources:CUSTOM_BAREMETAL=1`) land there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_class: Option<String>,
    /// The address other hosts reach this one at (`[compute_agent] my_ip`): the volume
    /// service limits a volume's network export to it. `None` for hosts that are no
    /// machine of their own (fake hosts, bare-metal nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    pub guests: Vec<GuestState>,
    /// When the agent listed the guests (its clock, as the database writes times): a
    /// server saved since is newer than this report.
    #[serde(default)]
    pub taken_at: Option<String>,
}

/// Every host an agent runs now.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AgentHosts {
    /// The agent's queue (as in its hosts' reports).
    pub queue: String,
    pub hosts: Vec<String>,
}

/// Where an agent answers console log requests (`{"host", "server_id"}` →
/// `{"output"}` or `{"error"}`).
pub fn console_subject(queue: &str) -> String {
    format!("{queue}.console")
}
