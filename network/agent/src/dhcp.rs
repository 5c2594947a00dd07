//! DHCP the way Neutron does it: per network, a namespace `stratus-dhcp-<network>` with a
//! veth leg on the network's bridge carrying the host's DHCP port (its MAC and
//! addresses), and dnsmasq in it answering only for the ports it knows: static MAC→IP
//! entries from a hosts file, gateway, DNS servers, host routes and MTU from an options
//! file. Port changes rewrite the files and send SIGHUP (no restart); the leases of
//! entries that went (a deleted port, a changed MAC) are released with `dhcp_release`,
//! as Neutron does, because dnsmasq keeps them in memory and would refuse the address
//! to the next port that gets it (or is restarted, where `dhcp_release` is missing). A
//! change of subnets restarts dnsmasq. dnsmasq runs as a daemon of its own, so an agent that dies
//! leaves DHCP answering.

use crate::kernel::links::{self, Leg, Link};
use crate::model::{device_name, Network};
use anyhow::Context;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// One network's DHCP server as it must be.
#[derive(Debug, Clone, PartialEq)]
pub struct DhcpServer {
    pub network_id: String,
    pub namespace: String,
    /// Carries the DHCP port: its MAC and addresses.
    pub leg: Leg,
    pub ranges: Vec<String>,
    pub hosts: String,
    pub opts: String,
}

/// `prefix` is the agent's own namespace prefix (see [`crate::kernel::netns_prefix`]).
pub fn namespace(prefix: &str, network_id: &str) -> String {
    format!("{prefix}dhcp-{network_id}")
}

/// The network a DHCP namespace of this agent serves.
pub fn network_of<'a>(prefix: &str, namespace: &'a str) -> Option<&'a str> {
    namespace.strip_prefix(prefix)?.strip_prefix("dhcp-")
}

/// `10.0.0.0/24` → (network, netmask, prefix length).
pub fn v4_cidr(cidr: &str) -> Option<(std::net::Ipv4Addr, std::net::Ipv4Addr, u8)> {
    let (addr, len) = cidr.split_once('/')?;
    let addr: std::net::Ipv4Addr = addr.parse().ok()?;
    let len: u8 = len.parse().ok().filter(|l| *l <= 32)?;
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Some(((u32::from(addr) & mask).into(), mask.into(), len))
}

/// The IPv4 subnets of a network that want DHCP.
fn dhcp_subnets(net: &Network) -> impl Iterator<Item = &crate::model::Subnet> {
    net.subnets.iter().filter(|s| s.enable_dhcp && s.ip_version != 6 && !s.cidr.contains(':'))
}

/// Whether the host's DHCP port is missing or does not cover exactly the DHCP subnets.
pub fn needs_port(net: &Network) -> bool {
    let mut want: Vec<&str> = net.subnets.iter().filter(|s| s.enable_dhcp).map(|s| s.id.as_str()).collect();
    want.sort();
    match &net.dhcp_port {
        None => !want.is_empty(),
        Some(p) => {
            let mut have: Vec<&str> = p.fixed_ips.iter().map(|f| f.subnet_id.as_str()).collect();
            have.sort();
            have.dedup();
            have != want
        }
    }
}

