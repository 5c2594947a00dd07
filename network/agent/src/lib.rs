//! The network agent: a level-triggered reconciler for one host. It reads the host's
//! desired state from the network service (nudged by bus events, and in full every
//! `resync` seconds), observes the kernel, and converges it:
//! - a Linux bridge per network (`stb-<network>`), or the operator's bridge for a mapped
//!   flat network;
//! - each bound port's device (`tap<port>`: compute's tap, or a test's veth) on its
//!   network's bridge, with the MTU of the network, reported `ACTIVE` once wired;
//! - anti-spoofing and stateful security groups in nftables ([`firewall`]);
//! - a DHCP server per network ([`dhcp`]).
//!
//! It removes only what it owns, recognised by name prefix, and reports port status and
//! a heartbeat to the service.

pub mod client;
pub mod config;
pub mod dhcp;
pub mod firewall;
pub mod kernel;
pub mod metadata;
pub mod model;
pub mod overlay;
pub mod router;

use kernel::links::{self, Link};
use kernel::nft;
use model::{device_name, DesiredState, Network};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stratus_common::bus::Bus;
use tokio::sync::{Mutex, Notify};

/// Prefix of the bridges the agent owns.
pub const BRIDGE_PREFIX: &str = "stb-";
/// Prefix of the host end of DHCP veths.
pub const DHCP_VETH_PREFIX: &str = "std";

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub host: String,
    pub state_dir: PathBuf,
    /// Physical network name → existing bridge, for flat networks.
    pub bridge_mappings: BTreeMap<String, String>,
    /// Physical network name → host interface the agent puts on the network's bridge.
    pub interface_mappings: BTreeMap<String, String>,
    pub resync: Duration,
    pub report: Duration,
    /// Whether this host runs the routers (a network node).
    pub routers: bool,
    /// This host's VXLAN tunnel address; empty = no tunnels (a single host).
    pub tunnel_ip: String,
    /// Where the metadata proxy forwards (the compute metadata API); empty = no proxy.
    pub metadata_url: String,
    /// Shared secret signing the instance id for the metadata API.
    pub metadata_secret: String,
}

/// `public:br-ex,other:br-other` → map.
pub fn parse_mappings(text: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item.split_once(':') {
            Some((net, br)) if !net.is_empty() && !br.is_empty() && br.len() <= 15 => {
                out.insert(net.trim().to_string(), br.trim().to_string());
            }
            _ => anyhow::bail!("invalid bridge mapping '{item}': use physnet:bridge"),
        }
    }
    Ok(out)
}

/// The kernel's host name, which ports are bound to by default.
pub fn default_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Outcome {
    pub ports: BTreeMap<String, &'static str>,
    /// The ports whose observed status differs from the service's: what to report.
    pub changed: BTreeMap<String, &'static str>,
    pub bridges: usize,
    pub dhcp_servers: usize,
    pub routers: usize,
    pub ruleset_applied: bool,
}

pub struct Agent {
    cfg: AgentConfig,
    ns_prefix: String,
    client: client::Client,
    applied_ruleset: Mutex<Option<String>>,
    /// Router id → NAT script last applied in its namespace.
    applied_nat: Mutex<BTreeMap<String, String>>,
    metadata: Option<Arc<metadata::Proxy>>,
    /// Network id → the metadata proxy serving in its DHCP namespace.
    proxies: Mutex<BTreeMap<String, tokio::task::JoinHandle<()>>>,
    /// Router id → the metadata proxy serving in its namespace.
    router_proxies: Mutex<BTreeMap<String, tokio::task::JoinHandle<()>>>,
    /// Plans last converged (DHCP servers and routers): a pass skips the namespace work
    /// of an unchanged plan whose namespace still exists, except on a full pass.
    converged: Mutex<Converged>,
}

#[derive(Default)]
struct Converged {
    dhcp: BTreeMap<String, dhcp::DhcpServer>,
    routers: BTreeMap<String, router::RouterPlan>,
    tunnels: BTreeMap<String, overlay::Vxlan>,
    last_full: Option<Instant>,
    retries: Retries,
}

/// The error policy of a pass, per object (a bridge, tunnel, port, DHCP server, router,
/// leftover link): one that fails is logged with its id and tried again after a backoff
/// (1 s, doubling to 5 minutes) while every other object converges; success forgets it.
#[derive(Default)]
struct Retries(BTreeMap<String, (u32, Instant)>);

