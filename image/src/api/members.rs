use super::{views, AppState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use stratus_common::auth::AuthContext;
use stratus_common::http::{ApiJson, ApiResult};

#[derive(Deserialize)]
pub struct AddBody {
    member: String,
}

#[derive(Deserialize)]
pub struct StatusBody {
    status: String,
}

pub async fn create(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<AddBody>,
) -> ApiResult<Json<Value>> {
    let m = s.member_add(&ctx, &id, &b.member).await?;
    Ok(Json(views::member(&m)))
}

pub async fn list(State(s): State<AppState>, ctx: AuthContext, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let list = s.member_list(&ctx, &id).await?;
    Ok(Json(json!({"members": list.iter().map(views::member).collect::<Vec<_>>(), "schema": "/v2/schemas/members"})))
}

pub async fn show(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path((id, member)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    Ok(Json(views::member(&s.member_get(&ctx, &id, &member).await?)))
}

pub async fn update(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path((id, member)): Path<(String, String)>,
    ApiJson(b): ApiJson<StatusBody>,
) -> ApiResult<Json<Value>> {
    Ok(Json(views::member(&s.member_set_status(&ctx, &id, &member, &b.status).await?)))
}

pub async fn delete(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path((id, member)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    s.member_remove(&ctx, &id, &member).await?;
    Ok(StatusCode::NO_CONTENT)
}