/// The server for `net`, when it has IPv4 subnets with DHCP and a DHCP port. With
/// `metadata`, the namespace also holds the metadata address and DHCP gives guests a
/// route to it through the DHCP port (Neutron's isolated metadata).
pub fn plan(prefix: &str, net: &Network, bridge: &str, metadata: bool) -> Option<DhcpServer> {
    let port = net.dhcp_port.as_ref()?;
    let subnets: Vec<_> = dhcp_subnets(net).collect();
    if subnets.is_empty() {
        return None;
    }
    let mtu = net.mtu.unwrap_or(1500);
    let mut addresses = Vec::new();
    let mut ranges = Vec::new();
    let mut opts = String::new();
    for s in &subnets {
        let (netaddr, mask, len) = v4_cidr(&s.cidr)?;
        let own = port.fixed_ips.iter().find(|f| f.subnet_id == s.id);
        if let Some(ip) = own {
            addresses.push(format!("{}/{len}", ip.ip_address));
        }
        let tag = format!("subnet-{}", s.id);
        ranges.push(format!("set:{tag},{netaddr},static,{mask},86400s"));
        if let Some(gw) = s.gateway_ip.as_deref().filter(|g| !g.is_empty()) {
            opts.push_str(&format!("tag:{tag},option:router,{gw}\n"));
        }
        if !s.dns_nameservers.is_empty() {
            opts.push_str(&format!("tag:{tag},option:dns-server,{}\n", s.dns_nameservers.join(",")));
        }
        let mut routes: Vec<String> = s
            .host_routes
            .iter()
            .filter(|r| !r.destination.contains(':'))
            .map(|r| format!("{},{}", r.destination, r.nexthop))
            .collect();
        if let (true, Some(own)) = (metadata, own) {
            routes.push(format!("{}/32,{}", crate::metadata::METADATA_IP, own.ip_address));
        }
        if !routes.is_empty() {
            // Clients that take classless routes ignore the router option: repeat the default.
            let mut all = routes.clone();
            if let Some(gw) = s.gateway_ip.as_deref().filter(|g| !g.is_empty()) {
                all.push(format!("0.0.0.0/0,{gw}"));
            }
            opts.push_str(&format!("tag:{tag},option:classless-static-route,{}\n", all.join(",")));
        }
        opts.push_str(&format!("tag:{tag},option:mtu,{mtu}\n"));
    }
    let mut hosts = String::new();
    let mut clients: Vec<_> = net.dhcp_hosts.iter().collect();
    clients.sort_by(|a, b| a.id.cmp(&b.id));
    for c in clients {
        for f in c.fixed_ips.iter().filter(|f| subnets.iter().any(|s| s.id == f.subnet_id)) {
            let name = format!("host-{}", f.ip_address.replace('.', "-"));
            hosts.push_str(&format!("{},{name},{}\n", c.mac_address.to_lowercase(), f.ip_address));
        }
    }
    if metadata {
        addresses.push(format!("{}/32", crate::metadata::METADATA_IP));
    }
    Some(DhcpServer {
        network_id: net.id.clone(),
        namespace: namespace(prefix, &net.id),
        leg: Leg {
            outer: device_name("std", &net.id),
            inner: device_name("sti", &net.id),
            bridge: bridge.to_string(),
            mtu,
            mac: port.mac_address.to_lowercase(),
            addresses,
        },
        ranges,
        hosts,
        opts,
    })
}

impl DhcpServer {
    fn args(&self, dir: &Path) -> Vec<String> {
        let p = |f: &str| dir.join(f).display().to_string();
        let mut a = vec![
            "--no-hosts".to_string(),
            "--no-resolv".into(),
            "--port=0".into(),
            "--conf-file=/dev/null".into(),
            format!("--pid-file={}", p("pid")),
            format!("--dhcp-hostsfile={}", p("hosts")),
            format!("--dhcp-optsfile={}", p("opts")),
            format!("--log-facility={}", p("log")),
            "--leasefile-ro".into(),
            "--dhcp-authoritative".into(),
            "--bind-interfaces".into(),
            format!("--interface={}", self.leg.inner),
            "--except-interface=lo".into(),
            "--domain=openstacklocal".into(),
        ];
        a.extend(self.ranges.iter().map(|r| format!("--dhcp-range={r}")));
        a
    }
}

/// Whether the network's dnsmasq is running.
pub fn running(root: &Path, network_id: &str) -> bool {
    running_pid(&state_dir(root, network_id)).is_some()
}

fn running_pid(dir: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(dir.join("pid")).ok()?.trim().parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    String::from_utf8_lossy(&cmdline).contains("dnsmasq").then_some(pid)
}

