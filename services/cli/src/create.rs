//! Making networks, subnets, routers, security groups, floating IPs and volumes: one
//! command each, names or IDs wherever another resource is named, the made resource
//! printed as `show` prints it (so `-o json` and `-c` work the same).

use crate::wait::{wait_for, WaitArgs};
use crate::{find, kinds, output, usage, Failure, Format, Verb};
use clap::Subcommand;
use serde_json::{json, Map, Value};
use stratus_client::session::Method;
use stratus_client::Session;

#[derive(Subcommand)]
pub enum NetworkVerb {
    #[command(flatten)]
    Common(Verb),
    /// Create a network (a project network unless --external, which an admin may ask)
    #[command(
        after_help = "Examples:\n  stratus network create private\n  stratus network create public --external --shared"
    )]
    Create {
        /// Its name
        name: String,
        /// Routers may use it as their gateway, floating IPs come from it (admin)
        #[arg(long)]
        external: bool,
        /// Every project may use it (admin)
        #[arg(long)]
        shared: bool,
    },
}

#[derive(Subcommand)]
pub enum PortVerb {
    #[command(flatten)]
    Common(Verb),
    /// Create a port on a network (a fixed address, security groups, as asked)
    #[command(after_help = "Examples:\n  stratus port create vip --network private --ip 10.10.0.50\n  \
                            stratus port create probe --network private --sg web --sg default")]
    Create {
        /// Its name
        name: String,
        /// The network, by name or ID
        #[arg(long)]
        network: String,
        /// An address it takes on the network's subnets; repeat for more (default: one
        /// the network hands out)
        #[arg(long)]
        ip: Vec<String>,
        /// A security group, by name or ID; repeat for more (default: the project's
        /// `default`)
        #[arg(long = "sg", value_name = "SG")]
        security_groups: Vec<String>,
        /// No security groups and no anti-spoofing on it
        #[arg(long, conflicts_with = "security_groups")]
        no_port_security: bool,
    },
}

#[derive(Subcommand)]
pub enum SubnetVerb {
    #[command(flatten)]
    Common(Verb),
    /// Create a subnet on a network
    #[command(
        after_help = "Example:\n  stratus subnet create private-v4 --network private --range 10.10.0.0/24 --dns 192.0.2.53"
    )]
    Create {
        /// Its name
        name: String,
        /// The network, by name or ID
        #[arg(long)]
        network: String,
        /// Its addresses, in CIDR notation (IPv4 or IPv6)
        #[arg(long)]
        range: String,
        /// The gateway address (default: the first of the range), or `none`
        #[arg(long)]
        gateway: Option<String>,
        /// No DHCP server on it
        #[arg(long)]
        no_dhcp: bool,
        /// A DNS server its DHCP hands out; repeat for more
        #[arg(long)]
        dns: Vec<String>,
    },
}

#[derive(Subcommand)]
pub enum RouterVerb {
    #[command(flatten)]
    Common(Verb),
    /// Create a router, with its gateway on an external network if asked
    #[command(after_help = "Example:\n  stratus router create edge --external-gateway public\n  \
                            stratus router add-subnet edge private-v4")]
    Create {
        /// Its name
        name: String,
        /// The external network its gateway (and SNAT) goes to, by name or ID
        #[arg(long)]
        external_gateway: Option<String>,
    },
    /// Attach a subnet to a router (the router takes the subnet's gateway address)
    #[command(after_help = "Examples:\n  stratus router add-subnet edge private-v4")]
    AddSubnet {
        /// The router, by name or ID
        router: String,
        /// The subnet, by name or ID
        subnet: String,
    },
    /// Detach a subnet from a router
    #[command(after_help = "Examples:\n  stratus router remove-subnet edge private-v4")]
    RemoveSubnet {
        /// The router, by name or ID
        router: String,
        /// The subnet, by name or ID
        subnet: String,
    },
}

