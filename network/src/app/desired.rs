//! The desired state of one host, as the network agent reads it: the ports bound there,
//! their networks and subnets, the security groups they use (with the addresses of
//! remote groups' members), and, for hosts that run routers, every router with its
//! gateway, interfaces, routes and floating IPs. The agent reconciles the host against
//! this whole picture, so no single missed event can leave it wrong.

use super::agents::{dhcp_client, dhcp_device_id, DHCP};
use super::ports::ROUTER_INTERFACE;
use super::{neutron, NetworkService};
use crate::store::{Record, Table};
use axum::http::StatusCode;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use stratus_common::auth::AuthContext;
use stratus_common::http::ApiResult;

fn pick(r: &Record, keys: &[&str]) -> Map<String, Value> {
    let mut m: Map<String, Value> =
        keys.iter().map(|k| (k.to_string(), r.doc.get(*k).cloned().unwrap_or(Value::Null))).collect();
    m.insert("id".into(), json!(r.id));
    m
}

fn addresses(p: &Record) -> Vec<String> {
    p.doc["fixed_ips"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f["ip_address"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

impl NetworkService {
    /// Admins and the `service` role (agents) only.
    pub async fn desired_state(&self, ctx: &AuthContext, host: &str, with_routers: bool) -> ApiResult<Value> {
        if !(ctx.is_admin() || ctx.has_role("service")) {
            return Err(neutron(
                StatusCode::FORBIDDEN,
                "PolicyNotAuthorized",
                "Only admins and agents read a host's desired state.",
            ));
        }
        let all_ports = self.store.list(Table::Ports, None).await?;
        let networks: HashMap<String, Record> =
            self.store.list(Table::Networks, None).await?.into_iter().map(|n| (n.id.clone(), n)).collect();
        let subnets = self.store.list(Table::Subnets, None).await?;
        let dhcp_device = dhcp_device_id(host);
        // The ports this host plugs as taps: not its DHCP ports, nor the routers' (bound
        // to the network node that runs them, and wired in the routers' namespaces).
        let bound: Vec<&Record> = all_ports
            .iter()
            .filter(|p| {
                p.str("binding:host_id") == host
                    && p.str("device_owner") != DHCP
                    && !p.str("device_owner").starts_with("network:router_")
            })
            .collect();
        let mut net_ids: BTreeSet<String> = bound.iter().map(|p| p.str("network_id").to_string()).collect();
        let mut group_ids: BTreeSet<String> = BTreeSet::new();
        for p in &bound {
            for g in p.doc["security_groups"].as_array().into_iter().flatten() {
                group_ids.insert(g.as_str().unwrap_or_default().to_string());
            }
        }
        // What routers attached (interfaces and gateways): recorded by the router API,
        // never read from a port's device_owner/device_id, which its owner may write.
        let router_ports = self.store.router_ports(None).await?;
        let attached: HashSet<&str> = router_ports.iter().map(|rp| rp.port_id.as_str()).collect();
        let mut routers_out = Vec::new();
        if with_routers {
            let fips = self.store.list(Table::FloatingIps, None).await?;
            for r in self.store.list(Table::Routers, None).await? {
                let ids: HashSet<&str> = router_ports
                    .iter()
                    .filter(|rp| rp.router_id == r.id && rp.port_type == ROUTER_INTERFACE)
                    .map(|rp| rp.port_id.as_str())
                    .collect();
                let ifaces: Vec<&Record> = all_ports.iter().filter(|p| ids.contains(p.id.as_str())).collect();
                let mut interfaces = Vec::new();
                for p in &ifaces {
                    net_ids.insert(p.str("network_id").to_string());
                    for f in p.doc["fixed_ips"].as_array().into_iter().flatten() {
                        let cidr = subnets
                            .iter()
                            .find(|s| s.id == f["subnet_id"].as_str().unwrap_or(""))
                            .map(|s| s.str("cidr").to_string());
                        interfaces.push(json!({"port_id": p.id, "network_id": p.str("network_id"), "mac_address": p.str("mac_address"),
                               "subnet_id": f["subnet_id"], "ip_address": f["ip_address"], "cidr": cidr, "status": p.str("status")}));
                    }
                }
                let gateway = match r.doc.get("external_gateway_info").filter(|g| g.is_object()) {
                    Some(g) => {
                        let gw_port = all_ports.iter().find(|p| Some(&p.id) == r.control.gateway_port.as_ref());
                        let net = g["network_id"].as_str().unwrap_or_default().to_string();
                        net_ids.insert(net.clone());
                        json!({"network_id": net, "enable_snat": g["enable_snat"], "external_fixed_ips": g["external_fixed_ips"],
                               "port_id": gw_port.map(|p| p.id.clone()), "mac_address": gw_port.map(|p| p.str("mac_address").to_string()),
                               "status": gw_port.map(|p| p.str("status").to_string())})
                    }
                    None => Value::Null,
                };
                let floating: Vec<Value> = fips
                    .iter()
                    .filter(|f| f.str("router_id") == r.id)
                    .map(|f| json!({"id": f.id, "floating_ip_address": f.doc["floating_ip_address"], "fixed_ip_address": f.doc["fixed_ip_address"], "port_id": f.doc["port_id"]}))
                    .collect();
                routers_out.push(
                    json!({"id": r.id, "project_id": r.project_id, "admin_state_up": r.doc["admin_state_up"],
                    "gateway": gateway, "interfaces": interfaces, "routes": r.doc["routes"], "floating_ips": floating,
                    "revision_number": r.revision_number}),
                );
            }
        }
        // Remote groups: the addresses of every port in them, wherever it runs.
        let groups: Vec<Record> = {
            let mut v = Vec::new();
            for id in &group_ids {
                if let Some(g) = self.store.fetch(Table::SecurityGroups, id).await? {
                    v.push(g);
                }
            }
            v
        };
        let mut members: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut groups_out = Vec::new();
        for g in &groups {
            let rules = self.group_rules(&g.id).await?;
            for r in &rules {
                if let Some(remote) = r.doc.get("remote_group_id").and_then(Value::as_str) {
                    members.entry(remote.to_string()).or_default();
                }
            }
            let rules: Vec<Value> = rules
                .iter()
                .map(|r| {
                    Value::Object(pick(
                        r,
                        &[
                            "direction",
                            "ethertype",
                            "protocol",
                            "port_range_min",
                            "port_range_max",
                            "remote_ip_prefix",
                            "remote_group_id",
                        ],
                    ))
                })
                .collect();
            groups_out.push(
                json!({"id": g.id, "stateful": g.doc.get("stateful").cloned().unwrap_or(json!(true)), "rules": rules}),
            );
        }
        for (gid, ips) in members.iter_mut() {
            for p in &all_ports {
                if p.doc["security_groups"].as_array().is_some_and(|a| a.iter().any(|x| x.as_str() == Some(gid))) {
                    ips.extend(addresses(p));
                }
            }
        }
        // VXLAN peers: the other hosts with ports on a network (and the hosts that run
        // routers, for networks with router ports), with their tunnel addresses and the
        // MACs behind them, so agents write static forwarding entries instead of flooding.
        let agents = self.store.list(Table::Agents, None).await?;
        let tunnel_of: HashMap<&str, &str> = agents
            .iter()
            .filter_map(|a| {
                let ip = a.doc.get("configurations")?.get("tunnel_ip")?.as_str()?;
                (!ip.is_empty()).then_some((a.str("host"), ip))
            })
            .collect();
        let router_hosts: Vec<&str> = agents
            .iter()
            .filter(|a| a.doc.get("configurations").and_then(|c| c.get("routers")) == Some(&json!(true)))
            .map(|a| a.str("host"))
            .collect();
        let peers_of = |net: &str| -> Value {
            let mut peers: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
            for p in all_ports.iter().filter(|p| p.str("network_id") == net) {
                let mac = p.str("mac_address");
                let h = p.str("binding:host_id");
                if !h.is_empty() && h != host {
                    peers.entry(h).or_default().insert(mac);
                }
                if attached.contains(p.id.as_str()) {
                    for rh in router_hosts.iter().filter(|rh| **rh != host) {
                        peers.entry(rh).or_default().insert(mac);
                    }
                }
            }
            Value::Array(
                peers
                    .into_iter()
                    .filter_map(|(h, macs)| {
                        tunnel_of.get(h).map(|ip| json!({"host": h, "tunnel_ip": ip, "macs": macs}))
                    })
                    .collect(),
            )
        };
        let networks_out: Vec<Value> = net_ids
            .iter()
            .filter_map(|id| networks.get(id))
            .map(|n| {
                let mut m = pick(
                    n,
                    &[
                        "provider:network_type",
                        "provider:segmentation_id",
                        "provider:physical_network",
                        "mtu",
                        "admin_state_up",
                        "router:external",
                    ],
                );
                let subs: Vec<Value> = subnets
                    .iter()
                    .filter(|s| s.str("network_id") == n.id)
                    .map(|s| {
                        Value::Object(pick(
                            s,
                            &[
                                "cidr",
                                "ip_version",
                                "gateway_ip",
                                "enable_dhcp",
                                "dns_nameservers",
                                "host_routes",
                                "allocation_pools",
                                "ipv6_address_mode",
                                "ipv6_ra_mode",
                            ],
                        ))
                    })
                    .collect();
                m.insert("subnets".into(), Value::Array(subs));
                let vxlan = n.str("provider:network_type") == "vxlan";
                m.insert("peers".into(), if vxlan { peers_of(&n.id) } else { json!([]) });
                let on_net = all_ports.iter().filter(|p| p.str("network_id") == n.id);
                let dhcp_port = on_net
                    .clone()
                    .find(|p| p.str("device_owner") == DHCP && p.str("device_id") == dhcp_device)
                    .map(|p| Value::Object(pick(p, &["mac_address", "fixed_ips"])));
                m.insert("dhcp_port".into(), dhcp_port.unwrap_or(Value::Null));
                let clients: Vec<Value> = on_net
                    .filter(|p| dhcp_client(p))
                    .map(|p| {
                        // The device and project identify a guest to the metadata service.
                        let mut m = pick(p, &["mac_address", "fixed_ips", "device_id", "device_owner"]);
                        m.insert("project_id".into(), json!(p.project_id));
                        Value::Object(m)
                    })
                    .collect();
                m.insert("dhcp_hosts".into(), Value::Array(clients));
                Value::Object(m)
            })
            .collect();
        let ports_out: Vec<Value> = bound
            .iter()
            .map(|p| {
                let mut m = pick(
                    p,
                    &[
                        "network_id",
                        "mac_address",
                        "fixed_ips",
                        "admin_state_up",
                        "port_security_enabled",
                        "security_groups",
                        "allowed_address_pairs",
                        "device_id",
                        "device_owner",
                        "status",
                    ],
                );
                m.insert("revision_number".into(), json!(p.revision_number));
                Value::Object(m)
            })
            .collect();
        let stale_dhcp: BTreeSet<&str> = all_ports
            .iter()
            .filter(|p| p.str("device_owner") == DHCP && p.str("device_id") == dhcp_device)
            .map(|p| p.str("network_id"))
            .filter(|n| !net_ids.contains(*n))
            .collect();
        Ok(json!({
            "host": host,
            "stale_dhcp_networks": stale_dhcp,
            "networks": networks_out,
            "ports": ports_out,
            "security_groups": groups_out,
            "security_group_members": members,
            "routers": routers_out,
        }))
    }
}
