use super::{list_response, views, AppState};
use crate::app::app_creds::AppCredCreate;
use crate::app::users::{PasswordChange, UserCreate, UserUpdate};
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
    user: UserCreate,
}

#[derive(Deserialize)]
pub struct UpdateBody {
    user: UserUpdate,
}

#[derive(Deserialize)]
pub struct PasswordBody {
    user: PasswordChange,
}

#[derive(Deserialize)]
pub struct AppCredBody {
    application_credential: AppCredCreate,
}

pub async fn create(
    State(id): State<AppState>,
    ctx: AuthContext,
    ApiJson(b): ApiJson<CreateBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let u = id.user_create(&ctx, b.user).await?;
    Ok((StatusCode::CREATED, Json(json!({"user": views::user(&id.public_url, &u)}))))
}

pub async fn list(
    State(id): State<AppState>,
    ctx: AuthContext,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let users = id.user_list(&ctx, q.get("name").map(String::as_str), q.get("domain_id").map(String::as_str)).await?;
    let items = users.iter().map(|u| views::user(&id.public_url, u)).collect();
    list_response(&id.public_url, "users", "users", items, &q, &["name", "enabled", "domain_id", "default_project_id"])
}

pub async fn show(State(id): State<AppState>, ctx: AuthContext, Path(uid): Path<String>) -> ApiResult<Json<Value>> {
    let u = id.user_get(&ctx, &uid).await?;
    Ok(Json(json!({"user": views::user(&id.public_url, &u)})))
}

pub async fn update(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(uid): Path<String>,
    ApiJson(b): ApiJson<UpdateBody>,
) -> ApiResult<Json<Value>> {
    let u = id.user_update(&ctx, &uid, b.user).await?;
    Ok(Json(json!({"user": views::user(&id.public_url, &u)})))
}

pub async fn delete(State(id): State<AppState>, ctx: AuthContext, Path(uid): Path<String>) -> ApiResult<StatusCode> {
    id.user_delete(&ctx, &uid).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn change_password(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(uid): Path<String>,
    ApiJson(b): ApiJson<PasswordBody>,
) -> ApiResult<StatusCode> {
    id.user_change_password(&ctx, &uid, b.user).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn projects(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(uid): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let items = id.user_project_list(&ctx, &uid).await?.iter().map(|p| views::project(&id.public_url, p)).collect();
    list_response(
        &id.public_url,
        "projects",
        &format!("users/{uid}/projects"),
        items,
        &q,
        &["name", "enabled", "domain_id"],
    )
}

pub async fn groups(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(uid): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let items = id.user_group_list(&ctx, &uid).await?.iter().map(|g| views::group(&id.public_url, g)).collect();
    list_response(&id.public_url, "groups", &format!("users/{uid}/groups"), items, &q, &["name", "domain_id"])
}

pub async fn app_cred_create(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(uid): Path<String>,
    ApiJson(b): ApiJson<AppCredBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (c, secret) = id.app_cred_create(&ctx, &uid, b.application_credential).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"application_credential": views::app_cred(&id.public_url, &c, Some(&secret))})),
    ))
}

pub async fn app_cred_list(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(uid): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let items = id
        .app_cred_list(&ctx, &uid, q.get("name").map(String::as_str))
        .await?
        .iter()
        .map(|c| views::app_cred(&id.public_url, c, None))
        .collect();
    list_response(
        &id.public_url,
        "application_credentials",
        &format!("users/{uid}/application_credentials"),
        items,
        &q,
        &[],
    )
}

pub async fn app_cred_show(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path((uid, cid)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let c = id.app_cred_get(&ctx, &uid, &cid).await?;
    Ok(Json(json!({"application_credential": views::app_cred(&id.public_url, &c, None)})))
}

pub async fn app_cred_delete(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path((uid, cid)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    id.app_cred_delete(&ctx, &uid, &cid).await?;
    Ok(StatusCode::NO_CONTENT)
}