impl Retries {
    const MAX: Duration = Duration::from_secs(300);

    /// Whether `key` may be tried in this pass.
    fn due(&self, key: &str) -> bool {
        self.0.get(key).is_none_or(|(_, at)| Instant::now() >= *at)
    }

    /// Records the outcome of trying `key`: its value when it worked.
    fn record<T>(&mut self, key: &str, result: anyhow::Result<T>) -> Option<T> {
        match result {
            Ok(v) => {
                self.0.remove(key);
                Some(v)
            }
            Err(e) => {
                let failures = self.0.get(key).map_or(0, |(n, _)| *n) + 1;
                let wait = Duration::from_secs(1u64 << (failures - 1).min(9)).min(Self::MAX);
                tracing::warn!(object = key, failures, retry_in = ?wait, error = %format!("{e:#}"), "not converged");
                self.0.insert(key.to_string(), (failures, Instant::now() + wait));
                None
            }
        }
    }
}

/// Every namespace is checked in full at least this often, whatever the plans say.
const FULL_PASS: Duration = Duration::from_secs(60);

impl Agent {
    pub fn new(cfg: AgentConfig, client: client::Client) -> Self {
        let metadata =
            (!cfg.metadata_url.is_empty()).then(|| metadata::Proxy::new(&cfg.metadata_url, &cfg.metadata_secret));
        Self {
            ns_prefix: kernel::netns_prefix(&cfg.host),
            cfg,
            client,
            applied_ruleset: Mutex::new(None),
            applied_nat: Mutex::new(BTreeMap::new()),
            metadata,
            proxies: Mutex::new(BTreeMap::new()),
            router_proxies: Mutex::new(BTreeMap::new()),
            converged: Mutex::new(Converged::default()),
        }
    }

    pub fn host(&self) -> &str {
        &self.cfg.host
    }

    fn bridge_of(&self, n: &Network) -> (String, bool) {
        if n.network_type.as_deref() == Some("flat") {
            if let Some(b) = n.physical_network.as_deref().and_then(|p| self.cfg.bridge_mappings.get(p)) {
                return (b.clone(), false);
            }
        }
        (device_name(BRIDGE_PREFIX, &n.id), true)
    }

    /// Reads the desired state, asking the service for the DHCP ports it lacks first.
    async fn desired(&self) -> anyhow::Result<DesiredState> {
        let d = self.client.desired_state(self.cfg.routers).await?;
        let mut asked = false;
        for n in d.networks.iter().filter(|n| dhcp::needs_port(n)) {
            self.client.dhcp_port_ensure(&n.id).await?;
            asked = true;
        }
        for n in &d.stale_dhcp_networks {
            self.client.dhcp_port_release(n).await?;
        }
        if asked {
            return self.client.desired_state(self.cfg.routers).await;
        }
        Ok(d)
    }

