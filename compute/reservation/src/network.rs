//! How the reservation service reaches the network service for floating IP
//! reservations: check that a reservable address lies in an external network's subnet
//! but outside its allocation pools (so no one else can take it), hand the address to
//! a lease's project at its start (a floating IP tagged `reservation:<id>`, as Blazar
//! tags them and python-chi finds them) and take it back at its end. Idempotent.
//!
//! [`HttpNetwork`] calls the network API with the service's token; [`FakeNetwork`]
//! keeps addresses in memory for tests.

use futures::future::BoxFuture;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use stratus_common::auth::service_token::TokenSource;

pub trait Network: Send + Sync {
    /// The id of the subnet of external network `network` holding `address` outside its
    /// allocation pools; `Ok(Err(why))` when the address cannot be reserved.
    fn check_address(&self, network: &str, address: &str) -> BoxFuture<'_, anyhow::Result<Result<String, String>>>;
    /// Gives `address` to `project` as a floating IP of `reservation`.
    fn hand_out(
        &self,
        network: &str,
        address: &str,
        project: &str,
        reservation: &str,
    ) -> BoxFuture<'_, anyhow::Result<()>>;
    /// Deletes the floating IP `reservation` made of `address`, if it is there.
    fn take_back(&self, network: &str, address: &str, reservation: &str) -> BoxFuture<'_, anyhow::Result<()>>;
}

/// The tag a reservation's floating IPs carry.
pub fn tag(reservation: &str) -> String {
    format!("reservation:{reservation}")
}

/// Whether `address` lies in `cidr` (IPv4 or IPv6).
pub fn in_cidr(address: &IpAddr, cidr: &str) -> bool {
    let Some((net, len)) = cidr.split_once('/') else { return false };
    let (Ok(net), Ok(len)) = (net.parse::<IpAddr>(), len.parse::<u32>()) else { return false };
    match (address, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if len <= 32 => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(*a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if len <= 128 => {
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) };
            u128::from(*a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn in_range(address: &IpAddr, start: &str, end: &str) -> bool {
    match (start.parse::<IpAddr>(), end.parse::<IpAddr>()) {
        (Ok(s), Ok(e)) => *address >= s && *address <= e,
        _ => false,
    }
}

/// The network API, called with the service's token.
pub struct HttpNetwork(pub crate::client::ServiceClient);

impl HttpNetwork {
    /// `url`: the network endpoint (without `/v2.0`).
    pub fn new(http: reqwest::Client, url: String, tokens: Arc<dyn TokenSource>) -> Self {
        Self(crate::client::ServiceClient { http, url, tokens, name: "the network service", headers: Vec::new() })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
        self.0.call(method, path, body).await
    }

    /// The floating IPs with `address` on `network`.
    async fn floating_ips(&self, network: &str, address: &str) -> anyhow::Result<Vec<Value>> {
        let path = format!(
            "/v2.0/floatingips?floating_network_id={}&floating_ip_address={}",
            urlencoding::encode(network),
            urlencoding::encode(address)
        );
        let (status, body) = self.call(reqwest::Method::GET, &path, None).await?;
        anyhow::ensure!(status == 200, "the network service refused to list floating IPs ({status}): {body}");
        Ok(body["floatingips"].as_array().cloned().unwrap_or_default())
    }
}

impl Network for HttpNetwork {
    fn check_address(&self, network: &str, address: &str) -> BoxFuture<'_, anyhow::Result<Result<String, String>>> {
        let (network, address) = (network.to_string(), address.to_string());
        Box::pin(async move {
            let Ok(ip) = address.parse::<IpAddr>() else {
                return Ok(Err(format!("{address} is not an IP address.")));
            };
            let (status, net) = self
                .call(reqwest::Method::GET, &format!("/v2.0/networks/{}", urlencoding::encode(&network)), None)
                .await?;
            if status == 404 {
                return Ok(Err(format!("Network {network} could not be found.")));
            }
            anyhow::ensure!(status == 200, "the network service refused to show network {network} ({status})");
            if net["network"]["router:external"] != json!(true) {
                return Ok(Err(format!("Network {network} is not an external network.")));
            }
            let path = format!("/v2.0/subnets?network_id={}", urlencoding::encode(&network));
            let (status, subnets) = self.call(reqwest::Method::GET, &path, None).await?;
            anyhow::ensure!(status == 200, "the network service refused to list subnets ({status})");
            for s in subnets["subnets"].as_array().into_iter().flatten() {
                if !in_cidr(&ip, s["cidr"].as_str().unwrap_or_default()) {
                    continue;
                }
                let pooled = s["allocation_pools"].as_array().into_iter().flatten().any(|p| {
                    in_range(&ip, p["start"].as_str().unwrap_or_default(), p["end"].as_str().unwrap_or_default())
                });
                if pooled {
                    return Ok(Err(format!(
                        "{address} is inside an allocation pool of subnet {}: reservable addresses must be outside the pools, \
                         or anyone could take them.",
                        s["id"].as_str().unwrap_or_default()
                    )));
                }
                return Ok(Ok(s["id"].as_str().unwrap_or_default().to_string()));
            }
            Ok(Err(format!("{address} is in no subnet of network {network}.")))
        })
    }

    fn hand_out(
        &self,
        network: &str,
        address: &str,
        project: &str,
        reservation: &str,
    ) -> BoxFuture<'_, anyhow::Result<()>> {
        let (network, address, project, reservation) =
            (network.to_string(), address.to_string(), project.to_string(), reservation.to_string());
        Box::pin(async move {
            let mine = tag(&reservation);
            if let Some(f) = self.floating_ips(&network, &address).await?.first() {
                let tags = f["tags"].as_array().cloned().unwrap_or_default();
                if tags.contains(&json!(mine)) {
                    return Ok(());
                }
                anyhow::bail!("{address} is already a floating IP of project {}", f["project_id"]);
            }
            let body = json!({"floatingip": {"floating_network_id": network, "floating_ip_address": address,
                              "project_id": project, "tags": ["blazar", mine],
                              "description": format!("Reserved by reservation {reservation}")}});
            let (status, made) = self.call(reqwest::Method::POST, "/v2.0/floatingips", Some(body)).await?;
            anyhow::ensure!(status == 201, "the network service refused the floating IP {address} ({status}): {made}");
            Ok(())
        })
    }

    fn take_back(&self, network: &str, address: &str, reservation: &str) -> BoxFuture<'_, anyhow::Result<()>> {
        let (network, address, reservation) = (network.to_string(), address.to_string(), reservation.to_string());
        Box::pin(async move {
            let mine = tag(&reservation);
            for f in self.floating_ips(&network, &address).await? {
                if !f["tags"].as_array().is_some_and(|t| t.contains(&json!(mine))) {
                    continue;
                }
                let id = f["id"].as_str().unwrap_or_default();
                let (status, body) =
                    self.call(reqwest::Method::DELETE, &format!("/v2.0/floatingips/{id}"), None).await?;
                anyhow::ensure!(
                    status == 204 || status == 404,
                    "the network service refused to delete floating IP {id} ({status}): {body}"
                );
            }
            Ok(())
        })
    }
}

