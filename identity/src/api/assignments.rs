//! Grants (`PUT /v3/projects/{p}/users/{u}/roles/{r}` and friends) and the
//! role-assignment report.

use super::{views, AppState};
use crate::app::AssignmentQuery;
use crate::store::{Actor, Assignment, Target};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;
use stratus_common::auth::AuthContext;
use stratus_common::http::pagination::parse_bool;
use stratus_common::http::{ApiError, ApiResult};

fn actor(kind: &str, id: String) -> ApiResult<Actor> {
    match kind {
        "users" => Ok(Actor::User(id)),
        "groups" => Ok(Actor::Group(id)),
        _ => Err(ApiError::not_found("resource", kind)),
    }
}

fn target(kind: &str, id: String) -> ApiResult<Target> {
    match kind {
        "projects" => Ok(Target::Project(id)),
        "domains" => Ok(Target::Domain(id)),
        _ => Err(ApiError::not_found("resource", kind)),
    }
}

type GrantPath = (String, String, String);

/// The kinds of target and actor, read from the path (`/v3/projects/P/users/U/...`).
fn kinds(uri: &Uri) -> (String, String) {
    let parts: Vec<&str> = uri.path().split('/').collect();
    (parts.get(2).unwrap_or(&"").to_string(), parts.get(4).unwrap_or(&"").to_string())
}

fn assignment(uri: &Uri, (tid, aid, role): GrantPath) -> ApiResult<Assignment> {
    let (tk, ak) = kinds(uri);
    Ok(Assignment { actor: actor(&ak, aid)?, target: target(&tk, tid)?, role_id: role, inherited: false })
}

/// The kinds of target and actor of an OS-INHERIT path
/// (`/v3/OS-INHERIT/domains/D/users/U/roles/...`).
fn inherited_kinds(uri: &Uri) -> (String, String) {
    let parts: Vec<&str> = uri.path().split('/').collect();
    (parts.get(3).unwrap_or(&"").to_string(), parts.get(5).unwrap_or(&"").to_string())
}

fn inherited_assignment(uri: &Uri, (tid, aid, role): GrantPath) -> ApiResult<Assignment> {
    let (tk, ak) = inherited_kinds(uri);
    Ok(Assignment { actor: actor(&ak, aid)?, target: target(&tk, tid)?, role_id: role, inherited: true })
}

/// `PUT /v3/OS-INHERIT/{domains|projects}/T/{users|groups}/A/roles/R/inherited_to_projects`.
pub async fn inherited_grant(
    State(id): State<AppState>,
    ctx: AuthContext,
    uri: Uri,
    Path(p): Path<GrantPath>,
) -> ApiResult<StatusCode> {
    id.grant(&ctx, inherited_assignment(&uri, p)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn inherited_check(
    State(id): State<AppState>,
    ctx: AuthContext,
    uri: Uri,
    Path(p): Path<GrantPath>,
) -> ApiResult<StatusCode> {
    id.grant_check(&ctx, &inherited_assignment(&uri, p)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn inherited_revoke(
    State(id): State<AppState>,
    ctx: AuthContext,
    uri: Uri,
    Path(p): Path<GrantPath>,
) -> ApiResult<StatusCode> {
    id.revoke_grant(&ctx, inherited_assignment(&uri, p)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v3/OS-INHERIT/domains/D/{users|groups}/A/roles/inherited_to_projects`.
pub async fn inherited_list(
    State(id): State<AppState>,
    ctx: AuthContext,
    uri: Uri,
    Path((tid, aid)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (tk, ak) = inherited_kinds(&uri);
    let path = format!("OS-INHERIT/{tk}/{tid}/{ak}/{aid}/roles/inherited_to_projects");
    let roles = id.grant_list(&ctx, actor(&ak, aid)?, target(&tk, tid)?, true).await?;
    Ok(roles_body(&id, path, roles))
}

fn system_assignment((ak, aid, role): (String, String, String)) -> ApiResult<Assignment> {
    Ok(Assignment { actor: actor(&ak, aid)?, target: Target::System, role_id: role, inherited: false })
}

pub async fn grant(
    State(id): State<AppState>,
    ctx: AuthContext,
    uri: Uri,
    Path(p): Path<GrantPath>,
) -> ApiResult<StatusCode> {
    id.grant(&ctx, assignment(&uri, p)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn grant_check(
    State(id): State<AppState>,
    ctx: AuthContext,
    uri: Uri,
    Path(p): Path<GrantPath>,
) -> ApiResult<StatusCode> {
    id.grant_check(&ctx, &assignment(&uri, p)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn revoke(
    State(id): State<AppState>,
    ctx: AuthContext,
    uri: Uri,
    Path(p): Path<GrantPath>,
) -> ApiResult<StatusCode> {
    id.revoke_grant(&ctx, assignment(&uri, p)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn system_grant(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(p): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    id.grant(&ctx, system_assignment(p)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn system_grant_check(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(p): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    id.grant_check(&ctx, &system_assignment(p)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn system_revoke(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(p): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    id.revoke_grant(&ctx, system_assignment(p)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn roles_body(id: &AppState, path: String, roles: Vec<crate::store::Role>) -> Json<Value> {
    let list: Vec<Value> = roles.iter().map(|r| views::role(&id.public_url, r)).collect();
    Json(
        json!({"roles": list, "links": {"self": format!("{}/v3/{path}", id.public_url), "previous": null, "next": null}}),
    )
}

pub async fn grant_list(
    State(id): State<AppState>,
    ctx: AuthContext,
    uri: Uri,
    Path((tid, aid)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (tk, ak) = kinds(&uri);
    let path = format!("{tk}/{tid}/{ak}/{aid}/roles");
    let roles = id.grant_list(&ctx, actor(&ak, aid)?, target(&tk, tid)?, false).await?;
    Ok(roles_body(&id, path, roles))
}

pub async fn system_grant_list(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path((ak, aid)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let path = format!("system/{ak}/{aid}/roles");
    let roles = id.grant_list(&ctx, actor(&ak, aid)?, Target::System, false).await?;
    Ok(roles_body(&id, path, roles))
}

/// A flag given as `?effective`, `?effective=true` or `?effective=True`.
fn flag(q: &HashMap<String, String>, key: &str) -> bool {
    match q.get(key) {
        Some(v) if v.is_empty() => true,
        Some(v) => parse_bool(v).unwrap_or(false),
        None => false,
    }
}

pub async fn list(
    State(id): State<AppState>,
    ctx: AuthContext,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let query = AssignmentQuery {
        user_id: q.get("user.id").cloned(),
        group_id: q.get("group.id").cloned(),
        role_id: q.get("role.id").cloned(),
        project_id: q.get("scope.project.id").cloned(),
        domain_id: q.get("scope.domain.id").cloned(),
        system: q.contains_key("scope.system"),
        effective: flag(&q, "effective"),
        include_names: flag(&q, "include_names"),
        inherited_only: match q.get("scope.OS-INHERIT:inherited_to").map(String::as_str) {
            None => false,
            Some("projects") => true,
            Some(other) => {
                return Err(stratus_common::http::ApiError::bad_request(format!(
                    "Invalid scope.OS-INHERIT:inherited_to '{other}': the only value is 'projects'."
                )))
            }
        },
    };
    let lines = id.role_assignment_list(&ctx, query).await?;
    let list: Vec<Value> = lines.iter().map(|l| views::role_assignment(&id.public_url, l)).collect();
    Ok(Json(
        json!({"role_assignments": list, "links": {"self": format!("{}/v3/role_assignments", id.public_url), "previous": null, "next": null}}),
    ))
}
