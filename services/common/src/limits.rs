//! Reading a project's quotas (Keystone unified limits) from the services that enforce
//! them.
//!
//! Identity stores registered defaults per service and resource, and per-project
//! overrides. A service asks [`LimitsClient::limit`] before creating a resource and then
//! checks and records usage in one atomic statement of its own. Answers are cached for a
//! short time and dropped at once when identity publishes `identity.limits.changed`.

use crate::bus::Bus;
use futures::future::BoxFuture;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Bus subject identity publishes on whenever a limit or registered limit changes.
pub const LIMITS_CHANGED_SUBJECT: &str = "identity.limits.changed";

/// The effective limits of one project for one service type: resource name → limit
/// (`-1` means unlimited).
pub type ProjectLimits = HashMap<String, i64>;

/// Where limits come from: identity's own store in-process, its API elsewhere.
pub trait LimitsSource: Send + Sync {
    fn project_limits<'a>(
        &'a self,
        project_id: &'a str,
        service_type: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<ProjectLimits>>;
}

/// Cached answers: (project, service type) → when fetched, limits.
type LimitsCache = HashMap<(String, String), (Instant, Arc<ProjectLimits>)>;

pub struct LimitsClient {
    source: Arc<dyn LimitsSource>,
    ttl: Duration,
    cache: Mutex<LimitsCache>,
}

impl LimitsClient {
    pub fn new(source: Arc<dyn LimitsSource>, ttl: Duration) -> Arc<Self> {
        Arc::new(Self { source, ttl, cache: Mutex::new(HashMap::new()) })
    }

    /// All effective limits of a project for a service type.
    pub async fn project_limits(&self, project_id: &str, service_type: &str) -> anyhow::Result<Arc<ProjectLimits>> {
        let key = (project_id.to_string(), service_type.to_string());
        if let Some((at, v)) = self.cache.lock().unwrap().get(&key) {
            if at.elapsed() < self.ttl {
                return Ok(v.clone());
            }
        }
        let fresh = Arc::new(self.source.project_limits(project_id, service_type).await?);
        self.cache.lock().unwrap().insert(key, (Instant::now(), fresh.clone()));
        Ok(fresh)
    }

    /// One limit; `None` when no limit is registered for the resource (unlimited).
    pub async fn limit(&self, project_id: &str, service_type: &str, resource: &str) -> anyhow::Result<Option<i64>> {
        let all = self.project_limits(project_id, service_type).await?;
        Ok(all.get(resource).copied().filter(|l| *l >= 0))
    }

    pub fn invalidate(&self) {
        self.cache.lock().unwrap().clear();
    }

    /// Drops the cache whenever identity announces a change.
    pub fn spawn_invalidation(self: &Arc<Self>, bus: Bus) {
        let me = self.clone();
        crate::supervisor::SUPERVISOR.spawn("limits.invalidation", move |_task| {
            let (me, bus) = (me.clone(), bus.clone());
            async move {
                let mut sub = bus.subscribe(LIMITS_CHANGED_SUBJECT).await?;
                // What was cached before the subscription (or while it was down) may
                // have missed a change: start afresh.
                me.invalidate();
                while sub.next().await.is_some() {
                    me.invalidate();
                }
                Ok(())
            }
        });
    }
}

use crate::auth::service_token::PasswordTokens;
pub use crate::auth::service_token::ServiceCredentials;

/// Reads limits over identity's HTTP API with a service user's token.
pub struct HttpLimitsSource {
    client: reqwest::Client,
    identity_url: String,
    tokens: PasswordTokens,
}

impl HttpLimitsSource {
    pub fn new(identity_url: &str, credentials: ServiceCredentials) -> Self {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("HTTP client");
        Self {
            client,
            identity_url: identity_url.trim_end_matches('/').to_string(),
            tokens: PasswordTokens::new(identity_url, credentials),
        }
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let url = format!("{}{}", self.identity_url, path);
        let token = self.tokens.get().await?;
        let mut resp = self.client.get(&url).header("x-auth-token", &token).send().await?;
        if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
            // Revoked or expired early: a new token, one more try.
            self.tokens.forget(&token);
            let token = self.tokens.get().await?;
            resp = self.client.get(&url).header("x-auth-token", &token).send().await?;
        }
        Ok(resp.error_for_status()?.json().await?)
    }
}

impl LimitsSource for HttpLimitsSource {
    fn project_limits<'a>(
        &'a self,
        project_id: &'a str,
        service_type: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<ProjectLimits>> {
        Box::pin(async move {
            let services = self.get(&format!("/v3/services?type={}", urlencoding::encode(service_type))).await?;
            let Some(service_id) = services["services"][0]["id"].as_str().map(str::to_string) else {
                return Ok(ProjectLimits::new());
            };
            let mut out = ProjectLimits::new();
            let registered = self.get(&format!("/v3/registered_limits?service_id={service_id}")).await?;
            for r in registered["registered_limits"].as_array().into_iter().flatten() {
                if let (Some(name), Some(l)) = (r["resource_name"].as_str(), r["default_limit"].as_i64()) {
                    out.insert(name.to_string(), l);
                }
            }
            let limits = self
                .get(&format!("/v3/limits?service_id={service_id}&project_id={}", urlencoding::encode(project_id)))
                .await?;
            for r in limits["limits"].as_array().into_iter().flatten() {
                if let (Some(name), Some(l)) = (r["resource_name"].as_str(), r["resource_limit"].as_i64()) {
                    out.insert(name.to_string(), l);
                }
            }
            Ok(out)
        })
    }
}

