//! Nova's floating-IP proxy (below 2.36; `app::floating_ips`): `os-floating-ips`.
//! The server actions `addFloatingIp`/`removeFloatingIp` are in `servers.rs`.

use super::{proxy_gone_after_2_35, AppState};
use crate::microversion::Version;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use stratus_common::auth::AuthContext;
use stratus_common::http::ApiResult;

fn gone(v: Version) -> ApiResult<()> {
    proxy_gone_after_2_35(v, "network")
}

pub async fn list(State(s): State<AppState>, ctx: AuthContext, v: Version) -> ApiResult<Json<Value>> {
    gone(v)?;
    Ok(Json(json!({"floating_ips": s.fip_list(&ctx).await?})))
}

pub async fn show(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    gone(v)?;
    Ok(Json(json!({"floating_ip": s.fip_get(&ctx, &id).await?})))
}

/// `{"pool": NAME}` (or none: the default pool); the body may be empty.
pub async fn create(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    raw: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    gone(v)?;
    let body: Value = if raw.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&raw).map_err(|e| super::error::bad(format!("The request body is not JSON: {e}")))?
    };
    let pool = body["pool"].as_str();
    Ok(Json(json!({"floating_ip": s.fip_allocate(&ctx, pool).await?})))
}

pub async fn delete(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    gone(v)?;
    s.fip_release(&ctx, &id).await?;
    Ok(StatusCode::ACCEPTED)
}
