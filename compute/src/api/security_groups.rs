//! Nova's security-group proxy (below 2.36; `app::security_groups`):
//! `os-security-groups`, `os-security-group-rules`, and a server's groups.

use super::error::bad;
use super::{flag, proxy_gone_after_2_35, wrapped, AppState, Params};
use crate::microversion::Version;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use stratus_common::auth::AuthContext;
use stratus_common::http::{ApiJson, ApiResult};

fn gone(v: Version) -> ApiResult<()> {
    proxy_gone_after_2_35(v, "network")
}

pub async fn list(State(s): State<AppState>, ctx: AuthContext, v: Version, q: Params) -> ApiResult<Json<Value>> {
    gone(v)?;
    Ok(Json(json!({"security_groups": s.sg_list(&ctx, flag(&q, "all_tenants")).await?})))
}

pub async fn show(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    gone(v)?;
    Ok(Json(json!({"security_group": s.sg_get(&ctx, &id).await?})))
}

pub async fn create(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    gone(v)?;
    let b = wrapped(body, "security_group")?;
    Ok(Json(json!({"security_group": s.sg_create(&ctx, &b).await?})))
}

pub async fn update(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    gone(v)?;
    let b = wrapped(body, "security_group")?;
    Ok(Json(json!({"security_group": s.sg_update(&ctx, &id, &b).await?})))
}

pub async fn delete(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    gone(v)?;
    s.sg_delete(&ctx, &id).await?;
    Ok(StatusCode::ACCEPTED)
}

pub async fn rule_create(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    gone(v)?;
    let b = wrapped(body, "security_group_rule")?;
    if b.is_empty() {
        return Err(bad("Invalid input: a rule is required."));
    }
    Ok(Json(json!({"security_group_rule": s.sg_rule_create(&ctx, &b).await?})))
}

pub async fn rule_delete(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    gone(v)?;
    s.sg_rule_delete(&ctx, &id).await?;
    Ok(StatusCode::ACCEPTED)
}

/// `GET /servers/{id}/os-security-groups`: the groups of the server's ports (every
/// version: Nova keeps it after 2.36).
pub async fn of_server(State(s): State<AppState>, ctx: AuthContext, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"security_groups": s.server_security_groups(&ctx, &id).await?})))
}