/// External networks and floating IPs in memory: for tests.
#[derive(Default)]
pub struct FakeNetwork {
    /// Per network, the CIDR reservable addresses come from.
    pub networks: Mutex<HashMap<String, String>>,
    /// Floating IPs handed out: address → (project, reservation).
    pub handed: Mutex<HashMap<String, (String, String)>>,
}

impl Network for FakeNetwork {
    fn check_address(&self, network: &str, address: &str) -> BoxFuture<'_, anyhow::Result<Result<String, String>>> {
        let cidr = self.networks.lock().unwrap().get(network).cloned();
        let answer = match (cidr, address.parse::<IpAddr>()) {
            (None, _) => Err(format!("Network {network} could not be found.")),
            (_, Err(_)) => Err(format!("{address} is not an IP address.")),
            (Some(c), Ok(ip)) if in_cidr(&ip, &c) => Ok(format!("{network}-subnet")),
            (Some(_), Ok(_)) => Err(format!("{address} is in no subnet of network {network}.")),
        };
        Box::pin(async move { Ok(answer) })
    }

    fn hand_out(&self, _: &str, address: &str, project: &str, reservation: &str) -> BoxFuture<'_, anyhow::Result<()>> {
        self.handed.lock().unwrap().insert(address.to_string(), (project.to_string(), reservation.to_string()));
        Box::pin(async { Ok(()) })
    }

    fn take_back(&self, _: &str, address: &str, reservation: &str) -> BoxFuture<'_, anyhow::Result<()>> {
        let mut handed = self.handed.lock().unwrap();
        if handed.get(address).is_some_and(|(_, r)| r == reservation) {
            handed.remove(address);
        }
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_in_cidrs() {
        let a: IpAddr = "203.0.113.200".parse().unwrap();
        assert!(in_cidr(&a, "203.0.113.0/24") && !in_cidr(&a, "203.0.114.0/24") && in_cidr(&a, "0.0.0.0/0"));
        assert!(!in_cidr(&a, "2001:db8::/32") && !in_cidr(&a, "garbage"));
        let v6: IpAddr = "2001:db8::5".parse().unwrap();
        assert!(in_cidr(&v6, "2001:db8::/64"));
        assert!(in_range(&a, "203.0.113.100", "203.0.113.250") && !in_range(&a, "203.0.113.2", "203.0.113.99"));
    }
}
