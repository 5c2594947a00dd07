//! Regions, services and endpoints.

use super::{list_response, views, AppState};
use crate::app::catalog::{EndpointCreate, EndpointUpdate, RegionCreate, RegionUpdate, ServiceCreate, ServiceUpdate};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use stratus_common::auth::AuthContext;
use stratus_common::http::{ApiJson, ApiResult};

type Created = ApiResult<(StatusCode, Json<Value>)>;

#[derive(Deserialize)]
pub struct RegionCreateBody {
    region: RegionCreate,
}
#[derive(Deserialize)]
pub struct RegionUpdateBody {
    region: RegionUpdate,
}
#[derive(Deserialize)]
pub struct ServiceCreateBody {
    service: ServiceCreate,
}
#[derive(Deserialize)]
pub struct ServiceUpdateBody {
    service: ServiceUpdate,
}
#[derive(Deserialize)]
pub struct EndpointCreateBody {
    endpoint: EndpointCreate,
}
#[derive(Deserialize)]
pub struct EndpointUpdateBody {
    endpoint: EndpointUpdate,
}

pub async fn region_create(
    State(id): State<AppState>,
    ctx: AuthContext,
    ApiJson(b): ApiJson<RegionCreateBody>,
) -> Created {
    let r = id.region_create(&ctx, b.region).await?;
    Ok((StatusCode::CREATED, Json(json!({"region": views::region(&id.public_url, &r)}))))
}

/// `PUT /v3/regions/{id}`: a region with the id the caller chose.
pub async fn region_create_with_id(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(region_id): Path<String>,
    ApiJson(b): ApiJson<RegionCreateBody>,
) -> Created {
    let mut req = b.region;
    if req.id.as_deref().is_some_and(|given| given != region_id) {
        return Err(stratus_common::http::ApiError::bad_request("The region id in the body differs from the URL's."));
    }
    req.id = Some(region_id);
    let r = id.region_create(&ctx, req).await?;
    Ok((StatusCode::CREATED, Json(json!({"region": views::region(&id.public_url, &r)}))))
}

pub async fn region_list(
    State(id): State<AppState>,
    ctx: AuthContext,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let items = id.region_list(&ctx).await?.iter().map(|r| views::region(&id.public_url, r)).collect();
    list_response(&id.public_url, "regions", "regions", items, &q, &["parent_region_id"])
}

pub async fn region_show(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(rid): Path<String>,
) -> ApiResult<Json<Value>> {
    let r = id.region_get(&ctx, &rid).await?;
    Ok(Json(json!({"region": views::region(&id.public_url, &r)})))
}

pub async fn region_update(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(rid): Path<String>,
    ApiJson(b): ApiJson<RegionUpdateBody>,
) -> ApiResult<Json<Value>> {
    let r = id.region_update(&ctx, &rid, b.region).await?;
    Ok(Json(json!({"region": views::region(&id.public_url, &r)})))
}

pub async fn region_delete(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(rid): Path<String>,
) -> ApiResult<StatusCode> {
    id.region_delete(&ctx, &rid).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn service_create(
    State(id): State<AppState>,
    ctx: AuthContext,
    ApiJson(b): ApiJson<ServiceCreateBody>,
) -> Created {
    let s = id.service_create(&ctx, b.service).await?;
    Ok((StatusCode::CREATED, Json(json!({"service": views::service(&id.public_url, &s)}))))
}

pub async fn service_list(
    State(id): State<AppState>,
    ctx: AuthContext,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let items = id.service_list(&ctx).await?.iter().map(|s| views::service(&id.public_url, s)).collect();
    list_response(&id.public_url, "services", "services", items, &q, &["type", "name", "enabled"])
}

pub async fn service_show(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(sid): Path<String>,
) -> ApiResult<Json<Value>> {
    let s = id.service_get(&ctx, &sid).await?;
    Ok(Json(json!({"service": views::service(&id.public_url, &s)})))
}

pub async fn service_update(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(sid): Path<String>,
    ApiJson(b): ApiJson<ServiceUpdateBody>,
) -> ApiResult<Json<Value>> {
    let s = id.service_update(&ctx, &sid, b.service).await?;
    Ok(Json(json!({"service": views::service(&id.public_url, &s)})))
}

pub async fn service_delete(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(sid): Path<String>,
) -> ApiResult<StatusCode> {
    id.service_delete(&ctx, &sid).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn endpoint_create(
    State(id): State<AppState>,
    ctx: AuthContext,
    ApiJson(b): ApiJson<EndpointCreateBody>,
) -> Created {
    let e = id.endpoint_create(&ctx, b.endpoint).await?;
    Ok((StatusCode::CREATED, Json(json!({"endpoint": views::endpoint(&id.public_url, &e)}))))
}

pub async fn endpoint_list(
    State(id): State<AppState>,
    ctx: AuthContext,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let items = id.endpoint_list(&ctx).await?.iter().map(|e| views::endpoint(&id.public_url, e)).collect();
    list_response(
        &id.public_url,
        "endpoints",
        "endpoints",
        items,
        &q,
        &["interface", "service_id", "region_id", "enabled"],
    )
}

pub async fn endpoint_show(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(eid): Path<String>,
) -> ApiResult<Json<Value>> {
    let e = id.endpoint_get(&ctx, &eid).await?;
    Ok(Json(json!({"endpoint": views::endpoint(&id.public_url, &e)})))
}

pub async fn endpoint_update(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(eid): Path<String>,
    ApiJson(b): ApiJson<EndpointUpdateBody>,
) -> ApiResult<Json<Value>> {
    let e = id.endpoint_update(&ctx, &eid, b.endpoint).await?;
    Ok(Json(json!({"endpoint": views::endpoint(&id.public_url, &e)})))
}

pub async fn endpoint_delete(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(eid): Path<String>,
) -> ApiResult<StatusCode> {
    id.endpoint_delete(&ctx, &eid).await?;
    Ok(StatusCode::NO_CONTENT)
}
