//! The one-step workflows: `launch` makes what a reachable server needs and boots it;
//! `ssh` reaches it; `down` removes what `launch` made; `status` shows the project at a
//! glance.
//!
//! `launch` records what it created for the server in the server's metadata
//! (`stratus:launch`, JSON: the floating IP, a generated keypair, a lease, a data
//! volume), so `down`
//! removes exactly that; a generated key's private half is kept as
//! `~/.local/share/stratus/keys/<keypair>` (0600), where `ssh` and `down` find it. The project's network, subnet and router (`stratus-net`,
//! `stratus-subnet`, `stratus-router`), made on first use, and the SSH rule of the
//! `default` security group are shared by every launch and stay.

use crate::wait::wait_for;
use crate::{find, kinds, output, usage, Failure, Format};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use stratus_client::session::Method;
use stratus_client::Session;

const NET: &str = "stratus-net";
const SUBNET: &str = "stratus-subnet";
const ROUTER: &str = "stratus-router";
const RECORD: &str = "stratus:launch";

#[derive(clap::Args)]
pub struct LaunchArgs {
    /// The server's name
    pub name: String,
    /// Image, by name or ID
    #[arg(long)]
    pub image: String,
    /// Flavor, by name or ID
    #[arg(long)]
    pub flavor: String,
    /// Network, by name or ID (default: the project's `stratus-net`, made on first use
    /// with a subnet and a router to the external network)
    #[arg(long)]
    pub network: Option<String>,
    /// The external network for the router and the floating IP (default: the only one)
    #[arg(long)]
    pub external_network: Option<String>,
    /// Give it a floating IP
    #[arg(long)]
    pub floating_ip: bool,
    /// An existing keypair
    #[arg(long, conflicts_with = "generate_key")]
    pub key: Option<String>,
    /// Make a keypair for it (the private key is kept under ~/.local/share/stratus/keys)
    #[arg(long)]
    pub generate_key: bool,
    /// Launch into this existing lease (name or ID)
    #[arg(long, conflicts_with = "reserve")]
    pub lease: Option<String>,
    /// Reserve a host first: `node_type=X,hours=4` (either part optional)
    #[arg(long)]
    pub reserve: Option<String>,
    /// Attach a new empty volume of this many GB (`NAME-data`, `/dev/vdb` in the guest),
    /// deleted with the server
    #[arg(long, value_name = "GB", value_parser = clap::value_parser!(u32).range(1..))]
    pub volume: Option<u32>,
    /// Wait until SSH answers, then print the ssh command
    #[arg(long)]
    pub wait_ssh: bool,
    /// Give up waiting (lease, server, SSH) after this many seconds
    #[arg(long, default_value_t = 900)]
    pub timeout: u64,
}

fn say(msg: &str) {
    eprintln!("{msg}");
}

fn id(v: &Value) -> String {
    v["id"].as_str().map(str::to_string).unwrap_or_default()
}

async fn get_list(s: &Session, service: &str, path: &str, key: &str) -> Result<Vec<Value>, Failure> {
    Ok(s.get(service, path).await?[key].as_array().cloned().unwrap_or_default())
}

async fn post(s: &Session, service: &str, path: &str, body: Value) -> Result<Value, Failure> {
    Ok(s.call(Method::POST, service, path, Some(&body), &[]).await?)
}

/// The external network: the one named, else the only one there is.
pub(crate) async fn external(s: &Session, named: Option<&str>) -> Result<Value, Failure> {
    if let Some(n) = named {
        return find(&kinds::NETWORK, s, n).await;
    }
    let ext = get_list(s, "network", "/v2.0/networks?router:external=true", "networks").await?;
    match ext.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Failure { code: 1, message: "the cloud has no external network: ask its operator".into() }),
        _ => Err(usage("several external networks: name one with --external-network".into())),
    }
}