/// Writes `text` to `path` unless it is already there; says whether it changed.
fn write_if_changed(path: &Path, text: &str) -> anyhow::Result<bool> {
    if std::fs::read_to_string(path).ok().as_deref() == Some(text) {
        return Ok(false);
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
    std::fs::rename(&tmp, path)?;
    Ok(true)
}

pub fn state_dir(root: &Path, network_id: &str) -> PathBuf {
    root.join("dhcp").join(network_id)
}

/// Brings one server to its plan. `host_links` are the host's links; `namespaces` the
/// agent's namespaces that exist.
/// Returns whether the namespace was made anew (listeners inside the old one are gone).
pub async fn converge(s: &DhcpServer, root: &Path, host_links: &[Link], namespaces: &[String]) -> anyhow::Result<bool> {
    let dir = state_dir(root, &s.network_id);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // dnsmasq rereads its files on SIGHUP as an unprivileged user.
    for d in dir.ancestors().take_while(|d| d.starts_with(root)) {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))?;
    }
    let created = !namespaces.contains(&s.namespace);
    if created {
        links::netns_add(&s.namespace).await?;
    }
    let inside = links::list(Some(&s.namespace)).await?;
    links::ensure_leg(&s.namespace, &s.leg, host_links, &inside, true).await?;

    let old_hosts = std::fs::read_to_string(dir.join("hosts")).unwrap_or_default();
    let files_changed = write_if_changed(&dir.join("hosts"), &s.hosts)? | write_if_changed(&dir.join("opts"), &s.opts)?;
    let args = s.args(&dir);
    let mut args_changed = write_if_changed(&dir.join("args"), &args.join("\n"))?;
    let gone = vanished(&old_hosts, &s.hosts);
    if !gone.is_empty() && !args_changed && running_pid(&dir).is_some() && !release(s, &gone).await {
        args_changed = true;
    }
    match running_pid(&dir) {
        Some(pid) if !args_changed => {
            if files_changed {
                kill(Pid::from_raw(pid), Signal::SIGHUP)?;
            }
        }
        running => {
            if let Some(pid) = running {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
                wait_gone(pid).await;
            }
            start(&s.namespace, &args).await?;
        }
    }
    Ok(created)
}

/// The (IP, MAC) pairs of `old` hosts-file entries that `new` no longer has.
fn vanished(old: &str, new: &str) -> Vec<(String, String)> {
    let pair = |line: &str| {
        let f: Vec<&str> = line.split(',').collect();
        (f.len() == 3).then(|| (f[2].to_string(), f[0].to_string()))
    };
    let kept: std::collections::HashSet<_> = new.lines().filter_map(pair).collect();
    old.lines().filter_map(pair).filter(|p| !kept.contains(p)).collect()
}

/// Tells the running dnsmasq that these leases are over; false when that could not be
/// done (no `dhcp_release`), so the caller restarts it instead.
async fn release(s: &DhcpServer, gone: &[(String, String)]) -> bool {
    for (ip, mac) in gone {
        let done = tokio::process::Command::new("ip")
            .args(["netns", "exec", &s.namespace, "dhcp_release", &s.leg.inner, ip, mac])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        if !matches!(done, Ok(st) if st.success()) {
            tracing::debug!(network = %s.network_id, ip, "dhcp_release failed: restarting dnsmasq");
            return false;
        }
    }
    true
}

