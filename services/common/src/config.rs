//! Configuration: one TOML file, every key overridable by environment variable.
//!
//! Keys are grouped in sections (`[database] url = ...`). An environment variable
//! `STRATUS_<SECTION>__<KEY>` (double underscore between section and key) overrides the
//! file; a value is read as its key's type wants it (a password of digits stays a
//! string, a port must be an integer, lists and tables in TOML's inline syntax), and a
//! variable naming no key, or a value of the wrong type, is an error naming the variable. With no file and no variables every key has a default, so
//! `stratusd all-in-one` needs no configuration at all.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Prefix of every environment variable that overrides a configuration key.
pub const ENV_PREFIX: &str = "STRATUS_";

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub bus: BusConfig,
    pub identity: IdentityConfig,
    pub image: ImageConfig,
    pub network: NetworkConfig,
    pub network_agent: NetworkAgentConfig,
    pub compute: ComputeConfig,
    pub compute_agent: ComputeAgentConfig,
    pub volume: VolumeConfig,
    pub reservation: ReservationConfig,
    pub baremetal: BaremetalConfig,
    pub service_auth: ServiceAuthConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImageConfig {
    pub port: u16,
    /// Largest image accepted, in bytes.
    pub max_image_bytes: u64,
    /// How often the image reconciler runs, in seconds.
    pub reconcile_secs: u64,
}

impl Default for ImageConfig {
    fn default() -> Self {
        Self { port: 9292, max_image_bytes: 1 << 40, reconcile_secs: 30 }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct VolumeConfig {
    pub port: u16,
    /// Where volume bytes live: `file` (qcow2 files under `<data_dir>/volumes`) or
    /// `fake` (in memory; tests at scale).
    pub driver: VolumeDriverKind,
    /// How often unfinished volume sagas are driven again, in seconds.
    pub reconcile_secs: u64,
    /// The image API volumes are made from; empty = this deployment's own.
    pub image_url: String,
    /// This storage host's name, as compute hosts name themselves: a compute host of
    /// this name reaches `file` volumes as files, any other over the network (NBD).
    /// Empty = `[compute_agent] host`, else the machine's host name.
    pub host: String,
    /// The address this storage host exports volumes at over NBD (compute hosts
    /// connect to it); empty = `[server] public_host`.
    pub nbd_address: String,
    /// The TCP ports NBD exports take, one per exported volume: `nbd_ports` ports
    /// from `nbd_first_port`.
    pub nbd_first_port: u16,
    pub nbd_ports: u16,
}

impl Default for VolumeConfig {
    fn default() -> Self {
        Self {
            port: 8776,
            driver: VolumeDriverKind::File,
            reconcile_secs: 30,
            image_url: String::new(),
            host: String::new(),
            nbd_address: String::new(),
            nbd_first_port: 10809,
            nbd_ports: 200,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReservationConfig {
    pub port: u16,
    /// The compute API (ending in `/v2.1`) whose hosts are leased; empty = this
    /// deployment's own.
    pub compute_url: String,
    /// The network API whose floating IPs are leased; empty = this deployment's own.
    pub network_url: String,
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
            before_end_minutes: 60,
            event_attempts: 8,
            health_secs: 30,
            hosts_visible_to_projects: false,
            hardware_catalog: false,
        }
    }
}

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

/// A volume backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VolumeDriverKind {
    /// qcow2 files under the data directory, made with `qemu-img`.
    File,
    /// In memory (tests at scale).
    Fake,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    pub port: u16,
    /// What binding a port does: `agent` (the network agent wires it and reports it
    /// ACTIVE) or `fake` (ACTIVE at once, no data plane; for tests at scale).
    pub driver: NetworkDriver,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self { port: 9696, driver: NetworkDriver::Agent }
    }
}

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

/// The network agent: the data plane of one host.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkAgentConfig {
    /// In all-in-one: `"auto"` (run it when this process may change the host's network,
    /// that is, as root with iproute2 and nftables present), `true` or `false`.
    pub enabled: Switch,
    /// The host name ports are bound to; empty = the kernel's host name.
    pub host: String,
    /// Flat (external) networks onto existing bridges, `physnet:bridge,...`. A flat
    /// network without a mapping gets a bridge of the agent's own.
    pub bridge_mappings: String,
    /// Flat networks onto host interfaces, `physnet:eth1,...`: the agent puts the
    /// interface on the network's bridge.
    pub interface_mappings: String,
    /// Where DHCP configuration lives; empty = `<data_dir>/network-agent`.
    pub state_dir: String,
    /// Full resynchronisation period, in seconds (events trigger one sooner).
    pub resync_secs: u64,
    /// Heartbeat and port status report period, in seconds.
    pub report_secs: u64,
    /// The network API; empty = this configuration's network service address.
    pub network_url: String,
    /// Whether this host runs the routers (namespaces with NAT): a network node.
    pub routers: bool,
    /// This host's address for VXLAN tunnels to other hosts; empty = a single host
    /// (networks stay on this host's bridges).
    pub tunnel_ip: String,
    /// The compute metadata API the metadata proxy forwards to; empty = the compute
    /// service's metadata port on this deployment's public host (8775).
    pub metadata_url: String,
    /// Shared secret signing instance ids for the metadata API (Nova's
    /// `metadata_proxy_shared_secret`).
    pub metadata_secret: String,
}

