//! The other services compute calls: the network API (ports, networks, security groups)
//! and the image API (images). Checks made for a request use the caller's token, so a
//! user can only boot from what they can see; saga steps, which must also run after a
//! restart, use the service's own token.

use reqwest::Method;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stratus_common::auth::service_token::TokenSource;
use urlencoding::encode as urlencode;

/// Why a call failed: the other service refused (4xx, with its message), or it could
/// not be reached or failed itself (worth retrying).
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{1}")]
    Refused(u16, String),
    #[error("{0}")]
    Unavailable(String),
}

impl CallError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, CallError::Refused(404, _))
    }
}

pub type CallResult<T> = Result<T, CallError>;

/// How long a network's name is reused for servers' `addresses` (keyed by name): a
/// renamed network shows under its new name within this long.
const NAME_TTL: Duration = Duration::from_secs(10);

/// Network names recently read, by network id.
#[derive(Default)]
pub struct NetworkNames(Mutex<HashMap<String, (String, Instant)>>);

impl NetworkNames {
    fn get(&self, id: &str) -> Option<String> {
        let names = self.0.lock().unwrap();
        names.get(id).filter(|(_, at)| at.elapsed() < NAME_TTL).map(|(n, _)| n.clone())
    }

    fn put(&self, id: &str, name: &str) {
        let mut names = self.0.lock().unwrap();
        if names.len() >= 10_000 {
            names.retain(|_, (_, at)| at.elapsed() < NAME_TTL);
        }
        names.insert(id.to_string(), (name.to_string(), Instant::now()));
    }
}

pub struct Clients {
    pub http: reqwest::Client,
    pub network_url: String,
    pub image_url: String,
    /// The block-storage API (Cinder v3), where volumes are attached from.
    pub volume_url: String,
    /// Identity's API, where quota changes go (as unified limits).
    pub identity_url: String,
    pub tokens: Arc<dyn TokenSource>,
    pub network_names: NetworkNames,
}

impl Clients {
    async fn service_token(&self) -> CallResult<String> {
        self.tokens.token().await.map_err(|e| CallError::Unavailable(format!("no service token: {e:#}")))
    }

    /// A call with the service's own token; a 401 (the token was revoked, or expired
    /// early) gets a new token and one more try.
    async fn service_call(&self, method: Method, url: &str, body: Option<Value>) -> CallResult<Value> {
        let token = self.service_token().await?;
        match self.call(method.clone(), url, &token, body.clone()).await {
            Err(CallError::Refused(401, _)) => {
                let token = self.service_token().await?;
                self.call(method, url, &token, body).await
            }
            other => other,
        }
    }

