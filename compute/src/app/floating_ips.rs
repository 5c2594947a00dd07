//! Nova's floating-IP proxy (`os-floating-ips`, and the server actions `addFloatingIp`
//! and `removeFloatingIp`, below 2.36 and 2.44): the network service's floating IPs in
//! Nova's shape, with the caller's own token. A pool is an external network, by name
//! or id.

use super::security_groups::refused;
use super::{bad, not_found, AppResult, ComputeService};
use reqwest::Method;
use serde_json::{json, Value};
use stratus_common::auth::AuthContext;

/// Nova's view: `pool` the external network's name, `instance_id` the server the port
/// belongs to.
fn view(f: &Value, pools: &[Value], ports: &[Value]) -> Value {
    let pool = pools.iter().find(|n| n["id"] == f["floating_network_id"]).map(|n| n["name"].clone());
    let instance = ports
        .iter()
        .find(|p| p["id"] == f["port_id"] && !f["port_id"].is_null())
        .and_then(|p| p["device_id"].as_str().filter(|d| !d.is_empty()))
        .map(|d| json!(d));
    json!({"id": f["id"], "ip": f["floating_ip_address"], "fixed_ip": f["fixed_ip_address"],
           "pool": pool.unwrap_or(Value::Null), "instance_id": instance.unwrap_or(Value::Null)})
}

impl ComputeService {
    async fn net(
        &self,
        ctx: &AuthContext,
        method: Method,
        path: &str,
        body: Option<Value>,
        what: &str,
    ) -> AppResult<Value> {
        self.clients.network_call(&ctx.token, method, path, body).await.map_err(|e| refused(what, e))
    }

    /// The external networks (the pools) and the caller's ports, for views.
    async fn fip_context(&self, ctx: &AuthContext) -> AppResult<(Vec<Value>, Vec<Value>)> {
        let pools = self.net(ctx, Method::GET, "/v2.0/networks?router:external=true", None, "Pools").await?;
        let ports = self.net(ctx, Method::GET, "/v2.0/ports?fields=id&fields=device_id", None, "Ports").await?;
        Ok((
            pools["networks"].as_array().cloned().unwrap_or_default(),
            ports["ports"].as_array().cloned().unwrap_or_default(),
        ))
    }

    pub async fn fip_list(&self, ctx: &AuthContext) -> AppResult<Vec<Value>> {
        let project = ctx.project_id().map(|p| format!("?project_id={p}")).unwrap_or_default();
        let all = self.net(ctx, Method::GET, &format!("/v2.0/floatingips{project}"), None, "Floating IPs").await?;
        let (pools, ports) = self.fip_context(ctx).await?;
        Ok(all["floatingips"].as_array().into_iter().flatten().map(|f| view(f, &pools, &ports)).collect())
    }

