//! Tokens a service or agent presents to other services: a service user's password
//! token from identity's API, renewed well before it expires, or (in all-in-one) a
//! token identity mints in-process.

use futures::future::BoxFuture;
use std::time::{Duration, Instant};

/// Where a caller gets the token it sends as `X-Auth-Token`.
pub trait TokenSource: Send + Sync {
    fn token(&self) -> BoxFuture<'_, anyhow::Result<String>>;
}

/// Credentials of the service user a service logs in with.
#[derive(Debug, Clone)]
pub struct ServiceCredentials {
    pub username: String,
    pub password: String,
    pub project: String,
    pub domain: String,
}

/// A project-scoped password token of a service user, cached for half an hour.
pub struct PasswordTokens {
    client: reqwest::Client,
    identity_url: String,
    credentials: ServiceCredentials,
    cached: tokio::sync::Mutex<Option<(String, Instant)>>,
}

impl PasswordTokens {
    pub fn new(identity_url: &str, credentials: ServiceCredentials) -> Self {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("HTTP client");
        Self {
            client,
            identity_url: identity_url.trim_end_matches('/').to_string(),
            credentials,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    pub async fn get(&self) -> anyhow::Result<String> {
        let mut cached = self.cached.lock().await;
        if let Some((t, at)) = cached.as_ref() {
            // Renew well before the default one-hour lifetime runs out.
            if at.elapsed() < Duration::from_secs(30 * 60) {
                return Ok(t.clone());
            }
        }
        let c = &self.credentials;
        let body = serde_json::json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": c.username, "password": c.password, "domain": {"name": c.domain}}}},
            "scope": {"project": {"name": c.project, "domain": {"name": c.domain}}}}});
        let resp = self
            .client
            .post(format!("{}/v3/auth/tokens?nocatalog", self.identity_url))
            .json(&body)
            .send()
            .await?
            .error_for_status()?;
        let token = resp
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| anyhow::anyhow!("identity answered without X-Subject-Token"))?
            .to_string();
        *cached = Some((token.clone(), Instant::now()));
        Ok(token)
    }
}

impl TokenSource for PasswordTokens {
    fn token(&self) -> BoxFuture<'_, anyhow::Result<String>> {
        Box::pin(self.get())
    }
}