impl Default for NetworkAgentConfig {
    fn default() -> Self {
        Self {
            enabled: Switch::Auto,
            host: String::new(),
            bridge_mappings: String::new(),
            interface_mappings: String::new(),
            state_dir: String::new(),
            resync_secs: 10,
            report_secs: 15,
            network_url: String::new(),
            routers: true,
            tunnel_ip: String::new(),
            metadata_url: String::new(),
            metadata_secret: String::new(),
        }
    }
}

/// How the scheduler orders hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Weigher {
    /// Emptiest first.
    Spread,
    /// Fullest first.
    Pack,
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

/// What binding a port does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkDriver {
    /// The network agent wires the port and reports it ACTIVE.
    Agent,
    /// ACTIVE at once, no data plane (tests at scale).
    Fake,
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

macro_rules! from_str_by_serde {
    ($($t:ty),*) => {$(
        impl std::str::FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|e| e.to_string())
            }
        }
    )*};
}
from_str_by_serde!(Weigher, ComputeDriver, VirtType, NetworkDriver, VolumeDriverKind);

/// `true`, `false` or `"auto"` (decided at start from what the host offers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    On,
    Off,
    Auto,
}

impl Serialize for Switch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Switch::On => s.serialize_bool(true),
            Switch::Off => s.serialize_bool(false),
            Switch::Auto => s.serialize_str("auto"),
        }
    }
}

impl<'de> Deserialize<'de> for Switch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(true) => Ok(Switch::On),
            Raw::Bool(false) => Ok(Switch::Off),
            Raw::Text(t) => match t.as_str() {
                "auto" => Ok(Switch::Auto),
                "true" | "on" => Ok(Switch::On),
                "false" | "off" => Ok(Switch::Off),
                other => Err(serde::de::Error::custom(format!("expected true, false or \"auto\", not '{other}'"))),
            },
        }
    }
}

/// The service user a service runs as when it is not in identity's process (to read
/// quotas). Bootstrap creates none; an operator creates one with the `admin` or
/// `reader` role on a service project.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceAuthConfig {
    pub username: String,
    pub password: String,
    pub project: String,
    pub domain: String,
}

impl Default for ServiceAuthConfig {
    fn default() -> Self {
        Self { username: "admin".into(), password: String::new(), project: "admin".into(), domain: "Default".into() }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Where the SQLite database, clouds.yaml and openrc are kept.
    pub data_dir: PathBuf,
    /// Address the HTTP servers listen on.
    pub bind_host: String,
    /// Host name or address that goes into the service catalog and version links.
    pub public_host: String,
    /// Largest request body accepted, in bytes (413 above it).
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://...` or `postgres://...`; empty means a SQLite file in the data directory.
    pub url: String,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusConfig {
    /// `memory` (in-process, the default) or `nats://host:port`.
    pub url: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    pub port: u16,
    /// Lifetime of a token, in seconds.
    pub token_ttl_secs: i64,
    /// Password of the bootstrapped `admin` user; generated and printed once when empty.
    pub bootstrap_password: String,
    /// Failed password attempts before an account is locked; 0 disables lockout.
    pub lockout_failure_attempts: i64,
    /// How long a locked account stays locked, in seconds.
    pub lockout_duration_secs: i64,
    /// How often verifiers re-read signing keys and revocations, in seconds.
    pub refresh_secs: u64,
    /// Region the catalog is written for.
    pub region: String,
    /// Identity URL that services outside the identity process use to fetch keys and
    /// limits; empty means `http://public_host:port`.
    pub url: String,
    /// Argon2id memory cost in KiB (19 MiB by default, OWASP's recommendation).
    pub argon2_memory_kib: u32,
    /// Argon2id iterations.
    pub argon2_iterations: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter such as `info` or `stratus_identity=debug,info`.
    pub level: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let data_dir = std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".local/share/stratus"))
            .unwrap_or_else(|| PathBuf::from("./stratus-data"));
        Self { data_dir, bind_host: "127.0.0.1".into(), public_host: "127.0.0.1".into(), max_body_bytes: 1024 * 1024 }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: String::new(), max_connections: 8 }
    }
}

