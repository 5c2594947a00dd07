use super::{all_projects, list_page, param, scope, typed, views, AppState};
use crate::app::snapshots::{SnapshotCreate, SnapshotUpdate};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;
use stratus_common::auth::AuthContext;
use stratus_common::http::{ApiJson, ApiResult};

type Params = Path<HashMap<String, String>>;

async fn listing(
    s: AppState,
    ctx: AuthContext,
    p: HashMap<String, String>,
    q: HashMap<String, String>,
    detail: bool,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let items = s.snapshot_list(&ctx, all_projects(&q)).await?.iter().map(|x| views::snapshot(x, detail)).collect();
    let path = if detail { "snapshots/detail" } else { "snapshots" };
    list_page(&s.public_url, param(&p, "project_id"), "snapshots", path, items, &q, &["name", "status", "volume_id"])
}

pub async fn list(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(p): Params,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    listing(s, ctx, p, q, false).await
}

pub async fn list_detail(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(p): Params,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    listing(s, ctx, p, q, true).await
}

pub async fn create(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    scope(&ctx, &p)?;
    let req: SnapshotCreate = typed(body, "snapshot")?;
    let snap = s.snapshot_create(&ctx, req).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"snapshot": views::snapshot(&snap, false)}))))
}

pub async fn show(State(s): State<AppState>, ctx: AuthContext, Path(p): Params) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let snap = s.snapshot_get(&ctx, param(&p, "id")).await?;
    Ok(Json(json!({"snapshot": views::snapshot(&snap, true)})))
}

pub async fn update(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let req: SnapshotUpdate = typed(body, "snapshot")?;
    let snap = s.snapshot_update(&ctx, param(&p, "id"), req).await?;
    Ok(Json(json!({"snapshot": views::snapshot(&snap, false)})))
}

pub async fn delete(State(s): State<AppState>, ctx: AuthContext, Path(p): Params) -> ApiResult<StatusCode> {
    scope(&ctx, &p)?;
    s.snapshot_delete(&ctx, param(&p, "id")).await?;
    Ok(StatusCode::ACCEPTED)
}
