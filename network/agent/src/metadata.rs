//! The metadata proxy, reached at 169.254.169.254:80 two ways, as Neutron serves it:
//! - in each DHCP namespace, which holds the address and to which DHCP routes guests
//!   through the DHCP port (option 121);
//! - in each router namespace, for guests that ignore option 121 and send the request
//!   to their default gateway: the namespace holds the address on `lo`, and a rule drops
//!   packets for it that come in on anything but an interface leg (`qr-`).
//!
//! The agent listens on port 80 there (a socket made inside the namespace). A request
//! is identified by the network it came from (the DHCP namespace's; for a router, the
//! network of the interface subnet holding the source address: a router's subnets never
//! overlap) and its source address, which the anti-spoofing rules guarantee; the proxy
//! looks up the port with that fixed IP and forwards the request to the compute metadata
//! API with the instance and project it belongs to, as Neutron's proxy does
//! (`X-Instance-ID`, `X-Tenant-ID`, `X-Forwarded-For`, and `X-Instance-ID-Signature`, an
//! HMAC-SHA256 of the instance id with the shared secret).

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

pub const METADATA_IP: &str = "169.254.169.254";

/// Who sits behind an address: the instance (the port's device) and its project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub instance_id: String,
    pub project_id: String,
}

/// `(network id, fixed IP)` → owner, rebuilt on every reconciliation pass.
pub type Directory = Arc<RwLock<HashMap<(String, String), Owner>>>;

/// Router id → its interface subnets as (CIDR, network id), rebuilt on every pass.
pub type RouterSubnets = Arc<RwLock<HashMap<String, Vec<(String, String)>>>>;

/// Where a request came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A network's DHCP namespace.
    Network(String),
    /// A router's namespace, through one of its interfaces.
    Router(String),
}

pub struct Proxy {
    upstream: String,
    secret: String,
    http: reqwest::Client,
    pub directory: Directory,
    pub routers: RouterSubnets,
}

impl Proxy {
    pub fn new(upstream: &str, secret: &str) -> Arc<Self> {
        Arc::new(Self {
            upstream: upstream.trim_end_matches('/').to_string(),
            secret: secret.to_string(),
            http: reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build().expect("HTTP client"),
            directory: Arc::new(RwLock::new(HashMap::new())),
            routers: Arc::new(RwLock::new(HashMap::new())),
        })
    }

    /// The network a request from `ip` came from.
    pub fn network_of(&self, via: &Via, ip: &str) -> Option<String> {
        match via {
            Via::Network(n) => Some(n.clone()),
            Via::Router(r) => {
                let routers = self.routers.read().ok()?;
                routers.get(r)?.iter().find(|(cidr, _)| cidr_contains(cidr, ip)).map(|(_, net)| net.clone())
            }
        }
    }

    pub fn signature(&self, instance_id: &str) -> String {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, self.secret.as_bytes());
        ring::hmac::sign(&key, instance_id.as_bytes()).as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn lookup(&self, network_id: &str, ip: &str) -> Option<Owner> {
        self.directory.read().ok()?.get(&(network_id.to_string(), ip.to_string())).cloned()
    }
}

/// A listening socket made inside network namespace `ns` (by a thread that enters it).
pub fn bind_in_namespace(ns: &str, addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let f = std::fs::File::open(&path)?;
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
        let l = std::net::TcpListener::bind(addr)?;
        l.set_nonblocking(true)?;
        Ok(l)
    })
    .join()
    .map_err(|_| std::io::Error::other("namespace thread panicked"))?
}

/// Whether `cidr` (`a.b.c.d/n` or IPv6) holds `ip`.
fn cidr_contains(cidr: &str, ip: &str) -> bool {
    use std::net::IpAddr;
    let Some((base, len)) = cidr.split_once('/') else { return false };
    let (Ok(base), Ok(ip), Ok(len)) = (base.parse::<IpAddr>(), ip.parse::<IpAddr>(), len.parse::<u32>()) else {
        return false;
    };
    let (b, a, bits) = match (base, ip) {
        (IpAddr::V4(b), IpAddr::V4(a)) => (u32::from(b) as u128, u32::from(a) as u128, 32),
        (IpAddr::V6(b), IpAddr::V6(a)) => (u128::from(b), u128::from(a), 128),
        _ => return false,
    };
    if len > bits {
        return false;
    }
    let shift = bits - len;
    len == 0 || (b >> shift) == (a >> shift)
}