impl Default for BusConfig {
    fn default() -> Self {
        Self { url: "memory".into() }
    }
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            port: 5000,
            token_ttl_secs: 3600,
            bootstrap_password: String::new(),
            lockout_failure_attempts: 5,
            lockout_duration_secs: 1800,
            refresh_secs: 10,
            region: "RegionOne".into(),
            url: String::new(),
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".into() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads the file (if given) and applies `STRATUS_*` environment overrides.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let text = match file {
            Some(path) => {
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?
            }
            None => String::new(),
        };
        Self::from_parts(&text, std::env::vars())
    }

    /// Builds a configuration from TOML text and a set of environment variables.
    pub fn from_parts(toml_text: &str, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let mut root: toml::Table = toml::from_str(toml_text).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        // The defaults tell each key's type, so a variable is read as its field wants it
        // (a password of digits stays a string; a port must be a number).
        let defaults = serde_json::to_value(Config::default()).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        for (name, value) in env {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else { continue };
            let Some((section, key)) = rest.split_once("__") else { continue };
            let section = section.to_ascii_lowercase();
            let key = key.to_ascii_lowercase();
            let Some(default) = defaults.get(&section).and_then(|s| s.get(&key)) else {
                return Err(ConfigError::Invalid(format!("{name}: there is no setting [{section}] {key}")));
            };
            let parsed = typed_value(default, &value)
                .map_err(|want| ConfigError::Invalid(format!("{name}: expected {want}, not {value:?}")))?;
            let table = root.entry(section.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(table) = table else {
                return Err(ConfigError::Invalid(format!("{section} is not a section")));
            };
            table.insert(key, parsed);
        }
        // The error names the key (`compute.weigher: unknown variant ...`).
        let config: Config = serde_path_to_error::deserialize(toml::Value::Table(root)).map_err(|e| {
            let key = e.path().to_string();
            let message = e.into_inner().message().to_string();
            ConfigError::Invalid(if key == "." { message } else { format!("{key}: {message}") })
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot: URLs of the right scheme.
    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError::Invalid(format!("{key}: {why}")));
        let db = &self.database.url;
        if !(db.is_empty()
            || db.starts_with("sqlite:")
            || db.starts_with("postgres://")
            || db.starts_with("postgresql://"))
        {
            return bad(
                "database.url",
                "use sqlite://PATH or postgres://USER@HOST/DB (empty: SQLite in the data directory)",
            );
        }
        if !self.baremetal.provisioning_interface.is_empty() && self.baremetal.dhcp_range.is_empty() {
            return bad("baremetal.dhcp_range", "needed with baremetal.provisioning_interface (FIRST,LAST)");
        }
        for (key, ip) in
            [("volume.nbd_address", &self.volume.nbd_address), ("compute_agent.my_ip", &self.compute_agent.my_ip)]
        {
            if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
                return bad(key, "an IP address (or empty for [server] public_host)");
            }
        }
        if self.volume.nbd_ports == 0
            || u32::from(self.volume.nbd_first_port) + u32::from(self.volume.nbd_ports) > 65536
        {
            return bad("volume.nbd_ports", "at least one port, and nbd_first_port + nbd_ports at most 65536");
        }
        let bus = &self.bus.url;
        if !(bus == "memory" || bus.starts_with("nats://") || bus.starts_with("tls://")) {
            return bad("bus.url", "use memory or nats://HOST:PORT");
        }
        for (key, url) in [
            ("identity.url", &self.identity.url),
            ("compute.network_url", &self.compute.network_url),
            ("compute.image_url", &self.compute.image_url),
            ("compute.volume_url", &self.compute.volume_url),
            ("volume.image_url", &self.volume.image_url),
            ("reservation.compute_url", &self.reservation.compute_url),
            ("reservation.network_url", &self.reservation.network_url),
            ("baremetal.agent_url", &self.baremetal.agent_url),
            ("baremetal.image_url", &self.baremetal.image_url),
            ("compute_agent.image_url", &self.compute_agent.image_url),
            ("compute_agent.baremetal_url", &self.compute_agent.baremetal_url),
            ("network_agent.network_url", &self.network_agent.network_url),
            ("network_agent.metadata_url", &self.network_agent.metadata_url),
        ] {
            let ok = url.is_empty()
                || url
                    .strip_prefix("http://")
                    .or_else(|| url.strip_prefix("https://"))
                    .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
            if !ok {
                return bad(key, "an http:// or https:// URL with a host (or empty for this deployment's own)");
            }
        }
        Ok(())
    }

    /// The secret signing instance ids between the metadata proxy and the metadata API:
    /// `[compute] metadata_secret`, else `[network_agent] metadata_secret`, else one
    /// generated once into `<data_dir>/metadata-secret` (readable by the owner only), so
    /// the processes of one host agree without configuration.
    pub fn metadata_secret(&self) -> std::io::Result<String> {
        for s in [&self.compute.metadata_secret, &self.network_agent.metadata_secret] {
            if !s.is_empty() {
                return Ok(s.clone());
            }
        }
        let path = self.server.data_dir.join("metadata-secret");
        if let Ok(s) = std::fs::read_to_string(&path) {
            if !s.trim().is_empty() {
                return Ok(s.trim().to_string());
            }
        }
        std::fs::create_dir_all(&self.server.data_dir)?;
        let mut bytes = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .map_err(|_| std::io::Error::other("no system randomness"))?;
        let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        // A temporary file of this process alone: agents of one host may start together.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
            f.write_all(secret.as_bytes())?;
        }
        // Another process may have won the race: keep whichever landed first.
        match std::fs::hard_link(&tmp, &path) {
            Ok(()) => {
                let _ = std::fs::remove_file(&tmp);
                Ok(secret)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let _ = std::fs::remove_file(&tmp);
                Ok(std::fs::read_to_string(&path)?.trim().to_string())
            }
            Err(e) => Err(e),
        }
    }

    /// The database URL, defaulting to a SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!("sqlite://{}?mode=rwc", self.server.data_dir.join("stratus.sqlite").display())
        } else {
            self.database.url.clone()
        }
    }

    /// Base URL of the identity API as other services reach it.
    pub fn identity_url(&self) -> String {
        if self.identity.url.is_empty() {
            format!("http://{}:{}", self.server.public_host, self.identity.port)
        } else {
            self.identity.url.trim_end_matches('/').to_string()
        }
    }
}

