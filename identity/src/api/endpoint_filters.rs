//! `/v3/OS-EP-FILTER` (Keystone's endpoint filters; `app::endpoint_filters`).

use super::{list_response, views, AppState};
use crate::app::endpoint_filters::{EndpointGroupCreate, EndpointGroupUpdate};
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
    endpoint_group: EndpointGroupCreate,
}

#[derive(Deserialize)]
pub struct UpdateBody {
    endpoint_group: EndpointGroupUpdate,
}

type Query_ = Query<HashMap<String, String>>;

pub async fn groups(State(id): State<AppState>, ctx: AuthContext, Query(q): Query_) -> ApiResult<Json<Value>> {
    let items = id
        .endpoint_group_list(&ctx, q.get("name").map(String::as_str))
        .await?
        .iter()
        .map(|g| views::endpoint_group(&id.public_url, g))
        .collect();
    list_response(&id.public_url, "endpoint_groups", "OS-EP-FILTER/endpoint_groups", items, &q, &["name"])
}

pub async fn group_create(
    State(id): State<AppState>,
    ctx: AuthContext,
    ApiJson(b): ApiJson<CreateBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let g = id.endpoint_group_create(&ctx, b.endpoint_group).await?;
    Ok((StatusCode::CREATED, Json(json!({"endpoint_group": views::endpoint_group(&id.public_url, &g)}))))
}

pub async fn group_show(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(gid): Path<String>,
) -> ApiResult<Json<Value>> {
    let g = id.endpoint_group_get(&ctx, &gid).await?;
    Ok(Json(json!({"endpoint_group": views::endpoint_group(&id.public_url, &g)})))
}

pub async fn group_update(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(gid): Path<String>,
    ApiJson(b): ApiJson<UpdateBody>,
) -> ApiResult<Json<Value>> {
    let g = id.endpoint_group_update(&ctx, &gid, b.endpoint_group).await?;
    Ok(Json(json!({"endpoint_group": views::endpoint_group(&id.public_url, &g)})))
}

pub async fn group_delete(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(gid): Path<String>,
) -> ApiResult<StatusCode> {
    id.endpoint_group_delete(&ctx, &gid).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn endpoints_json(id: &AppState, endpoints: &[crate::store::Endpoint]) -> Json<Value> {
    let items: Vec<Value> = endpoints.iter().map(|e| views::endpoint(&id.public_url, e)).collect();
    Json(json!({"endpoints": items, "links": {"self": null, "previous": null, "next": null}}))
}

fn projects_json(id: &AppState, projects: &[crate::store::Project]) -> Json<Value> {
    let items: Vec<Value> = projects.iter().map(|p| views::project(&id.public_url, p)).collect();
    Json(json!({"projects": items, "links": {"self": null, "previous": null, "next": null}}))
}

pub async fn group_endpoints(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(gid): Path<String>,
) -> ApiResult<Json<Value>> {
    let endpoints = id.endpoint_group_endpoints(&ctx, &gid).await?;
    Ok(endpoints_json(&id, &endpoints))
}

pub async fn group_projects(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(gid): Path<String>,
) -> ApiResult<Json<Value>> {
    let projects = id.filter_projects(&ctx, &gid, true).await?;
    Ok(projects_json(&id, &projects))
}

pub async fn endpoint_projects(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(eid): Path<String>,
) -> ApiResult<Json<Value>> {
    let projects = id.filter_projects(&ctx, &eid, false).await?;
    Ok(projects_json(&id, &projects))
}

pub async fn group_project_add(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path((gid, pid)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    id.filter_add(&ctx, &pid, &gid, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn group_project_show(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path((gid, pid)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let p = id.filter_check(&ctx, &pid, &gid, true).await?;
    Ok(Json(json!({"project": views::project(&id.public_url, &p)})))
}

pub async fn group_project_remove(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path((gid, pid)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    id.filter_remove(&ctx, &pid, &gid, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn project_groups(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(pid): Path<String>,
) -> ApiResult<Json<Value>> {
    let items: Vec<Value> = id
        .project_endpoint_groups(&ctx, &pid)
        .await?
        .iter()
        .map(|g| views::endpoint_group(&id.public_url, g))
        .collect();
    Ok(Json(json!({"endpoint_groups": items, "links": {"self": null, "previous": null, "next": null}})))
}

pub async fn project_endpoints(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(pid): Path<String>,
) -> ApiResult<Json<Value>> {
    let endpoints = id.project_endpoints(&ctx, &pid).await?;
    Ok(endpoints_json(&id, &endpoints))
}

pub async fn project_endpoint_add(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path((pid, eid)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    id.filter_add(&ctx, &pid, &eid, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn project_endpoint_check(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path((pid, eid)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    id.filter_check(&ctx, &pid, &eid, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn project_endpoint_remove(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path((pid, eid)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    id.filter_remove(&ctx, &pid, &eid, false).await?;
    Ok(StatusCode::NO_CONTENT)
}
