//! Security groups and anti-spoofing as one nftables script for the whole host.
//!
//! The kernel here has no conntrack in the bridge family, so filtering is split in two
//! (see docs/architecture.md, "Network agent"):
//! - `table bridge stratus`: on frames leaving a guest (`prerouting`, matched by the
//!   port's device name) the stateless checks: its MAC, its ARP and IP source addresses
//!   (plus allowed address pairs), no DHCP or router advertisements served by guests;
//!   then the packet's mark gets the sending port's number (low 16 bits). On frames
//!   towards a guest (`forward`, by output device) the mark gets the receiving port's
//!   number (high 16 bits).
//! - `table inet stratus`: bridged IP packets pass the inet `forward` hook
//!   (br_netfilter), where conntrack works: the sender's egress rules, then the
//!   receiver's ingress rules, each stateful, default deny. Remote-group rules match
//!   named sets of the group members' addresses. Each network's bridge gets its own
//!   conntrack zone, so overlapping tenant addresses never share a connection entry.
//!
//! Ports with `port_security_enabled = false` get neither part.

use crate::model::{DesiredState, Port, Rule};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The bridge a network's ports hang on, by network id.
pub type Bridges = BTreeMap<String, String>;

fn is_v6(addr: &str) -> bool {
    addr.contains(':')
}

fn set_of(items: &[String]) -> String {
    format!("{{ {} }}", items.join(", "))
}

/// The addresses a port may send from: its fixed IPs and allowed address pairs.
fn sources(p: &Port) -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    let mut macs = vec![p.mac_address.to_lowercase()];
    let all = p
        .fixed_ips
        .iter()
        .map(|f| f.ip_address.clone())
        .chain(p.allowed_address_pairs.iter().map(|a| a.ip_address.clone()));
    for a in all {
        if is_v6(&a) {
            v6.push(a)
        } else {
            v4.push(a)
        }
    }
    for pair in &p.allowed_address_pairs {
        if let Some(m) = pair.mac_address.as_deref().map(str::to_lowercase) {
            if !macs.contains(&m) {
                macs.push(m);
            }
        }
    }
    (macs, v4, v6)
}

/// An address as the firewall may write it: an IP address, optionally with a prefix
/// length that fits its family. Anything else would make `nft` refuse the whole script.
pub fn valid_address(s: &str, prefix_allowed: bool) -> bool {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) if prefix_allowed => (a, Some(p)),
        Some(_) => return false,
        None => (s, None),
    };
    let Ok(ip) = addr.parse::<std::net::IpAddr>() else { return false };
    let max = if ip.is_ipv6() { 128 } else { 32 };
    prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 3
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u32>().is_ok_and(|n| n <= max)
    })
}

