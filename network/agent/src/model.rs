//! The desired state of a host as the network service describes it
//! (`GET /v2.0/os-stratus/hosts/{host}/desired-state`).

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct DesiredState {
    #[serde(default)]
    pub networks: Vec<Network>,
    #[serde(default)]
    pub ports: Vec<Port>,
    #[serde(default)]
    pub security_groups: Vec<SecurityGroup>,
    /// Addresses of the ports in each group some rule refers to as its remote group.
    #[serde(default)]
    pub security_group_members: BTreeMap<String, Vec<String>>,
    /// Networks where this host still has a DHCP port but no longer serves DHCP.
    #[serde(default)]
    pub stale_dhcp_networks: Vec<String>,
    /// Every router, when the agent asked for them (it runs routers).
    #[serde(default)]
    pub routers: Vec<Router>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Router {
    pub id: String,
    #[serde(default)]
    pub admin_state_up: Option<bool>,
    #[serde(default)]
    pub gateway: Option<Gateway>,
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub routes: Vec<HostRoute>,
    #[serde(default)]
    pub floating_ips: Vec<FloatingIp>,
}

/// One address of a router interface port.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Interface {
    pub port_id: String,
    pub network_id: String,
    pub mac_address: String,
    pub subnet_id: String,
    pub ip_address: String,
    #[serde(default)]
    pub cidr: Option<String>,
    /// The port's status as the service has it.
    #[serde(default)]
    pub status: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Gateway {
    pub network_id: String,
    #[serde(default)]
    pub enable_snat: Option<bool>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub external_fixed_ips: Vec<FixedIp>,
    #[serde(default)]
    pub port_id: Option<String>,
    #[serde(default)]
    pub mac_address: Option<String>,
    /// The gateway port's status as the service has it.
    #[serde(default)]
    pub status: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct FloatingIp {
    pub floating_ip_address: String,
    #[serde(default)]
    pub fixed_ip_address: Option<String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Network {
    pub id: String,
    #[serde(rename = "provider:network_type", default)]
    pub network_type: Option<String>,
    #[serde(rename = "provider:segmentation_id", default)]
    pub segmentation_id: Option<i64>,
    #[serde(rename = "provider:physical_network", default)]
    pub physical_network: Option<String>,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub subnets: Vec<Subnet>,
    /// This host's DHCP port on the network, once the service made it.
    #[serde(default)]
    pub dhcp_port: Option<AddressedPort>,
    /// Every port of the network that gets its address by DHCP.
    #[serde(default)]
    pub dhcp_hosts: Vec<AddressedPort>,
    /// For VXLAN networks: the other hosts on the network and the MACs behind them.
    #[serde(default)]
    pub peers: Vec<Peer>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Peer {
    pub host: String,
    pub tunnel_ip: String,
    #[serde(default)]
    pub macs: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Subnet {
    pub id: String,
    pub cidr: String,
    #[serde(default)]
    pub ip_version: u8,
    #[serde(default)]
    pub gateway_ip: Option<String>,
    #[serde(default)]
    pub enable_dhcp: bool,
    #[serde(default)]
    pub dns_nameservers: Vec<String>,
    #[serde(default)]
    pub host_routes: Vec<HostRoute>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct HostRoute {
    pub destination: String,
    pub nexthop: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct FixedIp {
    pub subnet_id: String,
    pub ip_address: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct AddressedPort {
    pub id: String,
    pub mac_address: String,
    #[serde(default)]
    pub fixed_ips: Vec<FixedIp>,
    #[serde(default)]
    pub device_id: String,
    #[serde(default)]
    pub device_owner: String,
    #[serde(default)]
    pub project_id: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Port {
    pub id: String,
    pub network_id: String,
    pub mac_address: String,
    #[serde(default)]
    pub fixed_ips: Vec<FixedIp>,
    #[serde(default)]
    pub admin_state_up: Option<bool>,
    #[serde(default)]
    pub port_security_enabled: Option<bool>,
    #[serde(default)]
    pub security_groups: Vec<String>,
    #[serde(default)]
    pub allowed_address_pairs: Vec<AddressPair>,
    #[serde(default)]
    pub device_owner: String,
    #[serde(default)]
    pub status: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct AddressPair {
    pub ip_address: String,
    #[serde(default)]
    pub mac_address: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct SecurityGroup {
    pub id: String,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Rule {
    pub id: String,
    pub direction: String,
    #[serde(default)]
    pub ethertype: String,
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub port_range_min: Option<i64>,
    #[serde(default)]
    pub port_range_max: Option<i64>,
    #[serde(default)]
    pub remote_ip_prefix: Option<String>,
    #[serde(default)]
    pub remote_group_id: Option<String>,
}

impl Port {
    /// The kernel name of the port's device: compute names its tap this way, tests name
    /// the host end of a veth this way (Neutron's convention: `tap` + 11 characters).
    pub fn device(&self) -> String {
        format!("tap{}", self.id.chars().take(11).collect::<String>())
    }

    pub fn filtered(&self) -> bool {
        self.port_security_enabled.unwrap_or(true)
    }
}

/// A kernel link name: a prefix and as much of an id as fits in 15 bytes.
pub fn device_name(prefix: &str, id: &str) -> String {
    let room = 15usize.saturating_sub(prefix.len());
    format!("{prefix}{}", id.chars().take(room).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_fit_the_kernel_limit() {
        assert_eq!(device_name("tap", "0123456789abcdef-xyz"), "tap0123456789ab");
        assert_eq!(device_name("stb-", "0123456789abcdef"), "stb-0123456789a");
        assert!(device_name("stb-", "0123456789abcdef").len() <= 15);
        let p = Port { id: "3b1a5ced-6b5c-42e1-96ab-b774789dde70".into(), ..Default::default() };
        assert_eq!(p.device(), "tap3b1a5ced-6b");
    }
}
