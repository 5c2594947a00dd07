//! Nova's volume proxy (`os-volumes`, `os-snapshots`, below 2.36): the block-storage
//! service's volumes and snapshots in Nova's shapes (camelCase, `offset`/`limit`),
//! read and changed with the caller's own token.

use super::security_groups::refused;
use super::{bad, project_of, AppResult, ComputeService};
use reqwest::Method;
use serde_json::{json, Map, Value};
use stratus_common::auth::AuthContext;

fn text_or_null(v: &Value) -> Value {
    if v.is_string() {
        v.clone()
    } else {
        Value::Null
    }
}

/// A volume as Nova shows it: `[{}]` for the attachments of one on no server.
pub fn volume_view(v: &Value) -> Value {
    let mut attachments: Vec<Value> = v["attachments"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            json!({"id": v["id"], "volumeId": v["id"], "serverId": a["server_id"],
                   "device": a["device"].as_str().unwrap_or("")})
        })
        .collect();
    if attachments.is_empty() {
        attachments.push(json!({}));
    }
    json!({
        "id": v["id"], "status": v["status"], "size": v["size"],
        "availabilityZone": v["availability_zone"].as_str().unwrap_or("nova"),
        "createdAt": v["created_at"], "displayName": text_or_null(&v["name"]),
        "displayDescription": text_or_null(&v["description"]), "volumeType": text_or_null(&v["volume_type"]),
        "snapshotId": text_or_null(&v["snapshot_id"]), "metadata": v["metadata"].as_object().cloned().unwrap_or_default(),
        "attachments": attachments,
    })
}

pub fn snapshot_view(s: &Value) -> Value {
    json!({"id": s["id"], "volumeId": s["volume_id"], "status": s["status"], "size": s["size"],
           "createdAt": s["created_at"], "displayName": text_or_null(&s["name"]),
           "displayDescription": text_or_null(&s["description"])})
}

/// Nova's `offset` and `limit` over a whole list.
pub fn limited(items: Vec<Value>, q: &std::collections::HashMap<String, String>) -> AppResult<Vec<Value>> {
    let num = |k: &str| -> AppResult<Option<usize>> {
        q.get(k).map(|v| v.parse::<usize>().map_err(|_| bad(format!("Invalid {k}: {v}")))).transpose()
    };
    let (offset, limit) = (num("offset")?.unwrap_or(0), num("limit")?);
    Ok(items.into_iter().skip(offset).take(limit.unwrap_or(usize::MAX)).collect())
}

impl ComputeService {
    async fn cinder(
        &self,
        ctx: &AuthContext,
        method: Method,
        path: &str,
        body: Option<Value>,
        what: &str,
    ) -> AppResult<Value> {
        let project = project_of(ctx)?;
        self.clients.volume_call(&ctx.token, &project, method, path, body).await.map_err(|e| refused(what, e))
    }

    pub async fn proxy_volume_list(&self, ctx: &AuthContext) -> AppResult<Vec<Value>> {
        let all = self.cinder(ctx, Method::GET, "/volumes/detail", None, "Volumes").await?;
        Ok(all["volumes"].as_array().into_iter().flatten().map(volume_view).collect())
    }

    pub async fn proxy_volume_get(&self, ctx: &AuthContext, id: &str) -> AppResult<Value> {
        let v = self
            .cinder(ctx, Method::GET, &format!("/volumes/{}", urlencoding::encode(id)), None, &format!("Volume {id}"))
            .await?;
        Ok(volume_view(&v["volume"]))
    }

    /// Nova's create: `size` (a positive integer) is required.
    pub async fn proxy_volume_create(&self, ctx: &AuthContext, b: &Map<String, Value>) -> AppResult<Value> {
        let size = b
            .get("size")
            .and_then(|s| s.as_i64().or_else(|| s.as_str().and_then(|t| t.trim().parse().ok())))
            .filter(|s| *s >= 1)
            .ok_or_else(|| bad("Invalid input for field/attribute size: a positive integer is required."))?;
        let mut body = json!({"size": size});
        for (ours, theirs) in [
            ("display_name", "name"),
            ("display_description", "description"),
            ("volume_type", "volume_type"),
            ("availability_zone", "availability_zone"),
            ("snapshot_id", "snapshot_id"),
            ("metadata", "metadata"),
        ] {
            if let Some(v) = b.get(ours).filter(|v| !v.is_null()) {
                body[theirs] = v.clone();
            }
        }
        let v = self.cinder(ctx, Method::POST, "/volumes", Some(json!({ "volume": body })), "Volume").await?;
        // Cinder's create answer is its summary; Nova's is the whole volume.
        let id = v["volume"]["id"].as_str().unwrap_or_default().to_string();
        self.proxy_volume_get(ctx, &id).await
    }

    pub async fn proxy_volume_delete(&self, ctx: &AuthContext, id: &str) -> AppResult<()> {
        self.cinder(
            ctx,
            Method::DELETE,
            &format!("/volumes/{}", urlencoding::encode(id)),
            None,
            &format!("Volume {id}"),
        )
        .await
        .map(drop)
    }

    pub async fn proxy_snapshot_list(&self, ctx: &AuthContext) -> AppResult<Vec<Value>> {
        let all = self.cinder(ctx, Method::GET, "/snapshots/detail", None, "Snapshots").await?;
        Ok(all["snapshots"].as_array().into_iter().flatten().map(snapshot_view).collect())
    }

    pub async fn proxy_snapshot_get(&self, ctx: &AuthContext, id: &str) -> AppResult<Value> {
        let s = self
            .cinder(
                ctx,
                Method::GET,
                &format!("/snapshots/{}", urlencoding::encode(id)),
                None,
                &format!("Snapshot {id}"),
            )
            .await?;
        Ok(snapshot_view(&s["snapshot"]))
    }

    pub async fn proxy_snapshot_create(&self, ctx: &AuthContext, b: &Map<String, Value>) -> AppResult<Value> {
        let volume =
            b.get("volume_id").and_then(Value::as_str).ok_or_else(|| bad("Invalid input: volume_id is required."))?;
        let force = match b.get("force") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(f)) => *f,
            Some(Value::String(t)) => {
                stratus_common::http::pagination::parse_bool(t).ok_or_else(|| bad(format!("Invalid force: {t}")))?
            }
            Some(other) => return Err(bad(format!("Invalid force: {other}"))),
        };
        let mut body = json!({"volume_id": volume, "force": force});
        for (ours, theirs) in [("display_name", "name"), ("display_description", "description")] {
            if let Some(v) = b.get(ours).filter(|v| !v.is_null()) {
                body[theirs] = v.clone();
            }
        }
        let s = self
            .cinder(ctx, Method::POST, "/snapshots", Some(json!({ "snapshot": body })), &format!("Volume {volume}"))
            .await?;
        Ok(snapshot_view(&s["snapshot"]))
    }

    pub async fn proxy_snapshot_delete(&self, ctx: &AuthContext, id: &str) -> AppResult<()> {
        self.cinder(
            ctx,
            Method::DELETE,
            &format!("/snapshots/{}", urlencoding::encode(id)),
            None,
            &format!("Snapshot {id}"),
        )
        .await
        .map(drop)
    }
}
