//! The agent's calls to the network service.

use crate::model::DesiredState;
use anyhow::Context;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use stratus_common::auth::service_token::TokenSource;

pub struct Client {
    http: reqwest::Client,
    base: String,
    host: String,
    tokens: Arc<dyn TokenSource>,
}

impl Client {
    pub fn new(network_url: &str, host: &str, tokens: Arc<dyn TokenSource>) -> Self {
        Self {
            http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("HTTP client"),
            base: network_url.trim_end_matches('/').to_string(),
            host: host.to_string(),
            tokens,
        }
    }

    fn url(&self, rest: &str) -> String {
        format!("{}/v2.0/os-stratus/hosts/{}/{rest}", self.base, urlencoding::encode(&self.host))
    }

    /// Sends with the agent's token; a 401 (revoked, or expired early) gets a new
    /// token and one more try.
    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let token = self.tokens.token().await.context("cannot get a token")?;
        let again = req.try_clone();
        let mut resp = req.header("x-auth-token", &token).send().await?;
        if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
            self.tokens.refused(&token);
            if let Some(again) = again {
                let token = self.tokens.token().await.context("cannot get a token")?;
                resp = again.header("x-auth-token", token).send().await?;
            }
        }
        if !resp.status().is_success() {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            anyhow::bail!("network service answered {status}: {body}");
        }
        Ok(resp)
    }

    /// The host's desired state; with `routers`, every router too (this host runs them).
    pub async fn desired_state(&self, routers: bool) -> anyhow::Result<DesiredState> {
        let url = self.url(if routers { "desired-state?routers=true" } else { "desired-state" });
        Ok(self.send(self.http.get(url)).await?.json().await?)
    }

    /// Heartbeat plus the status of ports.
    pub async fn report(&self, ports: &BTreeMap<String, &'static str>, configurations: Value) -> anyhow::Result<()> {
        let body = json!({"ports": ports, "configurations": configurations});
        self.send(self.http.put(self.url("report")).json(&body)).await?;
        Ok(())
    }

    pub async fn dhcp_port_ensure(&self, network_id: &str) -> anyhow::Result<()> {
        self.send(self.http.put(self.url(&format!("dhcp-ports/{network_id}")))).await?;
        Ok(())
    }

    pub async fn dhcp_port_release(&self, network_id: &str) -> anyhow::Result<()> {
        self.send(self.http.delete(self.url(&format!("dhcp-ports/{network_id}")))).await?;
        Ok(())
    }
}