/// The project's launch network, with its subnet and router, made when missing.
async fn project_network(s: &Session, ext: &Value) -> Result<String, Failure> {
    let project = s.project_id().unwrap_or_default();
    let mine = |v: &Value| v["project_id"] == project.as_str() || v["tenant_id"] == project.as_str();
    let nets = get_list(s, "network", &format!("/v2.0/networks?name={NET}"), "networks").await?;
    let net = match nets.into_iter().find(mine) {
        Some(n) => n,
        None => {
            say(&format!("making network {NET}, subnet {SUBNET} (10.42.0.0/24) and router {ROUTER}"));
            post(s, "network", "/v2.0/networks", json!({"network": {"name": NET}})).await?["network"].clone()
        }
    };
    let net_id = id(&net);
    let subnets = get_list(s, "network", &format!("/v2.0/subnets?network_id={net_id}"), "subnets").await?;
    let subnet_id = match subnets.first() {
        Some(sn) => id(sn),
        None => id(&post(
            s,
            "network",
            "/v2.0/subnets",
            json!({"subnet": {"name": SUBNET, "network_id": net_id, "ip_version": 4, "cidr": "10.42.0.0/24",
                              "dns_nameservers": []}}),
        )
        .await?["subnet"]),
    };
    let routers = get_list(s, "network", &format!("/v2.0/routers?name={ROUTER}"), "routers").await?;
    if !routers.iter().any(mine) {
        let router = post(
            s,
            "network",
            "/v2.0/routers",
            json!({"router": {"name": ROUTER, "external_gateway_info": {"network_id": ext["id"]}}}),
        )
        .await?;
        let rid = id(&router["router"]);
        s.call(
            Method::PUT,
            "network",
            &format!("/v2.0/routers/{rid}/add_router_interface"),
            Some(&json!({ "subnet_id": subnet_id })),
            &[],
        )
        .await?;
    }
    Ok(net_id)
}

/// An ingress TCP 22 rule in the project's `default` group, added when missing.
async fn allow_ssh(s: &Session) -> Result<(), Failure> {
    let project = s.project_id().unwrap_or_default();
    let groups =
        get_list(s, "network", &format!("/v2.0/security-groups?name=default&project_id={project}"), "security_groups")
            .await?;
    let Some(group) = groups.first() else { return Ok(()) };
    let has = group["security_group_rules"].as_array().into_iter().flatten().any(|r| {
        r["direction"] == "ingress"
            && r["protocol"] == "tcp"
            && r["port_range_min"].as_i64().is_some_and(|p| p <= 22)
            && r["port_range_max"].as_i64().is_some_and(|p| p >= 22)
    });
    if !has {
        say("allowing SSH (TCP 22) in the default security group");
        post(
            s,
            "network",
            "/v2.0/security-group-rules",
            json!({"security_group_rule": {"security_group_id": group["id"], "direction": "ingress",
                   "ethertype": "IPv4", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22,
                   "remote_ip_prefix": "0.0.0.0/0"}}),
        )
        .await?;
    }
    Ok(())
}

/// Where `stratus ssh` keeps each server's host key (a file per server id).
fn known_hosts_dir() -> PathBuf {
    key_dir().with_file_name("known_hosts")
}

fn key_dir() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("stratus").join("keys")
}

/// Makes keypair `name` (the cloud generates it) and keeps its private key, 0600.
async fn generate_key(s: &Session, name: &str) -> Result<PathBuf, Failure> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let made = s
        .call(
            Method::POST,
            "compute",
            "/os-keypairs",
            Some(&json!({"keypair": {"name": name}})),
            &[("X-OpenStack-Nova-API-Version", "2.10")],
        )
        .await?;
    let private = made["keypair"]["private_key"].as_str().unwrap_or_default();
    let dir = key_dir();
    let path = dir.join(name);
    let fail =
        |e: std::io::Error| Failure { code: 1, message: format!("cannot keep the key at {}: {e}", path.display()) };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(fail)?;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(private.as_bytes()))
        .map_err(fail)?;
    Ok(path)
}

