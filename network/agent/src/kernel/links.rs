//! Links, addresses and network namespaces.

use super::run;
use serde::Deserialize;

/// A link as `ip -json -details link show` describes it.
#[derive(Debug, Clone, Deserialize)]
pub struct Link {
    pub ifname: String,
    #[serde(default)]
    pub master: Option<String>,
    #[serde(default)]
    pub flags: Vec<String>,
    #[serde(default)]
    pub mtu: u32,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub linkinfo: Option<LinkInfo>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LinkInfo {
    #[serde(default)]
    pub info_kind: Option<String>,
}

impl Link {
    pub fn up(&self) -> bool {
        self.flags.iter().any(|f| f == "UP")
    }
    pub fn kind(&self) -> &str {
        self.linkinfo.as_ref().and_then(|l| l.info_kind.as_deref()).unwrap_or("")
    }
}

fn ip_args<'a>(ns: Option<&'a str>, rest: &[&'a str]) -> Vec<&'a str> {
    let mut v = Vec::with_capacity(rest.len() + 2);
    if let Some(ns) = ns {
        v.push("-n");
        v.push(ns);
    }
    v.extend_from_slice(rest);
    v
}

pub async fn ip(ns: Option<&str>, rest: &[&str]) -> anyhow::Result<String> {
    run("ip", &ip_args(ns, rest)).await
}

/// Every link in the namespace (`None`: the host's).
pub async fn list(ns: Option<&str>) -> anyhow::Result<Vec<Link>> {
    let out = ip(ns, &["-json", "-details", "link", "show"]).await?;
    Ok(serde_json::from_str(&out)?)
}

pub async fn bridge_add(name: &str, mtu: u32) -> anyhow::Result<()> {
    let mtu = mtu.to_string();
    // No STP and no forwarding delay: a new port forwards at once.
    ip(None, &["link", "add", name, "mtu", &mtu, "type", "bridge", "stp_state", "0", "forward_delay", "0"]).await?;
    Ok(())
}

/// Puts a link on a bridge (or takes it off), sets its MTU and brings it up; only what differs.
pub async fn attach(link: &Link, master: Option<&str>, mtu: Option<u32>) -> anyhow::Result<()> {
    let name = link.ifname.as_str();
    if link.master.as_deref() != master {
        match master {
            Some(m) => ip(None, &["link", "set", name, "master", m]).await?,
            None => ip(None, &["link", "set", name, "nomaster"]).await?,
        };
    }
    if let Some(mtu) = mtu.filter(|m| *m != link.mtu) {
        ip(None, &["link", "set", name, "mtu", &mtu.to_string()]).await?;
    }
    if !link.up() {
        ip(None, &["link", "set", name, "up"]).await?;
    }
    Ok(())
}

/// [`attach`], then down when `enabled` is false: a port set `admin_state_up=false`
/// stays on its bridge with its filters, and passes nothing until set back.
pub async fn attach_port(link: &Link, bridge: &str, mtu: Option<u32>, enabled: bool) -> anyhow::Result<()> {
    if enabled {
        return attach(link, Some(bridge), mtu).await;
    }
    let name = link.ifname.as_str();
    if link.master.as_deref() != Some(bridge) {
        ip(None, &["link", "set", name, "master", bridge]).await?;
    }
    if let Some(mtu) = mtu.filter(|m| *m != link.mtu) {
        ip(None, &["link", "set", name, "mtu", &mtu.to_string()]).await?;
    }
    if link.up() {
        ip(None, &["link", "set", name, "down"]).await?;
    }
    Ok(())
}

/// Deletes a link; one already gone is fine (deleting a namespace or one end of a veth
/// takes the other end with it).
pub async fn delete(ns: Option<&str>, name: &str) -> anyhow::Result<()> {
    match ip(ns, &["link", "del", name]).await {
        Err(e) if e.to_string().contains("Cannot find device") => Ok(()),
        other => other.map(|_| ()),
    }
}

/// A veth pair from a bridge into a namespace (a DHCP server's or a router's leg).
#[derive(Debug, Clone, PartialEq)]
pub struct Leg {
    /// Host end, on `bridge`.
    pub outer: String,
    /// Namespace end.
    pub inner: String,
    pub bridge: String,
    pub mtu: u32,
    /// The inner end's MAC (a port's); empty = the kernel's.
    pub mac: String,
    pub addresses: Vec<String>,
}

/// Makes `leg` exist as planned in namespace `ns`: `host_links` are the host's links,
/// `inside` the namespace's. A half-made pair (a crash between steps) is made again.
/// With `enabled` false the host end stays down (a router set `admin_state_up=false`).
pub async fn ensure_leg(
    ns: &str,
    leg: &Leg,
    host_links: &[Link],
    inside: &[Link],
    enabled: bool,
) -> anyhow::Result<()> {
    let inner_present = inside.iter().any(|l| l.ifname == leg.inner);
    let outer = match (host_links.iter().find(|l| l.ifname == leg.outer), inner_present) {
        (Some(o), true) => o.clone(),
        (o, _) => {
            if let Some(o) = o {
                delete(None, &o.ifname).await?;
            }
            if inner_present {
                delete(Some(ns), &leg.inner).await?;
            }
            ip(None, &["link", "add", &leg.outer, "type", "veth", "peer", "name", &leg.inner]).await?;
            ip(None, &["link", "set", &leg.inner, "netns", ns]).await?;
            list(None)
                .await?
                .into_iter()
                .find(|l| l.ifname == leg.outer)
                .ok_or_else(|| anyhow::anyhow!("{} vanished after creation", leg.outer))?
        }
    };
    attach_port(&outer, &leg.bridge, Some(leg.mtu), enabled).await?;
    let mtu = leg.mtu.to_string();
    let mut args = vec!["link", "set", leg.inner.as_str()];
    if !leg.mac.is_empty() {
        args.extend(["address", leg.mac.as_str()]);
    }
    args.extend(["mtu", mtu.as_str(), "up"]);
    ip(Some(ns), &args).await?;
    set_addresses(Some(ns), &leg.inner, &leg.addresses).await
}

/// The namespaces whose name starts with `prefix`.
pub async fn namespaces(prefix: &str) -> anyhow::Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Ns {
        name: String,
    }
    let out = run("ip", &["-json", "netns", "list"]).await?;
    if out.trim().is_empty() {
        return Ok(Vec::new());
    }
    let all: Vec<Ns> = serde_json::from_str(&out)?;
    Ok(all.into_iter().map(|n| n.name).filter(|n| n.starts_with(prefix)).collect())
}

pub async fn netns_add(name: &str) -> anyhow::Result<()> {
    run("ip", &["netns", "add", name]).await?;
    ip(Some(name), &["link", "set", "lo", "up"]).await?;
    Ok(())
}

pub async fn netns_delete(name: &str) -> anyhow::Result<()> {
    run("ip", &["netns", "delete", name]).await?;
    Ok(())
}

/// The addresses (`10.0.0.2/24`) of a link.
pub async fn addresses(ns: Option<&str>, dev: &str) -> anyhow::Result<Vec<String>> {
    #[derive(Deserialize)]
    struct AddrInfo {
        local: String,
        prefixlen: u8,
        #[serde(default)]
        scope: String,
    }
    #[derive(Deserialize)]
    struct Entry {
        #[serde(default)]
        addr_info: Vec<AddrInfo>,
    }
    let out = ip(ns, &["-json", "addr", "show", "dev", dev]).await?;
    let entries: Vec<Entry> = serde_json::from_str(&out)?;
    Ok(entries
        .into_iter()
        .flat_map(|e| e.addr_info)
        .filter(|a| a.scope != "link")
        .map(|a| format!("{}/{}", a.local, a.prefixlen))
        .collect())
}

/// Makes a link's addresses exactly `want` (link-local ones aside).
pub async fn set_addresses(ns: Option<&str>, dev: &str, want: &[String]) -> anyhow::Result<()> {
    let have = addresses(ns, dev).await?;
    for a in have.iter().filter(|a| !want.contains(a)) {
        ip(ns, &["addr", "del", a, "dev", dev]).await?;
    }
    for a in want.iter().filter(|a| !have.contains(a)) {
        ip(ns, &["addr", "add", a, "dev", dev]).await?;
    }
    Ok(())
}
