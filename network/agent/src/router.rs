//! Routers: one namespace per router (`stratus-<host>-router-<id>`) with a leg per
//! interface port (`qr-…`, the subnet's gateway address) and a gateway leg on the
//! external network (`qg-…`, the router's external address plus a /32 per floating IP).
//! The host end of each leg (`stp…`) hangs on the leg's network bridge. nftables `nat`
//! in the namespace does SNAT of outbound traffic to the gateway address (when
//! `enable_snat`), and per floating IP DNAT to the fixed address and SNAT of the guest's
//! own outbound traffic to the floating address. Static routes and the default route
//! via the external subnet's gateway complete it.

use crate::kernel::links::{self, Leg, Link};
use crate::kernel::{run, run_with_input};
use crate::model::{DesiredState, Router};
use std::collections::BTreeMap;
use std::fmt::Write;

pub const LEG_PREFIX: &str = "stp";

#[derive(Debug, Clone, PartialEq)]
pub struct RouterPlan {
    pub id: String,
    pub namespace: String,
    pub legs: Vec<Leg>,
    /// `(destination, nexthop)`; the default route first when there is a gateway.
    pub routes: Vec<(String, String)>,
    pub nat: String,
    /// Whether the namespace serves the metadata proxy (169.254.169.254 on `lo`).
    pub metadata: bool,
    /// `admin_state_up`: a router set down keeps its namespace but its legs are down,
    /// so it routes nothing until set back.
    pub enabled: bool,
}

pub fn namespace(prefix: &str, router_id: &str) -> String {
    format!("{prefix}router-{router_id}")
}

pub fn router_of<'a>(prefix: &str, namespace: &'a str) -> Option<&'a str> {
    namespace.strip_prefix(prefix)?.strip_prefix("router-")
}

fn short(id: &str) -> String {
    id.chars().take(11).collect()
}

fn prefix_len(cidr: &str) -> Option<&str> {
    cidr.split_once('/').map(|(_, l)| l)
}

/// The plan of one router; `bridges` maps network id to bridge name. With `metadata`,
/// the namespace holds the metadata address for guests that route it to their gateway.
pub fn plan(
    prefix: &str,
    d: &DesiredState,
    r: &Router,
    bridges: &BTreeMap<String, String>,
    metadata: bool,
) -> RouterPlan {
    let mtu_of = |net: &str| d.networks.iter().find(|n| n.id == net).and_then(|n| n.mtu).unwrap_or(1500);
    let subnet = |id: &str| d.networks.iter().flat_map(|n| n.subnets.iter()).find(|s| s.id == id);
    let mut legs: BTreeMap<String, Leg> = BTreeMap::new();
    let mut internal_cidrs = Vec::new();
    for i in &r.interfaces {
        let Some(bridge) = bridges.get(&i.network_id) else { continue };
        let leg = legs.entry(i.port_id.clone()).or_insert_with(|| Leg {
            outer: format!("{LEG_PREFIX}{}", short(&i.port_id)),
            inner: format!("qr-{}", short(&i.port_id)),
            bridge: bridge.clone(),
            mtu: mtu_of(&i.network_id),
            mac: i.mac_address.to_lowercase(),
            addresses: Vec::new(),
        });
        if let Some(len) = i.cidr.as_deref().and_then(prefix_len) {
            leg.addresses.push(format!("{}/{len}", i.ip_address));
        }
        if let Some(c) = i.cidr.as_deref().filter(|c| !c.contains(':')) {
            internal_cidrs.push(c.to_string());
        }
    }
    let mut routes = Vec::new();
    let mut nat = String::new();
    let mut gw_dev = None;
    if let Some(g) = &r.gateway {
        if let (Some(port), Some(bridge)) = (&g.port_id, bridges.get(&g.network_id)) {
            let inner = format!("qg-{}", short(port));
            let mut addresses = Vec::new();
            let mut gw_ip = None;
            for f in &g.external_fixed_ips {
                if let Some(s) = subnet(&f.subnet_id) {
                    if let Some(len) = prefix_len(&s.cidr) {
                        addresses.push(format!("{}/{len}", f.ip_address));
                    }
                    if !f.ip_address.contains(':') {
                        gw_ip.get_or_insert(f.ip_address.clone());
                        if let Some(next) = s.gateway_ip.as_deref().filter(|g| !g.is_empty()) {
                            if routes.is_empty() {
                                routes.push(("default".to_string(), next.to_string()));
                            }
                        }
                    }
                }
            }
            for fip in &r.floating_ips {
                if fip.fixed_ip_address.is_some() {
                    addresses.push(format!("{}/32", fip.floating_ip_address));
                }
            }
            legs.insert(
                port.clone(),
                Leg {
                    outer: format!("{LEG_PREFIX}{}", short(port)),
                    inner: inner.clone(),
                    bridge: bridge.clone(),
                    mtu: mtu_of(&g.network_id),
                    mac: g.mac_address.clone().unwrap_or_default().to_lowercase(),
                    addresses,
                },
            );
            gw_dev = Some((inner, gw_ip, g.enable_snat.unwrap_or(true)));
        }
    }
    for rt in &r.routes {
        routes.push((rt.destination.clone(), rt.nexthop.clone()));
    }

    // NAT.
    nat.push_str("table ip stratus\ndelete table ip stratus\ntable ip stratus {\n");
    nat.push_str("  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n");
    let fips: Vec<(&str, &str)> = r
        .floating_ips
        .iter()
        .filter_map(|f| f.fixed_ip_address.as_deref().map(|fixed| (f.floating_ip_address.as_str(), fixed)))
        .filter(|(fl, fx)| !fl.contains(':') && !fx.contains(':'))
        .collect();
    if gw_dev.is_some() {
        for (floating, fixed) in &fips {
            let _ = writeln!(nat, "    ip daddr {floating} dnat to {fixed}");
        }
    }
    nat.push_str("  }\n  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n");
    if let Some((dev, gw_ip, snat)) = &gw_dev {
        for (floating, fixed) in &fips {
            let _ = writeln!(nat, "    oifname \"{dev}\" ip saddr {fixed} snat to {floating}");
        }
        if let (Some(ip), true, false) = (gw_ip, *snat, internal_cidrs.is_empty()) {
            let _ = writeln!(nat, "    oifname \"{dev}\" ip saddr {{ {} }} snat to {ip}", internal_cidrs.join(", "));
        }
    }
    nat.push_str("  }\n");
    if metadata {
        // The metadata address answers only on interface legs: nobody on the external
        // network reaches the proxy, whatever source address they claim.
        nat.push_str("  chain input {\n    type filter hook input priority filter; policy accept;\n");
        let _ = writeln!(nat, "    ip daddr {} iifname != \"qr-*\" drop", crate::metadata::METADATA_IP);
        nat.push_str("  }\n");
    }
    nat.push_str("}\n");
    RouterPlan {
        id: r.id.clone(),
        namespace: namespace(prefix, &r.id),
        legs: legs.into_values().collect(),
        routes,
        nat,
        metadata,
        enabled: r.admin_state_up != Some(false),
    }
}