    /// One reconciliation pass.
    pub async fn converge(&self) -> anyhow::Result<Outcome> {
        let t = Instant::now();
        let mut phases: Vec<(&str, u128)> = Vec::new();
        let mut d = self.desired().await?;
        phases.push(("desired", t.elapsed().as_millis()));
        // Ports whose entries cannot be written are left unwired and reported ERROR;
        // every other port still converges.
        let mut refused: BTreeMap<String, String> = BTreeMap::new();
        for p in &d.ports {
            if let Some(why) = firewall::port_problem(p) {
                refused.insert(p.id.clone(), why);
            }
        }
        let reported: BTreeMap<String, String> = d.ports.iter().map(|p| (p.id.clone(), p.status.clone())).collect();
        d.ports.retain(|p| !refused.contains_key(&p.id));
        if d.ports.iter().any(|p| p.filtered()) {
            enable_bridge_netfilter();
        }
        let mut out = Outcome::default();
        let mut converged = self.converged.lock().await;
        let full = converged.last_full.is_none_or(|t| t.elapsed() >= FULL_PASS);
        if full {
            converged.dhcp.clear();
            converged.routers.clear();
            converged.tunnels.clear();
            converged.last_full = Some(Instant::now());
        }
        let bridges: BTreeMap<String, (String, bool)> =
            d.networks.iter().map(|n| (n.id.clone(), self.bridge_of(n))).collect();

        // Bridges. The host's links are listed once per pass, and again only after this
        // pass made some (listing thousands of links costs tens of milliseconds).
        let mut host_links = links::list(None).await?;
        let mut made = false;
        let find = |links: &[Link], name: &str| links.iter().find(|l| l.ifname == name).cloned();
        for n in &d.networks {
            let (name, owned) = &bridges[&n.id];
            let key = format!("bridge {name} (network {})", n.id);
            if !converged.retries.due(&key) {
                continue;
            }
            let result = match find(&host_links, name) {
                Some(l) if !l.up() => links::ip(None, &["link", "set", name, "up"]).await.map(|_| ()),
                Some(_) => Ok(()),
                None if *owned => {
                    made = true;
                    match links::bridge_add(name, n.mtu.unwrap_or(1500)).await {
                        Ok(_) => links::ip(None, &["link", "set", name, "up"]).await.map(|_| ()),
                        Err(e) => Err(e),
                    }
                }
                None => {
                    tracing::warn!(bridge = %name, network = %n.id, "mapped bridge does not exist");
                    Ok(())
                }
            };
            converged.retries.record(&key, result);
        }
        if std::mem::take(&mut made) {
            host_links = links::list(None).await?;
        }
        // Uplinks of flat networks mapped to an interface.
        for n in d.networks.iter().filter(|n| n.network_type.as_deref() == Some("flat")) {
            let Some(ifname) = n.physical_network.as_deref().and_then(|p| self.cfg.interface_mappings.get(p)) else {
                continue;
            };
            match find(&host_links, ifname) {
                Some(l) => {
                    let key = format!("uplink {ifname} (network {})", n.id);
                    if converged.retries.due(&key) {
                        let result = links::attach(&l, Some(&bridges[&n.id].0), None).await;
                        converged.retries.record(&key, result);
                    }
                }
                None => tracing::warn!(interface = %ifname, network = %n.id, "mapped interface does not exist"),
            }
        }
        out.bridges = bridges.len();

        // VXLAN towards the other hosts of each network.
        let mut tunnels = BTreeSet::new();
        for n in &d.networks {
            if let Some(v) = overlay::plan(n, &bridges[&n.id].0, &self.cfg.tunnel_ip) {
                tunnels.insert(v.name.clone());
                if converged.tunnels.get(&n.id) == Some(&v) && find(&host_links, &v.name).is_some() {
                    continue;
                }
                converged.tunnels.remove(&n.id);
                let key = format!("tunnel {} (network {})", v.name, n.id);
                if !converged.retries.due(&key) {
                    continue;
                }
                let result = overlay::converge(&v, &self.cfg.tunnel_ip, &host_links).await;
                if let Some(m) = converged.retries.record(&key, result) {
                    made |= m;
                    converged.tunnels.insert(n.id.clone(), v);
                }
            }
        }
        if made {
            host_links = links::list(None).await?;
        }

        phases.push(("bridges", t.elapsed().as_millis()));
        // Filtering before wiring, so no port is ever on a bridge unfiltered.
        let names: firewall::Bridges = bridges.iter().map(|(k, (b, _))| (k.clone(), b.clone())).collect();
        let mut script = firewall::render(&d, &names);
        {
            let mut applied = self.applied_ruleset.lock().await;
            if d.networks.is_empty() && d.ports.is_empty() {
                // Nothing to filter: leave no tables behind.
                if !nft::present().await?.is_empty() {
                    nft::delete_owned().await?;
                    out.ruleset_applied = true;
                }
                *applied = None;
            } else if applied.as_deref() != Some(script.as_str()) || nft::present().await?.len() < nft::TABLES.len() {
                if let Err(e) = nft::apply(&script).await {
                    // Something nft refuses that the checks above did not foresee: find
                    // the ports it comes with (checked, not applied), and go on without.
                    tracing::warn!(error = %e, "ruleset refused; looking for the ports it comes from");
                    for (id, why) in firewall_culprits(&d, &names).await {
                        refused.insert(id, why);
                    }
                    d.ports.retain(|p| !refused.contains_key(&p.id));
                    script = firewall::render(&d, &names);
                    nft::apply(&script).await?;
                }
                *applied = Some(script);
                out.ruleset_applied = true;
            }
        }
        for (id, why) in &refused {
            tracing::warn!(port = %id, reason = %why, "port not wired: its firewall entries cannot be written");
            out.ports.insert(id.clone(), "ERROR");
            if reported.get(id).map(String::as_str) != Some("ERROR") {
                out.changed.insert(id.clone(), "ERROR");
            }
        }

        phases.push(("firewall", t.elapsed().as_millis()));
        // Ports.
        let mut expected: BTreeMap<String, String> = BTreeMap::new(); // device -> bridge
        for p in &d.ports {
            let Some(n) = d.networks.iter().find(|n| n.id == p.network_id) else { continue };
            let bridge = &bridges[&n.id].0;
            let dev = p.device();
            expected.insert(dev.clone(), bridge.clone());
            let status = match find(&host_links, &dev) {
                Some(l) if find(&host_links, bridge).is_some() => {
                    match links::attach_port(&l, bridge, n.mtu, p.admin_state_up != Some(false)).await {
                        Ok(()) if p.admin_state_up == Some(false) => "DOWN",
                        Ok(()) => "ACTIVE",
                        Err(e) => {
                            tracing::warn!(port = %p.id, device = %dev, error = %e, "port not wired");
                            "ERROR"
                        }
                    }
                }
                _ => "DOWN",
            };
            out.ports.insert(p.id.clone(), status);
            if p.status != status {
                out.changed.insert(p.id.clone(), status);
            }
        }
        // Taps left on our bridges by ports that are gone from this host.
        let owned_bridges: BTreeSet<&str> = bridges.values().map(|(b, _)| b.as_str()).collect();
        for l in &host_links {
            let on_ours = l.master.as_deref().is_some_and(|m| owned_bridges.contains(m));
            if on_ours && l.ifname.starts_with("tap") && !expected.contains_key(&l.ifname) {
                let key = format!("stray tap {}", l.ifname);
                if converged.retries.due(&key) {
                    let result = links::ip(None, &["link", "set", &l.ifname, "nomaster"]).await;
                    converged.retries.record(&key, result);
                }
            }
        }

        phases.push(("ports", t.elapsed().as_millis()));
        // DHCP, and the metadata proxy in the same namespace.
        let namespaces = links::namespaces(&self.ns_prefix).await?;
        let mut served = BTreeSet::new();
        if let Some(proxy) = &self.metadata {
            let mut dir = std::collections::HashMap::new();
            for n in &d.networks {
                for h in n.dhcp_hosts.iter().filter(|h| !h.device_id.is_empty()) {
                    for f in &h.fixed_ips {
                        let owner =
                            metadata::Owner { instance_id: h.device_id.clone(), project_id: h.project_id.clone() };
                        dir.insert((n.id.clone(), f.ip_address.clone()), owner);
                    }
                }
            }
            if let Ok(mut d) = proxy.directory.write() {
                *d = dir;
            }
        }
        let mut proxies = self.proxies.lock().await;
        for n in &d.networks {
            if let Some(s) = dhcp::plan(&self.ns_prefix, n, &bridges[&n.id].0, self.metadata.is_some()) {
                let unchanged = converged.dhcp.get(&n.id) == Some(&s)
                    && namespaces.contains(&s.namespace)
                    && dhcp::running(&self.cfg.state_dir, &n.id);
                let key = format!("DHCP server (network {})", n.id);
                if !unchanged && !converged.retries.due(&key) {
                    continue;
                }
                let result = if unchanged {
                    Ok(false)
                } else {
                    dhcp::converge(&s, &self.cfg.state_dir, &host_links, &namespaces).await
                };
                let result = converged.retries.record(&key, result).ok_or("not converged");
                match result {
                    Ok(created) => {
                        converged.dhcp.insert(n.id.clone(), s.clone());
                        if created {
                            if let Some(old) = proxies.remove(&n.id) {
                                old.abort();
                            }
                        }
                    }
                    Err(_) => {
                        // Logged with its backoff by `record`.
                        converged.dhcp.remove(&n.id);
                        continue;
                    }
                }
                served.insert(n.id.clone());
                if let Some(proxy) = &self.metadata {
                    if proxies.get(&n.id).is_none_or(|h| h.is_finished()) {
                        let via = metadata::Via::Network(n.id.clone());
                        if let Some(task) = metadata::start_in_namespace(&s.namespace, via, proxy.clone()) {
                            proxies.insert(n.id.clone(), task);
                        }
                    }
                }
            }
        }
        proxies.retain(|net, task| {
            let keep = served.contains(net);
            if !keep {
                task.abort();
            }
            keep
        });
        drop(proxies);
        out.dhcp_servers = served.len();
        for ns in &namespaces {
            if let Some(net) = dhcp::network_of(&self.ns_prefix, ns).filter(|net| !served.contains(*net)) {
                let key = format!("stale DHCP server (network {net})");
                if converged.retries.due(&key) {
                    let result =
                        dhcp::remove(&self.ns_prefix, &self.cfg.state_dir, net, &host_links, &namespaces).await;
                    if converged.retries.record(&key, result).is_some() {
                        converged.dhcp.remove(net);
                    }
                }
            }
        }

        phases.push(("dhcp", t.elapsed().as_millis()));
        // Routers.
        let mut kept = BTreeSet::new();
        // Host ends of the legs the routers here want; any other `stp…` link is a leftover.
        let mut wanted_legs = BTreeSet::new();
        {
            let mut applied = self.applied_nat.lock().await;
            let names: BTreeMap<String, String> = bridges.iter().map(|(k, (b, _))| (k.clone(), b.clone())).collect();
            let mut router_proxies = self.router_proxies.lock().await;
            if let Some(proxy) = &self.metadata {
                let subnets = d
                    .routers
                    .iter()
                    .map(|r| {
                        let cidrs = r
                            .interfaces
                            .iter()
                            .filter_map(|i| i.cidr.clone().map(|c| (c, i.network_id.clone())))
                            .collect();
                        (r.id.clone(), cidrs)
                    })
                    .collect();
                if let Ok(mut map) = proxy.routers.write() {
                    *map = subnets;
                }
            }
            for r in &d.routers {
                let p = router::plan(&self.ns_prefix, &d, r, &names, self.metadata.is_some());
                kept.insert(r.id.clone());
                wanted_legs.extend(p.legs.iter().map(|l| l.outer.clone()));
                let fresh_namespace = !namespaces.contains(&p.namespace);
                if converged.routers.get(&r.id) != Some(&p) || fresh_namespace {
                    let key = format!("router {}", r.id);
                    if !converged.retries.due(&key) {
                        continue;
                    }
                    let result = router::converge(&p, &host_links, &namespaces, &mut applied).await;
                    if converged.retries.record(&key, result).is_none() {
                        converged.routers.remove(&r.id);
                        continue;
                    }
                    converged.routers.insert(r.id.clone(), p.clone());
                }
                // Its ports are up once its namespace is wired (down while the router
                // is set down), as Neutron's L3 agent reports them.
                let status = if r.admin_state_up == Some(false) { "DOWN" } else { "ACTIVE" };
                let ports = r
                    .interfaces
                    .iter()
                    .map(|i| (&i.port_id, &i.status))
                    .chain(r.gateway.iter().filter_map(|g| g.port_id.as_ref().map(|id| (id, &g.status))));
                for (id, known) in ports {
                    out.ports.insert(id.clone(), status);
                    if known.as_deref() != Some(status) {
                        out.changed.insert(id.clone(), status);
                    }
                }
                // The proxy's socket lives in the namespace: a new namespace needs a new one.
                if fresh_namespace {
                    if let Some(old) = router_proxies.remove(&r.id) {
                        old.abort();
                    }
                }
                if let Some(proxy) = &self.metadata {
                    if router_proxies.get(&r.id).is_none_or(|h| h.is_finished()) {
                        let via = metadata::Via::Router(r.id.clone());
                        if let Some(task) = metadata::start_in_namespace(&p.namespace, via, proxy.clone()) {
                            router_proxies.insert(r.id.clone(), task);
                        }
                    }
                }
            }
            router_proxies.retain(|id, task| {
                let keep = kept.contains(id);
                if !keep {
                    task.abort();
                }
                keep
            });
            drop(router_proxies);
            for ns in &namespaces {
                if let Some(id) = router::router_of(&self.ns_prefix, ns).filter(|id| !kept.contains(*id)) {
                    let key = format!("stale router {id}");
                    if converged.retries.due(&key) {
                        let result = router::remove(ns, &host_links).await;
                        if converged.retries.record(&key, result).is_some() {
                            applied.remove(id);
                            converged.routers.remove(id);
                        }
                    }
                }
            }
        }
        out.routers = kept.len();

        phases.push(("routers", t.elapsed().as_millis()));
        // Owned objects nothing wants any more (of those there at the start of the pass).
        for l in &host_links {
            let stale_dhcp = l.ifname.starts_with(DHCP_VETH_PREFIX)
                && !served.iter().any(|net| device_name(DHCP_VETH_PREFIX, net) == l.ifname);
            let stale_bridge = l.ifname.starts_with(BRIDGE_PREFIX) && !owned_bridges.contains(l.ifname.as_str());
            let stale_tunnel = l.ifname.starts_with(overlay::VXLAN_PREFIX) && !tunnels.contains(&l.ifname);
            // A half-made pair (its inner end never reached the namespace) or the host end
            // of a router removed while its namespace lingered.
            let stale_leg = l.ifname.starts_with(router::LEG_PREFIX) && !wanted_legs.contains(&l.ifname);
            if stale_dhcp || stale_bridge || stale_tunnel || stale_leg {
                let key = format!("stale link {}", l.ifname);
                if converged.retries.due(&key) {
                    let result = links::delete(None, &l.ifname).await;
                    converged.retries.record(&key, result);
                }
            }
        }
        phases.push(("cleanup", t.elapsed().as_millis()));
        tracing::debug!(?phases, "pass timing (cumulative ms)");
        Ok(out)
    }

