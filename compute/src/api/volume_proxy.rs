//! Nova's volume proxy (below 2.36; `app::volume_proxy`): `os-volumes` and
//! `os-snapshots`, list (with `offset`/`limit`), detail, show, create, delete.

use super::{proxy_gone_after_2_35, wrapped, AppState, Params};
use crate::app::volume_proxy::limited;
use crate::microversion::Version;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use stratus_common::auth::AuthContext;
use stratus_common::http::{ApiJson, ApiResult};

fn gone(v: Version) -> ApiResult<()> {
    proxy_gone_after_2_35(v, "volume")
}

pub async fn volumes(State(s): State<AppState>, ctx: AuthContext, v: Version, q: Params) -> ApiResult<Json<Value>> {
    gone(v)?;
    Ok(Json(json!({"volumes": limited(s.proxy_volume_list(&ctx).await?, &q)?})))
}

pub async fn volume_show(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    gone(v)?;
    Ok(Json(json!({"volume": s.proxy_volume_get(&ctx, &id).await?})))
}

pub async fn volume_create(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    gone(v)?;
    Ok(Json(json!({"volume": s.proxy_volume_create(&ctx, &wrapped(body, "volume")?).await?})))
}

pub async fn volume_delete(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    gone(v)?;
    s.proxy_volume_delete(&ctx, &id).await?;
    Ok(StatusCode::ACCEPTED)
}

pub async fn snapshots(State(s): State<AppState>, ctx: AuthContext, v: Version, q: Params) -> ApiResult<Json<Value>> {
    gone(v)?;
    Ok(Json(json!({"snapshots": limited(s.proxy_snapshot_list(&ctx).await?, &q)?})))
}

pub async fn snapshot_show(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    gone(v)?;
    Ok(Json(json!({"snapshot": s.proxy_snapshot_get(&ctx, &id).await?})))
}

pub async fn snapshot_create(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    gone(v)?;
    Ok(Json(json!({"snapshot": s.proxy_snapshot_create(&ctx, &wrapped(body, "snapshot")?).await?})))
}

pub async fn snapshot_delete(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    gone(v)?;
    s.proxy_snapshot_delete(&ctx, &id).await?;
    Ok(StatusCode::ACCEPTED)
}
