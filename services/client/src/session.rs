//! A logged-in session: a token (from the cache when one is still good), the service
//! catalog, and JSON calls to any service by its catalog type.
//!
//! The token cache is one file per set of credentials under the user's cache directory
//! (`$XDG_CACHE_HOME/stratus` or `~/.cache/stratus`), mode 0600, holding the token,
//! its expiry and the catalog; a token with less than five minutes left is replaced.
//! So a command costs its own calls, not a login.

use crate::config::CloudConfig;
use crate::Error;
pub use reqwest::Method;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cached {
    token: String,
    expires_at: String,
    project_id: Option<String>,
    user_id: String,
    catalog: Value,
}

/// An authenticated session with one cloud.
pub struct Session {
    cfg: CloudConfig,
    http: reqwest::Client,
    auth: std::sync::Mutex<Cached>,
    /// Whether the token in use came from the cache (a refused one is replaced once).
    from_cache: std::sync::atomic::AtomicBool,
}

impl Session {
    /// Logs in with `cfg` (or reuses a cached token of the same credentials).
    pub async fn connect(cfg: CloudConfig) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // No bound on a whole call (an image upload takes as long as it takes), but
            // two minutes without a byte is a failure.
            .read_timeout(Duration::from_secs(120))
            .user_agent(concat!("stratus-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("cannot make an HTTP client: {e}")))?;
        let path = cache_path(&cfg);
        if let Some(c) = path.as_ref().and_then(read_cache) {
            if fresh(&c.expires_at) {
                return Ok(Self { cfg, http, auth: c.into(), from_cache: true.into() });
            }
        }
        let auth = login(&http, &cfg).await?;
        if let Some(p) = path {
            write_cache(&p, &auth);
        }
        Ok(Self { cfg, http, auth: auth.into(), from_cache: false.into() })
    }

    fn auth(&self) -> Cached {
        self.auth.lock().unwrap().clone()
    }

    pub fn token(&self) -> String {
        self.auth().token
    }

    pub fn project_id(&self) -> Option<String> {
        self.auth().project_id
    }

    pub fn user_id(&self) -> String {
        self.auth().user_id
    }

    pub fn expires_at(&self) -> String {
        self.auth().expires_at
    }

    /// Whether the token in use came from the cache.
    pub fn from_cache(&self) -> bool {
        self.from_cache.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The URL of service `service_type` (`compute`, `image`, `network`,
    /// `reservation`, `baremetal`, `volumev3`, `identity`) for this session's interface
    /// and region.
    pub fn endpoint(&self, service_type: &str) -> Result<String, Error> {
        let types: Vec<&str> = match service_type {
            "volume" | "volumev3" | "block-storage" => vec!["block-storage", "volumev3"],
            other => vec![other],
        };
        let auth = self.auth();
        let services = auth.catalog.as_array().cloned().unwrap_or_default();
        for t in types {
            let Some(svc) = services.iter().find(|s| s["type"] == t) else { continue };
            let endpoints = svc["endpoints"].as_array().cloned().unwrap_or_default();
            let found = endpoints.iter().find(|e| {
                e["interface"] == self.cfg.interface.as_str()
                    && self.cfg.region_name.as_deref().is_none_or(|r| e["region"] == r || e["region_id"] == r)
            });
            if let Some(url) = found.and_then(|e| e["url"].as_str()) {
                let url = url.replace("$(project_id)s", auth.project_id.as_deref().unwrap_or_default());
                return Ok(url.trim_end_matches('/').to_string());
            }
        }
        Err(Error::NoEndpoint {
            service: service_type.to_string(),
            interface: self.cfg.interface.clone(),
            region: self.cfg.region_name.clone(),
        })
    }

    /// `method` on `path` of service `service_type`, JSON in and out; extra headers
    /// (microversions) in `headers`. An answer outside 2xx is an [`Error::Api`] with
    /// the service's own message. A cached token the cloud refuses (revoked, or the
    /// password changed) is dropped, and the call made once more after a new login.
    pub async fn call(
        &self,
        method: Method,
        service_type: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Value, Error> {
        match self.call_once(method.clone(), service_type, path, body, headers).await {
            Err(Error::Api { status: 401, .. })
                if self.from_cache.swap(false, std::sync::atomic::Ordering::Relaxed) =>
            {
                let fresh = login(&self.http, &self.cfg).await?;
                if let Some(p) = cache_path(&self.cfg) {
                    write_cache(&p, &fresh);
                }
                *self.auth.lock().unwrap() = fresh;
                self.call_once(method, service_type, path, body, headers).await
            }
            other => other,
        }
    }

    async fn call_once(
        &self,
        method: Method,
        service_type: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Value, Error> {
        let url = format!("{}{path}", self.endpoint(service_type)?);
        let token = self.token();
        let mut req = self.http.request(method.clone(), &url).header("X-Auth-Token", &token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| Error::Unreachable(format!("{method} {url}: {e}")))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| Error::Unreachable(format!("{method} {url}: {e}")))?;
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(v);
        }
        if status == StatusCode::UNAUTHORIZED {
            if let Some(p) = cache_path(&self.cfg) {
                let _ = std::fs::remove_file(p);
            }
        }
        Err(Error::Api { status: status.as_u16(), message: error_message(&v, &bytes) })
    }

    /// Sends `body` (a stream of bytes, `len` of them) with `PUT` to `path`, as image
    /// data is uploaded; the answer's JSON, if any.
    pub async fn upload(&self, service_type: &str, path: &str, body: reqwest::Body, len: u64) -> Result<Value, Error> {
        let url = format!("{}{path}", self.endpoint(service_type)?);
        let resp = self
            .http
            .put(&url)
            .header("X-Auth-Token", self.token())
            .header("Content-Type", "application/octet-stream")
            .header("Content-Length", len)
            .body(body)
            .send()
            .await
            .map_err(|e| Error::Unreachable(format!("PUT {url}: {e}")))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| Error::Unreachable(format!("PUT {url}: {e}")))?;
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(Error::Api { status: status.as_u16(), message: error_message(&v, &bytes) });
        }
        Ok(v)
    }

    /// `GET path` as a stream (image data): the response, once its status is a success.
    pub async fn download(&self, service_type: &str, path: &str) -> Result<reqwest::Response, Error> {
        let url = format!("{}{path}", self.endpoint(service_type)?);
        let resp = self
            .http
            .get(&url)
            .header("X-Auth-Token", self.token())
            .send()
            .await
            .map_err(|e| Error::Unreachable(format!("GET {url}: {e}")))?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = resp.bytes().await.unwrap_or_default();
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            return Err(Error::Api { status: status.as_u16(), message: error_message(&v, &bytes) });
        }
        Ok(resp)
    }

