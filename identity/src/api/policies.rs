//! `/v3/policies` (Keystone's deprecated policies API; `app::policy_documents`).

use super::{list_response, views, AppState};
use crate::app::policy_documents::{PolicyCreate, PolicyUpdate};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use stratus_common::auth::AuthContext;
use stratus_common::http::{ApiJson, ApiResult};

#[derive(Deserialize)]
pub struct CreateBody {
    policy: PolicyCreate,
}

#[derive(Deserialize)]
pub struct UpdateBody {
    policy: PolicyUpdate,
}

pub async fn list(
    State(id): State<AppState>,
    ctx: AuthContext,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let items = id
        .policy_list(&ctx, q.get("type").map(String::as_str))
        .await?
        .iter()
        .map(|p| views::policy(&id.public_url, p))
        .collect();
    list_response(&id.public_url, "policies", "policies", items, &q, &["type"])
}

pub async fn create(
    State(id): State<AppState>,
    ctx: AuthContext,
    ApiJson(b): ApiJson<CreateBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let p = id.policy_create(&ctx, b.policy).await?;
    Ok((StatusCode::CREATED, Json(json!({"policy": views::policy(&id.public_url, &p)}))))
}

pub async fn show(State(id): State<AppState>, ctx: AuthContext, Path(pid): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"policy": views::policy(&id.public_url, &id.policy_get(&ctx, &pid).await?)})))
}

pub async fn update(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(pid): Path<String>,
    ApiJson(b): ApiJson<UpdateBody>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"policy": views::policy(&id.public_url, &id.policy_update(&ctx, &pid, b.policy).await?)})))
}

pub async fn delete(State(id): State<AppState>, ctx: AuthContext, Path(pid): Path<String>) -> ApiResult<StatusCode> {
    id.policy_delete(&ctx, &pid).await?;
    Ok(StatusCode::NO_CONTENT)
}
