//! `/group_types` (3.11+): group types and their group specs.

use super::{list_page, param, scope, since, typed, AppState};
use crate::app::group_types::GroupTypeRequest;
use crate::store::GroupType;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use stratus_common::auth::AuthContext;
use stratus_common::http::microversion::Version;
use stratus_common::http::{ApiError, ApiJson, ApiResult};

type Params = Path<HashMap<String, String>>;

fn view(t: &GroupType) -> Value {
    json!({"id": t.id, "name": t.name, "description": t.description, "is_public": t.is_public,
           "group_specs": t.group_specs})
}

pub async fn list(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(p): Params,
    Query(mut q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    since(v, 11)?;
    let public = q.remove("is_public");
    let items = s.group_type_list(&ctx, public.as_deref()).await?.iter().map(view).collect();
    list_page(
        &s.public_url,
        param(&p, "project_id"),
        "group_types",
        "group_types",
        items,
        &q,
        super::Fields { filter: &["name"], sort: &["name", "description", "is_public"] },
    )
}

pub async fn create(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    scope(&ctx, &p)?;
    since(v, 11)?;
    let req: GroupTypeRequest = typed(body, "group_type")?;
    let t = s.group_type_create(&ctx, req).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"group_type": view(&t)}))))
}

/// `GET /group_types/default`: none is configured here (404, as Cinder without one).
pub async fn default(ctx: AuthContext, v: Version, Path(p): Params) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    since(v, 11)?;
    Err(ApiError::new(StatusCode::NOT_FOUND, "Default group type could not be found: none is configured."))
}

pub async fn show(State(s): State<AppState>, ctx: AuthContext, v: Version, Path(p): Params) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    since(v, 11)?;
    Ok(Json(json!({"group_type": view(&s.group_type_get(&ctx, param(&p, "id")).await?)})))
}

pub async fn update(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    since(v, 11)?;
    let req: GroupTypeRequest = typed(body, "group_type")?;
    Ok(Json(json!({"group_type": view(&s.group_type_update(&ctx, param(&p, "id"), req).await?)})))
}

pub async fn delete(State(s): State<AppState>, ctx: AuthContext, v: Version, Path(p): Params) -> ApiResult<StatusCode> {
    scope(&ctx, &p)?;
    since(v, 11)?;
    s.group_type_delete(&ctx, param(&p, "id")).await?;
    Ok(StatusCode::ACCEPTED)
}

pub async fn specs(State(s): State<AppState>, ctx: AuthContext, v: Version, Path(p): Params) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    since(v, 11)?;
    Ok(Json(json!({"group_specs": s.group_type_get(&ctx, param(&p, "id")).await?.group_specs})))
}

pub async fn specs_set(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    scope(&ctx, &p)?;
    since(v, 11)?;
    let specs: Map<String, Value> = super::body_of(body, "group_specs")?;
    let set = s.group_specs_set(&ctx, param(&p, "id"), specs).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"group_specs": set}))))
}

pub async fn spec_show(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(p): Params,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    since(v, 11)?;
    let key = param(&p, "key");
    let t = s.group_type_get(&ctx, param(&p, "id")).await?;
    let value = t
        .group_specs
        .get(key)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("Group type spec {key} could not be found.")))?;
    Ok(Json(json!({ key: value })))
}

/// `PUT /group_types/{id}/group_specs/{key}` with `{key: value}`.
pub async fn spec_put(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    since(v, 11)?;
    let key = param(&p, "key");
    let Value::Object(item) = body else { return Err(ApiError::bad_request("The body is {key: value}.")) };
    if item.len() != 1 || !item.contains_key(key) {
        return Err(ApiError::bad_request(format!("The body must name exactly the spec in the URL, {key}.")));
    }
    let set = s.group_specs_set(&ctx, param(&p, "id"), item).await?;
    Ok(Json(Value::Object(set)))
}

pub async fn spec_unset(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(p): Params,
) -> ApiResult<StatusCode> {
    scope(&ctx, &p)?;
    since(v, 11)?;
    s.group_spec_unset(&ctx, param(&p, "id"), param(&p, "key")).await?;
    Ok(StatusCode::ACCEPTED)
}
