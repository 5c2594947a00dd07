//! What a guest learns about itself: the OpenStack documents (`meta_data.json`,
//! `network_data.json`, `vendor_data*.json`, `user_data`) and the EC2-style tree, built
//! from the server and its ports, subnets and networks. Pure: the same files serve the
//! metadata API and a config drive.

use crate::store::Server;
use base64::Engine;
use serde_json::{json, Map, Value};

/// OpenStack metadata versions, oldest first; every one is served with the latest
/// content (the later ones only add files).
pub const OPENSTACK_VERSIONS: &[&str] = &[
    "2012-08-10",
    "2013-04-04",
    "2013-10-17",
    "2015-10-15",
    "2016-06-30",
    "2016-10-06",
    "2017-02-22",
    "2018-08-27",
    "2019-04-04",
    "2020-10-14",
    "latest",
];

/// EC2 metadata versions.
pub const EC2_VERSIONS: &[&str] = &[
    "1.0",
    "2007-01-19",
    "2007-03-01",
    "2007-08-29",
    "2007-10-10",
    "2007-12-15",
    "2008-02-01",
    "2008-09-01",
    "2009-04-04",
    "latest",
];

/// Where a server keeps the password its guest posted (never shown with the server).
pub const PASSWORD_KEY: &str = "server_password";

/// The most a guest may post as its password, as Nova.
pub const PASSWORD_MAX: usize = 256;

/// What the documents are made from.
pub struct Facts<'a> {
    pub server: &'a Server,
    /// The server's ports as the network API shows them.
    pub ports: Vec<Value>,
    pub subnets: Vec<Value>,
    pub networks: Vec<Value>,
    /// Floating IPs on the server's ports (EC2 `public-ipv4`).
    pub floating_ips: Vec<String>,
    /// Flavor name, for EC2 `instance-type`.
    pub flavor_name: String,
}

/// Every document of one guest.
#[derive(Debug, Clone)]
pub struct Metadata {
    pub meta_data: Value,
    pub network_data: Value,
    pub user_data: Option<Vec<u8>>,
    /// What the guest posted to `password` (its agent encrypts it with the server's
    /// public key), until the owner clears it.
    pub password: String,
    ec2: Value,
}

/// The part of a UUID EC2-style ids are made of (`i-0a1b2c3d`).
fn short(id: &str) -> String {
    id.chars().filter(|c| c.is_ascii_hexdigit()).take(8).collect()
}

