//! `/attachments` (microversion 3.27+; `os-complete` 3.44+): the records compute, or
//! anyone attaching a volume by hand, makes and moves along (`app::attachment_records`).

use super::{all_projects, list_page, param, scope, since, AppState, Fields};
use crate::app::attachment_records::NewAttachment;
use crate::store::{Attachment, Volume};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;
use stratus_common::auth::AuthContext;
use stratus_common::http::microversion::Version;
use stratus_common::http::{ApiError, ApiJson, ApiResult};

type Params = Path<HashMap<String, String>>;

/// The version the attachments API came in, and the one `os-complete` did.
const ATTACHMENTS: u16 = 27;
const COMPLETE: u16 = 44;

fn view(v: &Volume, a: &Attachment, detail: bool) -> Value {
    let mut out = json!({"id": a.id, "status": a.status.as_str(), "instance": a.server_id, "volume_id": v.id});
    if detail {
        out["attached_at"] = if a.attached_at.is_empty() { Value::Null } else { json!(a.attached_at) };
        out["detached_at"] = Value::Null;
        out["attach_mode"] = json!(a.mode);
        out["connection_info"] = a.connection_info.clone().unwrap_or_else(|| json!({}));
    }
    out
}

fn shown(v: &Volume, id: &str) -> ApiResult<Json<Value>> {
    let a = v.attachments.iter().find(|a| a.id == id).ok_or_else(|| ApiError::not_found("Attachment", id))?;
    Ok(Json(json!({"attachment": view(v, a, true)})))
}

async fn listing(
    s: AppState,
    ctx: AuthContext,
    version: Version,
    p: HashMap<String, String>,
    mut q: HashMap<String, String>,
    detail: bool,
) -> ApiResult<Json<Value>> {
    since(version, ATTACHMENTS)?;
    scope(&ctx, &p)?;
    let all = all_projects(&q);
    // Cinder's `instance_id` filter is the attachment's `instance`.
    if let Some(server) = q.remove("instance_id") {
        q.insert("instance".into(), server);
    }
    let project = q.remove("project_id").filter(|_| ctx.is_admin());
    let items = s
        .attachment_list(&ctx, all || project.is_some())
        .await?
        .iter()
        .filter(|(v, _)| project.as_ref().is_none_or(|p| &v.project_id == p))
        .map(|(v, a)| view(v, a, detail))
        .collect();
    let path = if detail { "attachments/detail" } else { "attachments" };
    list_page(
        &s.public_url,
        param(&p, "project_id"),
        "attachments",
        path,
        items,
        &q,
        Fields { filter: &["volume_id", "status", "instance"], sort: &["status", "volume_id", "instance"] },
    )
}

pub async fn list(
    State(s): State<AppState>,
    ctx: AuthContext,
    version: Version,
    Path(p): Params,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    listing(s, ctx, version, p, q, false).await
}

pub async fn list_detail(
    State(s): State<AppState>,
    ctx: AuthContext,
    version: Version,
    Path(p): Params,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    listing(s, ctx, version, p, q, true).await
}

pub async fn show(
    State(s): State<AppState>,
    ctx: AuthContext,
    version: Version,
    Path(p): Params,
) -> ApiResult<Json<Value>> {
    since(version, ATTACHMENTS)?;
    scope(&ctx, &p)?;
    let id = param(&p, "id");
    shown(&s.attachment_volume(&ctx, id).await?, id)
}

/// `POST /attachments` `{"attachment": {"volume_uuid", "instance_uuid", "connector"?, "mode"?}}`.
pub async fn create(
    State(s): State<AppState>,
    ctx: AuthContext,
    version: Version,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    since(version, ATTACHMENTS)?;
    scope(&ctx, &p)?;
    let a = super::body_of(body, "attachment")?;
    let text = |k: &str| a.get(k).and_then(Value::as_str).unwrap_or_default();
    if text("volume_uuid").is_empty() {
        return Err(ApiError::bad_request("Must specify 'volume_uuid' to create attachment."));
    }
    if a.get("mode").is_some_and(|m| !m.is_null()) && !version.at_least(54) {
        return Err(ApiError::bad_request("The attachment's mode needs microversion 3.54."));
    }
    let req = NewAttachment {
        volume_id: text("volume_uuid"),
        server_id: text("instance_uuid"),
        connector: a.get("connector"),
        mode: a.get("mode").and_then(Value::as_str),
    };
    let (v, id) = s.attachment_create(&ctx, req).await?;
    shown(&v, &id)
}

/// `PUT /attachments/{id}` `{"attachment": {"connector": {...}}}`.
pub async fn update(
    State(s): State<AppState>,
    ctx: AuthContext,
    version: Version,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    since(version, ATTACHMENTS)?;
    scope(&ctx, &p)?;
    let a = super::body_of(body, "attachment")?;
    let id = param(&p, "id");
    let v = s.attachment_update(&ctx, id, a.get("connector")).await?;
    shown(&v, id)
}

/// `DELETE /attachments/{id}`: answers the attachments the volume still has.
pub async fn delete(
    State(s): State<AppState>,
    ctx: AuthContext,
    version: Version,
    Path(p): Params,
) -> ApiResult<Json<Value>> {
    since(version, ATTACHMENTS)?;
    scope(&ctx, &p)?;
    let v = s.attachment_delete(&ctx, param(&p, "id")).await?;
    let left: Vec<Value> = v.attachments.iter().map(|a| view(&v, a, false)).collect();
    Ok(Json(json!({"attachments": left})))
}

/// `POST /attachments/{id}/action` `{"os-complete": ...}`.
pub async fn action(
    State(s): State<AppState>,
    ctx: AuthContext,
    version: Version,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<StatusCode> {
    since(version, ATTACHMENTS)?;
    scope(&ctx, &p)?;
    let (name, _) = super::action_of(body)?;
    match name.as_str() {
        "os-complete" => {
            since(version, COMPLETE)?;
            s.attachment_complete(&ctx, param(&p, "id")).await?;
            Ok(StatusCode::NO_CONTENT)
        }
        other => Err(ApiError::bad_request(format!("The attachment action {other} is not supported."))),
    }
}