    async fn call(&self, method: Method, url: &str, token: &str, body: Option<Value>) -> CallResult<Value> {
        let mut req = self.http.request(method, url).header("x-auth-token", token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| CallError::Unavailable(format!("{url}: {e}")))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            // Ours (the service token) is renewed; a user's token is no concern of the source.
            self.tokens.refused(token);
        }
        let message = value["NeutronError"]["message"]
            .as_str()
            .or_else(|| value["message"].as_str())
            .or_else(|| value["error"]["message"].as_str())
            // Cinder's and Nova's: {"badRequest": {"message": ..., "code": 400}}
            .or_else(|| value.as_object().and_then(|o| o.values().next()).and_then(|v| v["message"].as_str()))
            .map(str::to_string)
            .unwrap_or_else(|| text.chars().take(200).collect());
        if status.is_client_error() {
            Err(CallError::Refused(status.as_u16(), message))
        } else {
            Err(CallError::Unavailable(format!("{url}: {status} {message}")))
        }
    }

    /// An image the caller can see.
    pub async fn image(&self, token: &str, id: &str) -> CallResult<Value> {
        self.call(Method::GET, &format!("{}/v2/images/{}", self.image_url, urlencode(id)), token, None).await
    }

    /// Makes an image as the caller (its owner the caller's project, its quota the
    /// caller's); the image as answered.
    pub async fn image_create(&self, token: &str, body: Value) -> CallResult<Value> {
        self.call(Method::POST, &format!("{}/v2/images", self.image_url), token, Some(body)).await
    }

    /// Uploads no data to an image, as the caller: an image that stands for volume
    /// snapshots (a volume-backed server's snapshot) is active with size 0, as Nova
    /// makes it.
    pub async fn image_activate_empty(&self, token: &str, id: &str) -> CallResult<()> {
        let url = format!("{}/v2/images/{}/file", self.image_url, urlencode(id));
        let resp = self
            .http
            .put(&url)
            .header("x-auth-token", token)
            .header("content-type", "application/octet-stream")
            .body(Vec::new())
            .send()
            .await
            .map_err(|e| CallError::Unavailable(format!("{url}: {e}")))?;
        match resp.status() {
            s if s.is_success() => Ok(()),
            s if s.is_client_error() => Err(CallError::Refused(s.as_u16(), resp.text().await.unwrap_or_default())),
            s => Err(CallError::Unavailable(format!("{url}: {s}"))),
        }
    }

    /// The active images made from server `server` as `image_type` (`backup`) of
    /// `backup_type`, newest first, with the service's token (whoever owns them).
    pub async fn images_of_server(&self, server: &str, image_type: &str, backup_type: &str) -> CallResult<Vec<Value>> {
        let url = format!(
            "{}/v2/images?limit=1000&status=active&visibility=all&sort_key=created_at&sort_dir=desc&instance_uuid={}&image_type={}&backup_type={}",
            self.image_url,
            urlencode(server),
            urlencode(image_type),
            urlencode(backup_type)
        );
        let v = self.service_call(Method::GET, &url, None).await?;
        Ok(v["images"].as_array().cloned().unwrap_or_default())
    }

    /// A call to the image service as the caller (`path` below its root).
    pub async fn image_call(&self, token: &str, method: Method, path: &str, body: Option<Value>) -> CallResult<Value> {
        self.call(method, &format!("{}{path}", self.image_url), token, body).await
    }

    /// A JSON patch of an image, as the caller; the image as answered.
    pub async fn image_patch(&self, token: &str, id: &str, ops: Value) -> CallResult<Value> {
        let url = format!("{}/v2/images/{}", self.image_url, urlencode(id));
        let resp = self
            .http
            .patch(&url)
            .header("x-auth-token", token)
            .header("content-type", "application/openstack-images-v2.1-json-patch")
            .body(ops.to_string())
            .send()
            .await
            .map_err(|e| CallError::Unavailable(format!("{url}: {e}")))?;
        let status = resp.status();
        let value: Value = resp.json().await.unwrap_or(Value::Null);
        match status {
            s if s.is_success() => Ok(value),
            s if s.is_client_error() => {
                Err(CallError::Refused(s.as_u16(), value["message"].as_str().unwrap_or("").into()))
            }
            s => Err(CallError::Unavailable(format!("{url}: {s}"))),
        }
    }

    /// An image, with the service's token (whoever owns it).
    pub async fn image_as_service(&self, id: &str) -> CallResult<Value> {
        self.service_call(Method::GET, &format!("{}/v2/images/{}", self.image_url, urlencode(id)), None).await
    }

    /// Ends an image that stands for volume snapshots (a volume-backed server's
    /// snapshot), with the service's token: its `block_device_mapping` property set
    /// to `mappings`, then no data uploaded, so it is active with size 0 as Nova makes it.
    pub async fn image_finish_volume_snapshot(&self, id: &str, mappings: &Value) -> CallResult<()> {
        let token = self.service_token().await?;
        let ops = json!([{"op": "add", "path": "/block_device_mapping", "value": mappings.to_string()}]);
        self.image_patch(&token, id, ops).await?;
        self.image_activate_empty(&token, id).await
    }

    /// A delete with the service's token, of something that may be gone already.
    async fn service_delete(&self, url: &str) -> CallResult<()> {
        match self.service_call(Method::DELETE, url, None).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes an image, with the service's token (an image gone already is fine).
    pub async fn image_delete(&self, id: &str) -> CallResult<()> {
        self.service_delete(&format!("{}/v2/images/{}", self.image_url, urlencode(id))).await
    }

    /// A volume the caller can see (in `project`'s URL, the caller's own or, for an
    /// admin, any).
    pub async fn volume_as(&self, token: &str, project: &str, id: &str) -> CallResult<Value> {
        let url = format!("{}/v3/{}/volumes/{}", self.volume_url, urlencode(project), urlencode(id));
        Ok(self.call(Method::GET, &url, token, None).await?["volume"].clone())
    }

    /// `method` on `path` of the block-storage API below project `project`'s URL
    /// (`/volumes`, ...) as the caller (Nova's volume proxy acts with the user's rights).
    pub async fn volume_call(
        &self,
        token: &str,
        project: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> CallResult<Value> {
        self.call(method, &format!("{}/v3/{}{path}", self.volume_url, urlencode(project)), token, body).await
    }

    /// A volume, with the service's token.
    pub async fn volume(&self, project: &str, id: &str) -> CallResult<Value> {
        let url = format!("{}/v3/{}/volumes/{}", self.volume_url, urlencode(project), urlencode(id));
        Ok(self.service_call(Method::GET, &url, None).await?["volume"].clone())
    }

    /// A volume action (`{"os-reserve": {...}}`), with the service's token; its answer
    /// (`null` for the many that answer 202 with no body).
    pub async fn volume_action(&self, project: &str, id: &str, action: Value) -> CallResult<Value> {
        let url = format!("{}/v3/{}/volumes/{}/action", self.volume_url, urlencode(project), urlencode(id));
        self.service_call(Method::POST, &url, Some(action)).await
    }

    /// Makes a volume in `project`, with the service's token; the volume as answered.
    pub async fn volume_create(&self, project: &str, body: Value) -> CallResult<Value> {
        let url = format!("{}/v3/{}/volumes", self.volume_url, urlencode(project));
        Ok(self.service_call(Method::POST, &url, Some(body)).await?["volume"].clone())
    }

    /// Makes a snapshot in `project`, with the service's token; the snapshot as answered.
    pub async fn snapshot_create(&self, project: &str, body: Value) -> CallResult<Value> {
        let url = format!("{}/v3/{}/snapshots", self.volume_url, urlencode(project));
        Ok(self.service_call(Method::POST, &url, Some(body)).await?["snapshot"].clone())
    }

    /// The snapshots of volume `volume` in `project`, with the service's token.
    pub async fn snapshots_of(&self, project: &str, volume: &str) -> CallResult<Vec<Value>> {
        let url = format!(
            "{}/v3/{}/snapshots/detail?all_tenants=1&volume_id={}",
            self.volume_url,
            urlencode(project),
            urlencode(volume)
        );
        let v = self.service_call(Method::GET, &url, None).await?;
        Ok(v["snapshots"].as_array().cloned().unwrap_or_default())
    }

    /// Deletes a snapshot, with the service's token (a snapshot gone already is fine).
    pub async fn snapshot_delete(&self, project: &str, id: &str) -> CallResult<()> {
        self.service_delete(&format!("{}/v3/{}/snapshots/{}", self.volume_url, urlencode(project), urlencode(id))).await
    }

    /// `project`'s volumes named `name`, with the service's token.
    pub async fn volumes_named(&self, project: &str, name: &str) -> CallResult<Vec<Value>> {
        let url = format!(
            "{}/v3/{}/volumes/detail?all_tenants=1&name={}",
            self.volume_url,
            urlencode(project),
            urlencode(name)
        );
        let v = self.service_call(Method::GET, &url, None).await?;
        Ok(v["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| v["os-vol-tenant-attr:tenant_id"].as_str() == Some(project))
            .cloned()
            .collect())
    }

    /// Deletes a volume, with the service's token (a volume gone already is fine).
    pub async fn volume_delete(&self, project: &str, id: &str) -> CallResult<()> {
        self.service_delete(&format!("{}/v3/{}/volumes/{}", self.volume_url, urlencode(project), urlencode(id))).await
    }

    /// A network the caller can see.
    pub async fn network(&self, token: &str, id: &str) -> CallResult<Value> {
        let v = self
            .call(Method::GET, &format!("{}/v2.0/networks/{}", self.network_url, urlencode(id)), token, None)
            .await?;
        Ok(v["network"].clone())
    }

    /// Networks the caller can see.
    pub async fn networks(&self, token: &str) -> CallResult<Vec<Value>> {
        let v = self.call(Method::GET, &format!("{}/v2.0/networks", self.network_url), token, None).await?;
        Ok(v["networks"].as_array().cloned().unwrap_or_default())
    }

    /// A port the caller can see.
    pub async fn port_as(&self, token: &str, id: &str) -> CallResult<Value> {
        let v =
            self.call(Method::GET, &format!("{}/v2.0/ports/{}", self.network_url, urlencode(id)), token, None).await?;
        Ok(v["port"].clone())
    }

    /// `method` on `path` of the network API (`/v2.0/...`) as the caller (Nova's proxy
    /// APIs act with the user's own rights).
    pub async fn network_call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> CallResult<Value> {
        self.call(method, &format!("{}{path}", self.network_url), token, body).await
    }

    /// The caller's security groups (to turn names into ids).
    pub async fn security_groups(&self, token: &str) -> CallResult<Vec<Value>> {
        let v = self.call(Method::GET, &format!("{}/v2.0/security-groups", self.network_url), token, None).await?;
        Ok(v["security_groups"].as_array().cloned().unwrap_or_default())
    }

    /// Networks by id, with the service's token (for names in `addresses`); a name
    /// read in the last [`NAME_TTL`] is reused.
    pub async fn network_names(&self, ids: &[String]) -> CallResult<Vec<(String, String)>> {
        let mut out = Vec::new();
        let mut token = None;
        for id in ids {
            if let Some(name) = self.network_names.get(id) {
                out.push((id.clone(), name));
                continue;
            }
            if token.is_none() {
                token = Some(self.service_token().await?);
            }
            match self.network(token.as_deref().unwrap_or_default(), id).await {
                Ok(n) => {
                    let name = n["name"].as_str().unwrap_or(id).to_string();
                    self.network_names.put(id, &name);
                    out.push((id.clone(), name));
                }
                Err(e) if e.is_not_found() => out.push((id.clone(), id.clone())),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Subnets and networks by id, with the service's token (for a guest's metadata);
    /// ones gone meanwhile are left out.
    pub async fn subnets_and_networks(
        &self,
        subnet_ids: &[String],
        network_ids: &[String],
    ) -> CallResult<(Vec<Value>, Vec<Value>)> {
        let mut subnets = Vec::new();
        for id in subnet_ids {
            let url = format!("{}/v2.0/subnets/{}", self.network_url, urlencode(id));
            match self.service_call(Method::GET, &url, None).await {
                Ok(v) => subnets.push(v["subnet"].clone()),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        let mut networks = Vec::new();
        for id in network_ids {
            let url = format!("{}/v2.0/networks/{}", self.network_url, urlencode(id));
            match self.service_call(Method::GET, &url, None).await.map(|v| v["network"].clone()) {
                Ok(n) => networks.push(n),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok((subnets, networks))
    }

    pub async fn port_create(&self, port: Value) -> CallResult<Value> {
        let v = self
            .service_call(Method::POST, &format!("{}/v2.0/ports", self.network_url), Some(json!({ "port": port })))
            .await?;
        Ok(v["port"].clone())
    }

    pub async fn port_update(&self, id: &str, port: Value) -> CallResult<Value> {
        let url = format!("{}/v2.0/ports/{}", self.network_url, urlencode(id));
        let v = self.service_call(Method::PUT, &url, Some(json!({ "port": port }))).await?;
        Ok(v["port"].clone())
    }

    /// Deletes a port; one already gone is fine.
    pub async fn port_delete(&self, id: &str) -> CallResult<()> {
        self.service_delete(&format!("{}/v2.0/ports/{}", self.network_url, urlencode(id))).await
    }

    /// The ports whose device is `server_id`, of the server's project: any project's
    /// member may write any `device_id` on its own ports, so the device alone proves
    /// nothing.
    pub async fn ports_of(&self, server_id: &str, project_id: &str) -> CallResult<Vec<Value>> {
        let url = format!(
            "{}/v2.0/ports?device_id={}&project_id={}",
            self.network_url,
            urlencode(server_id),
            urlencode(project_id)
        );
        let v = self.service_call(Method::GET, &url, None).await?;
        Ok(v["ports"].as_array().cloned().unwrap_or_default())
    }

    /// Floating IPs on the given ports.
    pub async fn floating_ips_of(&self, port_ids: &[String]) -> CallResult<Vec<Value>> {
        if port_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for p in port_ids {
            let url = format!("{}/v2.0/floatingips?port_id={}", self.network_url, urlencode(p));
            let v = self.service_call(Method::GET, &url, None).await?;
            out.extend(v["floatingips"].as_array().cloned().unwrap_or_default());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_names_are_reused_only_while_fresh() {
        let names = NetworkNames::default();
        assert_eq!(names.get("n1"), None);
        names.put("n1", "shared");
        assert_eq!(names.get("n1").as_deref(), Some("shared"));
        let long_ago = Instant::now().checked_sub(NAME_TTL + Duration::from_secs(1)).unwrap();
        names.0.lock().unwrap().insert("n2".into(), ("old".into(), long_ago));
        assert_eq!(names.get("n2"), None, "a stale name is read again");
    }
}
