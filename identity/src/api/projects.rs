use super::{typed_list_response, views, AppState};
use crate::app::projects::{ProjectCreate, ProjectUpdate};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use stratus_common::auth::AuthContext;
use stratus_common::http::{ApiJson, ApiResult};

#[derive(Deserialize)]
pub struct CreateBody {
    project: ProjectCreate,
}

#[derive(Deserialize)]
pub struct UpdateBody {
    project: ProjectUpdate,
}

pub async fn create(
    State(id): State<AppState>,
    ctx: AuthContext,
    ApiJson(b): ApiJson<CreateBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let p = id.project_create(&ctx, b.project).await?;
    Ok((StatusCode::CREATED, Json(json!({"project": views::project(&id.public_url, &p)}))))
}

pub async fn list(
    State(id): State<AppState>,
    ctx: AuthContext,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    // Projects acting as domains are listed only when asked for, as Keystone lists them.
    let is_domain = q.get("is_domain").is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    let mut projects = id
        .project_list(&ctx, q.get("name").map(String::as_str), q.get("domain_id").map(String::as_str), is_domain)
        .await?;
    if let Some(tags) = q.get("tags") {
        let want: Vec<&str> = tags.split(',').collect();
        projects.retain(|p| want.iter().all(|t| p.tags.iter().any(|x| x == t)));
    }
    let items: Vec<views::ProjectView> = projects.iter().map(|p| views::ProjectView::new(&id.public_url, p)).collect();
    typed_list_response(
        &id.public_url,
        "projects",
        "projects",
        items,
        &q,
        &["name", "enabled", "domain_id", "parent_id", "is_domain"],
        views::ProjectView::id,
    )
}

pub async fn show(State(id): State<AppState>, ctx: AuthContext, Path(pid): Path<String>) -> ApiResult<Json<Value>> {
    let p = id.project_get(&ctx, &pid).await?;
    Ok(Json(json!({"project": views::project(&id.public_url, &p)})))
}

pub async fn update(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(pid): Path<String>,
    ApiJson(b): ApiJson<UpdateBody>,
) -> ApiResult<Json<Value>> {
    let p = id.project_update(&ctx, &pid, b.project).await?;
    Ok(Json(json!({"project": views::project(&id.public_url, &p)})))
}

pub async fn delete(State(id): State<AppState>, ctx: AuthContext, Path(pid): Path<String>) -> ApiResult<StatusCode> {
    id.project_delete(&ctx, &pid).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct TagsBody {
    tags: Vec<String>,
}

/// `GET /v3/projects/{id}/tags`: whoever may see the project.
pub async fn tags(State(id): State<AppState>, ctx: AuthContext, Path(pid): Path<String>) -> ApiResult<Json<Value>> {
    let p = id.project_get(&ctx, &pid).await?;
    Ok(Json(json!({"tags": p.tags})))
}

/// `PUT /v3/projects/{id}/tags`: replaces them all.
pub async fn tags_set(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(pid): Path<String>,
    ApiJson(b): ApiJson<TagsBody>,
) -> ApiResult<Json<Value>> {
    let p = id.project_tags_set(&ctx, &pid, b.tags).await?;
    Ok(Json(json!({"tags": p.tags})))
}

/// `DELETE /v3/projects/{id}/tags`: removes them all.
pub async fn tags_clear(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(pid): Path<String>,
) -> ApiResult<StatusCode> {
    id.project_tags_set(&ctx, &pid, Vec::new()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v3/projects/{id}/tags/{tag}`: 204 when the project has the tag, else 404.
pub async fn tag_check(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path((pid, tag)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let p = id.project_get(&ctx, &pid).await?;
    if p.tags.contains(&tag) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(stratus_common::http::ApiError::not_found("project tag", &tag))
    }
}

/// `PUT /v3/projects/{id}/tags/{tag}`: adds one (201, no body, as Keystone answers).
pub async fn tag_add(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path((pid, tag)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    id.project_tag_add(&ctx, &pid, &tag).await?;
    Ok(StatusCode::CREATED)
}

/// `DELETE /v3/projects/{id}/tags/{tag}`.
pub async fn tag_remove(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path((pid, tag)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    id.project_tag_remove(&ctx, &pid, &tag).await?;
    Ok(StatusCode::NO_CONTENT)
}