#[derive(Subcommand)]
pub enum SgVerb {
    #[command(flatten)]
    Common(Verb),
    /// Create a security group (it starts with the default egress rules)
    #[command(
        after_help = "Examples:\n  stratus sg create web --description \"web servers\"\n  stratus sg allow web --port 443"
    )]
    Create {
        /// Its name
        name: String,
        /// What it is for
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Allow incoming traffic: a protocol, a port or range, from addresses or a group
    #[command(after_help = "Examples:\n  stratus sg allow web --protocol tcp --port 443\n  \
                            stratus sg allow web --protocol tcp --port 8000:8099 --from 192.0.2.0/24\n  \
                            stratus sg allow db --protocol tcp --port 5432 --from-group web\n  \
                            stratus sg allow web --protocol icmp")]
    Allow {
        /// The security group, by name or ID
        group: String,
        /// tcp, udp, icmp or any
        #[arg(long, default_value = "tcp")]
        protocol: String,
        /// A port, or FIRST:LAST (tcp and udp)
        #[arg(long)]
        port: Option<String>,
        /// Addresses allowed, in CIDR notation (default: everywhere)
        #[arg(long, conflicts_with = "from_group")]
        from: Option<String>,
        /// Members of this security group allowed, by name or ID
        #[arg(long)]
        from_group: Option<String>,
        /// IPv6 instead of IPv4
        #[arg(long)]
        ipv6: bool,
    },
}