/// `node_type=X,hours=4` → (node type, hours).
fn parse_reserve(spec: &str) -> Result<(Option<String>, u32), Failure> {
    let mut node_type = None;
    let mut hours = 1;
    for part in spec.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            Some(("node_type", v)) => node_type = Some(v.to_string()),
            Some(("hours", v)) => {
                hours = v.parse().map_err(|_| usage(format!("--reserve hours={v}: a whole number of hours")))?
            }
            _ => return Err(usage(format!("--reserve {spec:?}: give node_type=X,hours=N"))),
        }
    }
    Ok((node_type, hours))
}

/// The first reservation id of a lease.
fn reservation_of(lease: &Value) -> Option<String> {
    let res = &lease["reservations"];
    let list = match res {
        Value::String(s) => serde_json::from_str(s).unwrap_or(Value::Null),
        other => other.clone(),
    };
    list.as_array()
        .and_then(|l| l.iter().find(|r| r["resource_type"] == "physical:host").or(l.first()))
        .and_then(|r| r["id"].as_str())
        .map(str::to_string)
}

pub async fn launch(s: &Session, a: LaunchArgs, format: Format, columns: &[String]) -> Result<(), Failure> {
    let started = Instant::now();
    let left = |t: u64| t.saturating_sub(started.elapsed().as_secs()).max(1);
    let mut record = serde_json::Map::new();
    let image = find(&kinds::IMAGE, s, &a.image).await?;
    let flavor = find(&kinds::FLAVOR, s, &a.flavor).await?;
    let ext = if a.floating_ip || a.network.is_none() {
        Some(external(s, a.external_network.as_deref()).await?)
    } else {
        None
    };
    let net_id = match (&a.network, &ext) {
        (Some(n), _) => id(&find(&kinds::NETWORK, s, n).await?),
        (None, Some(e)) => project_network(s, e).await?,
        (None, None) => unreachable!("the external network is looked up when no network is named"),
    };
    allow_ssh(s).await?;
    let (key_name, key_file) = match (&a.key, a.generate_key) {
        (Some(k), _) => (Some(k.clone()), None),
        (None, true) => {
            let name = format!("{}-key", a.name);
            let path = generate_key(s, &name).await?;
            record.insert("keypair".into(), json!(name));
            say(&format!("made keypair {name}; its private key is {}", path.display()));
            (Some(name), Some(path))
        }
        (None, false) => (None, None),
    };
    let reservation = match (&a.lease, &a.reserve) {
        (Some(l), _) => {
            let lease = find(&kinds::LEASE, s, l).await?;
            Some(reservation_of(&lease).ok_or_else(|| usage(format!("lease {l} reserves no host")))?)
        }
        (None, Some(spec)) => {
            let (node_type, hours) = parse_reserve(spec)?;
            let end = (chrono::Utc::now() + chrono::Duration::hours(i64::from(hours)) + chrono::Duration::seconds(59))
                .format("%Y-%m-%d %H:%M")
                .to_string();
            let props = node_type.map(|t| json!(["==", "$node_type", t]).to_string()).unwrap_or_default();
            let body = json!({"name": format!("{}-lease", a.name), "start_date": "now", "end_date": end, "events": [],
                "reservations": [{"resource_type": "physical:host", "min": 1, "max": 1,
                                  "hypervisor_properties": "", "resource_properties": props}]});
            let made = post(s, "reservation", "/leases", body).await?;
            let lease_id = id(&made["lease"]);
            record.insert("lease".into(), json!(lease_id));
            say(&format!("reserved a host: lease {}-lease, until {end} UTC", a.name));
            let lease = wait_for(s, &kinds::LEASE, &lease_id, "ACTIVE", left(a.timeout)).await?;
            Some(reservation_of(&lease).unwrap_or_default())
        }
        (None, None) => None,
    };
    if let Some(size) = a.volume {
        let name = format!("{}-data", a.name);
        let body = json!({"volume": {"name": name, "size": size,
                                     "description": format!("data volume of server {}, made by stratus launch", a.name)}});
        match post(s, "volumev3", "/volumes", body).await {
            Ok(made) => {
                record.insert("volume".into(), json!(id(&made["volume"])));
                say(&format!("made volume {name} ({size} GB)"));
            }
            Err(e) => {
                undo(s, &record).await;
                return Err(e);
            }
        }
    }
    let mut server = json!({"name": a.name, "imageRef": id(&image), "flavorRef": id(&flavor),
                            "networks": [{"uuid": net_id}]});
    if let Some(k) = &key_name {
        server["key_name"] = json!(k);
    }
    let mut body = json!({ "server": server });
    if let Some(r) = &reservation {
        body["os:scheduler_hints"] = json!({ "reservation": r });
    }
    let made = match s.call(Method::POST, "compute", "/servers", Some(&body), kinds::SERVER.headers).await {
        Ok(m) => m,
        Err(e) => {
            // No server to record them on: what was made for it goes again now.
            undo(s, &record).await;
            return Err(e.into());
        }
    };
    let server_id = id(&made["server"]);
    // Recorded at once, so `down` finds what was made even if what follows fails.
    set_record(s, &server_id, &record).await?;
    let mut shown = wait_for(s, &kinds::SERVER, &server_id, "ACTIVE", left(a.timeout)).await?;
    if let Some(volume) = record.get("volume").and_then(Value::as_str) {
        attach_data_volume(s, &server_id, volume, left(a.timeout)).await?;
        shown = kinds::SERVER.show(s, &server_id).await?;
    }
    let mut address = first_address(&shown);
    if a.floating_ip {
        let ext = ext.as_ref().map(id).unwrap_or_default();
        let ports = get_list(s, "network", &format!("/v2.0/ports?device_id={server_id}"), "ports").await?;
        let port =
            ports.first().map(id).ok_or_else(|| Failure { code: 1, message: "the server has no port".into() })?;
        let fip = post(
            s,
            "network",
            "/v2.0/floatingips",
            json!({"floatingip": {"floating_network_id": ext, "port_id": port}}),
        )
        .await?;
        let ip = fip["floatingip"]["floating_ip_address"].as_str().unwrap_or_default().to_string();
        record.insert("floating_ip".into(), json!(id(&fip["floatingip"])));
        set_record(s, &server_id, &record).await?;
        say(&format!("floating IP {ip}"));
        address = Some(ip);
        shown = kinds::SERVER.show(s, &server_id).await?;
    }
    if a.wait_ssh {
        let ip = address.clone().ok_or_else(|| Failure { code: 1, message: "the server has no address".into() })?;
        wait_port(&ip, 22, left(a.timeout)).await?;
        let user = image["os_admin_user"].as_str().unwrap_or("root");
        let key = key_file.map(|k| format!(" -i {}", k.display())).unwrap_or_default();
        output::emit(&format!("ssh{key} {user}@{ip}\n"));
        return Ok(());
    }
    output::record(&shown, format, columns).map_err(usage)
}