fn random_seed() -> String {
    let mut bytes = [0u8; 512];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Dotted netmask of a prefix length (`24` → `255.255.255.0`); IPv6 keeps the length
/// written as Nova does (`ffff:ffff:...`).
fn netmask(cidr: &str) -> String {
    let (addr, len) = cidr.split_once('/').unwrap_or((cidr, "32"));
    let len: u32 = len.parse().unwrap_or(32);
    if addr.contains(':') {
        let bits: u128 = if len == 0 { 0 } else { u128::MAX << (128 - len.min(128)) };
        return std::net::Ipv6Addr::from(bits).to_string();
    }
    let bits: u32 = if len == 0 { 0 } else { u32::MAX << (32 - len.min(32)) };
    std::net::Ipv4Addr::from(bits).to_string()
}

impl Metadata {
    pub fn build(f: &Facts) -> Self {
        let s = f.server;
        let key_name = s.str("key_name").to_string();
        let key_data = s.str("key_data").to_string();
        let hostname = if s.str("hostname").is_empty() { s.name.clone() } else { s.str("hostname").to_string() };
        let az = s.str("availability_zone");
        let az = if az.is_empty() { "nova" } else { az };
        let (public_keys, keys) = if key_data.is_empty() {
            (json!({}), json!([]))
        } else {
            let kind = if key_data.starts_with("ssh-") || key_data.starts_with("ecdsa-") { "ssh" } else { "x509" };
            (json!({ &key_name: key_data }), json!([{"name": key_name, "type": kind, "data": key_data}]))
        };
        let meta_data = json!({
            "uuid": s.id,
            "meta": s.doc.get("metadata").cloned().unwrap_or(json!({})),
            "public_keys": public_keys,
            "keys": keys,
            "hostname": hostname,
            "name": s.name,
            "launch_index": s.doc.get("launch_index").cloned().unwrap_or(json!(0)),
            "availability_zone": az,
            "random_seed": random_seed(),
            "project_id": s.project_id,
            "devices": [],
            "dedicated_cpus": [],
        });
        let user_data = s
            .doc
            .get("user_data")
            .and_then(Value::as_str)
            .and_then(|u| base64::engine::general_purpose::STANDARD.decode(u.trim()).ok());
        let network_data = Self::network_data(f);
        let fixed_v4: Vec<String> = f
            .ports
            .iter()
            .flat_map(|p| p["fixed_ips"].as_array().cloned().unwrap_or_default())
            .filter_map(|ip| ip["ip_address"].as_str().map(str::to_string))
            .filter(|a| !a.contains(':'))
            .collect();
        let mut ec2_keys = Map::new();
        if !key_data.is_empty() {
            ec2_keys.insert(format!("0={key_name}"), json!({ "openssh-key": key_data }));
        }
        let groups = s.strings("security_groups");
        let ec2 = json!({
            "ami-id": format!("ami-{}", short(s.str("image_id"))),
            "ami-launch-index": s.doc.get("launch_index").map(|v| v.to_string()).unwrap_or_else(|| "0".into()),
            "ami-manifest-path": "FIXME",
            "block-device-mapping": {"ami": "vda", "root": "/dev/vda"},
            "hostname": hostname,
            "instance-action": "none",
            "instance-id": format!("i-{}", short(&s.id)),
            "instance-type": f.flavor_name,
            "local-hostname": hostname,
            "local-ipv4": fixed_v4.first().cloned().unwrap_or_default(),
            "placement": {"availability-zone": az},
            "public-hostname": hostname,
            "public-ipv4": f.floating_ips.first().cloned().unwrap_or_default(),
            "public-keys": ec2_keys,
            "reservation-id": s.str("reservation_id"),
            "security-groups": groups.join("\n"),
        });
        let password = s.str(PASSWORD_KEY).to_string();
        Self { meta_data, network_data, user_data, password, ec2 }
    }

    /// `network_data.json` as Nova writes it: a link per port, a network per subnet
    /// the port has an address on (`ipv4_dhcp` where the subnet runs DHCP, static
    /// address, netmask and routes otherwise), and the DNS servers.
    fn network_data(f: &Facts) -> Value {
        let mut links = Vec::new();
        let mut networks = Vec::new();
        let mut services: Vec<Value> = Vec::new();
        for port in &f.ports {
            let port_id = port["id"].as_str().unwrap_or_default();
            let link = format!("tap{}", &port_id.chars().take(11).collect::<String>());
            let net_id = port["network_id"].as_str().unwrap_or_default();
            let mtu = f.networks.iter().find(|n| n["id"] == net_id).and_then(|n| n["mtu"].as_i64());
            let vif = port["binding:vif_type"].as_str().filter(|t| !t.is_empty() && *t != "unbound");
            links.push(json!({
                "id": link, "vif_id": port_id, "type": vif.unwrap_or("bridge"), "mtu": mtu,
                "ethernet_mac_address": port["mac_address"],
            }));
            for ip in port["fixed_ips"].as_array().into_iter().flatten() {
                let Some(subnet) = f.subnets.iter().find(|s| s["id"] == ip["subnet_id"]) else { continue };
                let version = subnet["ip_version"].as_i64().unwrap_or(4);
                let id = format!("network{}", networks.len());
                let dns: Vec<Value> = subnet["dns_nameservers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| json!({"type": "dns", "address": a}))
                    .collect();
                for d in &dns {
                    if !services.contains(d) {
                        services.push(d.clone());
                    }
                }
                if subnet["enable_dhcp"].as_bool().unwrap_or(false) {
                    networks.push(json!({"id": id, "type": format!("ipv{version}_dhcp"), "link": link,
                                         "network_id": net_id}));
                    continue;
                }
                let cidr = subnet["cidr"].as_str().unwrap_or_default();
                let mut routes = Vec::new();
                if let Some(gw) = subnet["gateway_ip"].as_str() {
                    let any = if version == 6 { "::" } else { "0.0.0.0" };
                    routes.push(json!({"network": any, "netmask": any, "gateway": gw}));
                }
                for r in subnet["host_routes"].as_array().into_iter().flatten() {
                    let dest = r["destination"].as_str().unwrap_or_default();
                    routes.push(json!({"network": dest.split('/').next().unwrap_or(dest), "netmask": netmask(dest),
                                       "gateway": r["nexthop"]}));
                }
                networks.push(json!({"id": id, "type": format!("ipv{version}"), "link": link,
                                     "ip_address": ip["ip_address"], "netmask": netmask(cidr), "routes": routes,
                                     "network_id": net_id, "services": dns}));
            }
        }
        json!({"links": links, "networks": networks, "services": services})
    }

    /// The files of an OpenStack metadata version directory, in Nova's order.
    pub fn openstack_files(&self) -> Vec<&'static str> {
        let mut files =
            vec!["meta_data.json", "password", "vendor_data.json", "network_data.json", "vendor_data2.json"];
        if self.user_data.is_some() {
            files.push("user_data");
        }
        files
    }

    /// One file of `/openstack/<version>/`: content type and body.
    pub fn openstack_file(&self, name: &str) -> Option<(&'static str, Vec<u8>)> {
        let js = |v: &Value| Some(("application/json", v.to_string().into_bytes()));
        match name {
            "meta_data.json" => js(&self.meta_data),
            "network_data.json" => js(&self.network_data),
            // No vendor data providers are configured: both documents are empty, as in
            // a Nova without vendordata targets.
            "vendor_data.json" | "vendor_data2.json" => js(&json!({})),
            "password" => Some(("text/plain", self.password.clone().into_bytes())),
            "user_data" => self.user_data.clone().map(|u| ("application/octet-stream", u)),
            _ => None,
        }
    }

    /// A path under the EC2 `meta-data/` tree: a listing for a directory (entries,
    /// subdirectories ending in `/`, public keys as `0=name`), the value for a leaf.
    pub fn ec2_path(&self, segments: &[&str]) -> Option<String> {
        let mut node = &self.ec2;
        for seg in segments.iter().filter(|s| !s.is_empty()) {
            let obj = node.as_object()?;
            node = match obj.get(*seg) {
                Some(n) => n,
                // Public keys are listed as `0=name` and reached as `0`.
                None => obj.iter().find(|(k, _)| k.split_once('=').is_some_and(|(i, _)| i == *seg)).map(|(_, v)| v)?,
            };
        }
        Some(match node {
            Value::Object(m) => m
                .iter()
                .map(|(k, v)| if v.is_object() && !k.contains('=') { format!("{k}/") } else { k.clone() })
                .collect::<Vec<_>>()
                .join("\n"),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> Server {
        let doc = json!({
            "key_name": "k1", "key_data": "ssh-ed25519 AAAA test", "hostname": "web-1",
            "user_data": base64::engine::general_purpose::STANDARD.encode("#!/bin/sh\necho hi\n"),
            "metadata": {"role": "web"}, "launch_index": 0, "availability_zone": "",
            "security_groups": ["default", "ssh"], "image_id": "0a1b2c3d-0000-0000-0000-000000000000",
            "reservation_id": "r-12345678",
        });
        Server {
            id: "11111111-2222-3333-4444-555555555555".into(),
            project_id: "p".into(),
            user_id: "u".into(),
            name: "web 1".into(),
            vm_state: crate::store::VmState::Active,
            task_state: None,
            power_state: stratus_compute_protocol::PowerState::Running,
            host: Some("h".into()),
            vcpus: 1,
            ram: 256,
            disk: 1,
            charged: true,
            locked: false,
            deleted: false,
            doc: doc.as_object().unwrap().clone(),
            control: Default::default(),
            rev: 1,
            created_at: String::new(),
            updated_at: String::new(),
            launched_at: None,
            terminated_at: None,
        }
    }

    fn facts(s: &Server, dhcp: bool) -> Facts<'_> {
        Facts {
            server: s,
            ports: vec![json!({"id": "aaaabbbbcccc-dddd", "network_id": "n1", "mac_address": "fa:16:3e:00:00:01",
                               "binding:vif_type": "bridge",
                               "fixed_ips": [{"subnet_id": "s1", "ip_address": "10.0.0.5"}]})],
            subnets: vec![json!({"id": "s1", "ip_version": 4, "cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.1",
                                 "enable_dhcp": dhcp, "dns_nameservers": ["10.0.0.2"],
                                 "host_routes": [{"destination": "192.168.0.0/16", "nexthop": "10.0.0.254"}]})],
            networks: vec![json!({"id": "n1", "mtu": 1450})],
            floating_ips: vec!["203.0.113.7".into()],
            flavor_name: "m1.tiny".into(),
        }
    }

    #[test]
    fn meta_data_carries_identity_key_and_metadata() {
        let s = server();
        let m = Metadata::build(&facts(&s, true));
        assert_eq!(m.meta_data["uuid"], s.id.as_str());
        assert_eq!(m.meta_data["hostname"], "web-1");
        assert_eq!(m.meta_data["public_keys"]["k1"], "ssh-ed25519 AAAA test");
        assert_eq!(m.meta_data["keys"][0]["type"], "ssh");
        assert_eq!(m.meta_data["meta"]["role"], "web");
        assert_eq!(m.meta_data["availability_zone"], "nova");
        assert_eq!(m.user_data.as_deref(), Some(&b"#!/bin/sh\necho hi\n"[..]));
        assert!(m.openstack_files().contains(&"user_data"));
        let seed = m.meta_data["random_seed"].as_str().unwrap();
        assert_eq!(base64::engine::general_purpose::STANDARD.decode(seed).unwrap().len(), 512);
    }

    #[test]
    fn network_data_follows_dhcp_or_static() {
        let s = server();
        let dhcp = Metadata::build(&facts(&s, true)).network_data;
        assert_eq!(dhcp["links"][0]["id"], "tapaaaabbbbccc");
        assert_eq!(dhcp["links"][0]["mtu"], 1450);
        assert_eq!(dhcp["networks"][0]["type"], "ipv4_dhcp");
        assert_eq!(dhcp["services"][0]["address"], "10.0.0.2");
        let fixed = Metadata::build(&facts(&s, false)).network_data;
        let n = &fixed["networks"][0];
        assert_eq!(n["type"], "ipv4");
        assert_eq!(n["ip_address"], "10.0.0.5");
        assert_eq!(n["netmask"], "255.255.255.0");
        assert_eq!(n["routes"][0]["gateway"], "10.0.0.1");
        assert_eq!(n["routes"][1]["netmask"], "255.255.0.0");
        assert_eq!(n["link"], fixed["links"][0]["id"]);
    }

    #[test]
    fn ec2_tree_lists_and_reads() {
        let s = server();
        let m = Metadata::build(&facts(&s, true));
        let top = m.ec2_path(&[]).unwrap();
        assert!(top.contains("public-keys/\n") && top.contains("instance-id\n") && top.contains("placement/"));
        assert_eq!(m.ec2_path(&["instance-id"]).unwrap(), "i-11111111");
        assert_eq!(m.ec2_path(&["local-ipv4"]).unwrap(), "10.0.0.5");
        assert_eq!(m.ec2_path(&["public-ipv4"]).unwrap(), "203.0.113.7");
        assert_eq!(m.ec2_path(&["public-keys", ""]).unwrap(), "0=k1");
        assert_eq!(m.ec2_path(&["public-keys", "0"]).unwrap(), "openssh-key");
        assert_eq!(m.ec2_path(&["public-keys", "0", "openssh-key"]).unwrap(), "ssh-ed25519 AAAA test");
        assert_eq!(m.ec2_path(&["placement", "availability-zone"]).unwrap(), "nova");
        assert_eq!(m.ec2_path(&["security-groups"]).unwrap(), "default\nssh");
        assert!(m.ec2_path(&["nothing"]).is_none());
        assert!(m.ec2_path(&["hostname", "deeper"]).is_none());
    }

    #[test]
    fn netmasks() {
        assert_eq!(netmask("10.0.0.0/8"), "255.0.0.0");
        assert_eq!(netmask("0.0.0.0/0"), "0.0.0.0");
        assert_eq!(netmask("fd00::/64"), "ffff:ffff:ffff:ffff::");
    }
}