/// Brings one router to its plan. `applied` caches the NAT script last applied.
pub async fn converge(
    p: &RouterPlan,
    host_links: &[Link],
    namespaces: &[String],
    applied: &mut BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let ns = p.namespace.as_str();
    if !namespaces.iter().any(|n| n == ns) {
        links::netns_add(ns).await?;
        applied.remove(&p.id);
    }
    run("ip", &["netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"]).await?;
    if p.metadata {
        let addr = format!("{}/32", crate::metadata::METADATA_IP);
        links::ip(Some(ns), &["addr", "replace", &addr, "dev", "lo"]).await?;
    }
    let inside = links::list(Some(ns)).await?;
    for leg in &p.legs {
        links::ensure_leg(ns, leg, host_links, &inside, p.enabled).await?;
    }
    // Legs of interfaces that are gone.
    for l in &inside {
        let ours = l.ifname.starts_with("qr-") || l.ifname.starts_with("qg-");
        if ours && !p.legs.iter().any(|leg| leg.inner == l.ifname) {
            links::delete(Some(ns), &l.ifname).await?;
        }
    }
    // Routes: ours carry `proto static`; replace the wanted ones, drop the rest.
    let have = links::ip(Some(ns), &["-json", "route", "show", "proto", "static"]).await?;
    let have: Vec<serde_json::Value> = serde_json::from_str(&have).unwrap_or_default();
    for (dst, via) in &p.routes {
        links::ip(Some(ns), &["route", "replace", dst, "via", via, "proto", "static"]).await?;
    }
    for r in have {
        let dst = r["dst"].as_str().unwrap_or_default().to_string();
        if !p.routes.iter().any(|(d, _)| *d == dst) {
            let _ = links::ip(Some(ns), &["route", "del", &dst, "proto", "static"]).await;
        }
    }
    if applied.get(&p.id) != Some(&p.nat) {
        run_with_input("ip", &["netns", "exec", ns, "nft", "-f", "-"], Some(&p.nat)).await?;
        applied.insert(p.id.clone(), p.nat.clone());
    }
    Ok(())
}

