use super::{list_response, views, AppState};
use crate::app::groups::{GroupCreate, GroupUpdate};
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
    group: GroupCreate,
}

#[derive(Deserialize)]
pub struct UpdateBody {
    group: GroupUpdate,
}

pub async fn create(
    State(id): State<AppState>,
    ctx: AuthContext,
    ApiJson(b): ApiJson<CreateBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let g = id.group_create(&ctx, b.group).await?;
    Ok((StatusCode::CREATED, Json(json!({"group": views::group(&id.public_url, &g)}))))
}

pub async fn list(
    State(id): State<AppState>,
    ctx: AuthContext,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let groups = id.group_list(&ctx, q.get("name").map(String::as_str), q.get("domain_id").map(String::as_str)).await?;
    let items = groups.iter().map(|g| views::group(&id.public_url, g)).collect();
    list_response(&id.public_url, "groups", "groups", items, &q, &["name", "domain_id"])
}

pub async fn show(State(id): State<AppState>, ctx: AuthContext, Path(gid): Path<String>) -> ApiResult<Json<Value>> {
    let g = id.group_get(&ctx, &gid).await?;
    Ok(Json(json!({"group": views::group(&id.public_url, &g)})))
}

pub async fn update(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(gid): Path<String>,
    ApiJson(b): ApiJson<UpdateBody>,
) -> ApiResult<Json<Value>> {
    let g = id.group_update(&ctx, &gid, b.group).await?;
    Ok(Json(json!({"group": views::group(&id.public_url, &g)})))
}

pub async fn delete(State(id): State<AppState>, ctx: AuthContext, Path(gid): Path<String>) -> ApiResult<StatusCode> {
    id.group_delete(&ctx, &gid).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn users(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(gid): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let items = id.group_user_list(&ctx, &gid).await?.iter().map(|u| views::user(&id.public_url, u)).collect();
    list_response(&id.public_url, "users", &format!("groups/{gid}/users"), items, &q, &["name", "enabled", "domain_id"])
}

pub async fn add_user(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path((gid, uid)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    id.group_add_user(&ctx, &gid, &uid).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn check_user(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path((gid, uid)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    id.group_check_user(&ctx, &gid, &uid).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn remove_user(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path((gid, uid)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    id.group_remove_user(&ctx, &gid, &uid).await?;
    Ok(StatusCode::NO_CONTENT)
}