/// The answer identity's limits API gives when it cannot be reached or read.
fn unavailable(e: &dyn std::fmt::Display) -> crate::http::ApiError {
    tracing::error!(error = %e, "cannot write limits to identity");
    crate::http::ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "Quotas cannot be written right now; try again.",
    )
}

/// Identity's refusal of a limits call, passed on with its status (4xx), or a 503.
async fn refusal(resp: reqwest::Response) -> crate::http::ApiError {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    if (400..500).contains(&status) {
        crate::http::ApiError::new(
            axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::BAD_REQUEST),
            format!("Identity refused the quota: {text}"),
        )
    } else {
        unavailable(&text)
    }
}

/// The id of the catalog's `service_type` service, `None` when there is none.
async fn service_id_of(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    service_type: &str,
) -> Result<Option<String>, crate::http::ApiError> {
    let services: Value = http
        .get(format!("{base}/v3/services?type={service_type}"))
        .header("x-auth-token", token)
        .send()
        .await
        .map_err(|e| unavailable(&e))?
        .json()
        .await
        .map_err(|e| unavailable(&e))?;
    Ok(services["services"][0]["id"].as_str().map(str::to_string))
}

/// Writes one limit: `PATCH {collection}/{id}` with `{one: {field: n}}` when it exists
/// (`id`), else `POST {collection}` with `{many: [new]}`. Identity's refusals come back
/// with its status.
async fn upsert(
    http: &reqwest::Client,
    token: &str,
    collection: &str,
    id: Option<&str>,
    (one, many): (&str, &str),
    (field, n): (&str, i64),
    new: Value,
) -> Result<(), crate::http::ApiError> {
    let req = match id {
        Some(id) => http.patch(format!("{collection}/{id}")).json(&serde_json::json!({ one: { field: n } })),
        None => http.post(collection).json(&serde_json::json!({ many: [new] })),
    };
    let resp = req.header("x-auth-token", token).send().await.map_err(|e| unavailable(&e))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(refusal(resp).await)
    }
}

/// The id of the catalog's `service_type` service (`None` when there is none) and the
/// project limits `project` has for it, as identity lists them.
async fn project_limits_of(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    service_type: &str,
    project: &str,
) -> Result<Option<(String, Value)>, crate::http::ApiError> {
    let get = |url: String| http.get(url).header("x-auth-token", token).send();
    let Some(service_id) = service_id_of(http, base, token, service_type).await? else { return Ok(None) };
    let existing: Value = get(format!("{base}/v3/limits?project_id={project}&service_id={service_id}"))
        .await
        .map_err(|e| unavailable(&e))?
        .json()
        .await
        .map_err(|e| unavailable(&e))?;
    Ok(Some((service_id, existing)))
}

/// Deletes every project limit of one service type of `project` through identity's
/// limits API with the caller's token: the registered defaults apply again.
pub async fn delete_limits(
    http: &reqwest::Client,
    identity_url: &str,
    token: &str,
    service_type: &str,
    project: &str,
) -> Result<(), crate::http::ApiError> {
    let base = identity_url.trim_end_matches('/');
    let Some((_, existing)) = project_limits_of(http, base, token, service_type, project).await? else { return Ok(()) };
    for id in existing["limits"].as_array().into_iter().flatten().filter_map(|l| l["id"].as_str()) {
        let resp = http
            .delete(format!("{base}/v3/limits/{id}"))
            .header("x-auth-token", token)
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        if !(resp.status().is_success() || resp.status().as_u16() == 404) {
            return Err(refusal(resp).await);
        }
    }
    Ok(())
}

/// Sets project limits of one service type through identity's limits API with the
/// caller's token (so identity decides who may): updates existing limits, creates the
/// others. A negative value means unlimited (stored as a very large limit, since
/// unified limits have no "unlimited"). Identity's refusals come back with its status;
/// an unreachable identity is a 503.
pub async fn write_limits(
    http: &reqwest::Client,
    identity_url: &str,
    token: &str,
    service_type: &str,
    project: &str,
    wanted: &[(String, i64)],
) -> Result<(), crate::http::ApiError> {
    let base = identity_url.trim_end_matches('/');
    let (service_id, existing) = project_limits_of(http, base, token, service_type, project)
        .await?
        .ok_or_else(|| unavailable(&format!("no {service_type} service in the catalog")))?;
    for (resource, n) in wanted {
        let n = if *n < 0 { i64::from(i32::MAX) } else { *n };
        let found = existing["limits"]
            .as_array()
            .and_then(|a| a.iter().find(|l| l["resource_name"].as_str() == Some(resource.as_str())));
        let new = serde_json::json!({"service_id": service_id, "project_id": project, "resource_name": resource, "resource_limit": n});
        let id = found.and_then(|l| l["id"].as_str());
        upsert(http, token, &format!("{base}/v3/limits"), id, ("limit", "limits"), ("resource_limit", n), new).await?;
    }
    Ok(())
}

