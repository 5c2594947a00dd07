//! Unified limits: registered defaults and project overrides.

use super::{list_response, views, AppState};
use crate::app::limits::{LimitCreate, LimitUpdate, RegisteredLimitCreate, RegisteredLimitUpdate};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use stratus_common::auth::AuthContext;
use stratus_common::http::{ApiJson, ApiResult};

#[derive(Deserialize)]
pub struct RegisteredCreateBody {
    registered_limits: Vec<RegisteredLimitCreate>,
}
#[derive(Deserialize)]
pub struct RegisteredUpdateBody {
    registered_limit: RegisteredLimitUpdate,
}
#[derive(Deserialize)]
pub struct CreateBody {
    limits: Vec<LimitCreate>,
}
#[derive(Deserialize)]
pub struct UpdateBody {
    limit: LimitUpdate,
}

pub async fn registered_create(
    State(id): State<AppState>,
    ctx: AuthContext,
    ApiJson(b): ApiJson<RegisteredCreateBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let items = id.registered_limit_create(&ctx, b.registered_limits).await?;
    let list: Vec<Value> = items.iter().map(|l| views::registered_limit(&id.public_url, l)).collect();
    Ok((StatusCode::CREATED, Json(json!({"registered_limits": list}))))
}

pub async fn registered_list(
    State(id): State<AppState>,
    ctx: AuthContext,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let items =
        id.registered_limit_list(&ctx).await?.iter().map(|l| views::registered_limit(&id.public_url, l)).collect();
    list_response(
        &id.public_url,
        "registered_limits",
        "registered_limits",
        items,
        &q,
        &["service_id", "region_id", "resource_name"],
    )
}

pub async fn registered_show(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(lid): Path<String>,
) -> ApiResult<Json<Value>> {
    let l = id.registered_limit_get(&ctx, &lid).await?;
    Ok(Json(json!({"registered_limit": views::registered_limit(&id.public_url, &l)})))
}

pub async fn registered_update(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(lid): Path<String>,
    ApiJson(b): ApiJson<RegisteredUpdateBody>,
) -> ApiResult<Json<Value>> {
    let l = id.registered_limit_update(&ctx, &lid, b.registered_limit).await?;
    Ok(Json(json!({"registered_limit": views::registered_limit(&id.public_url, &l)})))
}

pub async fn registered_delete(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(lid): Path<String>,
) -> ApiResult<StatusCode> {
    id.registered_limit_delete(&ctx, &lid).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn create(
    State(id): State<AppState>,
    ctx: AuthContext,
    ApiJson(b): ApiJson<CreateBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let items = id.limit_create(&ctx, b.limits).await?;
    let list: Vec<Value> = items.iter().map(|l| views::limit(&id.public_url, l)).collect();
    Ok((StatusCode::CREATED, Json(json!({"limits": list}))))
}

pub async fn list(
    State(id): State<AppState>,
    ctx: AuthContext,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let items = id
        .limit_list(&ctx, q.get("project_id").map(String::as_str))
        .await?
        .iter()
        .map(|l| views::limit(&id.public_url, l))
        .collect();
    list_response(
        &id.public_url,
        "limits",
        "limits",
        items,
        &q,
        &["service_id", "region_id", "resource_name", "project_id"],
    )
}

pub async fn show(State(id): State<AppState>, ctx: AuthContext, Path(lid): Path<String>) -> ApiResult<Json<Value>> {
    let l = id.limit_get(&ctx, &lid).await?;
    Ok(Json(json!({"limit": views::limit(&id.public_url, &l)})))
}

pub async fn update(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(lid): Path<String>,
    ApiJson(b): ApiJson<UpdateBody>,
) -> ApiResult<Json<Value>> {
    let l = id.limit_update(&ctx, &lid, b.limit).await?;
    Ok(Json(json!({"limit": views::limit(&id.public_url, &l)})))
}

pub async fn delete(State(id): State<AppState>, ctx: AuthContext, Path(lid): Path<String>) -> ApiResult<StatusCode> {
    id.limit_delete(&ctx, &lid).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn model(_ctx: AuthContext) -> Json<Value> {
    Json(
        json!({"model": {"name": "flat", "description": "Limit enforcement and validation does not take project hierarchy into consideration."}}),
    )
}
