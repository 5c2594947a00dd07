use super::{all_projects, list_page, param, scope, views, AppState};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;
use stratus_common::auth::AuthContext;
use stratus_common::http::{ApiError, ApiJson, ApiResult};

type Params = Path<HashMap<String, String>>;

async fn listing(
    s: AppState,
    ctx: AuthContext,
    p: HashMap<String, String>,
    q: HashMap<String, String>,
    detail: bool,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let items = s
        .transfer_list(&ctx, all_projects(&q))
        .await?
        .iter()
        .map(|t| views::transfer(&s.public_url, t, None, detail))
        .collect();
    let path = if detail { "os-volume-transfer/detail" } else { "os-volume-transfer" };
    list_page(
        &s.public_url,
        param(&p, "project_id"),
        "transfers",
        path,
        items,
        &q,
        super::Fields { filter: &["name", "volume_id"], sort: &["name", "volume_id", "created_at"] },
    )
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
    let t = super::body_of(body, "transfer")?;
    let volume = t
        .get("volume_id")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("A transfer needs a volume_id."))?;
    let name = t.get("name").and_then(Value::as_str).map(str::to_string);
    let (transfer, key) = s.transfer_create(&ctx, volume, name).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"transfer": views::transfer(&s.public_url, &transfer, Some(&key), true)}))))
}

pub async fn show(State(s): State<AppState>, ctx: AuthContext, Path(p): Params) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let t = s.transfer_get(&ctx, param(&p, "id")).await?;
    Ok(Json(json!({"transfer": views::transfer(&s.public_url, &t, None, true)})))
}

pub async fn delete(State(s): State<AppState>, ctx: AuthContext, Path(p): Params) -> ApiResult<StatusCode> {
    scope(&ctx, &p)?;
    s.transfer_delete(&ctx, param(&p, "id")).await?;
    Ok(StatusCode::ACCEPTED)
}

pub async fn accept(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    scope(&ctx, &p)?;
    let a = super::body_of(body, "accept")?;
    let key = a
        .get("auth_key")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("Accepting a transfer needs its auth_key."))?;
    let t = s.transfer_accept(&ctx, param(&p, "id"), key).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"transfer": {"id": t.id, "name": t.name, "volume_id": t.volume_id,
        "links": views::transfer(&s.public_url, &t, None, false)["links"].clone()}})),
    ))
}