#[derive(Subcommand)]
pub enum FipVerb {
    #[command(flatten)]
    Common(Verb),
    /// Take a floating IP from an external network, on a server's port if asked
    #[command(after_help = "Example:\n  stratus fip create --network public --server web-1")]
    Create {
        /// The external network, by name or ID (default: the only one)
        #[arg(long)]
        network: Option<String>,
        /// The server whose (first) port it goes to, by name or ID
        #[arg(long)]
        server: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum VolumeVerb {
    #[command(flatten)]
    Common(Verb),
    /// Create a volume: empty, or a copy of an image, a snapshot or another volume
    #[command(after_help = "Examples:\n  stratus volume create data --size 10 --wait\n  \
                            stratus volume create root --size 2 --image debian --wait")]
    Create {
        /// Its name
        name: String,
        /// Its size in GiB
        #[arg(long)]
        size: u64,
        /// The image it starts as, by name or ID
        #[arg(long, conflicts_with_all = ["source", "snapshot"])]
        image: Option<String>,
        /// The volume it is a copy of, by name or ID
        #[arg(long, conflicts_with = "snapshot")]
        source: Option<String>,
        /// The snapshot it starts as (ID)
        #[arg(long)]
        snapshot: Option<String>,
        /// Its volume type
        #[arg(long = "type")]
        volume_type: Option<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

pub(crate) async fn post(s: &Session, service: &str, path: &str, body: Value) -> Result<Value, Failure> {
    Ok(s.call(Method::POST, service, path, Some(&body), &[]).await?)
}

async fn put(s: &Session, service: &str, path: &str, body: Value) -> Result<Value, Failure> {
    Ok(s.call(Method::PUT, service, path, Some(&body), &[]).await?)
}

pub(crate) fn id(v: &Value) -> String {
    kinds::id_text(&v["id"])
}

pub async fn network(s: &Session, verb: NetworkVerb, format: Format, columns: &[String]) -> Result<(), Failure> {
    let NetworkVerb::Create { name, external, shared } = verb else { return Ok(()) };
    let mut body = json!({"name": name});
    if external {
        body["router:external"] = json!(true);
    }
    if shared {
        body["shared"] = json!(true);
    }
    let made = post(s, "network", "/v2.0/networks", json!({ "network": body })).await?;
    output::record(&made["network"], format, columns).map_err(usage)
}

pub async fn port(s: &Session, verb: PortVerb, format: Format, columns: &[String]) -> Result<(), Failure> {
    let PortVerb::Create { name, network, ip, security_groups, no_port_security } = verb else { return Ok(()) };
    let net = find(&kinds::NETWORK, s, &network).await?;
    let mut body = json!({"name": name, "network_id": id(&net)});
    if !ip.is_empty() {
        for a in &ip {
            if a.parse::<std::net::IpAddr>().is_err() {
                return Err(usage(format!("--ip {a}: an IPv4 or IPv6 address")));
            }
        }
        body["fixed_ips"] = ip.iter().map(|a| json!({"ip_address": a})).collect();
    }
    if no_port_security {
        body["port_security_enabled"] = json!(false);
        body["security_groups"] = json!([]);
    } else if !security_groups.is_empty() {
        let mut ids = Vec::new();
        for g in &security_groups {
            ids.push(id(&find(&kinds::SECURITY_GROUP, s, g).await?));
        }
        body["security_groups"] = json!(ids);
    }
    let made = post(s, "network", "/v2.0/ports", json!({ "port": body })).await?;
    output::record(&made["port"], format, columns).map_err(usage)
}

pub async fn subnet(s: &Session, verb: SubnetVerb, format: Format, columns: &[String]) -> Result<(), Failure> {
    let SubnetVerb::Create { name, network, range, gateway, no_dhcp, dns } = verb else { return Ok(()) };
    let version = match range.split_once('/').map(|(ip, _)| ip.parse::<std::net::IpAddr>()) {
        Some(Ok(std::net::IpAddr::V4(_))) => 4,
        Some(Ok(std::net::IpAddr::V6(_))) => 6,
        _ => return Err(usage(format!("--range {range}: give addresses in CIDR notation, such as 10.0.0.0/24"))),
    };
    let net = find(&kinds::NETWORK, s, &network).await?;
    let mut body = json!({"name": name, "network_id": id(&net), "cidr": range, "ip_version": version,
                          "enable_dhcp": !no_dhcp});
    match gateway.as_deref() {
        Some("none") => body["gateway_ip"] = Value::Null,
        Some(g) => body["gateway_ip"] = json!(g),
        None => {}
    }
    if !dns.is_empty() {
        body["dns_nameservers"] = json!(dns);
    }
    let made = post(s, "network", "/v2.0/subnets", json!({ "subnet": body })).await?;
    output::record(&made["subnet"], format, columns).map_err(usage)
}

pub async fn router(s: &Session, verb: RouterVerb, format: Format, columns: &[String]) -> Result<(), Failure> {
    match verb {
        RouterVerb::Common(_) => Ok(()),
        RouterVerb::Create { name, external_gateway } => {
            let mut body = json!({"name": name});
            if let Some(ext) = external_gateway {
                let net = find(&kinds::NETWORK, s, &ext).await?;
                body["external_gateway_info"] = json!({"network_id": id(&net)});
            }
            let made = post(s, "network", "/v2.0/routers", json!({ "router": body })).await?;
            output::record(&made["router"], format, columns).map_err(usage)
        }
        RouterVerb::AddSubnet { router, subnet } => interface(s, &router, &subnet, "add_router_interface").await,
        RouterVerb::RemoveSubnet { router, subnet } => interface(s, &router, &subnet, "remove_router_interface").await,
    }
}

/// Adds or removes a router's interface on a subnet; says what changed on stderr.
async fn interface(s: &Session, router: &str, subnet: &str, action: &str) -> Result<(), Failure> {
    let r = find(&kinds::ROUTER, s, router).await?;
    let sn = find(&kinds::SUBNET, s, subnet).await?;
    let path = format!("/v2.0/routers/{}/{action}", id(&r));
    put(s, "network", &path, json!({"subnet_id": id(&sn)})).await?;
    let verb = if action.starts_with("add") { "attached to" } else { "detached from" };
    eprintln!(
        "subnet {} {verb} router {}",
        sn["name"].as_str().unwrap_or(subnet),
        r["name"].as_str().unwrap_or(router)
    );
    Ok(())
}

pub async fn security_group(s: &Session, verb: SgVerb, format: Format, columns: &[String]) -> Result<(), Failure> {
    match verb {
        SgVerb::Common(_) => Ok(()),
        SgVerb::Create { name, description } => {
            let body = json!({"security_group": {"name": name, "description": description}});
            let made = post(s, "network", "/v2.0/security-groups", body).await?;
            output::record(&made["security_group"], format, columns).map_err(usage)
        }
        SgVerb::Allow { group, protocol, port, from, from_group, ipv6 } => {
            let sg = find(&kinds::SECURITY_GROUP, s, &group).await?;
            let mut rule = Map::new();
            rule.insert("security_group_id".into(), json!(id(&sg)));
            rule.insert("direction".into(), json!("ingress"));
            rule.insert("ethertype".into(), json!(if ipv6 { "IPv6" } else { "IPv4" }));
            if protocol != "any" {
                rule.insert("protocol".into(), json!(protocol));
            }
            if let Some(p) = port {
                let (first, last) = p.split_once(':').unwrap_or((&p, &p));
                let parse =
                    |v: &str| v.trim().parse::<u16>().map_err(|_| usage(format!("--port {p}: a port, or FIRST:LAST")));
                let (first, last) = (parse(first)?, parse(last)?);
                if first > last {
                    return Err(usage(format!("--port {p}: the first port comes before the last")));
                }
                rule.insert("port_range_min".into(), json!(first));
                rule.insert("port_range_max".into(), json!(last));
            }
            if let Some(cidr) = from {
                rule.insert("remote_ip_prefix".into(), json!(cidr));
            }
            if let Some(g) = from_group {
                let remote = find(&kinds::SECURITY_GROUP, s, &g).await?;
                rule.insert("remote_group_id".into(), json!(id(&remote)));
            }
            let made = post(s, "network", "/v2.0/security-group-rules", json!({"security_group_rule": rule})).await?;
            output::record(&made["security_group_rule"], format, columns).map_err(usage)
        }
    }
}

pub async fn floating_ip(s: &Session, verb: FipVerb, format: Format, columns: &[String]) -> Result<(), Failure> {
    let FipVerb::Create { network, server } = verb else { return Ok(()) };
    let ext = crate::launch::external(s, network.as_deref()).await?;
    let mut body = json!({"floating_network_id": id(&ext)});
    if let Some(name) = server {
        let srv = find(&kinds::SERVER, s, &name).await?;
        let path = format!("/v2.0/ports?device_id={}", id(&srv));
        let ports = s.get("network", &path).await?["ports"].as_array().cloned().unwrap_or_default();
        let port = ports.first().ok_or_else(|| Failure { code: 1, message: format!("server {name} has no port") })?;
        body["port_id"] = json!(id(port));
    }
    let made = post(s, "network", "/v2.0/floatingips", json!({ "floatingip": body })).await?;
    output::record(&made["floatingip"], format, columns).map_err(usage)
}

pub async fn volume(s: &Session, verb: VolumeVerb, format: Format, columns: &[String]) -> Result<(), Failure> {
    let VolumeVerb::Create { name, size, image, source, snapshot, volume_type, wait } = verb else { return Ok(()) };
    let mut body = json!({"name": name, "size": size});
    if let Some(i) = image {
        body["imageRef"] = json!(id(&find(&kinds::IMAGE, s, &i).await?));
    }
    if let Some(v) = source {
        body["source_volid"] = json!(id(&find(&kinds::VOLUME, s, &v).await?));
    }
    if let Some(snap) = snapshot {
        body["snapshot_id"] = json!(snap);
    }
    if let Some(t) = volume_type {
        body["volume_type"] = json!(t);
    }
    let made = post(s, "volumev3", "/volumes", json!({ "volume": body })).await?;
    let mut shown = made["volume"].clone();
    if wait.wait {
        shown = wait_for(s, &kinds::VOLUME, &id(&shown), "available", wait.timeout).await?;
    }
    output::record(&shown, format, columns).map_err(usage)
}
