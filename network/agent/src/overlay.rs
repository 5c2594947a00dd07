//! VXLAN between hosts: per network a VXLAN device (`stx<network>`, VNI = the network's
//! segmentation id) on the network's bridge, without learning and without multicast.
//! Its forwarding table is written from the desired state: an all-zero entry per peer
//! host (broadcast and unknown unicast go only to hosts that have the network) and a
//! static entry per remote MAC.

use crate::kernel::links::{self, Link};
use crate::kernel::run;
use crate::model::{device_name, Network};
use serde::Deserialize;
use std::collections::BTreeSet;

pub const VXLAN_PREFIX: &str = "stx";
pub const VXLAN_PORT: &str = "4789";
const FLOOD: &str = "00:00:00:00:00:00";

#[derive(Debug, Clone, PartialEq)]
pub struct Vxlan {
    pub name: String,
    pub vni: i64,
    pub bridge: String,
    pub mtu: u32,
    /// `(mac, remote tunnel address)`.
    pub fdb: BTreeSet<(String, String)>,
}

/// The VXLAN device of a network, when this host has a tunnel address.
pub fn plan(n: &Network, bridge: &str, tunnel_ip: &str) -> Option<Vxlan> {
    if tunnel_ip.is_empty() || n.network_type.as_deref() != Some("vxlan") {
        return None;
    }
    let vni = n.segmentation_id?;
    let mut fdb = BTreeSet::new();
    for p in n.peers.iter().filter(|p| p.tunnel_ip != tunnel_ip) {
        fdb.insert((FLOOD.to_string(), p.tunnel_ip.clone()));
        for m in &p.macs {
            fdb.insert((m.to_lowercase(), p.tunnel_ip.clone()));
        }
    }
    Some(Vxlan {
        name: device_name(VXLAN_PREFIX, &n.id),
        vni,
        bridge: bridge.to_string(),
        mtu: n.mtu.unwrap_or(1450),
        fdb,
    })
}

#[derive(Deserialize)]
struct FdbEntry {
    mac: String,
    #[serde(default)]
    dst: Option<String>,
}

/// Returns whether it made the device.
pub async fn converge(v: &Vxlan, tunnel_ip: &str, host_links: &[Link]) -> anyhow::Result<bool> {
    let mut made = false;
    let link = match host_links.iter().find(|l| l.ifname == v.name) {
        Some(l) => l.clone(),
        None => {
            made = true;
            let vni = v.vni.to_string();
            links::ip(
                None,
                &[
                    "link",
                    "add",
                    &v.name,
                    "type",
                    "vxlan",
                    "id",
                    &vni,
                    "local",
                    tunnel_ip,
                    "dstport",
                    VXLAN_PORT,
                    "nolearning",
                ],
            )
            .await?;
            links::list(None)
                .await?
                .into_iter()
                .find(|l| l.ifname == v.name)
                .ok_or_else(|| anyhow::anyhow!("{} vanished after creation", v.name))?
        }
    };
    links::attach(&link, Some(&v.bridge), Some(v.mtu)).await?;
    let out = run("bridge", &["-json", "fdb", "show", "dev", &v.name]).await?;
    let entries: Vec<FdbEntry> = serde_json::from_str(&out).unwrap_or_default();
    let have: BTreeSet<(String, String)> =
        entries.into_iter().filter_map(|e| e.dst.map(|d| (e.mac.to_lowercase(), d))).collect();
    for (mac, dst) in v.fdb.difference(&have) {
        let verb = if mac == FLOOD { "append" } else { "replace" };
        run("bridge", &["fdb", verb, mac, "dev", &v.name, "dst", dst]).await?;
    }
    for (mac, dst) in have.difference(&v.fdb) {
        let _ = run("bridge", &["fdb", "del", mac, "dev", &v.name, "dst", dst]).await;
    }
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Peer;

    #[test]
    fn floods_only_to_peers_and_pins_their_macs() {
        let n = Network {
            id: "0123456789abcdef".into(),
            network_type: Some("vxlan".into()),
            segmentation_id: Some(42),
            mtu: Some(1450),
            peers: vec![
                Peer { host: "b".into(), tunnel_ip: "192.0.2.2".into(), macs: vec!["FA:16:3E:00:00:01".into()] },
                Peer { host: "self".into(), tunnel_ip: "192.0.2.1".into(), macs: vec![] },
            ],
            ..Default::default()
        };
        let v = plan(&n, "stb-0123456789a", "192.0.2.1").unwrap();
        assert_eq!(v.name, "stx0123456789ab");
        assert_eq!(v.vni, 42);
        let want: BTreeSet<(String, String)> = [(FLOOD, "192.0.2.2"), ("fa:16:3e:00:00:01", "192.0.2.2")]
            .iter()
            .map(|(m, d)| (m.to_string(), d.to_string()))
            .collect();
        assert_eq!(v.fdb, want);
        assert!(plan(&n, "b", "").is_none(), "no tunnel address, no VXLAN");
        let flat = Network { network_type: Some("flat".into()), ..n };
        assert!(plan(&flat, "b", "192.0.2.1").is_none());
    }
}
