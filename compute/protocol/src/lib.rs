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

stratus_ids::id_type! {
    /// A server's id (Nova's instance uuid).
    ServerId;
    /// A compute host's name (a hypervisor, or a bare-metal node).
    HostName;
    /// A network port's id.
    PortId;
    /// A network's id.
    NetworkId;
}

/// The work queue of an agent process.
pub fn agent_queue(agent: &str) -> String {
    format!("compute.agent.{agent}")
}

/// A guest's power state, as Nova numbers it (`OS-EXT-STS:power_state`). On the wire and
/// in the database it is Nova's integer; a number not listed here is an error when read,
/// never a guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum PowerState {
    #[default]
    NoState,
    Running,
    Paused,
    Shutdown,
    Crashed,
    Suspended,
}

impl PowerState {
    pub const ALL: [PowerState; 6] = [
        PowerState::NoState,
        PowerState::Running,
        PowerState::Paused,
        PowerState::Shutdown,
        PowerState::Crashed,
        PowerState::Suspended,
    ];

    /// Nova's number for it.
    pub fn code(self) -> i64 {
        match self {
            PowerState::NoState => 0,
            PowerState::Running => 1,
            PowerState::Paused => 3,
            PowerState::Shutdown => 4,
            PowerState::Crashed => 6,
            PowerState::Suspended => 7,
        }
    }

    pub fn from_code(code: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.code() == code)
    }
}

impl std::fmt::Display for PowerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            PowerState::NoState => "NOSTATE",
            PowerState::Running => "RUNNING",
            PowerState::Paused => "PAUSED",
            PowerState::Shutdown => "SHUTDOWN",
            PowerState::Crashed => "CRASHED",
            PowerState::Suspended => "SUSPENDED",
        };
        f.write_str(name)
    }
}

impl Serialize for PowerState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.code())
    }
}

impl<'de> Deserialize<'de> for PowerState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = i64::deserialize(d)?;
        PowerState::from_code(code).ok_or_else(|| serde::de::Error::custom(format!("unknown power state {code}")))
    }
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
    /// For `Snapshot`: the image the guest's disk is uploaded into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_image: Option<String>,
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
    /// The size the volume is to have (`ExtendVolume`), in GiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_gb: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PortSpec {
    pub id: PortId,
    pub mac_address: String,
    pub network_id: NetworkId,
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
    /// Grow the volume in the spec's `volumes` (one) to its `size_gb` while it is
    /// attached: the hypervisor resizes the image it has open, and a running guest sees
    /// the larger disk at once. Growing to the size it has is done already.
    ExtendVolume,
    /// Re-create the guest's disk from the spec's image, keeping its identity.
    Rebuild,
    /// Give the guest the spec's vCPUs, RAM and disk (a resize, or its revert).
    Resize,
    /// Copy the guest's root disk (whole, without its backing image) into the image
    /// service's image `snapshot_image` of the spec, which the service made `queued`.
    /// Idempotent: an image already `active` is answered done.
    Snapshot,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Command {
    pub action_id: String,
    pub server_id: ServerId,
    pub host: HostName,
    pub op: Op,
    #[serde(default)]
    pub spec: Option<GuestSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommandResult {
    pub action_id: String,
    pub server_id: ServerId,
    pub host: HostName,
    pub op: Op,
    /// `None` on success; why otherwise.
    pub error: Option<String>,
    /// The guest's power state after the command.
    pub power_state: PowerState,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GuestState {
    pub server_id: ServerId,
    pub power_state: PowerState,
}

/// A host's capacity and guests, sent periodically.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostReport {
    pub host: HostName,
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
    /// The machine's uptime and load, as `uptime` prints them (what Nova's
    /// `os-hypervisors/{id}/uptime` shows); `None` for hosts that are no machine of
    /// their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime: Option<String>,
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
    pub hosts: Vec<HostName>,
}

/// Where an agent answers questions about one guest: `{"host", "server_id"}` →
/// `{"output"}` (its console log), or with `"ask": "diagnostics"` → `{"diagnostics"}`
/// ([`Diagnostics`]); `{"error"}` when it cannot.
pub fn console_subject(queue: &str) -> String {
    format!("{queue}.console")
}

/// What a host measures of one guest (Nova's server diagnostics, as of 2.48). Figures
/// the driver cannot read are `None`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Diagnostics {
    /// `running`, `paused`, `shutdown`, `crashed`, `suspended` or `pending`.
    pub state: String,
    /// The driver's name (`libvirt`, `fake`).
    pub driver: String,
    pub hypervisor: Option<String>,
    pub hypervisor_os: Option<String>,
    /// Seconds since the guest started.
    pub uptime: Option<i64>,
    pub config_drive: bool,
    /// KiB.
    pub memory_max_kib: Option<i64>,
    pub memory_used_kib: Option<i64>,
    pub num_cpus: i64,
    /// Nanoseconds of CPU time the guest used, all its virtual CPUs together.
    pub cpu_time_ns: Option<i64>,
    pub nics: Vec<NicStats>,
    pub disks: Vec<DiskStats>,
}

/// One NIC's counters since the guest started.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NicStats {
    pub mac_address: Option<String>,
    pub rx_octets: Option<i64>,
    pub rx_errors: Option<i64>,
    pub rx_drop: Option<i64>,
    pub rx_packets: Option<i64>,
    pub tx_octets: Option<i64>,
    pub tx_errors: Option<i64>,
    pub tx_drop: Option<i64>,
    pub tx_packets: Option<i64>,
}

/// One disk's counters since the guest started.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DiskStats {
    /// The guest's name for it (`vda`).
    pub name: String,
    pub read_bytes: Option<i64>,
    pub read_requests: Option<i64>,
    pub write_bytes: Option<i64>,
    pub write_requests: Option<i64>,
    pub errors_count: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_plain_strings_on_the_wire() {
        let cmd = Command {
            action_id: "a".into(),
            server_id: "s-1".into(),
            host: "host-0".into(),
            op: Op::Destroy,
            spec: None,
        };
        let v = serde_json::to_value(&cmd).unwrap();
        assert_eq!((v["server_id"].as_str(), v["host"].as_str()), (Some("s-1"), Some("host-0")));
        let back: Command = serde_json::from_value(v).unwrap();
        assert_eq!(back.server_id, "s-1");
        assert_eq!(back.host.as_str(), "host-0");
    }

    #[test]
    fn power_states_are_novas_numbers_and_an_unknown_one_is_refused() {
        for p in PowerState::ALL {
            let v = serde_json::to_value(p).unwrap();
            assert_eq!(v, serde_json::json!(p.code()));
            assert_eq!(serde_json::from_value::<PowerState>(v).unwrap(), p);
        }
        assert_eq!(PowerState::Running.code(), 1);
        assert_eq!(PowerState::Shutdown.code(), 4);
        let err = serde_json::from_value::<GuestState>(serde_json::json!({"server_id": "s", "power_state": 2}));
        assert!(err.unwrap_err().to_string().contains("unknown power state 2"));
    }
}