    pub async fn get(&self, service_type: &str, path: &str) -> Result<Value, Error> {
        self.call(Method::GET, service_type, path, None, &[]).await
    }
}

/// The message of an OpenStack error body, whatever the service's shape: Nova's
/// `{"itemNotFound": {"message"}}`, Keystone's `{"error": {"message"}}`, Neutron's
/// `{"NeutronError": {"message"}}`, Blazar's `{"error_message"}`, Ironic's
/// `{"error_message": "{\"faultstring\": ...}"}`, Glance's plain text.
pub fn error_message(v: &Value, raw: &[u8]) -> String {
    if let Some(m) = v.get("error_message") {
        if let Some(s) = m.as_str() {
            if let Ok(inner) = serde_json::from_str::<Value>(s) {
                if let Some(f) = inner["faultstring"].as_str() {
                    return f.to_string();
                }
            }
            return s.to_string();
        }
    }
    if let Some(obj) = v.as_object() {
        for inner in obj.values() {
            if let Some(m) = inner.get("message").and_then(Value::as_str) {
                return m.to_string();
            }
        }
        if let Some(m) = obj.get("message").and_then(Value::as_str) {
            return m.to_string();
        }
    }
    let text = String::from_utf8_lossy(raw);
    let text = text.trim();
    if text.is_empty() {
        "no message".into()
    } else {
        text.chars().take(500).collect()
    }
}

