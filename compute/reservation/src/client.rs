//! A call to another service's API with the service's own token: a 401 (the token was
//! revoked or expired early) gets a fresh token and one more try; a 5xx or an
//! unreachable service is an error worth retrying; any other answer is returned.

use serde_json::Value;
use std::sync::Arc;
use stratus_common::auth::service_token::TokenSource;

pub struct ServiceClient {
    pub http: reqwest::Client,
    /// The service's endpoint, prefixed to every path.
    pub url: String,
    pub tokens: Arc<dyn TokenSource>,
    /// What the service is called in errors ("compute").
    pub name: &'static str,
    /// Headers every call carries (a microversion, say).
    pub headers: Vec<(&'static str, &'static str)>,
}

impl ServiceClient {
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
        self.send(method, path, body, "application/json").await
    }

    /// A JSON patch (RFC 6902), as the image service takes changes.
    pub async fn call_patch(&self, path: &str, patch: Value) -> anyhow::Result<(u16, Value)> {
        self.send(reqwest::Method::PATCH, path, Some(patch), "application/openstack-images-v2.1-json-patch").await
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        content_type: &str,
    ) -> anyhow::Result<(u16, Value)> {
        let name = self.name;
        for attempt in 0..2 {
            let token = self.tokens.token().await?;
            let mut req =
                self.http.request(method.clone(), format!("{}{path}", self.url)).header("X-Auth-Token", &token);
            for (k, v) in &self.headers {
                req = req.header(*k, *v);
            }
            if let Some(b) = &body {
                req = req.header("Content-Type", content_type).body(b.to_string());
            }
            let resp = req.send().await.map_err(|e| anyhow::anyhow!("{name} is unreachable: {e}"))?;
            let status = resp.status().as_u16();
            if status == 401 && attempt == 0 {
                self.tokens.refused(&token);
                continue;
            }
            let value = resp.json::<Value>().await.unwrap_or(Value::Null);
            if status >= 500 {
                anyhow::bail!("{name} answered {status}: {value}");
            }
            return Ok((status, value));
        }
        anyhow::bail!("{name} refused the service's token")
    }
}