/// Removes a router's namespace (its legs go with it) and any host end left over.
pub async fn remove(namespace: &str, host_links: &[Link]) -> anyhow::Result<()> {
    let inside = links::list(Some(namespace)).await.unwrap_or_default();
    links::netns_delete(namespace).await?;
    for l in inside {
        let id = l.ifname.get(3..).unwrap_or_default();
        let outer = format!("{LEG_PREFIX}{id}");
        if host_links.iter().any(|h| h.ifname == outer) {
            links::delete(None, &outer).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FixedIp, FloatingIp, Gateway, Interface, Network, Subnet};

    fn state() -> (DesiredState, BTreeMap<String, String>) {
        let sub = |id: &str, cidr: &str, gw: &str| Subnet {
            id: id.into(),
            cidr: cidr.into(),
            ip_version: 4,
            gateway_ip: Some(gw.into()),
            ..Default::default()
        };
        let d = DesiredState {
            networks: vec![
                Network {
                    id: "ext".into(),
                    mtu: Some(1500),
                    subnets: vec![sub("es", "172.24.0.0/24", "172.24.0.1")],
                    ..Default::default()
                },
                Network {
                    id: "in".into(),
                    mtu: Some(1450),
                    subnets: vec![sub("is", "10.0.0.0/24", "10.0.0.1")],
                    ..Default::default()
                },
            ],
            routers: vec![Router {
                id: "r1".into(),
                interfaces: vec![Interface {
                    port_id: "ifport-0123456789".into(),
                    network_id: "in".into(),
                    mac_address: "FA:16:3E:00:00:01".into(),
                    subnet_id: "is".into(),
                    ip_address: "10.0.0.1".into(),
                    cidr: Some("10.0.0.0/24".into()),
                    status: None,
                }],
                gateway: Some(Gateway {
                    network_id: "ext".into(),
                    enable_snat: Some(true),
                    external_fixed_ips: vec![FixedIp { subnet_id: "es".into(), ip_address: "172.24.0.10".into() }],
                    port_id: Some("gwport-0123456789".into()),
                    mac_address: Some("fa:16:3e:00:00:02".into()),
                    status: None,
                }),
                floating_ips: vec![FloatingIp {
                    floating_ip_address: "172.24.0.20".into(),
                    fixed_ip_address: Some("10.0.0.5".into()),
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let bridges =
            BTreeMap::from([("ext".to_string(), "stb-ext".to_string()), ("in".to_string(), "stb-in".to_string())]);
        (d, bridges)
    }

    #[test]
    fn plans_legs_routes_and_nat() {
        let (d, bridges) = state();
        let p = plan("stratus-h-", &d, &d.routers[0], &bridges, false);
        assert_eq!(p.namespace, "stratus-h-router-r1");
        assert!(!p.nat.contains("169.254.169.254"));
        assert_eq!(router_of("stratus-h-", &p.namespace), Some("r1"));
        let gw = p.legs.iter().find(|l| l.inner.starts_with("qg-")).unwrap();
        assert_eq!(gw.inner, "qg-gwport-0123");
        assert_eq!(gw.outer, "stpgwport-0123");
        assert_eq!(gw.bridge, "stb-ext");
        assert_eq!(gw.addresses, vec!["172.24.0.10/24", "172.24.0.20/32"]);
        let qr = p.legs.iter().find(|l| l.inner.starts_with("qr-")).unwrap();
        assert_eq!((qr.mtu, qr.mac.as_str()), (1450, "fa:16:3e:00:00:01"));
        assert_eq!(qr.addresses, vec!["10.0.0.1/24"]);
        assert_eq!(p.routes, vec![("default".to_string(), "172.24.0.1".to_string())]);
        assert!(p.nat.contains("ip daddr 172.24.0.20 dnat to 10.0.0.5"));
        assert!(p.nat.contains("oifname \"qg-gwport-0123\" ip saddr 10.0.0.5 snat to 172.24.0.20"));
        assert!(p.nat.contains("oifname \"qg-gwport-0123\" ip saddr { 10.0.0.0/24 } snat to 172.24.0.10"));
        let fip_snat = p.nat.find("snat to 172.24.0.20").unwrap();
        assert!(fip_snat < p.nat.find("snat to 172.24.0.10").unwrap(), "a floating IP wins over the router's SNAT");
    }

    #[test]
    fn a_router_set_down_keeps_its_plan_with_its_legs_down() {
        let (mut d, bridges) = state();
        assert!(plan("p-", &d, &d.routers[0], &bridges, false).enabled);
        d.routers[0].admin_state_up = Some(false);
        let p = plan("p-", &d, &d.routers[0], &bridges, false);
        assert!(!p.enabled && !p.legs.is_empty());
    }

    #[test]
    fn metadata_answers_on_interface_legs_only() {
        let (d, bridges) = state();
        let p = plan("p-", &d, &d.routers[0], &bridges, true);
        assert!(p.metadata);
        assert!(p.nat.contains("type filter hook input"));
        assert!(p.nat.contains("ip daddr 169.254.169.254 iifname != \"qr-*\" drop"), "{}", p.nat);
    }

    #[test]
    fn no_snat_when_disabled_and_no_nat_without_gateway() {
        let (mut d, bridges) = state();
        d.routers[0].gateway.as_mut().unwrap().enable_snat = Some(false);
        let p = plan("p-", &d, &d.routers[0], &bridges, false);
        assert!(!p.nat.contains("snat to 172.24.0.10"));
        assert!(p.nat.contains("dnat to 10.0.0.5"), "floating IPs work without SNAT");
        d.routers[0].gateway = None;
        let p = plan("p-", &d, &d.routers[0], &bridges, false);
        assert_eq!(p.legs.len(), 1);
        assert!(p.routes.is_empty());
        assert!(!p.nat.contains("nat to"));
    }
}
