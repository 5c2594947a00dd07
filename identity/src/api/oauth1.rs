//! `/v3/OS-OAUTH1/*` and `/v3/users/{id}/OS-OAUTH1/access_tokens`: delegation to
//! third-party consumers (see [`crate::app::oauth1`]).
//!
//! Request and access tokens are answered as OAuth answers them, form-encoded
//! (`oauth_token=…&oauth_token_secret=…&oauth_expires_at=…`).

use super::{list_response, views, AppState};
use crate::app::app_creds::RoleRef;
use crate::app::oauth1::{percent_encode, ConsumerBody, SignedRequest};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use stratus_common::auth::AuthContext;
use stratus_common::http::{ApiError, ApiJson, ApiResult};

/// The request as its consumer signed it: the URL it called (as the `Host` header, or
/// a proxy's forwarded headers, say) and the service's public URL, with the path.
pub(crate) fn signed_request(public_url: &str, method: &Method, uri: &Uri, headers: &HeaderMap) -> SignedRequest {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let path = uri.path();
    let mut urls = Vec::new();
    if let Some(host) = text("x-forwarded-host").or_else(|| text("host")) {
        let scheme = text("x-forwarded-proto").unwrap_or_else(|| "http".into());
        urls.push(format!("{scheme}://{host}{path}"));
    }
    urls.push(format!("{}{path}", public_url.trim_end_matches('/')));
    SignedRequest {
        method: method.as_str().to_string(),
        urls,
        query: uri.query().map(str::to_string),
        authorization: text("authorization"),
    }
}

/// A request or access token as OAuth answers it: 201, form-encoded.
fn token_answer(key: &str, secret: &str, expires_at: Option<&str>) -> Response {
    let pairs = [("oauth_token", Some(key)), ("oauth_token_secret", Some(secret)), ("oauth_expires_at", expires_at)];
    let body =
        pairs.iter().filter_map(|(k, v)| v.map(|v| format!("{k}={}", percent_encode(v)))).collect::<Vec<_>>().join("&");
    (StatusCode::CREATED, [(header::CONTENT_TYPE, "application/x-www-form-urlencoded")], body).into_response()
}

#[derive(Deserialize)]
pub struct ConsumerEnvelope {
    consumer: ConsumerBody,
}

pub async fn consumer_list(
    State(id): State<AppState>,
    ctx: AuthContext,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let items = id.consumer_list(&ctx).await?.iter().map(|c| views::consumer(&id.public_url, c, false)).collect();
    list_response(&id.public_url, "consumers", "OS-OAUTH1/consumers", items, &q, &["description"])
}

pub async fn consumer_create(
    State(id): State<AppState>,
    ctx: AuthContext,
    ApiJson(b): ApiJson<ConsumerEnvelope>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let c = id.consumer_create(&ctx, b.consumer).await?;
    Ok((StatusCode::CREATED, Json(json!({"consumer": views::consumer(&id.public_url, &c, true)}))))
}

pub async fn consumer_show(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(cid): Path<String>,
) -> ApiResult<Json<Value>> {
    let c = id.consumer_get(&ctx, &cid).await?;
    Ok(Json(json!({"consumer": views::consumer(&id.public_url, &c, false)})))
}

pub async fn consumer_update(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(cid): Path<String>,
    ApiJson(b): ApiJson<ConsumerEnvelope>,
) -> ApiResult<Json<Value>> {
    let c = id.consumer_update(&ctx, &cid, b.consumer).await?;
    Ok(Json(json!({"consumer": views::consumer(&id.public_url, &c, false)})))
}

pub async fn consumer_delete(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(cid): Path<String>,
) -> ApiResult<StatusCode> {
    id.consumer_delete(&ctx, &cid).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn request_token(
    State(id): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let signed = signed_request(&id.public_url, &method, &uri, &headers);
    let project = headers.get("requested-project-id").and_then(|v| v.to_str().ok());
    let t = id.request_token_create(&signed, project).await?;
    Ok(token_answer(&t.id, &t.secret, t.expires_at.as_deref()))
}

#[derive(Deserialize)]
pub struct AuthorizeBody {
    roles: Vec<RoleRef>,
}

pub async fn authorize(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(rid): Path<String>,
    ApiJson(b): ApiJson<AuthorizeBody>,
) -> ApiResult<Json<Value>> {
    let verifier = id.request_token_authorize(&ctx, &rid, b.roles).await?;
    Ok(Json(json!({"token": {"oauth_verifier": verifier}})))
}

pub async fn access_token_create(
    State(id): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let signed = signed_request(&id.public_url, &method, &uri, &headers);
    let t = id.access_token_create(&signed).await?;
    Ok(token_answer(&t.id, &t.secret, t.expires_at.as_deref()))
}

pub async fn access_token_list(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(uid): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let items =
        id.access_token_list(&ctx, &uid).await?.iter().map(|t| views::access_token(&id.public_url, t)).collect();
    list_response(
        &id.public_url,
        "access_tokens",
        &format!("users/{uid}/OS-OAUTH1/access_tokens"),
        items,
        &q,
        &["consumer_id", "project_id"],
    )
}

pub async fn access_token_show(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path((uid, tid)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let t = id.access_token_get(&ctx, &uid, &tid).await?;
    Ok(Json(json!({"access_token": views::access_token(&id.public_url, &t)})))
}

pub async fn access_token_delete(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path((uid, tid)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    id.access_token_delete(&ctx, &uid, &tid).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn access_token_roles(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path((uid, tid)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let items = id.access_token_roles(&ctx, &uid, &tid).await?.iter().map(|r| views::role(&id.public_url, r)).collect();
    list_response(
        &id.public_url,
        "roles",
        &format!("users/{uid}/OS-OAUTH1/access_tokens/{tid}/roles"),
        items,
        &q,
        &["name"],
    )
}

pub async fn access_token_role(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path((uid, tid, rid)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let role = id
        .access_token_roles(&ctx, &uid, &tid)
        .await?
        .into_iter()
        .find(|r| r.id == rid)
        .ok_or_else(|| ApiError::not_found("role", &rid))?;
    Ok(Json(json!({"role": views::role(&id.public_url, &role)})))
}
