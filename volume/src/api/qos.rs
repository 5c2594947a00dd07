//! `/qos-specs` (admins): Cinder's QoS specs and their associations with volume types.

use super::{body_of, param, scope, AppState};
use crate::store::QosSpecs;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;
use stratus_common::auth::AuthContext;
use stratus_common::http::{ApiError, ApiJson, ApiResult};

type Params = Path<HashMap<String, String>>;
type Q = Query<HashMap<String, String>>;

fn view(q: &QosSpecs) -> Value {
    json!({"id": q.id, "name": q.name, "consumer": q.consumer, "specs": q.specs})
}

/// One QoS specs with its links (the answer to create and show).
fn shown(s: &AppState, project: &str, q: &QosSpecs) -> Json<Value> {
    let id = &q.id;
    Json(json!({"qos_specs": view(q), "links": [
        {"rel": "self", "href": format!("{}/v3/{project}/qos-specs/{id}", s.public_url)},
        {"rel": "bookmark", "href": format!("{}/{project}/qos-specs/{id}", s.public_url)}]}))
}

pub async fn list(State(s): State<AppState>, ctx: AuthContext, Path(p): Params) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let list: Vec<Value> = s.qos_list(&ctx).await?.iter().map(view).collect();
    Ok(Json(json!({"qos_specs": list})))
}

pub async fn create(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let q = s.qos_create(&ctx, body_of(body, "qos_specs")?).await?;
    Ok(shown(&s, param(&p, "project_id"), &q))
}

pub async fn show(State(s): State<AppState>, ctx: AuthContext, Path(p): Params) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let q = s.qos_get(&ctx, param(&p, "id")).await?;
    Ok(shown(&s, param(&p, "project_id"), &q))
}

/// `PUT /qos-specs/{id}`: sets keys; answers them.
pub async fn set_keys(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let keys = s.qos_set_keys(&ctx, param(&p, "id"), body_of(body, "qos_specs")?).await?;
    Ok(Json(json!({"qos_specs": keys})))
}

/// `PUT /qos-specs/{id}/delete_keys`: `{"keys": [...]}`.
pub async fn delete_keys(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<StatusCode> {
    scope(&ctx, &p)?;
    let keys: Vec<String> = body["keys"]
        .as_array()
        .and_then(|a| a.iter().map(|k| k.as_str().map(str::to_string)).collect())
        .ok_or_else(|| ApiError::bad_request("delete_keys needs keys: a list of strings."))?;
    s.qos_unset_keys(&ctx, param(&p, "id"), &keys).await?;
    Ok(StatusCode::ACCEPTED)
}

/// `DELETE /qos-specs/{id}[?force=True]`.
pub async fn delete(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(p): Params,
    Query(q): Q,
) -> ApiResult<StatusCode> {
    scope(&ctx, &p)?;
    let force = q.get("force").and_then(|f| stratus_common::http::pagination::parse_bool(f)).unwrap_or(false);
    s.qos_delete(&ctx, param(&p, "id"), force).await?;
    Ok(StatusCode::ACCEPTED)
}

pub async fn associations(State(s): State<AppState>, ctx: AuthContext, Path(p): Params) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let list: Vec<Value> = s
        .qos_associations(&ctx, param(&p, "id"))
        .await?
        .into_iter()
        .map(|(id, name)| json!({"association_type": "volume_type", "id": id, "name": name}))
        .collect();
    Ok(Json(json!({"qos_associations": list})))
}

fn type_param(q: &HashMap<String, String>) -> ApiResult<&str> {
    q.get("vol_type_id")
        .map(String::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::bad_request("vol_type_id is needed."))
}

/// `GET /qos-specs/{id}/associate?vol_type_id=T`.
pub async fn associate(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(p): Params,
    Query(q): Q,
) -> ApiResult<StatusCode> {
    scope(&ctx, &p)?;
    s.qos_associate(&ctx, param(&p, "id"), type_param(&q)?).await?;
    Ok(StatusCode::ACCEPTED)
}

/// `GET /qos-specs/{id}/disassociate?vol_type_id=T`.
pub async fn disassociate(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(p): Params,
    Query(q): Q,
) -> ApiResult<StatusCode> {
    scope(&ctx, &p)?;
    s.qos_disassociate(&ctx, param(&p, "id"), Some(type_param(&q)?)).await?;
    Ok(StatusCode::ACCEPTED)
}

/// `GET /qos-specs/{id}/disassociate_all`.
pub async fn disassociate_all(State(s): State<AppState>, ctx: AuthContext, Path(p): Params) -> ApiResult<StatusCode> {
    scope(&ctx, &p)?;
    s.qos_disassociate(&ctx, param(&p, "id"), None).await?;
    Ok(StatusCode::ACCEPTED)
}