/// The id of the catalog's `service_type` service and its registered limits (every
/// project's defaults) as identity lists them.
async fn registered_limits_of(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    service_type: &str,
) -> Result<(String, Vec<Value>), crate::http::ApiError> {
    let service_id = service_id_of(http, base, token, service_type)
        .await?
        .ok_or_else(|| unavailable(&format!("no {service_type} service in the catalog")))?;
    let resp = http
        .get(format!("{base}/v3/registered_limits?service_id={service_id}"))
        .header("x-auth-token", token)
        .send()
        .await
        .map_err(|e| unavailable(&e))?;
    if !resp.status().is_success() {
        return Err(refusal(resp).await);
    }
    let listed: Value = resp.json().await.map_err(|e| unavailable(&e))?;
    Ok((service_id, listed["registered_limits"].as_array().cloned().unwrap_or_default()))
}

/// Every project's default limits of one service type (identity's registered limits),
/// by resource; an unlimited one (stored as a very large limit) reads -1.
pub async fn read_defaults(
    http: &reqwest::Client,
    identity_url: &str,
    token: &str,
    service_type: &str,
) -> Result<HashMap<String, i64>, crate::http::ApiError> {
    let (_, listed) = registered_limits_of(http, identity_url.trim_end_matches('/'), token, service_type).await?;
    Ok(listed
        .iter()
        .filter_map(|l| {
            let n = l["default_limit"].as_i64()?;
            Some((l["resource_name"].as_str()?.to_string(), if n >= i64::from(i32::MAX) { -1 } else { n }))
        })
        .collect())
}

/// Sets every project's default limits of one service type (identity's registered
/// limits) with the caller's token: updates those registered, registers the others. A
/// negative value means unlimited, as in [`write_limits`].
pub async fn write_defaults(
    http: &reqwest::Client,
    identity_url: &str,
    token: &str,
    service_type: &str,
    wanted: &[(String, i64)],
) -> Result<(), crate::http::ApiError> {
    let base = identity_url.trim_end_matches('/');
    let (service_id, listed) = registered_limits_of(http, base, token, service_type).await?;
    for (resource, n) in wanted {
        let n = if *n < 0 { i64::from(i32::MAX) } else { *n };
        let found = listed.iter().find(|l| l["resource_name"].as_str() == Some(resource.as_str()));
        let new = serde_json::json!({"service_id": service_id, "resource_name": resource, "default_limit": n});
        let id = found.and_then(|l| l["id"].as_str());
        let collection = format!("{base}/v3/registered_limits");
        upsert(http, token, &collection, id, ("registered_limit", "registered_limits"), ("default_limit", n), new)
            .await?;
    }
    Ok(())
}

/// Quota classes other than `default` are not kept (Nova's and Cinder's `default` class
/// is every project's defaults; each project has its own limits over them).
pub fn only_default_class(class: &str) -> Result<(), crate::http::ApiError> {
    if class == "default" {
        Ok(())
    } else {
        Err(crate::http::ApiError::bad_request(format!(
            "Quota class {class} does not exist here: only 'default' (every project's defaults)."
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting(AtomicUsize);
    impl LimitsSource for Counting {
        fn project_limits<'a>(&'a self, _p: &'a str, _s: &'a str) -> BoxFuture<'a, anyhow::Result<ProjectLimits>> {
            let n = self.0.fetch_add(1, Ordering::SeqCst) as i64;
            Box::pin(async move { Ok(HashMap::from([("instances".to_string(), 10 + n), ("cores".to_string(), -1)])) })
        }
    }

    #[tokio::test]
    async fn caches_until_limits_change_on_the_bus() {
        let source = Arc::new(Counting(AtomicUsize::new(0)));
        let client = LimitsClient::new(source.clone(), Duration::from_secs(60));
        let bus = Bus::Memory(crate::bus::MemoryBus::new());
        client.spawn_invalidation(bus.clone());
        assert_eq!(client.limit("p", "compute", "instances").await.unwrap(), Some(10));
        assert_eq!(client.limit("p", "compute", "instances").await.unwrap(), Some(10));
        assert_eq!(client.limit("p", "compute", "cores").await.unwrap(), None, "-1 is unlimited");
        assert_eq!(source.0.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(50)).await;
        bus.publish(LIMITS_CHANGED_SUBJECT, b"{}".to_vec()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(client.limit("p", "compute", "instances").await.unwrap(), Some(11));
    }
}
