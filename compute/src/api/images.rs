//! Nova's image proxy (`/images`, before 2.36): the image service's images as Nova
//! showed them, read, deleted and given metadata as the caller (the image service's
//! policy decides). From 2.36 on it is gone, as in Nova: 404.

use super::{AppState, Params};
use crate::app::images::image_metadata;
use crate::app::{bad, not_found};
use crate::microversion::Version;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Map, Value};
use stratus_common::auth::AuthContext;
use stratus_common::http::{ApiJson, ApiResult};

fn gone_after_2_35(v: Version) -> ApiResult<()> {
    super::proxy_gone_after_2_35(v, "image")
}

/// An image as Nova showed it.
fn view(s: &AppState, image: &Value, detail: bool) -> Value {
    let id = image["id"].as_str().unwrap_or_default();
    let base = s.settings.public_url.trim_end_matches('/');
    let links = json!([
        {"rel": "self", "href": format!("{base}/v2.1/images/{id}")},
        {"rel": "bookmark", "href": format!("{base}/images/{id}")},
        {"rel": "alternate", "type": "application/vnd.openstack.image",
         "href": format!("{}/images/{id}", s.clients.image_url.trim_end_matches('/'))},
    ]);
    if !detail {
        return json!({"id": id, "name": image["name"], "links": links});
    }
    let glance = image["status"].as_str().unwrap_or_default();
    let (status, progress) = match glance {
        "active" => ("ACTIVE", 100),
        "queued" | "importing" | "uploading" => ("SAVING", 25),
        "saving" => ("SAVING", 50),
        "deleted" | "pending_delete" => ("DELETED", 0),
        "killed" | "deactivated" => ("ERROR", 0),
        _ => ("UNKNOWN", 0),
    };
    let mut out = json!({
        "id": id, "name": image["name"], "status": status, "progress": progress,
        "minDisk": image["min_disk"].as_i64().unwrap_or(0), "minRam": image["min_ram"].as_i64().unwrap_or(0),
        "metadata": image_metadata(image), "created": image["created_at"], "updated": image["updated_at"],
        "links": links, "OS-EXT-IMG-SIZE:size": image["size"].as_i64().unwrap_or(0),
    });
    if let Some(server) = image["instance_uuid"].as_str().filter(|s| !s.is_empty()) {
        out["server"] = json!({"id": server, "links": [
            {"rel": "self", "href": format!("{base}/v2.1/servers/{server}")},
            {"rel": "bookmark", "href": format!("{base}/servers/{server}")},
        ]});
    }
    out
}

/// `GET /images[/detail]`: Nova's filters (`name`, `status`, `server` (an id or a
/// server's URL), `type` (`snapshot`, `backup`), `changes-since`, `minDisk`, `minRam`),
/// then `marker` and `limit`.
async fn list(s: &AppState, ctx: &AuthContext, q: &Params, detail: bool) -> ApiResult<Json<Value>> {
    let mut images = s.image_proxy_list(ctx).await?;
    images.sort_by(|a, b| {
        (b["created_at"].as_str(), b["id"].as_str()).cmp(&(a["created_at"].as_str(), a["id"].as_str()))
    });
    let num = |k: &str| -> ApiResult<Option<i64>> {
        q.get(k).map(|v| v.parse::<i64>().map_err(|_| bad(format!("Invalid {k}: {v}")).into())).transpose()
    };
    let (min_disk, min_ram, limit) = (num("minDisk")?, num("minRam")?, num("limit")?);
    if limit.is_some_and(|l| l < 0) {
        return Err(bad("Invalid limit: it must be 0 or more.").into());
    }
    let server = q.get("server").map(|s| s.rsplit('/').next().unwrap_or_default().to_string());
    images.retain(|i| {
        let v = view(s, i, true);
        q.get("name").is_none_or(|n| i["name"].as_str() == Some(n.as_str()))
            && q.get("status").is_none_or(|st| v["status"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(st)))
            && server.as_deref().is_none_or(|sv| i["instance_uuid"].as_str() == Some(sv))
            && q.get("type").is_none_or(|t| i["image_type"].as_str() == Some(t.as_str()))
            && q.get("changes-since").is_none_or(|c| i["updated_at"].as_str().is_some_and(|u| u >= c.as_str()))
            && min_disk.is_none_or(|m| i["min_disk"].as_i64().unwrap_or(0) >= m)
            && min_ram.is_none_or(|m| i["min_ram"].as_i64().unwrap_or(0) >= m)
    });
    if let Some(marker) = q.get("marker") {
        let at = images
            .iter()
            .position(|i| i["id"].as_str() == Some(marker.as_str()))
            .ok_or_else(|| bad(format!("marker [{marker}] not found")))?;
        images.drain(..=at);
    }
    let mut out = json!({});
    if let Some(l) = limit.map(|l| l as usize).filter(|l| *l < images.len()) {
        images.truncate(l);
        if let Some(last) = images.last().and_then(|i| i["id"].as_str()) {
            let base = s.settings.public_url.trim_end_matches('/');
            let path = if detail { "images/detail" } else { "images" };
            out["images_links"] =
                json!([{"rel": "next", "href": format!("{base}/v2.1/{path}?limit={l}&marker={last}")}]);
        }
    }
    out["images"] = json!(images.iter().map(|i| view(s, i, detail)).collect::<Vec<_>>());
    Ok(Json(out))
}

