//! Nova's network proxies (`os-networks`, `os-tenant-networks`, below 2.36), read-only
//! as in Nova with Neutron: the networks the caller sees, each with its label and the
//! CIDR of its first subnet.

use super::security_groups::refused;
use super::{not_found, AppResult, ComputeService};
use reqwest::Method;
use serde_json::{json, Value};
use stratus_common::auth::AuthContext;

fn view(n: &Value, subnets: &[Value]) -> Value {
    let cidr = n["subnets"]
        .as_array()
        .and_then(|ids| ids.first())
        .and_then(|first| subnets.iter().find(|s| s["id"] == *first))
        .map(|s| s["cidr"].clone())
        .unwrap_or(Value::Null);
    json!({"id": n["id"], "label": n["name"], "cidr": cidr})
}

impl ComputeService {
    pub async fn proxy_network_list(&self, ctx: &AuthContext) -> AppResult<Vec<Value>> {
        let nets = self
            .clients
            .network_call(&ctx.token, Method::GET, "/v2.0/networks", None)
            .await
            .map_err(|e| refused("Networks", e))?;
        let subs = self
            .clients
            .network_call(&ctx.token, Method::GET, "/v2.0/subnets?fields=id&fields=cidr", None)
            .await
            .map_err(|e| refused("Subnets", e))?;
        let subs = subs["subnets"].as_array().cloned().unwrap_or_default();
        Ok(nets["networks"].as_array().into_iter().flatten().map(|n| view(n, &subs)).collect())
    }

    pub async fn proxy_network_get(&self, ctx: &AuthContext, id: &str) -> AppResult<Value> {
        self.proxy_network_list(ctx)
            .await?
            .into_iter()
            .find(|n| n["id"] == id)
            .ok_or_else(|| not_found(format!("Network {id} could not be found.")))
    }
}
