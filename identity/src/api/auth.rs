//! `/v3/auth/*`: issuing, validating and revoking tokens, and what a token may reach.

use super::{views, AppState};
use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use stratus_common::auth::AuthContext;
use stratus_common::http::{ApiError, ApiJson, ApiResult};

const SUBJECT_TOKEN: &str = "x-subject-token";

#[derive(Deserialize)]
pub struct AuthBody {
    auth: crate::app::tokens::AuthRequest,
}

fn nocatalog(q: &Option<String>) -> bool {
    q.as_deref().is_some_and(|q| q.split('&').any(|p| p == "nocatalog" || p.starts_with("nocatalog=")))
}

fn subject(headers: &HeaderMap) -> ApiResult<String> {
    headers
        .get(SUBJECT_TOKEN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| ApiError::bad_request("The X-Subject-Token header is required."))
}

fn with_subject(status: StatusCode, token: &str, body: Value) -> Response {
    let mut resp = (status, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(token) {
        resp.headers_mut().insert(SUBJECT_TOKEN, v);
    }
    resp
}

pub async fn issue(
    State(id): State<AppState>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    ApiJson(body): ApiJson<AuthBody>,
) -> ApiResult<Response> {
    // Only an OAuth1 login is checked against the request as signed; the others skip
    // building it (this is identity's busiest call).
    let signed = if body.auth.identity.methods.iter().any(|m| m == "oauth1") {
        super::oauth1::signed_request(&id.public_url, &method, &uri, &headers)
    } else {
        crate::app::oauth1::SignedRequest::default()
    };
    let issued = id.token_issue(body.auth, &signed).await?;
    let body = id.token_body(&issued.claims, !nocatalog(&q)).await?;
    Ok(with_subject(StatusCode::CREATED, &issued.token, body))
}

pub async fn validate(
    State(id): State<AppState>,
    ctx: AuthContext,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let token = subject(&headers)?;
    let claims = id.token_validate(&ctx, &token).await?;
    let body = id.token_body(&claims, !nocatalog(&q)).await?;
    Ok(with_subject(StatusCode::OK, &token, body))
}

pub async fn revoke(State(id): State<AppState>, ctx: AuthContext, headers: HeaderMap) -> ApiResult<StatusCode> {
    id.token_revoke(&ctx, &subject(&headers)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn catalog(State(id): State<AppState>, ctx: AuthContext) -> ApiResult<Json<Value>> {
    let catalog = id.catalog_json(ctx.project_id()).await?;
    Ok(Json(
        json!({"catalog": catalog, "links": {"self": format!("{}/v3/auth/catalog", id.public_url), "previous": null, "next": null}}),
    ))
}

pub async fn projects(State(id): State<AppState>, ctx: AuthContext) -> ApiResult<Json<Value>> {
    let list: Vec<Value> = id.auth_projects(&ctx).await?.iter().map(|p| views::project(&id.public_url, p)).collect();
    Ok(Json(
        json!({"projects": list, "links": {"self": format!("{}/v3/auth/projects", id.public_url), "previous": null, "next": null}}),
    ))
}

pub async fn domains(State(id): State<AppState>, ctx: AuthContext) -> ApiResult<Json<Value>> {
    let list: Vec<Value> = id.auth_domains(&ctx).await?.iter().map(|d| views::domain(&id.public_url, d)).collect();
    Ok(Json(
        json!({"domains": list, "links": {"self": format!("{}/v3/auth/domains", id.public_url), "previous": null, "next": null}}),
    ))
}

pub async fn system(State(id): State<AppState>, ctx: AuthContext) -> ApiResult<Json<Value>> {
    let system = if id.auth_system(&ctx).await? { json!([{"all": true}]) } else { json!([]) };
    Ok(Json(json!({"system": system, "links": {"self": format!("{}/v3/auth/system", id.public_url)}})))
}

/// Public keys and revocations in force, for verifiers in other processes. Public like a
/// JWKS document: it holds no secret.
pub async fn verification(State(id): State<AppState>) -> ApiResult<Json<Value>> {
    let material = id.verification_material().await?;
    Ok(Json(serde_json::to_value(material).expect("serializable")))
}

/// `GET /v3/OS-STRATUS/tasks` (admins): this process's background tasks, with when
/// each last ran, succeeded and failed (in all-in-one, every service's and agent's).
pub async fn tasks(ctx: AuthContext) -> ApiResult<Json<Value>> {
    crate::app::policy::require_admin(&ctx, "identity:list_tasks")?;
    Ok(Json(serde_json::json!({ "tasks": stratus_common::supervisor::SUPERVISOR.snapshot() })))
}

/// `GET /v3/OS-REVOKE/events` (admins and services).
pub async fn revoke_events(
    State(id): State<AppState>,
    ctx: AuthContext,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let since = q.get("since").cloned().unwrap_or_default();
    let events = id.revocation_events(&ctx, &since).await?;
    let list: Vec<Value> = events
        .iter()
        .map(|r| {
            let mut v = json!({"issued_before": r.issued_before, "revoked_at": r.revoked_at});
            for (k, val) in [
                ("audit_id", &r.audit_id),
                ("user_id", &r.user_id),
                ("project_id", &r.project_id),
                ("domain_id", &r.domain_id),
                ("role_id", &r.role_id),
                ("consumer_id", &r.consumer_id),
                ("access_token_id", &r.access_token_id),
            ] {
                if let Some(x) = val {
                    v[k] = json!(x);
                }
            }
            if let Some(x) = r.app_cred_id.as_ref().filter(|_| r.access_token_id.is_none()) {
                v["access_token_id"] = json!(x);
            }
            v
        })
        .collect();
    Ok(Json(
        json!({"events": list, "links": {"self": format!("{}/v3/OS-REVOKE/events", id.public_url), "previous": null, "next": null}}),
    ))
}
