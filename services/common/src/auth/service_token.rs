//! Tokens a service or agent presents to other services: a service user's password
//! token from identity's API, renewed well before it expires, or (in all-in-one) a
//! token identity mints in-process.

use futures::future::BoxFuture;
use std::time::{Duration, Instant};

/// Where a caller gets the token it sends as `X-Auth-Token`.
pub trait TokenSource: Send + Sync {
    fn token(&self) -> BoxFuture<'_, anyhow::Result<String>>;

    /// Tells the source a service refused `token` (401: revoked, or the user's password
    /// changed): the next [`TokenSource::token`] gets a new one. Callers retry once.
    fn refused(&self, _token: &str) {}
}

/// A token kept until it is due for renewal: at three quarters of its lifetime, and at
/// least five seconds before it expires, so a call never carries an expired token; or
/// at once when a service refused it.
#[derive(Default)]
pub struct TokenCache {
    cached: std::sync::Mutex<Option<(String, Instant)>>,
    /// Only one caller fetches a new token at a time.
    renewing: tokio::sync::Mutex<()>,
}

impl TokenCache {
    /// The kept token, or a new one from `fetch` (which answers the token and how long
    /// it lives).
    pub async fn get<F, Fut>(&self, fetch: F) -> anyhow::Result<String>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<(String, Duration)>>,
    {
        if let Some(t) = self.fresh() {
            return Ok(t);
        }
        let _one = self.renewing.lock().await;
        if let Some(t) = self.fresh() {
            return Ok(t);
        }
        let (token, lifetime) = fetch().await?;
        let keep = (lifetime * 3 / 4).min(lifetime.saturating_sub(Duration::from_secs(5)));
        *self.cached.lock().unwrap() = Some((token.clone(), Instant::now() + keep));
        Ok(token)
    }

    fn fresh(&self) -> Option<String> {
        let cached = self.cached.lock().unwrap();
        cached.as_ref().filter(|(_, renew)| Instant::now() < *renew).map(|(t, _)| t.clone())
    }

    /// Forgets `token` if it is the one kept.
    pub fn forget(&self, token: &str) {
        let mut cached = self.cached.lock().unwrap();
        if cached.as_ref().is_some_and(|(t, _)| t == token) {
            *cached = None;
        }
    }
}

/// How long a token that expires at `expires_at` (RFC 3339) has left.
pub fn lifetime_until(expires_at: &str) -> Duration {
    chrono::DateTime::parse_from_rfc3339(expires_at)
        .ok()
        .and_then(|e| (e.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().ok())
        .unwrap_or_default()
}

/// Credentials of the service user a service logs in with.
#[derive(Debug, Clone)]
pub struct ServiceCredentials {
    pub username: String,
    pub password: String,
    pub project: String,
    pub domain: String,
}

/// A project-scoped password token of a service user, renewed before it expires.
pub struct PasswordTokens {
    client: reqwest::Client,
    identity_url: String,
    credentials: ServiceCredentials,
    cache: TokenCache,
}

impl PasswordTokens {
    pub fn new(identity_url: &str, credentials: ServiceCredentials) -> Self {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("HTTP client");
        Self {
            client,
            identity_url: identity_url.trim_end_matches('/').to_string(),
            credentials,
            cache: TokenCache::default(),
        }
    }

    pub async fn get(&self) -> anyhow::Result<String> {
        self.cache.get(|| self.login()).await
    }

    /// Forgets a token a service refused.
    pub fn forget(&self, token: &str) {
        self.cache.forget(token);
    }

    async fn login(&self) -> anyhow::Result<(String, Duration)> {
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
        let body: serde_json::Value = resp.json().await?;
        let lifetime = lifetime_until(body["token"]["expires_at"].as_str().unwrap_or_default());
        Ok((token, lifetime))
    }
}

impl TokenSource for PasswordTokens {
    fn token(&self) -> BoxFuture<'_, anyhow::Result<String>> {
        Box::pin(self.get())
    }

    fn refused(&self, token: &str) {
        self.forget(token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn tokens_are_renewed_before_expiry_and_after_a_refusal() {
        let cache = TokenCache::default();
        let n = AtomicU32::new(0);
        let fetch = |life: u64| {
            let k = n.fetch_add(1, Ordering::SeqCst);
            async move { Ok((format!("t{k}"), Duration::from_secs(life))) }
        };
        assert_eq!(cache.get(|| fetch(3600)).await.unwrap(), "t0");
        assert_eq!(cache.get(|| fetch(3600)).await.unwrap(), "t0", "kept while fresh");
        cache.forget("someone-else's");
        assert_eq!(cache.get(|| fetch(3600)).await.unwrap(), "t0");
        cache.forget("t0");
        assert_eq!(cache.get(|| fetch(4)).await.unwrap(), "t1", "a refused token is replaced");
        // Four seconds to live: less than the five-second margin, so never reused.
        assert_eq!(cache.get(|| fetch(3600)).await.unwrap(), "t2");
        assert!(lifetime_until("2000-01-01T00:00:00Z").is_zero());
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(100)).to_rfc3339();
        assert!((95..=100).contains(&lifetime_until(&soon).as_secs()));
    }
}