    /// Runs until the process ends: converge on every nudge and every `resync`, report
    /// port status when it changes and a heartbeat every `report`.
    pub async fn run(self: Arc<Self>, bus: Option<Bus>) {
        let nudge = Arc::new(Notify::new());
        if let Some(bus) = bus {
            let nudge = nudge.clone();
            tokio::spawn(async move {
                match bus.subscribe("network.>").await {
                    Ok(mut sub) => {
                        while sub.next().await.is_some() {
                            nudge.notify_one();
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "no bus events; relying on periodic resync"),
                }
            });
        }
        // Devices appear when compute (or a test) makes them: watch for them.
        {
            let nudge = nudge.clone();
            let names: Vec<String> = self.cfg.interface_mappings.values().cloned().collect();
            tokio::spawn(async move {
                if let Err(e) = kernel::watch_links(names, move || nudge.notify_one()).await {
                    tracing::warn!(error = %e, "cannot watch links; new devices wait for the periodic resync");
                }
            });
        }
        let mut first = true;
        let mut last_report: Option<Instant> = None;
        loop {
            let started = Instant::now();
            let outcome = match self.converge().await {
                Ok(o) => {
                    let elapsed_ms = started.elapsed().as_millis() as u64;
                    if first {
                        first = false;
                        tracing::info!(
                            elapsed_ms,
                            ports = o.ports.len(),
                            bridges = o.bridges,
                            dhcp_servers = o.dhcp_servers,
                            routers = o.routers,
                            "first pass converged"
                        );
                    }
                    tracing::debug!(elapsed_ms, ?o, "converged");
                    Some(o)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "network agent pass failed; retrying");
                    None
                }
            };
            // Statuses the service does not have yet; a heartbeat when none are due.
            let changed = outcome.as_ref().map(|o| o.changed.clone()).unwrap_or_default();
            if !changed.is_empty() || last_report.is_none_or(|t| t.elapsed() >= self.cfg.report) {
                let devices = outcome.as_ref().map_or(0, |o| o.ports.len());
                let conf = json!({"bridge_mappings": self.cfg.bridge_mappings,
                    "interface_mappings": self.cfg.interface_mappings, "devices": devices,
                    "tunnel_ip": self.cfg.tunnel_ip, "routers": self.cfg.routers, "tunnel_types": ["vxlan"]});
                match self.client.report(&changed, conf).await {
                    Ok(()) => last_report = Some(Instant::now()),
                    Err(e) => tracing::warn!(error = %e, "cannot report to the network service"),
                }
            }
            let wait = self.cfg.resync.min(self.cfg.report);
            tokio::select! {
                _ = nudge.notified() => tokio::time::sleep(Duration::from_millis(30)).await,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Removes everything the agent owns on this host (for `network-agent --cleanup`).
    pub async fn teardown(&self) -> anyhow::Result<()> {
        let host_links = links::list(None).await?;
        let namespaces = links::namespaces(&self.ns_prefix).await?;
        for ns in &namespaces {
            if let Some(net) = dhcp::network_of(&self.ns_prefix, ns) {
                dhcp::remove(&self.ns_prefix, &self.cfg.state_dir, net, &host_links, &namespaces).await?;
            }
            if router::router_of(&self.ns_prefix, ns).is_some() {
                router::remove(ns, &host_links).await?;
            }
        }
        self.applied_nat.lock().await.clear();
        *self.converged.lock().await = Converged::default();
        for l in links::list(None).await? {
            let owned = [BRIDGE_PREFIX, DHCP_VETH_PREFIX, router::LEG_PREFIX, overlay::VXLAN_PREFIX];
            if owned.iter().any(|p| l.ifname.starts_with(p)) {
                links::delete(None, &l.ifname).await?;
            }
        }
        nft::delete_owned().await?;
        *self.applied_ruleset.lock().await = None;
        Ok(())
    }
}

/// The ports whose entries `nft` refuses, found by checking (`nft -c`, nothing applied)
/// ever shorter lists of ports: the smallest prefix of the remaining ports that fails
/// ends with a culprit. A few checks per culprit, at most 16 culprits a pass. Empty when
/// the script fails without any port (then no port is to blame).
async fn firewall_culprits(d: &DesiredState, names: &firewall::Bridges) -> Vec<(String, String)> {
    let with = |ids: &[&str]| {
        let mut only = d.clone();
        only.ports.retain(|p| ids.contains(&p.id.as_str()));
        firewall::render(&only, names)
    };
    let mut remaining: Vec<&str> = d.ports.iter().map(|p| p.id.as_str()).collect();
    let mut found = Vec::new();
    if nft::check(&with(&[])).await.is_err() {
        return found;
    }
    while found.len() < 16 {
        let err = match nft::check(&with(&remaining)).await {
            Ok(()) => break,
            Err(e) => e,
        };
        // with(remaining[..lo]) passes, with(remaining[..hi]) fails.
        let (mut lo, mut hi) = (0, remaining.len());
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            if nft::check(&with(&remaining[..mid])).await.is_err() {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        let culprit = remaining.remove(hi - 1);
        let why = err.to_string().lines().find(|l| l.contains("Error")).unwrap_or("refused by nft").to_string();
        found.push((culprit.to_string(), why));
    }
    found
}

/// Bridged IP traffic must pass the inet hooks for stateful security groups.
fn enable_bridge_netfilter() {
    for f in ["bridge-nf-call-iptables", "bridge-nf-call-ip6tables"] {
        let path = format!("/proc/sys/net/bridge/{f}");
        if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() != "1") {
            if let Err(e) = std::fs::write(&path, "1") {
                tracing::warn!(error = %e, path, "cannot enable bridge netfilter");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_failing_object_waits_longer_each_time_and_is_forgotten_once_it_works() {
        let mut r = super::Retries::default();
        assert!(r.due("bridge a"));
        assert!(r.record::<()>("bridge a", Err(anyhow::anyhow!("no"))).is_none());
        assert!(!r.due("bridge a"), "not again in this pass");
        assert!(r.due("bridge b"), "others go on");
        let first = r.0["bridge a"].1;
        r.0.get_mut("bridge a").unwrap().1 = std::time::Instant::now();
        assert!(r.due("bridge a"));
        r.record::<()>("bridge a", Err(anyhow::anyhow!("still no")));
        assert_eq!(r.0["bridge a"].0, 2);
        assert!(r.0["bridge a"].1 > first, "two seconds the second time");
        assert_eq!(r.record("bridge a", Ok(5)), Some(5));
        assert!(r.due("bridge a") && r.0.is_empty());
    }

    use super::*;

    #[test]
    fn mappings_parse() {
        let m = parse_mappings("public:br-ex, lab:br-lab").unwrap();
        assert_eq!(m["public"], "br-ex");
        assert_eq!(m["lab"], "br-lab");
        assert!(parse_mappings("").unwrap().is_empty());
        assert!(parse_mappings("nobridge").is_err());
        assert!(parse_mappings("x:bridge-name-far-too-long").is_err());
    }
}
