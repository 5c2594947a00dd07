//! The network agent's configuration section, `[network_agent]`.

use serde::{Deserialize, Serialize};
use stratus_common::config::{check_url, ConfigError, Switch};

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

impl NetworkAgentConfig {
    /// Checks what types alone cannot; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_url("network_agent.network_url", &self.network_url)?;
        check_url("network_agent.metadata_url", &self.metadata_url)
    }
}