/// An environment variable's text as the type of the key's default wants it; the error
/// names what was expected.
fn typed_value(default: &serde_json::Value, value: &str) -> Result<toml::Value, &'static str> {
    use serde_json::Value as J;
    match default {
        J::String(_) => Ok(toml::Value::String(value.to_string())),
        J::Bool(_) => match value.trim() {
            "true" | "on" | "1" => Ok(toml::Value::Boolean(true)),
            "false" | "off" | "0" => Ok(toml::Value::Boolean(false)),
            // Switches also take "auto".
            other => Ok(toml::Value::String(other.to_string())),
        },
        J::Number(n) if n.is_f64() => value.trim().parse::<f64>().map(toml::Value::Float).map_err(|_| "a number"),
        J::Number(_) => value.trim().parse::<i64>().map(toml::Value::Integer).map_err(|_| "an integer"),
        // Lists and tables: TOML's inline syntax (`["a", "b"]`, `{ k = "v" }`).
        _ => toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .ok_or("a TOML list or table"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_file() {
        let c = Config::from_parts("", Vec::new()).unwrap();
        assert_eq!(c.identity.port, 5000);
        assert_eq!(c.bus.url, "memory");
        assert!(c.database_url().starts_with("sqlite://"));
    }

    #[test]
    fn environment_overrides_file() {
        let c = Config::from_parts(
            "[identity]\nport = 6000\ntoken_ttl_secs = 60\n",
            vec![
                ("STRATUS_IDENTITY__PORT".into(), "7000".into()),
                ("STRATUS_DATABASE__URL".into(), "postgres://x/y".into()),
                ("OTHER".into(), "1".into()),
            ],
        )
        .unwrap();
        assert_eq!(c.identity.port, 7000);
        assert_eq!(c.identity.token_ttl_secs, 60);
        assert_eq!(c.database_url(), "postgres://x/y");
    }

    #[test]
    fn metadata_secret_is_configured_or_generated_once() {
        let dir = std::env::temp_dir().join(format!("stratus-secret-{}", uuid::Uuid::new_v4()));
        let mut c = Config::from_parts("", Vec::<(String, String)>::new()).unwrap();
        c.server.data_dir = dir.clone();
        let generated = c.metadata_secret().unwrap();
        assert_eq!(generated.len(), 64);
        assert_eq!(c.metadata_secret().unwrap(), generated, "a second process reads the same one");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("metadata-secret")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "readable by the owner only");
        c.network_agent.metadata_secret = "agent".into();
        assert_eq!(c.metadata_secret().unwrap(), "agent");
        c.compute.metadata_secret = "compute".into();
        assert_eq!(c.metadata_secret().unwrap(), "compute");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn variables_are_read_as_their_field_wants() {
        let env = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        let c = Config::from_parts("", env("STRATUS_SERVICE_AUTH__PASSWORD", "123456")).unwrap();
        assert_eq!(c.service_auth.password, "123456", "digits stay a string");
        let c = Config::from_parts("", env("STRATUS_IDENTITY__REGION", "true")).unwrap();
        assert_eq!(c.identity.region, "true");
        let err = Config::from_parts("", env("STRATUS_IDENTITY__PORT", "http")).unwrap_err().to_string();
        assert!(err.contains("STRATUS_IDENTITY__PORT") && err.contains("integer"), "{err}");
        let err = Config::from_parts("", env("STRATUS_IDENTITY__PROT", "1")).unwrap_err().to_string();
        assert!(err.contains("STRATUS_IDENTITY__PROT"), "{err}");
        let err = Config::from_parts("", env("STRATUS_NOPE__PORT", "1")).unwrap_err().to_string();
        assert!(err.contains("STRATUS_NOPE__PORT"), "{err}");
    }

    #[test]
    fn values_are_typed_and_checked_at_start_with_the_key_named() {
        let c = Config::from_parts(
            "[compute]\nweigher = \"pack\"\n[compute_agent]\nvirt_type = \"qemu\"\n",
            vec![("STRATUS_COMPUTE_AGENT__DRIVER".to_string(), "fake".to_string())],
        )
        .unwrap();
        assert_eq!((c.compute.weigher, c.compute_agent.virt_type), (Weigher::Pack, VirtType::Qemu));
        assert_eq!(c.compute_agent.driver, ComputeDriver::Fake);
        for (text, key) in [
            ("[compute]\nweigher = \"heaviest\"\n", "compute.weigher"),
            ("[compute_agent]\nvirt_type = \"xen\"\n", "compute_agent.virt_type"),
            ("[network]\ndriver = \"ovs\"\n", "network.driver"),
            ("[database]\nurl = \"mysql://x\"\n", "database.url"),
            ("[bus]\nurl = \"amqp://x\"\n", "bus.url"),
            ("[compute]\nnetwork_url = \"localhost:9696\"\n", "compute.network_url"),
            ("[identity]\nport = \"x\"\n", "identity.port"),
        ] {
            let err = Config::from_parts(text, Vec::new()).unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
        assert_eq!("libvirt".parse::<ComputeDriver>().unwrap(), ComputeDriver::Libvirt);
        assert!("kvmm".parse::<VirtType>().is_err());
    }

    #[test]
    fn the_example_configuration_loads() {
        let c = Config::from_parts(include_str!("../../../deploy/stratus.toml.example"), Vec::new()).unwrap();
        assert_eq!(c.identity.lockout_failure_attempts, 5);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = Config::from_parts("[identity]\nprot = 1\n", Vec::new()).unwrap_err();
        assert!(err.to_string().contains("prot"), "{err}");
    }
}
