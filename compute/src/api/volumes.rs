//! `os-volume_attachments`: the volumes attached to a server (`openstack server add
//! volume`, `server remove volume`, `server volume list`).

use super::error::bad;
use super::{wrapped, AppState};
use crate::app::volumes::attachment_view;
use crate::microversion::Version;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::{json, Value};
use stratus_common::auth::AuthContext;
use stratus_common::http::request_id::RequestId;
use stratus_common::http::{ApiJson, ApiResult};

pub async fn list(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let list = s.volume_attachments(&ctx, &id).await?;
    let views: Vec<Value> = list.iter().map(|a| attachment_view(&id, a, v)).collect();
    Ok(Json(json!({ "volumeAttachments": views })))
}

pub async fn show(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path((id, volume)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let a = s.volume_attachment(&ctx, &id, &volume).await?;
    Ok(Json(json!({ "volumeAttachment": attachment_view(&id, &a, v) })))
}

pub async fn attach(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    rid: Option<Extension<RequestId>>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let request_id = rid.map(|r| r.0 .0.clone()).unwrap_or_default();
    let mut body = wrapped(body, "volumeAttachment")?;
    if !v.at_least(70) && body.contains_key("tag") {
        return Err(bad("Additional properties are not allowed ('tag' was unexpected)"));
    }
    if !v.at_least(79) && body.contains_key("delete_on_termination") {
        return Err(bad("Additional properties are not allowed ('delete_on_termination' was unexpected)"));
    }
    body.remove("serverId");
    // Multiattach volumes came with 2.60.
    let a = s.volume_attach(&ctx, &id, &body, &request_id, v.at_least(60)).await?;
    Ok(Json(json!({ "volumeAttachment": attachment_view(&id, &a, v) })))
}

/// `PUT`: swapping a volume for another, or (2.85) changing `delete_on_termination`.
pub async fn update(Path((_id, _volume)): Path<(String, String)>) -> ApiResult<StatusCode> {
    Err(bad("Swapping or updating volume attachments is not supported by this cloud."))
}

pub async fn detach(
    State(s): State<AppState>,
    ctx: AuthContext,
    rid: Option<Extension<RequestId>>,
    Path((id, volume)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let request_id = rid.map(|r| r.0 .0.clone()).unwrap_or_default();
    s.volume_detach(&ctx, &id, &volume, &request_id).await?;
    Ok(StatusCode::ACCEPTED)
}
