use super::{list_response, views, AppState};
use crate::app::domains::{DomainCreate, DomainUpdate};
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
    domain: DomainCreate,
}

#[derive(Deserialize)]
pub struct UpdateBody {
    domain: DomainUpdate,
}

pub async fn create(
    State(id): State<AppState>,
    ctx: AuthContext,
    ApiJson(b): ApiJson<CreateBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let d = id.domain_create(&ctx, b.domain).await?;
    Ok((StatusCode::CREATED, Json(json!({"domain": views::domain(&id.public_url, &d)}))))
}

pub async fn list(
    State(id): State<AppState>,
    ctx: AuthContext,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let items = id.domain_list(&ctx).await?.iter().map(|d| views::domain(&id.public_url, d)).collect();
    list_response(&id.public_url, "domains", "domains", items, &q, &["name", "enabled", "id"])
}

pub async fn show(State(id): State<AppState>, ctx: AuthContext, Path(did): Path<String>) -> ApiResult<Json<Value>> {
    let d = id.domain_get(&ctx, &did).await?;
    Ok(Json(json!({"domain": views::domain(&id.public_url, &d)})))
}

pub async fn update(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(did): Path<String>,
    ApiJson(b): ApiJson<UpdateBody>,
) -> ApiResult<Json<Value>> {
    let d = id.domain_update(&ctx, &did, b.domain).await?;
    Ok(Json(json!({"domain": views::domain(&id.public_url, &d)})))
}

pub async fn delete(State(id): State<AppState>, ctx: AuthContext, Path(did): Path<String>) -> ApiResult<StatusCode> {
    id.domain_delete(&ctx, &did).await?;
    Ok(StatusCode::NO_CONTENT)
}