/// Starts the proxy for `via` in network namespace `ns` (listening on the metadata
/// address there), as a task; `None`, logged, when the socket cannot be made.
pub fn start_in_namespace(ns: &str, via: Via, proxy: Arc<Proxy>) -> Option<tokio::task::JoinHandle<()>> {
    let addr = SocketAddr::from(([169, 254, 169, 254], 80));
    match bind_in_namespace(ns, addr) {
        Ok(listener) => Some(tokio::spawn(async move {
            if let Err(e) = serve(listener, via.clone(), proxy).await {
                tracing::warn!(?via, error = %e, "metadata proxy stopped");
            }
        })),
        Err(e) => {
            tracing::warn!(?via, error = %e, "cannot start the metadata proxy");
            None
        }
    }
}

#[derive(Clone)]
struct Ctx {
    proxy: Arc<Proxy>,
    via: Via,
}

/// Serves the proxy for one network or router on `listener` until the task is dropped.
pub async fn serve(listener: std::net::TcpListener, via: Via, proxy: Arc<Proxy>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let app = axum::Router::new().fallback(forward).with_state(Ctx { proxy, via });
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await
}

async fn forward(
    State(ctx): State<Ctx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ip = peer.ip().to_string();
    let owner = ctx.proxy.network_of(&ctx.via, &ip).and_then(|net| ctx.proxy.lookup(&net, &ip));
    let Some(owner) = owner else {
        tracing::info!(via = ?ctx.via, %ip, "metadata request from an unknown address");
        return (StatusCode::NOT_FOUND, "No instance has this address on this network.\n").into_response();
    };
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut req = ctx
        .proxy
        .http
        .request(method, format!("{}{path}", ctx.proxy.upstream))
        .header("X-Instance-ID", &owner.instance_id)
        .header("X-Tenant-ID", &owner.project_id)
        .header("X-Forwarded-For", &ip)
        .header("X-Instance-ID-Signature", ctx.proxy.signature(&owner.instance_id))
        .body(body);
    if let Some(ct) = headers.get("content-type") {
        req = req.header("content-type", ct);
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status();
            let ct = resp.headers().get("content-type").cloned();
            let bytes = resp.bytes().await.unwrap_or_default();
            let mut out = (status, bytes).into_response();
            if let Some(ct) = ct {
                out.headers_mut().insert("content-type", ct);
            }
            out
        }
        Err(e) => {
            tracing::warn!(error = %e, "metadata service unreachable");
            (StatusCode::BAD_GATEWAY, "The metadata service is unreachable.\n").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_nova_expects() {
        // hmac.new(b"secret", b"instance", hashlib.sha256).hexdigest(), as Nova checks it.
        let p = Proxy::new("http://x", "secret");
        assert_eq!(p.signature("instance"), "fac450cbc556373851e9f5755126936b598b1749a007d96b7e0b7f1a5cd274e9");
    }

    #[test]
    fn looks_up_by_network_and_address() {
        let p = Proxy::new("http://x/", "s");
        p.directory
            .write()
            .unwrap()
            .insert(("net".into(), "10.0.0.5".into()), Owner { instance_id: "vm".into(), project_id: "proj".into() });
        assert_eq!(p.lookup("net", "10.0.0.5").unwrap().instance_id, "vm");
        assert!(p.lookup("other-net", "10.0.0.5").is_none(), "the same address on another network is someone else");
        assert_eq!(p.upstream, "http://x");
    }

    #[test]
    fn a_router_finds_the_network_by_the_interface_subnet() {
        let p = Proxy::new("http://x", "s");
        p.routers
            .write()
            .unwrap()
            .insert("r1".into(), vec![("10.1.0.0/24".into(), "net-a".into()), ("10.2.0.0/16".into(), "net-b".into())]);
        let via = Via::Router("r1".into());
        assert_eq!(p.network_of(&via, "10.1.0.7").as_deref(), Some("net-a"));
        assert_eq!(p.network_of(&via, "10.2.200.1").as_deref(), Some("net-b"));
        assert_eq!(p.network_of(&via, "10.3.0.1"), None, "not behind this router");
        assert_eq!(p.network_of(&Via::Router("r2".into()), "10.1.0.7"), None);
        assert_eq!(p.network_of(&Via::Network("n".into()), "1.2.3.4").as_deref(), Some("n"));
        assert!(cidr_contains("fd00::/64", "fd00::5") && !cidr_contains("fd00::/64", "10.0.0.1"));
    }
}