/// Attaches the data volume `launch` made, once it is available, to go with the server
/// when it is deleted (`delete_on_termination`, compute 2.79), and waits until it is
/// in use.
async fn attach_data_volume(s: &Session, server_id: &str, volume: &str, timeout: u64) -> Result<(), Failure> {
    wait_for(s, &kinds::VOLUME, volume, "available", timeout).await?;
    let made = s
        .call(
            Method::POST,
            "compute",
            &format!("/servers/{server_id}/os-volume_attachments"),
            Some(&json!({"volumeAttachment": {"volumeId": volume, "delete_on_termination": true}})),
            &[("OpenStack-API-Version", "compute 2.79")],
        )
        .await?;
    wait_for(s, &kinds::VOLUME, volume, "in-use", timeout).await?;
    let device = made["volumeAttachment"]["device"].as_str().unwrap_or("a new disk");
    say(&format!("attached the data volume as {device}"));
    Ok(())
}

/// Removes a generated keypair (and its private key), a lease and a data volume made
/// for a server that could not be created; best effort, each failure said.
async fn undo(s: &Session, record: &serde_json::Map<String, Value>) {
    if let Some(v) = record.get("volume").and_then(Value::as_str) {
        if let Err(e) = s.call(Method::DELETE, "volumev3", &format!("/volumes/{v}"), None, &[]).await {
            say(&format!("could not delete volume {v}: {e}"));
        }
    }
    if let Some(k) = record.get("keypair").and_then(Value::as_str) {
        if let Err(e) = s.call(Method::DELETE, "compute", &format!("/os-keypairs/{k}"), None, &[]).await {
            say(&format!("could not delete keypair {k}: {e}"));
        }
        let _ = std::fs::remove_file(key_dir().join(k));
    }
    if let Some(l) = record.get("lease").and_then(Value::as_str) {
        if let Err(e) = s.call(Method::DELETE, "reservation", &format!("/leases/{l}"), None, &[]).await {
            say(&format!("could not delete lease {l}: {e}"));
        }
    }
}