fn valid_mac(m: &str) -> bool {
    let parts: Vec<&str> = m.split(':').collect();
    parts.len() == 6 && parts.iter().all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Why a port's entries cannot be written into the host's ruleset, if they cannot: the
/// agent leaves such a port unwired (status ERROR) rather than fail every other port's.
pub fn port_problem(p: &Port) -> Option<String> {
    if !valid_mac(&p.mac_address) {
        return Some(format!("MAC address {:?} is not valid", p.mac_address));
    }
    if let Some(f) = p.fixed_ips.iter().find(|f| !valid_address(&f.ip_address, false)) {
        return Some(format!("fixed IP {:?} is not an IP address", f.ip_address));
    }
    for pair in &p.allowed_address_pairs {
        if !valid_address(&pair.ip_address, true) {
            return Some(format!("allowed address pair {:?} is not an address or CIDR", pair.ip_address));
        }
        if pair.mac_address.as_deref().is_some_and(|m| !valid_mac(m)) {
            return Some(format!("allowed address pair MAC {:?} is not valid", pair.mac_address));
        }
    }
    None
}

/// The nftables match of one security group rule, or `None` for a rule this data plane
/// cannot express (an unknown protocol name), which then allows nothing.
pub fn rule_match(rule: &Rule, ingress: bool, remote_sets: &BTreeMap<String, usize>) -> Option<String> {
    let v6 = rule.ethertype.eq_ignore_ascii_case("IPv6");
    let (fam, ipk) = if v6 { ("ipv6", "ip6") } else { ("ipv4", "ip") };
    let dir = if ingress { "saddr" } else { "daddr" };
    let mut parts = vec![format!("meta nfproto {fam}")];
    if let Some(prefix) = rule.remote_ip_prefix.as_deref().filter(|p| !["0.0.0.0/0", "::/0"].contains(p)) {
        if !valid_address(prefix, true) {
            return None;
        }
        parts.push(format!("{ipk} {dir} {prefix}"));
    }
    if let Some(g) = &rule.remote_group_id {
        let n = remote_sets.get(g)?;
        parts.push(format!("{ipk} {dir} @rg{n}{}", if v6 { "v6" } else { "v4" }));
    }
    let proto = rule.protocol.as_deref().map(str::to_ascii_lowercase);
    let (min, max) = (rule.port_range_min, rule.port_range_max);
    match proto.as_deref() {
        None | Some("any") | Some("") => {}
        Some("tcp" | "6") | Some("udp" | "17") | Some("sctp" | "132") => {
            let name = match proto.as_deref() {
                Some("tcp" | "6") => "tcp",
                Some("udp" | "17") => "udp",
                _ => "sctp",
            };
            parts.push(format!("meta l4proto {name}"));
            if let Some(lo) = min {
                let hi = max.unwrap_or(lo);
                parts.push(if lo == hi { format!("{name} dport {lo}") } else { format!("{name} dport {lo}-{hi}") });
            }
        }
        Some("icmp" | "1" | "icmpv6" | "ipv6-icmp" | "58") => {
            let (l4, kw) = if v6 { ("ipv6-icmp", "icmpv6") } else { ("icmp", "icmp") };
            parts.push(format!("meta l4proto {l4}"));
            if let Some(t) = min {
                parts.push(format!("{kw} type {t}"));
                if let Some(c) = max {
                    parts.push(format!("{kw} code {c}"));
                }
            }
        }
        Some(other) => match other.parse::<u8>() {
            Ok(n) => parts.push(format!("meta l4proto {n}")),
            Err(_) => return None,
        },
    }
    Some(parts.join(" "))
}

/// The filtered ports in a stable order; a port's number is its position plus one.
pub fn filtered_ports(d: &DesiredState) -> Vec<&Port> {
    let mut ports: Vec<&Port> = d.ports.iter().filter(|p| p.filtered()).collect();
    ports.sort_by(|a, b| a.id.cmp(&b.id));
    ports
}

/// `set`/`map` with its elements (none: an empty one).
fn named(kind: &str, name: &str, ty: &str, flags: &str, elems: &[String]) -> String {
    let mut s = format!("  {kind} {name} {{\n    type {ty};\n");
    if !flags.is_empty() {
        let _ = writeln!(s, "    flags {flags};");
    }
    if !elems.is_empty() {
        let _ = writeln!(s, "    elements = {}", set_of(elems));
    }
    s.push_str("  }\n");
    s
}

/// The whole script: replaces both owned tables. Per-port facts live in sets and maps
/// (one element per port), rules are per distinct combination of security groups, so
/// the script stays small and loads in milliseconds with thousands of ports.
pub fn render(d: &DesiredState, bridges: &Bridges) -> String {
    let ports = filtered_ports(d);
    let remote_sets: BTreeMap<String, usize> =
        d.security_group_members.keys().enumerate().map(|(i, g)| (g.clone(), i + 1)).collect();
    let groups: BTreeMap<&str, &crate::model::SecurityGroup> =
        d.security_groups.iter().map(|g| (g.id.as_str(), g)).collect();
    // Distinct combinations of groups: ports with the same groups share their chains.
    let mut combos: Vec<Vec<String>> = Vec::new();
    let combo_of: Vec<usize> = ports
        .iter()
        .map(|p| {
            let mut gs = p.security_groups.clone();
            gs.sort();
            gs.dedup();
            match combos.iter().position(|c| *c == gs) {
                Some(i) => i + 1,
                None => {
                    combos.push(gs);
                    combos.len()
                }
            }
        })
        .collect();
    let mut s = String::new();

    // Bridge family: anti-spoofing and marks.
    let (mut filtered, mut macs, mut v4, mut v6, mut src, mut dst) = (vec![], vec![], vec![], vec![], vec![], vec![]);
    for (i, p) in ports.iter().enumerate() {
        let n = i + 1;
        let dev = format!("\"{}\"", p.device());
        let (m, a4, a6) = sources(p);
        filtered.push(dev.clone());
        macs.extend(m.iter().map(|m| format!("{dev} . {m}")));
        v4.extend(a4.iter().map(|a| format!("{dev} . {a}")));
        v6.extend(a6.iter().map(|a| format!("{dev} . {a}")));
        src.push(format!("{dev} : {n:#x}"));
        dst.push(format!("{dev} : jump to_{n}"));
    }
    s.push_str("table bridge stratus\ndelete table bridge stratus\ntable bridge stratus {\n");
    s.push_str(&named("set", "filtered", "ifname", "", &filtered));
    s.push_str(&named("set", "macs", "ifname . ether_addr", "", &macs));
    s.push_str(&named("set", "v4", "ifname . ipv4_addr", "interval", &v4));
    s.push_str(&named("set", "v6", "ifname . ipv6_addr", "interval", &v6));
    s.push_str(&named("map", "sender", "ifname : mark", "", &src));
    s.push_str(&named("map", "receiver", "ifname : verdict", "", &dst));
    s.push_str("  chain prerouting {\n    type filter hook prerouting priority -200; policy accept;\n");
    s.push_str("    iifname @filtered jump guard\n  }\n");
    s.push_str("  chain guard {\n");
    s.push_str("    iifname . ether saddr != @macs drop\n");
    s.push_str("    ether type arp iifname . arp saddr ether != @macs drop\n");
    s.push_str("    ether type arp arp saddr ip != 0.0.0.0 iifname . arp saddr ip != @v4 drop\n");
    s.push_str("    ip protocol udp udp sport 67 drop\n");
    s.push_str("    ip6 nexthdr udp udp sport 547 drop\n");
    s.push_str("    ip6 nexthdr ipv6-icmp icmpv6 type nd-router-advert drop\n");
    s.push_str("    ip saddr 0.0.0.0 udp dport 67 return\n");
    s.push_str("    ether type ip iifname . ip saddr != @v4 drop\n");
    s.push_str("    ether type ip6 ip6 saddr != { ::, fe80::/10 } iifname . ip6 saddr != @v6 drop\n");
    s.push_str("    meta mark set iifname map @sender\n  }\n");
    s.push_str("  chain forward {\n    type filter hook forward priority -200; policy accept;\n");
    s.push_str("    oifname vmap @receiver\n  }\n");
    for n in 1..=ports.len() {
        let _ = writeln!(s, "  chain to_{n} {{\n    meta mark set meta mark and 0x0000ffff or {:#x}\n  }}", n << 16);
    }
    s.push_str("}\n");

    // Inet family: conntrack zones and stateful security groups.
    s.push_str("table inet stratus\ndelete table inet stratus\ntable inet stratus {\n");
    for (g, n) in &remote_sets {
        let members = d.security_group_members.get(g).cloned().unwrap_or_default();
        for (suffix, ty, v6) in [("v4", "ipv4_addr", false), ("v6", "ipv6_addr", true)] {
            let mut elems: Vec<String> = members.iter().filter(|a| is_v6(a) == v6).cloned().collect();
            elems.sort();
            elems.dedup();
            s.push_str(&named("set", &format!("rg{n}{suffix}"), ty, "interval", &elems));
        }
    }
    let egress: Vec<String> =
        combo_of.iter().enumerate().map(|(i, c)| format!("{:#x} : jump egress_{c}", i + 1)).collect();
    let ingress: Vec<String> =
        combo_of.iter().enumerate().map(|(i, c)| format!("{:#x} : jump ingress_{c}", (i + 1) << 16)).collect();
    s.push_str(&named("map", "from_port", "mark : verdict", "", &egress));
    s.push_str(&named("map", "to_port", "mark : verdict", "", &ingress));
    s.push_str("  chain zones {\n    type filter hook prerouting priority raw; policy accept;\n");
    let zones: Vec<String> = bridges.values().enumerate().map(|(i, b)| format!("\"{b}\" : {}", i + 1)).collect();
    if !zones.is_empty() {
        let _ = writeln!(s, "    ct zone set iifname map {}", set_of(&zones));
    }
    s.push_str("  }\n  chain forward {\n    type filter hook forward priority 0; policy accept;\n");
    s.push_str("    meta mark and 0x0000ffff vmap @from_port\n    meta mark and 0xffff0000 vmap @to_port\n  }\n");
    for (i, combo) in combos.iter().enumerate() {
        let c = i + 1;
        let rules: Vec<&Rule> =
            combo.iter().filter_map(|g| groups.get(g.as_str())).flat_map(|g| g.rules.iter()).collect();
        let _ = writeln!(s, "  chain egress_{c} {{");
        s.push_str("    ct state established,related return\n    ct state invalid drop\n");
        s.push_str("    udp sport 68 udp dport 67 return\n    udp sport 546 udp dport 547 return\n");
        for t in ["nd-neighbor-solicit", "nd-neighbor-advert", "nd-router-solicit"] {
            let _ = writeln!(s, "    icmpv6 type {t} return");
        }
        for r in rules.iter().filter(|r| r.direction == "egress") {
            if let Some(m) = rule_match(r, false, &remote_sets) {
                let _ = writeln!(s, "    {m} return");
            }
        }
        s.push_str("    drop\n  }\n");
        let _ = writeln!(s, "  chain ingress_{c} {{");
        s.push_str("    ct state established,related accept\n    ct state invalid drop\n");
        s.push_str("    udp sport 67 udp dport 68 accept\n    udp sport 547 udp dport 546 accept\n");
        for t in ["nd-neighbor-solicit", "nd-neighbor-advert", "nd-router-advert"] {
            let _ = writeln!(s, "    icmpv6 type {t} accept");
        }
        for r in rules.iter().filter(|r| r.direction == "ingress") {
            if let Some(m) = rule_match(r, true, &remote_sets) {
                let _ = writeln!(s, "    {m} accept");
            }
        }
        s.push_str("    drop\n  }\n");
    }
    s.push_str("}\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AddressPair, FixedIp, SecurityGroup};

    fn rule(dir: &str, proto: Option<&str>, min: Option<i64>, max: Option<i64>) -> Rule {
        Rule {
            id: "r".into(),
            direction: dir.into(),
            ethertype: "IPv4".into(),
            protocol: proto.map(str::to_string),
            port_range_min: min,
            port_range_max: max,
            ..Default::default()
        }
    }

    #[test]
    fn unwritable_ports_and_rules_are_found() {
        let mut p = Port { id: "p".into(), mac_address: "fa:16:3e:00:00:01".into(), ..Default::default() };
        assert_eq!(port_problem(&p), None);
        p.allowed_address_pairs = vec![AddressPair { ip_address: "10.62.0.50/33".into(), mac_address: None }];
        assert!(port_problem(&p).unwrap().contains("10.62.0.50/33"));
        p.allowed_address_pairs = vec![AddressPair { ip_address: "::1/255".into(), mac_address: None }];
        assert!(port_problem(&p).is_some());
        p.allowed_address_pairs = vec![AddressPair { ip_address: "10.62.0.0/24".into(), mac_address: None }];
        assert_eq!(port_problem(&p), None);
        p.fixed_ips = vec![FixedIp { ip_address: "10.0.0.1; flush ruleset".into(), ..Default::default() }];
        assert!(port_problem(&p).is_some());
        let mut r = rule("ingress", None, None, None);
        r.remote_ip_prefix = Some("10.0.0.0/40".into());
        assert!(rule_match(&r, true, &BTreeMap::new()).is_none(), "a rule nft cannot take allows nothing");
    }

    #[test]
    fn rules_become_matches() {
        let none = BTreeMap::new();
        assert_eq!(
            rule_match(&rule("ingress", Some("tcp"), Some(22), Some(22)), true, &none).unwrap(),
            "meta nfproto ipv4 meta l4proto tcp tcp dport 22"
        );
        assert_eq!(
            rule_match(&rule("ingress", Some("udp"), Some(1000), Some(2000)), true, &none).unwrap(),
            "meta nfproto ipv4 meta l4proto udp udp dport 1000-2000"
        );
        assert_eq!(
            rule_match(&rule("ingress", Some("icmp"), Some(8), None), true, &none).unwrap(),
            "meta nfproto ipv4 meta l4proto icmp icmp type 8"
        );
        assert_eq!(rule_match(&rule("egress", None, None, None), false, &none).unwrap(), "meta nfproto ipv4");
        assert_eq!(
            rule_match(&rule("ingress", Some("112"), None, None), true, &none).unwrap(),
            "meta nfproto ipv4 meta l4proto 112"
        );
        assert!(rule_match(&rule("ingress", Some("bogus"), None, None), true, &none).is_none());
        let mut r = rule("ingress", Some("icmp"), None, None);
        r.ethertype = "IPv6".into();
        r.remote_ip_prefix = Some("2001:db8::/64".into());
        assert_eq!(
            rule_match(&r, true, &none).unwrap(),
            "meta nfproto ipv6 ip6 saddr 2001:db8::/64 meta l4proto ipv6-icmp"
        );
        let mut r = rule("egress", Some("tcp"), Some(80), Some(80));
        r.remote_group_id = Some("g".into());
        let sets = BTreeMap::from([("g".to_string(), 3usize)]);
        assert_eq!(
            rule_match(&r, false, &sets).unwrap(),
            "meta nfproto ipv4 ip daddr @rg3v4 meta l4proto tcp tcp dport 80"
        );
        // A remote group the service did not describe matches nothing.
        assert!(rule_match(&r, false, &none).is_none());
    }

    #[test]
    fn ruleset_covers_filtered_ports_only() {
        let port = |id: &str, ip: &str, secure: bool| Port {
            id: id.into(),
            network_id: "n".into(),
            mac_address: "FA:16:3E:00:00:01".into(),
            fixed_ips: vec![FixedIp { subnet_id: "s".into(), ip_address: ip.into() }],
            port_security_enabled: Some(secure),
            security_groups: vec!["g".into()],
            allowed_address_pairs: vec![AddressPair { ip_address: "10.9.0.0/24".into(), mac_address: None }],
            ..Default::default()
        };
        let d = DesiredState {
            ports: vec![
                port("bbbb", "10.0.0.5", true),
                port("aaaa", "10.0.0.4", true),
                port("cccc", "10.0.0.6", false),
            ],
            security_groups: vec![SecurityGroup {
                id: "g".into(),
                rules: vec![rule("ingress", Some("tcp"), Some(22), Some(22)), rule("egress", None, None, None)],
            }],
            ..Default::default()
        };
        let bridges = Bridges::from([("n".to_string(), "stb-n".to_string())]);
        let s = render(&d, &bridges);
        assert!(s.contains("elements = { \"tapaaaa\", \"tapbbbb\" }"), "{s}");
        assert!(!s.contains("tapcccc"), "a port without port security is not filtered");
        assert!(s.contains("\"tapaaaa\" . fa:16:3e:00:00:01"));
        assert!(s.contains("\"tapaaaa\" . 10.0.0.4, \"tapaaaa\" . 10.9.0.0/24"));
        assert!(s.contains("\"tapbbbb\" : 0x2"));
        assert!(s.contains("meta nfproto ipv4 meta l4proto tcp tcp dport 22 accept"));
        assert!(s.contains("ct zone set iifname map { \"stb-n\" : 1 }"));
        assert!(s.contains("0x20000 : jump ingress_1"), "both ports share their group's chains");
        assert!(!s.contains("ingress_2"));
        check_with_nft(&s);
        check_with_nft(&render(&DesiredState::default(), &Bridges::new()));
    }

    /// nftables parses the script (`nft --check`, which changes nothing), where this
    /// test may run nft.
    fn check_with_nft(script: &str) {
        if !crate::kernel::available() {
            eprintln!("nft not usable here: syntax check skipped");
            return;
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(crate::kernel::run_with_input("nft", &["--check", "-f", "-"], Some(script)))
            .unwrap_or_else(|e| panic!("{e}\n{script}"));
    }
}