async fn wait_gone(pid: i32) {
    for _ in 0..50 {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn start(namespace: &str, args: &[String]) -> anyhow::Result<()> {
    let status = tokio::process::Command::new("ip")
        .args(["netns", "exec", namespace, "dnsmasq"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .context("cannot run dnsmasq")?;
    anyhow::ensure!(status.success(), "dnsmasq did not start in {namespace} ({status})");
    Ok(())
}

/// Stops and removes one network's DHCP server, whatever of it exists.
pub async fn remove(
    prefix: &str,
    root: &Path,
    network_id: &str,
    host_links: &[Link],
    namespaces: &[String],
) -> anyhow::Result<()> {
    let dir = state_dir(root, network_id);
    if let Some(pid) = running_pid(&dir) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        wait_gone(pid).await;
    }
    let ns = namespace(prefix, network_id);
    if namespaces.contains(&ns) {
        links::netns_delete(&ns).await?;
    }
    let outer = device_name("std", network_id);
    if host_links.iter().any(|l| l.ifname == outer) {
        links::delete(None, &outer).await?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AddressedPort, FixedIp, HostRoute, Subnet};

    fn net() -> Network {
        Network {
            id: "net-1".into(),
            mtu: Some(1450),
            subnets: vec![Subnet {
                id: "sub-1".into(),
                cidr: "10.0.0.0/24".into(),
                ip_version: 4,
                gateway_ip: Some("10.0.0.1".into()),
                enable_dhcp: true,
                dns_nameservers: vec!["10.0.0.53".into()],
                host_routes: vec![HostRoute { destination: "192.168.0.0/16".into(), nexthop: "10.0.0.254".into() }],
            }],
            dhcp_port: Some(AddressedPort {
                id: "dhcp".into(),
                mac_address: "FA:16:3E:00:00:02".into(),
                fixed_ips: vec![FixedIp { subnet_id: "sub-1".into(), ip_address: "10.0.0.2".into() }],
                ..Default::default()
            }),
            dhcp_hosts: vec![AddressedPort {
                id: "p1".into(),
                mac_address: "fa:16:3e:00:00:10".into(),
                fixed_ips: vec![FixedIp { subnet_id: "sub-1".into(), ip_address: "10.0.0.10".into() }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn plans_static_leases_and_options() {
        let s = plan("stratus-h1-", &net(), "stb-net-1", false).unwrap();
        assert_eq!(s.namespace, "stratus-h1-dhcp-net-1");
        assert_eq!(network_of("stratus-h1-", &s.namespace), Some("net-1"));
        assert_eq!(network_of("stratus-h2-", &s.namespace), None);
        assert_eq!(s.leg.addresses, vec!["10.0.0.2/24"]);
        assert_eq!(s.leg.mac, "fa:16:3e:00:00:02");
        assert_eq!(s.ranges, vec!["set:subnet-sub-1,10.0.0.0,static,255.255.255.0,86400s"]);
        assert_eq!(s.hosts, "fa:16:3e:00:00:10,host-10-0-0-10,10.0.0.10\n");
        assert!(s.opts.contains("tag:subnet-sub-1,option:router,10.0.0.1\n"));
        assert!(s.opts.contains("option:dns-server,10.0.0.53\n"));
        assert!(s.opts.contains("option:classless-static-route,192.168.0.0/16,10.0.0.254,0.0.0.0/0,10.0.0.1\n"));
        assert!(s.opts.contains("option:mtu,1450\n"));
        assert!(!needs_port(&net()));
    }

    #[test]
    fn metadata_gets_an_address_and_a_route() {
        let s = plan("p-", &net(), "b", true).unwrap();
        assert_eq!(s.leg.addresses, vec!["10.0.0.2/24", "169.254.169.254/32"]);
        assert!(s.opts.contains(
            "option:classless-static-route,192.168.0.0/16,10.0.0.254,169.254.169.254/32,10.0.0.2,0.0.0.0/0,10.0.0.1\n"
        ));
    }

    #[test]
    fn a_missing_or_stale_port_is_asked_for() {
        let mut n = net();
        n.dhcp_port = None;
        assert!(needs_port(&n));
        assert!(plan("p-", &n, "b", false).is_none());
        let mut n = net();
        n.subnets[0].enable_dhcp = false;
        assert!(needs_port(&n), "a port on a subnet without DHCP must go");
        assert!(plan("p-", &n, "b", false).is_none());
    }

    #[test]
    fn vanished_entries_are_the_released_leases() {
        let old = "fa:16:3e:00:00:10,host-10-0-0-10,10.0.0.10\nfa:16:3e:00:00:11,host-10-0-0-11,10.0.0.11\n";
        let new = "fa:16:3e:00:00:12,host-10-0-0-10,10.0.0.10\nfa:16:3e:00:00:11,host-10-0-0-11,10.0.0.11\n";
        assert_eq!(vanished(old, new), vec![("10.0.0.10".to_string(), "fa:16:3e:00:00:10".to_string())]);
        assert!(vanished("", new).is_empty());
        assert_eq!(vanished(old, "").len(), 2);
    }

    #[test]
    fn cidrs() {
        assert_eq!(v4_cidr("10.1.2.3/20"), Some(("10.1.0.0".parse().unwrap(), "255.255.240.0".parse().unwrap(), 20)));
        assert!(v4_cidr("10.0.0.0/33").is_none());
    }
}