    pub async fn fip_get(&self, ctx: &AuthContext, id: &str) -> AppResult<Value> {
        let what = format!("Floating IP {id}");
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(not_found(format!("{what} could not be found.")));
        }
        let f = self.net(ctx, Method::GET, &format!("/v2.0/floatingips/{id}"), None, &what).await?;
        let (pools, ports) = self.fip_context(ctx).await?;
        Ok(view(&f["floatingip"], &pools, &ports))
    }

    /// A new address from `pool` (an external network by name or id; none: the only
    /// external network, or the one named `public`).
    pub async fn fip_allocate(&self, ctx: &AuthContext, pool: Option<&str>) -> AppResult<Value> {
        let (pools, ports) = self.fip_context(ctx).await?;
        let chosen = match pool {
            Some(p) => pools.iter().find(|n| n["name"] == p || n["id"] == p),
            None if pools.len() == 1 => pools.first(),
            None => pools.iter().find(|n| n["name"] == "public"),
        }
        .ok_or_else(|| not_found(format!("Floating IP pool {} could not be found.", pool.unwrap_or("(default)"))))?;
        let body = json!({"floatingip": {"floating_network_id": chosen["id"]}});
        let f = self.net(ctx, Method::POST, "/v2.0/floatingips", Some(body), "Floating IP pool").await?;
        Ok(view(&f["floatingip"], &pools, &ports))
    }

    pub async fn fip_release(&self, ctx: &AuthContext, id: &str) -> AppResult<()> {
        let what = format!("Floating IP {id}");
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(not_found(format!("{what} could not be found.")));
        }
        self.net(ctx, Method::DELETE, &format!("/v2.0/floatingips/{id}"), None, &what).await.map(drop)
    }

    /// The caller's floating IP with this address.
    async fn fip_by_address(&self, ctx: &AuthContext, address: &str) -> AppResult<Value> {
        if address.is_empty() {
            return Err(bad("Invalid input: a floating IP address is required."));
        }
        let path = format!("/v2.0/floatingips?floating_ip_address={}", urlencoding::encode(address));
        let found = self.net(ctx, Method::GET, &path, None, "Floating IPs").await?;
        found["floatingips"]
            .as_array()
            .and_then(|a| a.first().cloned())
            .ok_or_else(|| not_found(format!("Floating IP not found for address {address}.")))
    }

    /// `addFloatingIp`: the address onto the server's port (the one holding
    /// `fixed_address`, else its first with an IPv4 address); moved from wherever it
    /// was. A port that has a floating IP already refuses a second (400).
    pub async fn fip_associate(
        &self,
        ctx: &AuthContext,
        server_id: &str,
        address: &str,
        fixed: Option<&str>,
    ) -> AppResult<()> {
        let server = self.server_get(ctx, server_id).await?;
        let fip = self.fip_by_address(ctx, address).await?;
        let ports =
            self.clients.ports_of(&server.id, server.project_id.as_str()).await.map_err(|e| refused("Ports", e))?;
        let has_v4 = |p: &Value, want: Option<&str>| {
            p["fixed_ips"].as_array().into_iter().flatten().any(|ip| {
                let a = ip["ip_address"].as_str().unwrap_or_default();
                want.map_or(a.contains('.'), |w| w == a)
            })
        };
        let port = ports.iter().find(|p| has_v4(p, fixed)).ok_or_else(|| {
            bad(format!("Server {server_id} has no port with {}.", fixed.unwrap_or("an IPv4 address")))
        })?;
        let mut body = json!({"floatingip": {"port_id": port["id"]}});
        if let Some(f) = fixed {
            body["floatingip"]["fixed_ip_address"] = json!(f);
        }
        let what = format!("Floating IP {address}");
        let path = format!("/v2.0/floatingips/{}", fip["id"].as_str().unwrap_or_default());
        if fip["port_id"].as_str().is_some_and(|p| Some(p) != port["id"].as_str()) {
            // Nova moves an address that is on another server.
            self.net(ctx, Method::PUT, &path, Some(json!({"floatingip": {"port_id": null}})), &what).await?;
        }
        self.net(ctx, Method::PUT, &path, Some(body), &what).await.map(drop)
    }

    /// `removeFloatingIp`: the address off the server (422 when it is not on it, as Nova).
    pub async fn fip_disassociate(&self, ctx: &AuthContext, server_id: &str, address: &str) -> AppResult<()> {
        let server = self.server_get(ctx, server_id).await?;
        let fip = self.fip_by_address(ctx, address).await?;
        let ports =
            self.clients.ports_of(&server.id, server.project_id.as_str()).await.map_err(|e| refused("Ports", e))?;
        if !ports.iter().any(|p| !fip["port_id"].is_null() && p["id"] == fip["port_id"]) {
            // Nova's answer for an address on another server, or on none.
            return Err(stratus_common::http::ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                format!("Floating IP {address} is not associated with server {server_id}."),
            )
            .into());
        }
        let path = format!("/v2.0/floatingips/{}", fip["id"].as_str().unwrap_or_default());
        let body = json!({"floatingip": {"port_id": null}});
        self.net(ctx, Method::PUT, &path, Some(body), &format!("Floating IP {address}")).await.map(drop)
    }
}