async fn login(http: &reqwest::Client, cfg: &CloudConfig) -> Result<Cached, Error> {
    let url = format!("{}/auth/tokens", cfg.auth_url.trim_end_matches('/'));
    let resp = http
        .post(&url)
        .json(&cfg.auth_body()?)
        .send()
        .await
        .map_err(|e| Error::Unreachable(format!("the identity service at {url}: {e}")))?;
    let status = resp.status();
    let token = resp.headers().get("x-subject-token").and_then(|v| v.to_str().ok()).map(str::to_string);
    let bytes = resp.bytes().await.map_err(|e| Error::Unreachable(format!("{url}: {e}")))?;
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(Error::Auth(format!("{} ({})", error_message(&v, &bytes), status.as_u16())));
    }
    let token = token.ok_or_else(|| Error::Auth("the identity service gave no X-Subject-Token".into()))?;
    let t = &v["token"];
    Ok(Cached {
        token,
        expires_at: t["expires_at"].as_str().unwrap_or_default().to_string(),
        project_id: t["project"]["id"].as_str().map(str::to_string),
        user_id: t["user"]["id"].as_str().unwrap_or_default().to_string(),
        catalog: t["catalog"].clone(),
    })
}

/// A token is used while more than five minutes of it are left.
fn fresh(expires_at: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(expires_at)
        .map(|t| t.with_timezone(&chrono::Utc) - chrono::Utc::now() > chrono::Duration::minutes(5))
        .unwrap_or(false)
}

fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("stratus"))
}

fn cache_path(cfg: &CloudConfig) -> Option<PathBuf> {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(cfg.identity_key().as_bytes());
    let name: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    Some(cache_dir()?.join(format!("token-{name}.json")))
}

fn read_cache(path: &PathBuf) -> Option<Cached> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Writes the cache file readable by its owner alone; a cache that cannot be written
/// only costs the next command a login.
fn write_cache(path: &PathBuf, c: &Cached) {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let Some(dir) = path.parent() else { return };
    let _ = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir);
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(&serde_json::to_vec(c).unwrap_or_default()));
    if written.is_ok() {
        let _ = std::fs::rename(&tmp, path);
    } else {
        let _ = std::fs::remove_file(&tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_services_error_body_gives_its_message() {
        let m = |v: Value| error_message(&v, v.to_string().as_bytes());
        assert_eq!(
            m(serde_json::json!({"itemNotFound": {"code": 404, "message": "Instance x could not be found."}})),
            "Instance x could not be found."
        );
        assert_eq!(
            m(
                serde_json::json!({"error": {"code": 401, "message": "The request you have made requires authentication."}})
            ),
            "The request you have made requires authentication."
        );
        assert_eq!(
            m(
                serde_json::json!({"NeutronError": {"type": "NetworkNotFound", "message": "Network n could not be found."}})
            ),
            "Network n could not be found."
        );
        assert_eq!(
            m(serde_json::json!({"error_code": 404, "error_message": "Lease l not found"})),
            "Lease l not found"
        );
        assert_eq!(
            m(serde_json::json!({"error_message": "{\"faultstring\": \"Node n could not be found.\"}"})),
            "Node n could not be found."
        );
        assert_eq!(
            error_message(&Value::Null, b"404 Not Found\n\nThe resource could not be found."),
            "404 Not Found\n\nThe resource could not be found."
        );
    }

    #[test]
    fn tokens_are_reused_while_five_minutes_are_left() {
        let t = |mins: i64| (chrono::Utc::now() + chrono::Duration::minutes(mins)).to_rfc3339();
        assert!(fresh(&t(30)));
        assert!(!fresh(&t(4)));
        assert!(!fresh("not a date"));
    }
}
