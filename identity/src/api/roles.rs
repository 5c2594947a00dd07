use super::{list_response, views, AppState};
use crate::store::Role;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use stratus_common::auth::AuthContext;
use stratus_common::http::{ApiJson, ApiResult};

#[derive(Deserialize)]
pub struct RoleFields {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    domain_id: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
pub struct RoleBody {
    role: RoleFields,
}

pub async fn create(
    State(id): State<AppState>,
    ctx: AuthContext,
    ApiJson(b): ApiJson<RoleBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let name = b.role.name.unwrap_or_default();
    let r = id.role_create(&ctx, name, b.role.domain_id, b.role.description.unwrap_or_default()).await?;
    Ok((StatusCode::CREATED, Json(json!({"role": views::role(&id.public_url, &r)}))))
}

pub async fn list(
    State(id): State<AppState>,
    ctx: AuthContext,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let items = id.role_list(&ctx).await?.iter().map(|r| views::role(&id.public_url, r)).collect();
    list_response(&id.public_url, "roles", "roles", items, &q, &["name", "domain_id"])
}

pub async fn show(State(id): State<AppState>, ctx: AuthContext, Path(rid): Path<String>) -> ApiResult<Json<Value>> {
    let r = id.role_get(&ctx, &rid).await?;
    Ok(Json(json!({"role": views::role(&id.public_url, &r)})))
}

pub async fn update(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(rid): Path<String>,
    ApiJson(b): ApiJson<RoleBody>,
) -> ApiResult<Json<Value>> {
    let r = id.role_update(&ctx, &rid, b.role.name, b.role.description).await?;
    Ok(Json(json!({"role": views::role(&id.public_url, &r)})))
}

pub async fn delete(State(id): State<AppState>, ctx: AuthContext, Path(rid): Path<String>) -> ApiResult<StatusCode> {
    id.role_delete(&ctx, &rid).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn inference(base: &str, prior: &Role, implied: &[Role]) -> Value {
    json!({"prior_role": views::role_ref(base, prior),
           "implies": implied.iter().map(|r| views::role_ref(base, r)).collect::<Vec<_>>()})
}

pub async fn implies_add(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path((p, i)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (prior, implied) = id.implied_role_add(&ctx, &p, &i).await?;
    let base = &id.public_url;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"role_inference": {"prior_role": views::role_ref(base, &prior), "implies": views::role_ref(base, &implied)}}),
        ),
    ))
}

pub async fn implies_show(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path((p, i)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (prior, implied) = id.implied_role_get(&ctx, &p, &i).await?;
    let base = &id.public_url;
    Ok(Json(
        json!({"role_inference": {"prior_role": views::role_ref(base, &prior), "implies": views::role_ref(base, &implied)}}),
    ))
}

/// `HEAD /v3/roles/{prior}/implies/{implied}`: 204 when the inference exists.
pub async fn implies_check(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path((p, i)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    id.implied_role_get(&ctx, &p, &i).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn implies_remove(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path((p, i)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    id.implied_role_remove(&ctx, &p, &i).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn implies_list(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(p): Path<String>,
) -> ApiResult<Json<Value>> {
    let rules = id.role_inferences(&ctx, Some(&p)).await?;
    let (prior, implied) = &rules[0];
    Ok(Json(json!({"role_inference": inference(&id.public_url, prior, implied)})))
}

pub async fn inferences(State(id): State<AppState>, ctx: AuthContext) -> ApiResult<Json<Value>> {
    let rules = id.role_inferences(&ctx, None).await?;
    let list: Vec<Value> = rules.iter().map(|(p, i)| inference(&id.public_url, p, i)).collect();
    Ok(Json(
        json!({"role_inferences": list, "links": {"self": format!("{}/v3/role_inferences", id.public_url), "previous": null, "next": null}}),
    ))
}