pub async fn index(State(s): State<AppState>, ctx: AuthContext, v: Version, q: Params) -> ApiResult<Json<Value>> {
    gone_after_2_35(v)?;
    list(&s, &ctx, &q, false).await
}

pub async fn detail(State(s): State<AppState>, ctx: AuthContext, v: Version, q: Params) -> ApiResult<Json<Value>> {
    gone_after_2_35(v)?;
    list(&s, &ctx, &q, true).await
}

pub async fn show(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    gone_after_2_35(v)?;
    let image = s.image_proxy_get(&ctx, &id).await?;
    Ok(Json(json!({"image": view(&s, &image, true)})))
}

pub async fn delete(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    gone_after_2_35(v)?;
    s.image_proxy_delete(&ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn metadata_list(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    gone_after_2_35(v)?;
    Ok(Json(json!({"metadata": image_metadata(&s.image_proxy_get(&ctx, &id).await?)})))
}

/// The metadata a body carries under `key` (`metadata` or `meta`): an object of strings.
fn body_metadata(body: &Value, key: &str) -> ApiResult<Map<String, Value>> {
    let Some(Value::Object(m)) = body.get(key) else {
        return Err(bad(format!("Invalid input: '{key}' must be an object.")).into());
    };
    for (k, v) in m {
        if k.is_empty() || k.chars().count() > 255 || !v.is_string() {
            return Err(
                bad(format!("Invalid metadata item {k:?}: a key of 1 to 255 characters, a string value.")).into()
            );
        }
    }
    Ok(m.clone())
}

/// `POST` (merge) or `PUT` (`replace`) of an image's metadata.
async fn metadata_write(
    s: &AppState,
    ctx: &AuthContext,
    v: Version,
    id: &str,
    body: &Value,
    replace: bool,
) -> ApiResult<Json<Value>> {
    gone_after_2_35(v)?;
    let items = body_metadata(body, "metadata")?;
    Ok(Json(json!({"metadata": image_metadata(&s.image_proxy_set_metadata(ctx, id, &items, replace).await?)})))
}

pub async fn metadata_merge(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    metadata_write(&s, &ctx, v, &id, &body, false).await
}

pub async fn metadata_replace(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    metadata_write(&s, &ctx, v, &id, &body, true).await
}

pub async fn metadata_show(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    gone_after_2_35(v)?;
    let meta = image_metadata(&s.image_proxy_get(&ctx, &id).await?);
    let value = meta.get(&key).ok_or_else(|| not_found(format!("Image {id} has no metadata item {key}.")))?;
    Ok(Json(json!({"meta": { key: value }})))
}

pub async fn metadata_put(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path((id, key)): Path<(String, String)>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    gone_after_2_35(v)?;
    let items = body_metadata(&body, "meta")?;
    if items.len() != 1 || !items.contains_key(&key) {
        return Err(bad("Request body and URI mismatch: 'meta' must hold exactly the item the URL names.").into());
    }
    s.image_proxy_set_metadata(&ctx, &id, &items, false).await?;
    Ok(Json(json!({ "meta": items })))
}

pub async fn metadata_delete(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    gone_after_2_35(v)?;
    s.image_proxy_remove_metadata(&ctx, &id, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}
