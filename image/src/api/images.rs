use super::{views, AppState};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use stratus_common::auth::AuthContext;
use stratus_common::http::{ApiJson, ApiResult};

pub async fn create(
    State(s): State<AppState>,
    ctx: AuthContext,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> ApiResult<Response> {
    let img = s.image_create(&ctx, body).await?;
    let mut resp = (StatusCode::CREATED, Json(views::image(&img))).into_response();
    resp.headers_mut()
        .insert(HeaderName::from_static("openstack-image-import-methods"), HeaderValue::from_static("glance-direct"));
    Ok(resp)
}

pub async fn list(
    State(s): State<AppState>,
    ctx: AuthContext,
    Query(params): Query<Vec<(String, String)>>,
) -> ApiResult<Json<Value>> {
    let page = s.image_query(&ctx, &params).await?;
    let mut body = json!({
        "images": page.images.iter().map(views::image).collect::<Vec<_>>(),
        "first": "/v2/images",
        "schema": "/v2/schemas/images",
    });
    if let Some(m) = page.next_marker {
        let mut q: Vec<String> = params
            .iter()
            .filter(|(k, _)| k != "marker" && k != "limit")
            .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
            .collect();
        q.push(format!("limit={}", page.limit));
        q.push(format!("marker={m}"));
        body["next"] = json!(format!("/v2/images?{}", q.join("&")));
    }
    Ok(Json(body))
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' | b',' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn show(State(s): State<AppState>, ctx: AuthContext, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let img = s.image_visible(&ctx, &id).await?;
    Ok(Json(views::image(&img)))
}

/// `GET /v2/images/{id}/tasks` (Glance 2.12): the asynchronous tasks that worked on the
/// image. Uploads, stages and imports run within their requests here, so there are none.
pub async fn tasks(State(s): State<AppState>, ctx: AuthContext, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    s.image_visible(&ctx, &id).await?;
    Ok(Json(json!({ "tasks": [] })))
}

pub async fn update(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(id): Path<String>,
    ApiJson(ops): ApiJson<Vec<Value>>,
) -> ApiResult<Json<Value>> {
    let img = s.image_patch(&ctx, &id, ops).await?;
    Ok(Json(views::image(&img)))
}

pub async fn delete(State(s): State<AppState>, ctx: AuthContext, Path(id): Path<String>) -> ApiResult<StatusCode> {
    s.image_delete(&ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn tag_add(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    s.image_tag(&ctx, &id, &tag, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn tag_remove(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    s.image_tag(&ctx, &id, &tag, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn deactivate(State(s): State<AppState>, ctx: AuthContext, Path(id): Path<String>) -> ApiResult<StatusCode> {
    s.image_set_active(&ctx, &id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn reactivate(State(s): State<AppState>, ctx: AuthContext, Path(id): Path<String>) -> ApiResult<StatusCode> {
    s.image_set_active(&ctx, &id, true).await?;
    Ok(StatusCode::NO_CONTENT)
}
