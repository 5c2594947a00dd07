use super::{all_projects, list_page, param, scope, typed, views, AppState};
use crate::app::snapshots::{SnapshotCreate, SnapshotUpdate};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;
use stratus_common::auth::AuthContext;
use stratus_common::http::microversion::Version;
use stratus_common::http::{ApiError, ApiJson, ApiResult};

type Params = Path<HashMap<String, String>>;

async fn listing(
    s: AppState,
    ctx: AuthContext,
    version: Version,
    p: HashMap<String, String>,
    q: HashMap<String, String>,
    detail: bool,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let items =
        s.snapshot_list(&ctx, all_projects(&q)).await?.iter().map(|x| views::snapshot(x, detail, version)).collect();
    let path = if detail { "snapshots/detail" } else { "snapshots" };
    list_page(
        &s.public_url,
        param(&p, "project_id"),
        "snapshots",
        path,
        items,
        &q,
        super::Fields {
            filter: &["name", "status", "volume_id"],
            sort: &["name", "description", "status", "size", "created_at", "updated_at", "volume_id"],
        },
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

pub async fn create(
    State(s): State<AppState>,
    ctx: AuthContext,
    version: Version,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    scope(&ctx, &p)?;
    let req: SnapshotCreate = typed(body, "snapshot")?;
    let snap = s.snapshot_create(&ctx, req).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"snapshot": views::snapshot(&snap, false, version)}))))
}

pub async fn show(
    State(s): State<AppState>,
    ctx: AuthContext,
    version: Version,
    Path(p): Params,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let snap = s.snapshot_get(&ctx, param(&p, "id")).await?;
    Ok(Json(json!({"snapshot": views::snapshot(&snap, true, version)})))
}

pub async fn update(
    State(s): State<AppState>,
    ctx: AuthContext,
    version: Version,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let req: SnapshotUpdate = typed(body, "snapshot")?;
    let snap = s.snapshot_update(&ctx, param(&p, "id"), req).await?;
    Ok(Json(json!({"snapshot": views::snapshot(&snap, false, version)})))
}

pub async fn delete(State(s): State<AppState>, ctx: AuthContext, Path(p): Params) -> ApiResult<StatusCode> {
    scope(&ctx, &p)?;
    s.snapshot_delete(&ctx, param(&p, "id")).await?;
    Ok(StatusCode::ACCEPTED)
}

/// `POST /snapshots/{id}/action`: `os-reset_status` and `os-force_delete` (admins),
/// `os-update_snapshot_status` (a backend's report, as Cinder takes it).
pub async fn action(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<StatusCode> {
    scope(&ctx, &p)?;
    let id = param(&p, "id");
    let (name, args) = super::action_of(body)?;
    let status = || args["status"].as_str().ok_or_else(|| ApiError::bad_request(format!("{name} needs a status.")));
    match name.as_str() {
        "os-reset_status" => s.snapshot_set_status(&ctx, id, status()?, None, true).await?,
        "os-update_snapshot_status" => {
            s.snapshot_set_status(&ctx, id, status()?, args["progress"].as_str(), false).await?
        }
        "os-force_delete" => s.snapshot_force_delete(&ctx, id).await?,
        other => {
            return Err(ApiError::bad_request(format!("The snapshot action {other} is not supported by this cloud.")))
        }
    }
    Ok(StatusCode::ACCEPTED)
}