async fn set_record(s: &Session, server_id: &str, record: &serde_json::Map<String, Value>) -> Result<(), Failure> {
    s.call(
        Method::PUT,
        "compute",
        &format!("/servers/{server_id}/metadata/{RECORD}"),
        Some(&json!({"meta": { RECORD: Value::Object(record.clone()).to_string() }})),
        &[],
    )
    .await?;
    Ok(())
}

/// A floating IP if the server has one, else its first fixed address.
fn first_address(server: &Value) -> Option<String> {
    let all: Vec<&Value> = server["addresses"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .flat_map(|v| v.as_array().into_iter().flatten())
        .collect();
    let pick = |kind: &str| {
        all.iter().find(|a| a["OS-EXT-IPS:type"] == kind).and_then(|a| a["addr"].as_str()).map(str::to_string)
    };
    pick("floating")
        .or_else(|| pick("fixed"))
        .or_else(|| all.first().and_then(|a| a["addr"].as_str()).map(str::to_string))
}

/// Waits until `ip:port` accepts a TCP connection.
async fn wait_port(ip: &str, port: u16, timeout: u64) -> Result<(), Failure> {
    let start = Instant::now();
    say(&format!("waiting for SSH on {ip}"));
    loop {
        let attempt = tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect((ip, port))).await;
        if matches!(attempt, Ok(Ok(_))) {
            return Ok(());
        }
        if start.elapsed() >= Duration::from_secs(timeout) {
            return Err(Failure { code: 6, message: format!("{ip}:{port} did not answer within {timeout} s") });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// What `launch` recorded on the server.
fn record_of(server: &Value) -> serde_json::Map<String, Value> {
    server["metadata"][RECORD]
        .as_str()
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default()
}

/// `stratus ssh NAME [-- CMD]`: ssh to the server's floating IP (or fixed address) with
/// the key `launch` generated for it, if it did.
pub async fn ssh(s: &Session, name: &str, user: Option<&str>, command: &[String]) -> Result<(), Failure> {
    let server = find(&kinds::SERVER, s, name).await?;
    let ip = first_address(&server).ok_or_else(|| Failure { code: 1, message: format!("{name} has no address") })?;
    let rec = record_of(&server);
    let user = match user {
        Some(u) => u.to_string(),
        None => {
            let image = kinds::IMAGE.show(s, server["image"]["id"].as_str().unwrap_or_default()).await.ok();
            image.and_then(|i| i["os_admin_user"].as_str().map(str::to_string)).unwrap_or_else(|| "root".into())
        }
    };
    let mut cmd = std::process::Command::new("ssh");
    cmd.args(["-o", "StrictHostKeyChecking=accept-new"]);
    // The host key is remembered per server, not per address: a floating IP that
    // another (deleted) server had before is not a changed host.
    let hosts = known_hosts_dir();
    if std::fs::create_dir_all(&hosts).is_ok() {
        cmd.arg("-o").arg(format!("UserKnownHostsFile={}", hosts.join(id(&server)).display()));
    }
    if let Some(k) = rec.get("keypair").and_then(Value::as_str).map(|k| key_dir().join(k)).filter(|p| p.exists()) {
        cmd.arg("-i").arg(k);
    }
    cmd.arg(format!("{user}@{ip}"));
    cmd.args(command);
    let status = cmd.status().map_err(|e| Failure { code: 1, message: format!("cannot run ssh: {e}") })?;
    match status.code() {
        Some(0) => Ok(()),
        Some(c) => Err(Failure { code: c, message: format!("ssh ended with {c}") }),
        None => Err(Failure { code: 1, message: "ssh was killed".into() }),
    }
}

/// `stratus down NAME`: the server and what `launch` made for it (its floating IP, a
/// generated keypair and its private key, a lease), nothing else.
pub async fn down(s: &Session, name: &str, timeout: u64) -> Result<(), Failure> {
    let server = find(&kinds::SERVER, s, name).await?;
    let server_id = id(&server);
    let rec = record_of(&server);
    if let Some(fip) = rec.get("floating_ip").and_then(Value::as_str) {
        match s.call(Method::DELETE, "network", &format!("/v2.0/floatingips/{fip}"), None, &[]).await {
            Ok(_) => say(&format!("released floating IP {fip}")),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    s.call(Method::DELETE, "compute", &format!("/servers/{server_id}"), None, &[]).await?;
    wait_for(s, &kinds::SERVER, &server_id, "GONE", timeout).await?;
    let _ = std::fs::remove_file(known_hosts_dir().join(&server_id));
    say(&format!("deleted server {name}"));
    if let Some(k) = rec.get("keypair").and_then(Value::as_str) {
        match s.call(Method::DELETE, "compute", &format!("/os-keypairs/{k}"), None, &[]).await {
            Ok(_) | Err(stratus_client::Error::Api { status: 404, .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let _ = std::fs::remove_file(key_dir().join(k));
        say(&format!("deleted keypair {k}"));
    }
    if let Some(l) = rec.get("lease").and_then(Value::as_str) {
        match s.call(Method::DELETE, "reservation", &format!("/leases/{l}"), None, &[]).await {
            Ok(_) => say(&format!("ended lease {l}")),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(v) = rec.get("volume").and_then(Value::as_str) {
        remove_data_volume(s, v, &server_id, timeout).await?;
    }
    Ok(())
}

/// The data volume goes with its server (attached with `delete_on_termination`); one
/// detached meanwhile is deleted here. One attached to another server stays.
async fn remove_data_volume(s: &Session, volume: &str, server_id: &str, timeout: u64) -> Result<(), Failure> {
    let start = Instant::now();
    loop {
        let v = match kinds::VOLUME.show(s, volume).await {
            Ok(v) => v,
            Err(e) if e.is_not_found() => break,
            Err(e) => return Err(e.into()),
        };
        match v["status"].as_str().unwrap_or_default() {
            "available" | "error" => {
                match s.call(Method::DELETE, "volumev3", &format!("/volumes/{volume}"), None, &[]).await {
                    Ok(_) => break,
                    Err(e) if e.is_not_found() => break,
                    Err(e) => return Err(e.into()),
                }
            }
            "in-use" if v["attachments"].as_array().into_iter().flatten().any(|a| a["server_id"] != server_id) => {
                say(&format!("volume {volume} is attached to another server: it stays"));
                return Ok(());
            }
            _ if start.elapsed() >= Duration::from_secs(timeout) => {
                return Err(Failure { code: 6, message: format!("volume {volume} was not deleted within {timeout} s") })
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    say(&format!("deleted volume {volume}"));
    Ok(())
}

/// `stratus status`: servers, leases with the time they have left, and the compute
/// limits in use.
pub async fn status(s: &Session, format: Format) -> Result<(), Failure> {
    let servers = kinds::SERVER.list(s).await?;
    let leases = kinds::LEASE.list(s).await.unwrap_or_default();
    let limits = s.get("compute", "/limits").await?;
    let abs = &limits["limits"]["absolute"];
    let now = chrono::Utc::now().naive_utc();
    let time_left = |l: &Value| {
        let end = l["end_date"].as_str().unwrap_or_default();
        chrono::NaiveDateTime::parse_from_str(end, "%Y-%m-%dT%H:%M:%S%.f")
            .map(|e| {
                let m = (e - now).num_minutes().max(0);
                format!("{}h{:02}m", m / 60, m % 60)
            })
            .unwrap_or_default()
    };
    let quota = |used: &str, max: &str| format!("{}/{}", abs[used], abs[max]);
    let usage_rows = vec![
        vec!["instances".to_string(), quota("totalInstancesUsed", "maxTotalInstances")],
        vec!["cores".to_string(), quota("totalCoresUsed", "maxTotalCores")],
        vec!["ram (MiB)".to_string(), quota("totalRAMUsed", "maxTotalRAMSize")],
    ];
    if format.structured() {
        let out = json!({
            "servers": servers.iter().map(|v| json!({"name": v["name"], "status": v["status"], "id": v["id"]})).collect::<Vec<_>>(),
            "leases": leases.iter().map(|l| json!({"name": l["name"], "status": l["status"], "end_date": l["end_date"], "time_left": time_left(l)})).collect::<Vec<_>>(),
            "limits": abs,
        });
        output::document(format, &out);
        return Ok(());
    }
    let server_rows: Vec<Vec<String>> = servers
        .iter()
        .map(|v| {
            vec![
                output::cell(&v["name"], "name"),
                output::cell(&v["status"], "status"),
                first_address(v).unwrap_or_default(),
            ]
        })
        .collect();
    output::emit("Servers\n");
    output::emit(&output::aligned(&["Name".into(), "Status".into(), "Address".into()], &server_rows));
    let lease_rows: Vec<Vec<String>> = leases
        .iter()
        .map(|l| vec![output::cell(&l["name"], "name"), output::cell(&l["status"], "status"), time_left(l)])
        .collect();
    output::emit("\nLeases\n");
    output::emit(&output::aligned(&["Name".into(), "Status".into(), "Time left".into()], &lease_rows));
    output::emit("\nQuotas (used/limit)\n");
    output::emit(&output::aligned(&["Resource".into(), "Used/Limit".into()], &usage_rows));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_specs_read_as_written() {
        assert_eq!(parse_reserve("node_type=gpu,hours=4").ok(), Some((Some("gpu".into()), 4)));
        assert_eq!(parse_reserve("hours=2").ok(), Some((None, 2)));
        assert!(parse_reserve("cores=4").is_err());
        assert!(parse_reserve("hours=many").is_err());
    }

    #[test]
    fn addresses_prefer_the_floating_one() {
        let s = json!({"addresses": {"net": [{"addr": "10.0.0.5", "OS-EXT-IPS:type": "fixed"},
                                             {"addr": "203.0.113.7", "OS-EXT-IPS:type": "floating"}]}});
        assert_eq!(first_address(&s).as_deref(), Some("203.0.113.7"));
        assert_eq!(first_address(&json!({"addresses": {}})), None);
        let lease = json!({"reservations": [{"id": "f1", "resource_type": "virtual:floatingip"},
                                            {"id": "h1", "resource_type": "physical:host"}]});
        assert_eq!(reservation_of(&lease).as_deref(), Some("h1"));
    }
}
